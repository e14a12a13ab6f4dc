/*
 * Transport — the control channel between swaled and its clients (swalectl, applications).
 *
 * A UNIX stream socket carrying newline-delimited JSON (Wire.swift): one request, one reply. File
 * descriptors (a region's memfd, doorbell sockets) ride along with a reply as SCM_RIGHTS ancillary
 * data on the same sendmsg, so they arrive together with the first bytes of that reply. Each
 * application port or pipe end is held by one connection: when the connection closes — the app
 * closed the port, exited, or was killed — the service releases everything it held, as closing a
 * netmap fd does.
 *
 * This file has the blocking client side (ControlConnection) and the listening socket; the
 * service reads its connections without blocking (SwaleService/ControlServer.swift).
 */
import CSwaleSys
import Foundation
import Glibc

public enum ControlPaths {
    public static let defaultSocket = "/run/swale/swaled.sock"

    /// SWALE_SOCKET overrides the default for every tool.
    public static func resolve(_ explicit: String?) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let env = ProcessInfo.processInfo.environment["SWALE_SOCKET"], !env.isEmpty { return env }
        return defaultSocket
    }
}

public final class ControlConnection {
    public let fd: Int32
    private var pending: [UInt8] = []
    private var pendingFDs: [Int32] = []
    private var scanned = 0
    /// Largest message accepted: replies can be large (a full MAC table), requests are small.
    public static let maxMessage = 256 << 20
    public static let maxRequest = 64 << 10
    public var limit: Int

    public init(fd: Int32, limit: Int = ControlConnection.maxMessage) {
        self.fd = fd
        self.limit = limit
    }

    /// Connects to the service's socket.
    public static func connect(path: String) throws -> ControlConnection {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        var addr = try sockaddrUn(path)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard r == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ControlError(
                "cannot reach swaled at \(path): \(String(cString: strerror(e))) (is swaled running? set SWALE_SOCKET or --socket)"
            )
        }
        return ControlConnection(fd: fd)
    }

    public static func sockaddrUn(_ path: String) throws -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let cap = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < cap else {
            throw ControlError("socket path too long (\(bytes.count) bytes, max \(cap - 1)): \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return addr
    }

    /// Sends one JSON message with optional descriptors.
    public func send(_ data: Data, fds: [Int32] = []) throws {
        var bytes = [UInt8](data)
        bytes.append(UInt8(ascii: "\n"))
        var off = 0
        var first = true
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                let toSend = first ? fds : []
                return toSend.withUnsafeBufferPointer { f in
                    swale_send_fds(fd, raw.baseAddress! + off, raw.count - off, f.baseAddress, Int32(f.count))
                }
            }
            guard n > 0 else { throw ControlError("send: \(String(cString: strerror(Int32(-n))))") }
            first = false
            off += n
        }
    }

    /// Receives one message; nil at end of stream. Descriptors that came with it are returned.
    public func receive() throws -> (Data, [Int32])? {
        while true {
            if let nl = pending[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                let msg = Data(pending[..<nl])
                pending.removeSubrange(...nl)
                scanned = 0
                let fds = pendingFDs
                pendingFDs = []
                return (msg, fds)
            }
            scanned = pending.count  // only new bytes are searched for the end of the message
            guard pending.count < limit else { throw ControlError("message larger than \(limit) bytes") }
            var buf = [UInt8](repeating: 0, count: 65536)
            var fds = [Int32](repeating: -1, count: 16)
            var nfds: Int32 = 0
            let n = buf.withUnsafeMutableBytes { raw in
                fds.withUnsafeMutableBufferPointer { f in
                    swale_recv_fds(fd, raw.baseAddress, raw.count, f.baseAddress, 16, &nfds)
                }
            }
            if n < 0 { throw ControlError("receive: \(String(cString: strerror(Int32(-n))))") }
            pendingFDs.append(contentsOf: fds.prefix(Int(nfds)))
            if n == 0 {
                for f in pendingFDs { Glibc.close(f) }
                pendingFDs = []
                return nil
            }
            pending.append(contentsOf: buf.prefix(n))
        }
    }

    public func close() { Glibc.close(fd) }
}

/// A listening socket with mode 0660.
public final class ControlListener {
    public let fd: Int32
    public let path: String

    /// `group`: the socket file's group (members may connect; the file is 0660).
    public init(path: String, group: gid_t? = nil) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        // A stale socket from a crashed run is removed only if nobody answers on it.
        if FileManager.default.fileExists(atPath: path) {
            if let c = try? ControlConnection.connect(path: path) {
                c.close()
                throw ControlError("another swaled is already serving \(path)")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        // The path appears only once the socket listens: bind a neighbouring name, set its mode,
        // listen, then rename it into place. A client that sees the file can connect at once
        // (between bind and listen it would be refused). A path with no room for the extra byte
        // is bound directly.
        let staged = path + "~"
        let bound = staged.utf8.count < 108 ? staged : path
        unlink(staged)
        func fail(_ what: String) -> ControlError {
            let e = errno
            Glibc.close(fd)
            unlink(bound)
            return ControlError("\(what): \(String(cString: strerror(e)))")
        }
        var addr = try ControlConnection.sockaddrUn(bound)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ControlError("bind \(path): \(String(cString: strerror(e)))")
        }
        chmod(bound, 0o660)
        if let group, chown(bound, uid_t.max, group) != 0 { throw fail("chown \(path) to group \(group)") }
        guard listen(fd, 128) == 0 else { throw fail("listen \(path)") }
        if bound != path, rename(bound, path) != 0 { throw fail("rename \(bound) to \(path)") }
        self.fd = fd
    }

    public func close() {
        Glibc.close(fd)
        unlink(path)
    }
}
