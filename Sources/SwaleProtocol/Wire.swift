/*
 * Wire — the envelope every message travels in, error codes, and the one error type of the
 * protocol layer.
 *
 *   request  {"v": 1, "op": "fdb.show", "args": {"bridge": "vale0"}}
 *   reply    {"ok": true, "result": [...]}
 *            {"ok": false, "code": "permission-denied", "error": "port.attach needs root"}
 *
 * One message per line (newline-delimited JSON). `code` is stable and meant for programs; `error`
 * is for people and may change wording.
 */
import Foundation

/// Stable error codes of a refused or failed request.
public enum ErrorCode: String, Codable, Sendable {
    /// Not JSON, not an envelope, or arguments of the wrong shape.
    case malformed
    /// No such operation.
    case unknownOperation = "unknown-operation"
    /// The first message was not `hello`, or its version is not spoken here.
    case version
    /// The Access of the operation or an object rule (bridge access list, ownership) refused it.
    case permissionDenied = "permission-denied"
    /// A named bridge, port, pipe or interface does not exist.
    case notFound = "not-found"
    /// It exists already, or is open already.
    case exists
    /// A per-user or global budget is used up.
    case limit
    /// A value is out of range or not valid for this object.
    case invalidArgument = "invalid-argument"
    /// The kernel refused (netlink, TAP, packet socket) or ran out of something.
    case system
    /// The request was larger than the service accepts.
    case tooLarge = "too-large"
}

/// An error of the control protocol, on either side: a stable code and a message.
public struct ControlError: Error, CustomStringConvertible, Sendable {
    public let code: ErrorCode
    public let message: String
    public init(_ code: ErrorCode, _ message: String) { self.code = code; self.message = message }
    /// Transport and client-side problems (no reply to take a code from).
    public init(_ message: String) { self.init(.system, message) }
    public var description: String { message }
}

/// What a client sends.
public struct Envelope<O: ControlOperation>: Codable, Sendable {
    public var v: Int
    public var op: String
    public var args: O
    public init(_ args: O) { self.v = ControlProtocol.version; self.op = O.op; self.args = args }
}

/// The part of an envelope the service reads before it knows the operation.
public struct EnvelopeHead: Codable, Sendable {
    public var v: Int?
    public var op: String
}

/// Only the arguments, once the operation is known.
public struct EnvelopeArgs<O: ControlOperation>: Decodable {
    public var args: O
    enum CodingKeys: CodingKey { case args }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // An operation without arguments may be sent without "args".
        if !c.contains(.args), let empty = try? JSONDecoder().decode(O.self, from: Data("{}".utf8)) {
            args = empty
        } else {
            args = try c.decode(O.self, forKey: .args)
        }
    }
}

public struct Reply<T: Codable>: Codable {
    public var ok: Bool
    public var code: ErrorCode?
    public var error: String?
    public var result: T?

    public init(result: T) { self.ok = true; self.result = result }
    public init(error: ControlError) where T == Empty { self.ok = false; self.code = error.code; self.error = error.message }
}

public struct Empty: Codable, Sendable { public init() {} }
