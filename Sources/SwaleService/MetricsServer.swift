/*
 * MetricsServer — `swaled --metrics 127.0.0.1:9477`: GET /metrics over HTTP for Prometheus.
 *
 * Off unless configured; meant for loopback. It is one more way into the service, so it goes
 * through the permission table like the control socket: each request becomes a session of the
 * user who made the connection, says hello and sends the `metrics` operation (member access:
 * root, swaled's user, or a member of the control socket's group; anyone else gets 403), and sees
 * what `swalectl stats` would show that user. Who made a TCP connection: the kernel's table of
 * local TCP sockets (/proc/net/tcp) lists the uid that created the client's socket, found by the
 * connection's two addresses while it is open, as `ss -e` shows it. A connection from another
 * machine has no such entry and is refused (scrape from a local agent, or through a tunnel).
 *
 * One thread serves one connection at a time with 2-second read and write timeouts and an 8 KiB
 * request limit: a slow or hostile client can delay other scrapers by at most that, never
 * forwarding (which a scrape touches only as `stats` does) or the control socket.
 */
import Foundation
import Glibc
import Logging
import SwaleProtocol

public final class MetricsServer: @unchecked Sendable {
    let service: Service
    let fd: Int32
    let socketGroup: gid_t?
    let log: Logger
    public let address: String
    /// SOCK_STREAM | SOCK_CLOEXEC (Linux values: Glibc's enum is not imported the same way in every build).
    static let streamCloexec: Int32 = 1 | 0o2000000
    private var stopping = false
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)

    /// Binds `address` ("A.B.C.D:PORT", IPv4) and listens; `serve()` starts answering.
    public init(service: Service, address: String, socketGroup: gid_t?, logger: Logger) throws {
        let parts = address.split(separator: ":", omittingEmptySubsequences: false)
        var sin = sockaddr_in()
        guard parts.count == 2, let port = UInt16(parts[1]), port > 0, inet_pton(AF_INET, String(parts[0]), &sin.sin_addr) == 1
        else {
            throw ControlError(.invalidArgument, "metrics address '\(address)' is not IPV4:PORT (say 127.0.0.1:9477)")
        }
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        let s = socket(AF_INET, MetricsServer.streamCloexec, 0)
        guard s >= 0 else { throw ControlError(.system, "metrics socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(s, 16) == 0 else {
            let e = String(cString: strerror(errno))
            close(s)
            throw ControlError(.system, "metrics: cannot listen on \(address): \(e)")
        }
        fd = s
        self.service = service
        self.socketGroup = socketGroup
        self.log = logger
        self.address = address
    }

    public func serve() {
        let t = Thread { [self] in
            while !stopping {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 200) > 0 else { continue }
                let c = accept(fd, nil, nil)
                if c < 0 { continue }
                _ = fcntl(c, F_SETFD, FD_CLOEXEC)
                answer(c)
                close(c)
            }
            done.signal()
        }
        thread = t
        t.start()
        log.info("metrics on http://\(address)/metrics")
    }

    public func stop() {
        guard thread != nil else { return }
        stopping = true
        done.wait()
        thread = nil
        close(fd)
    }

    func answer(_ c: Int32) {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192 {
            let n = read(c, &buf, buf.count)
            if n <= 0 { break }
            request += buf[0..<n]
            if request.count >= 4 && request.suffix(4) == [13, 10, 13, 10] { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return reply(c, 400, "not an HTTP/1 request\n") }
        guard parts[0] == "GET" || parts[0] == "HEAD" else { return reply(c, 405, "GET only\n") }
        guard parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") else { return reply(c, 404, "try /metrics\n") }
        guard let who = MetricsServer.peer(c) else {
            return reply(c, 403, "cannot tell which local user made this connection; metrics are for local users\n")
        }
        let creds = Credentials.ofUser(who)
        guard creds.root || socketGroup.map({ creds.groups.contains($0) }) == true else {
            log.notice("refused metrics to uid \(who): not root nor in the socket group")
            return reply(c, 403, "uid \(who) is not a member of swaled's socket group\n")
        }
        let result: Result<Int, ControlError> = service.openSession(creds)
        guard case .success(let sid) = result else { return reply(c, 503, "too many sessions\n") }
        defer { service.closeSession(sid) }
        // The same two requests a client sends on the control socket, through the same checks.
        let hello = service.handle(Data(#"{"v":1,"op":"hello","args":{"version":1,"client":"http"}}"#.utf8), session: sid)
        let scrape = service.handle(Data(#"{"v":1,"op":"metrics","args":{}}"#.utf8), session: sid)
        for out in [hello, scrape] {
            let r = try? JSONDecoder().decode(Reply<Empty>.self, from: out.data)
            guard r?.ok == true else { return reply(c, 403, (r?.error ?? "refused") + "\n") }
        }
        guard let text = (try? JSONDecoder().decode(Reply<MetricsText>.self, from: scrape.data))?.result?.text else {
            return reply(c, 503, "no reply\n")
        }
        reply(c, 200, text, head: parts[0] == "HEAD")
    }

    func reply(_ c: Int32, _ status: Int, _ body: String, head: Bool = false) {
        let reason =
            [200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"][status]
            ?? "Service Unavailable"
        let bytes = Array(body.utf8)
        let header =
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
        var all = Array(header.utf8)
        if !head { all += bytes }
        var off = 0
        while off < all.count {
            let n = all[off...].withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            off += n
        }
    }

    /// The uid that created the client socket of connection c (IPv4, local peers only).
    static func peer(_ c: Int32) -> UInt32? {
        var mine = sockaddr_in(), theirs = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok1 = withUnsafeMutablePointer(to: &mine) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(c, $0, &len) }
        }
        len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok2 = withUnsafeMutablePointer(to: &theirs) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(c, $0, &len) }
        }
        guard ok1 == 0, ok2 == 0, let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return nil }
        // /proc/net/tcp prints an address as the 32-bit value in host order, then the port: the
        // client's socket has local = its address (our peer), remote = ours.
        func key(_ a: sockaddr_in) -> String {
            String(format: "%08X:%04X", a.sin_addr.s_addr, UInt16(bigEndian: a.sin_port))
        }
        let local = key(theirs), remote = key(mine)
        for line in table.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.count > 7, f[1] == local, f[2] == remote { return UInt32(f[7]) }
        }
        return nil
    }
}
