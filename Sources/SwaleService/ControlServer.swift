/*
 * ControlServer — accepts clients on the UNIX socket and serves each on its own thread.
 *
 * A connection is a session: the ports and pipe ends it opened are released when it ends, however
 * it ends (close, exit, SIGKILL). Peer credentials are checked at accept: only root or the socket's
 * group (the file is 0660) get in, and the peer's pid is recorded for `swalectl status`.
 */
import CSwaleSys
import Foundation
import Glibc
import Logging
import SwaleControl

public final class ControlServer: @unchecked Sendable {
    let service: Service
    let listener: ControlListener
    let log: Logger

    public init(service: Service, path: String, group: gid_t? = nil, logger: Logger) throws {
        self.service = service
        self.listener = try ControlListener(path: path, group: group)
        self.log = logger
    }

    /// Serves until `shouldStop` returns true (checked a few times a second).
    public func run(shouldStop: () -> Bool) {
        log.info("listening on \(listener.path)")
        while !shouldStop() {
            guard let conn = listener.accept(timeoutMs: 200) else { continue }
            var pid: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
            guard swale_peer_cred(conn.fd, &pid, &uid, &gid) == 0 else { conn.close(); continue }
            guard allowed(uid: uid, gid: gid, pid: pid) else {
                log.warning("refused control connection from pid \(pid) uid \(uid): not root, not the service's user, not in the socket's group")
                conn.close()
                continue
            }
            guard let sid = service.openSession(pid: Int(pid), uid: Int(uid), gid: Int(gid)) else {
                log.warning("refused control connection from pid \(pid): \(Service.maxSessions) sessions open")
                conn.close()
                continue
            }
            let t = Thread { [service, log] in
                ControlServer.serve(conn, session: sid, service: service, log: log)
            }
            t.name = "swale-client-\(pid)"
            t.start()
        }
        listener.close()
    }

    /// Root, the service's own user, or a member of the socket's group (the file is 0660):
    /// primary group from SO_PEERCRED, supplementary ones from /proc/PID/status.
    func allowed(uid: UInt32, gid: UInt32, pid: UInt32) -> Bool {
        if uid == 0 || uid == getuid() { return true }
        var st = stat()
        guard stat(listener.path, &st) == 0 else { return false }
        if st.st_gid == gid { return true }
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") }) else { return false }
        return line.dropFirst(7).split(whereSeparator: { $0 == " " || $0 == "\t" }).contains { UInt32($0) == st.st_gid }
    }

    static func serve(_ conn: ControlConnection, session: Int, service: Service, log: Logger) {
        defer {
            service.closeSession(session)
            conn.close()
        }
        while true {
            let msg: (Data, [Int32])?
            do { msg = try conn.receive() } catch {
                log.debug("client: \(error)")
                return
            }
            guard let (data, stray) = msg else { return }
            for f in stray { close(f) }  // clients send no descriptors
            let (reply, fds) = service.handle(data, session: session)
            do { try conn.send(reply, fds: fds) } catch { return }
        }
    }
}
