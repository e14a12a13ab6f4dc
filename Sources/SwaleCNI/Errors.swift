/*
 * Errors — the CNI spec's error result: `{"cniVersion", "code", "msg", "details"}` on stdout and a
 * non-zero exit. Codes 1-99 are the spec's own (well-known) codes; the runtime acts on some of them
 * (11: try again later; 50/51: STATUS says the plugin cannot serve ADD now).
 */
import Foundation

public struct CNIError: Error, CustomStringConvertible, Equatable {
    public var code: Int
    public var msg: String
    public var details: String

    public init(_ code: Int, _ msg: String, details: String = "") {
        self.code = code; self.msg = msg; self.details = details
    }

    public var description: String { details.isEmpty ? "\(msg) (code \(code))" : "\(msg): \(details) (code \(code))" }

    // The spec's well-known codes.
    public static let incompatibleVersion = 1
    public static let unsupportedField = 2
    public static let unknownContainer = 3
    public static let invalidEnvironment = 4
    public static let ioFailure = 5
    public static let decodeFailure = 6
    public static let invalidConfig = 7
    public static let tryAgainLater = 11
    public static let pluginNotAvailable = 50
    // Plugin-specific codes start at 100.
    /// swaled refused or failed a request.
    public static let switchFailure = 100
    /// CHECK found the attachment not as ADD left it.
    public static let checkFailed = 101
    /// Applying addresses or routes inside the namespace failed.
    public static let sandboxFailure = 102

    /// The error result as the spec writes it.
    public func json(cniVersion: String) -> Data {
        var obj: [String: Any] = ["cniVersion": cniVersion, "code": code, "msg": msg]
        if !details.isEmpty { obj["details"] = details }
        return JSON.encode(obj)
    }
}

enum JSON {
    static func encode(_ obj: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }

    /// A JSON object from bytes, or the spec's decode error naming `what`.
    static func object(_ data: Data, _ what: String) throws -> [String: Any] {
        let value: Any
        do { value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw CNIError(CNIError.decodeFailure, "\(what) is not valid JSON", details: "\(error)")
        }
        guard let obj = value as? [String: Any] else {
            throw CNIError(CNIError.decodeFailure, "\(what) is not a JSON object")
        }
        return obj
    }
}
