/*
 * Client — a synchronous control session: connect, say hello (the protocol version), then typed
 * calls. swalectl, the tests and SwaleClient's SwalePort use it; a SwalePort keeps its session open
 * for as long as the port is open, because the service releases a port when its connection ends.
 */
import Foundation
import Glibc

public final class ControlSession {
    public let connection: ControlConnection
    /// What the service said to our hello: its version and who it takes us for.
    public private(set) var hello: HelloInfo

    init(connection: ControlConnection, hello: HelloInfo) {
        self.connection = connection
        self.hello = hello
    }

    /// Connects to swaled (explicit path, $SWALE_SOCKET, or the default) and exchanges hello.
    public static func connect(socket: String? = nil, client: String = "swale") throws -> ControlSession {
        let conn = try ControlConnection.connect(path: ControlPaths.resolve(socket))
        do {
            let (info, fds) = try exchange(conn, Hello(version: ControlProtocol.version, client: client))
            fds.forEach { _ = Glibc.close($0) }
            return ControlSession(connection: conn, hello: info)
        } catch {
            conn.close()
            throw error
        }
    }

    /// One request, one typed result; descriptors that came with it are closed.
    public func call<O: ControlOperation>(_ op: O) throws -> O.Result {
        let (r, fds) = try callWithDescriptors(op)
        fds.forEach { _ = Glibc.close($0) }
        return r
    }

    /// One request; the caller owns the descriptors that came with the reply.
    public func callWithDescriptors<O: ControlOperation>(_ op: O) throws -> (O.Result, [Int32]) {
        try ControlSession.exchange(connection, op)
    }

    static func exchange<O: ControlOperation>(_ conn: ControlConnection, _ op: O) throws -> (O.Result, [Int32]) {
        try conn.send(JSONEncoder().encode(Envelope(op)))
        guard let (data, fds) = try conn.receive() else { throw ControlError("swaled closed the connection") }
        let reply: Reply<O.Result>
        do { reply = try JSONDecoder().decode(Reply<O.Result>.self, from: data) } catch {
            fds.forEach { _ = Glibc.close($0) }
            throw ControlError(.malformed, "unreadable reply to \(O.op): \(error)")
        }
        guard reply.ok, let result = reply.result else {
            fds.forEach { _ = Glibc.close($0) }
            throw ControlError(reply.code ?? .system, reply.error ?? "\(O.op) failed")
        }
        return (result, fds)
    }

    /// One request on a connection that has said hello already (a port's own); descriptors closed.
    public static func call<O: ControlOperation>(_ op: O, on conn: ControlConnection) throws -> O.Result {
        let (r, fds) = try exchange(conn, op)
        fds.forEach { _ = Glibc.close($0) }
        return r
    }

    public func close() { connection.close() }
}

/// One-shot calls: connect, hello, one request, close.
public enum ControlClient {
    public static func call<O: ControlOperation>(_ op: O, socket: String? = nil) throws -> O.Result {
        let s = try ControlSession.connect(socket: socket, client: "swalectl")
        defer { s.close() }
        return try s.call(op)
    }
}
