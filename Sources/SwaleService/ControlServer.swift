/*
 * ControlServer — every client connection on one thread, none of them able to hold it.
 *
 * One epoll loop owns the listening socket and all connections, all nonblocking. A connection is
 * a session: the ports and pipe ends it opened are released when it ends, however it ends (close,
 * exit, SIGKILL). Per connection:
 *
 *   read     bytes gather until a newline, at most ControlConnection.maxRequest; a longer request
 *            is answered "too-large" and the connection closed (its buffer goes with it).
 *            Descriptors that arrive (SCM_RIGHTS) are kept only up to what an operation may take
 *            (ControlProtocol.maxDescriptors) and handed to the request they came with, which
 *            closes them on every path; any beyond are closed at once.
 *   handle   one request at a time per connection, on a worker (the service lock is held only
 *            while state is read or changed; encoding happens after). While it runs the loop does
 *            not read from that connection.
 *   write    the reply with its descriptors (duplicates, closed once sent); a client that does
 *            not read its reply for `stallSeconds` is dropped.
 *
 * accept() failing for lack of descriptors pauses accepting for a moment instead of spinning.
 * Peer credentials are checked at accept: root, swaled's user, or the socket file's group.
 */
import CSwaleSys
import Foundation
import Glibc
import Logging
import SwaleProtocol

public final class ControlServer: @unchecked Sendable {
    let service: Service
    let listener: ControlListener
    let log: Logger
    let epfd: Int32
    /// Workers write a byte here when a reply is ready.
    let wakeRead: Int32, wakeWrite: Int32
    let workers = DispatchQueue(label: "swale-control", attributes: .concurrent)
    /// Work handed to `workers` and not finished: waited for before the service shuts down.
    let inflight = DispatchGroup()
    /// I/O thread only.
    var connections: [Int32: Connection] = [:]
    var acceptPausedUntil = 0.0
    var acceptPaused = false
    /// What workers finished (admissions, replies), picked up by the I/O thread.
    enum Finished {
        case admitted(Connection, Result<Int, ControlError>)
        case replied(Connection, Service.Outgoing)
    }
    let doneLock = NSLock()
    var done: [Finished] = []
    static let stallSeconds = 10.0
    static let listenerTag: UInt64 = .max
    static let wakeTag: UInt64 = .max - 1

    final class Connection {
        let fd: Int32
        /// Set once the service admitted it (until then the connection is busy, not read).
        var session = 0
        let who: Credentials
        var input: [UInt8] = []
        var scanned = 0
        var heldFDs: [Int32] = []
        var output: [UInt8] = []
        var sent = 0
        var outFDs: [Int32] = []
        var busy = false
        var closeAfterWrite = false
        var gone = false
        var lastProgress = ControlServer.now()
        init(fd: Int32, who: Credentials) {
            self.fd = fd
            self.who = who
        }
    }

    public init(service: Service, path: String, group: gid_t? = nil, logger: Logger) throws {
        self.service = service
        self.listener = try ControlListener(path: path, group: group)
        self.log = logger
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        var sv: [Int32] = [-1, -1]
        guard epfd >= 0,
            socketpair(
                AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0
        else {
            throw ControlError("control server: \(String(cString: strerror(errno)))")
        }
        wakeRead = sv[0]
        wakeWrite = sv[1]
        _ = fcntl(listener.fd, F_SETFL, fcntl(listener.fd, F_GETFL) | O_NONBLOCK)
        ControlServer.refuseDescriptors(listener.fd)
        watch(listener.fd, tag: ControlServer.listenerTag, events: EPOLLIN.rawValue)
        watch(wakeRead, tag: ControlServer.wakeTag, events: EPOLLIN.rawValue)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func watch(_ fd: Int32, tag: UInt64, events: UInt32, modify: Bool = false) {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = tag
        _ = epoll_ctl(epfd, modify ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev)
    }

    func unwatch(_ fd: Int32) {
        var ev = epoll_event()
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev)
    }

    /// Serves until `shouldStop` returns true (checked a few times a second).
    public func run(shouldStop: () -> Bool) {
        log.info("listening on \(listener.path)")
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while !shouldStop() {
            let n = epoll_wait(epfd, &events, Int32(events.count), 200)
            for i in 0..<max(0, Int(n)) {
                let tag = events[i].data.u64
                let ev = events[i].events
                if tag == ControlServer.listenerTag {
                    acceptAll()
                } else if tag == ControlServer.wakeTag {
                    var buf = [UInt8](repeating: 0, count: 256)
                    while read(wakeRead, &buf, buf.count) > 0 {}
                    deliverReplies()
                } else if let c = connections[Int32(truncatingIfNeeded: tag)] {
                    if ev & EPOLLOUT.rawValue != 0 { flush(c) }
                    if ev & EPOLLIN.rawValue != 0, !c.gone, !c.busy { readFrom(c) }
                    if ev & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0, !c.gone { drop(c) }
                }
            }
            housekeeping()
        }
        for c in Array(connections.values) { drop(c) }
        listener.close()
        // Requests and session releases still running finish before swaled tears bridges down
        // and exits (a worker left running into exit() could abort the process).
        if inflight.wait(timeout: .now() + 5) == .timedOut { log.warning("control requests still running at shutdown") }
        deliverReplies()
        for c in Array(connections.values) { finish(c) }
        _ = inflight.wait(timeout: .now() + 5)
    }

    // MARK: accepting

    func acceptAll() {
        while true {
            let fd = accept(listener.fd, nil, nil)
            if fd >= 0 {
                // swaled starts no programs, so the moment without CLOEXEC leaks nothing.
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            }
            if fd < 0 {
                let e = errno
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    // Out of descriptors: stop listening for a moment rather than spin on a
                    // connection that stays pending.
                    log.warning("accept: \(String(cString: strerror(e))); not accepting for 100 ms")
                    unwatch(listener.fd)
                    acceptPaused = true
                    acceptPausedUntil = ControlServer.now() + 0.1
                }
                return
            }
            admit(fd)
        }
    }

    /// SO_PASSRIGHTS (83, Linux 6.16) off: a client cannot send descriptors at all. Closing one
    /// that arrived could block this thread (a socket lingering on unsent data, a FUSE file).
    static func refuseDescriptors(_ fd: Int32) {
        var off: Int32 = 0
        _ = setsockopt(fd, SOL_SOCKET, 83, &off, socklen_t(MemoryLayout<Int32>.size))
    }

    func admit(_ fd: Int32) {
        ControlServer.refuseDescriptors(fd)
        guard let who = Credentials.of(socket: fd) else { close(fd); return }
        guard allowed(who) else {
            log.warning(
                "refused control connection from pid \(who.pid) uid \(who.uid): not root, not the service's user, not in the socket's group"
            )
            close(fd)
            return
        }
        // The session is opened on a worker: the service lock may be held by a long request, and
        // this thread must never wait for it.
        let c = Connection(fd: fd, who: who)
        c.busy = true
        connections[fd] = c
        watch(fd, tag: UInt64(UInt32(bitPattern: fd)), events: 0)
        workers.async(group: inflight) { [self] in finished(.admitted(c, service.openSession(who))) }
    }

    func finished(_ f: Finished) {
        doneLock.lock()
        done.append(f)
        doneLock.unlock()
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    func admitted(_ c: Connection, _ result: Result<Int, ControlError>) {
        switch result {
        case .failure(let e):
            log.warning("refused control connection from pid \(c.who.pid) uid \(c.who.uid): \(e.message)")
            // The client reads this as the reply to its hello.
            c.closeAfterWrite = true
            if c.gone { finish(c) } else { queue(c, service.failure(e)) }
        case .success(let sid):
            c.session = sid
            if c.gone { finish(c); return }
            c.busy = false
            watch(c.fd, tag: UInt64(UInt32(bitPattern: c.fd)), events: EPOLLIN.rawValue, modify: true)
            readFrom(c)
        }
    }

    /// Root, the service's own user, or a member of the socket's group (the file is 0660).
    func allowed(_ who: Credentials) -> Bool {
        if who.root { return true }
        var st = stat()
        guard stat(listener.path, &st) == 0 else { return false }
        return who.groups.contains(st.st_gid)
    }

    // MARK: reading

    func readFrom(_ c: Connection) {
        var buf = [UInt8](repeating: 0, count: 16384)
        var fds = [Int32](repeating: -1, count: 16)
        while !c.busy && !c.gone {
            if dispatchBuffered(c) { return }
            var nfds: Int32 = 0
            let n = buf.withUnsafeMutableBytes { raw in
                fds.withUnsafeMutableBufferPointer { f in
                    swale_recv_fds(c.fd, raw.baseAddress, raw.count, f.baseAddress, 16, &nfds)
                }
            }
            var stray: [Int32] = []
            for i in 0..<Int(nfds) {
                // Only as many as an operation can take wait for their message; the rest go now,
                // closed on a worker: a close can block (see refuseDescriptors), never this thread.
                if c.heldFDs.count < ControlProtocol.maxDescriptors { c.heldFDs.append(fds[i]) } else { stray.append(fds[i]) }
            }
            if !stray.isEmpty {
                let toClose = stray
                workers.async(group: inflight) { toClose.forEach { _ = close($0) } }
            }
            if n == -Int(EAGAIN) || n == -Int(EWOULDBLOCK) { return }
            if n <= 0 { drop(c); return }
            c.input.append(contentsOf: buf.prefix(n))
        }
    }

    /// Starts the next complete request in the buffer, if any; true when one was started or the
    /// connection ended.
    func dispatchBuffered(_ c: Connection) -> Bool {
        let nl = c.input[c.scanned...].firstIndex(of: UInt8(ascii: "\n"))
        guard let nl, nl <= ControlConnection.maxRequest else {
            c.scanned = c.input.count
            if c.input.count > ControlConnection.maxRequest {
                let e = ControlError(.tooLarge, "request larger than \(ControlConnection.maxRequest) bytes; connection closed")
                log.notice("pid \(c.who.pid) uid \(c.who.uid): \(e.message)")
                c.input = []
                c.heldFDs.forEach { close($0) }
                c.heldFDs = []
                c.closeAfterWrite = true
                queue(c, service.failure(e))
                return true
            }
            return false
        }
        let message = Data(c.input[..<nl])
        c.input.removeSubrange(...nl)
        if c.input.isEmpty && c.input.capacity > 65536 { c.input = [] }  // give a big buffer back
        c.scanned = 0
        let fds = c.heldFDs
        c.heldFDs = []
        c.busy = true
        watch(c.fd, tag: UInt64(UInt32(bitPattern: c.fd)), events: 0, modify: true)
        workers.async(group: inflight) { [self] in
            finished(.replied(c, service.handle(message, session: c.session, descriptors: fds)))
        }
        return true
    }

    // MARK: writing

    func deliverReplies() {
        doneLock.lock()
        let ready = done
        done = []
        doneLock.unlock()
        for f in ready {
            switch f {
            case .admitted(let c, let result):
                admitted(c, result)
            case .replied(let c, let reply):
                if c.gone {
                    reply.closeDescriptors()
                    finish(c)
                } else {
                    queue(c, reply)
                }
            }
        }
    }

    func queue(_ c: Connection, _ reply: Service.Outgoing) {
        c.busy = true
        c.output = [UInt8](reply.data) + [UInt8(ascii: "\n")]
        c.sent = 0
        c.outFDs = reply.fds
        c.lastProgress = ControlServer.now()
        flush(c)
    }

    func flush(_ c: Connection) {
        while c.sent < c.output.count && !c.gone {
            let n = c.output.withUnsafeBytes { raw in
                c.outFDs.withUnsafeBufferPointer { f in
                    swale_send_fds(
                        c.fd, raw.baseAddress! + c.sent, raw.count - c.sent, c.sent == 0 ? f.baseAddress : nil,
                        c.sent == 0 ? Int32(f.count) : 0)
                }
            }
            if n == -Int(EAGAIN) || n == -Int(EWOULDBLOCK) {
                watch(c.fd, tag: UInt64(UInt32(bitPattern: c.fd)), events: EPOLLOUT.rawValue, modify: true)
                return
            }
            if n <= 0 { drop(c); return }
            if c.sent == 0 { c.outFDs.forEach { close($0) }; c.outFDs = [] }
            c.sent += n
            c.lastProgress = ControlServer.now()
        }
        guard !c.gone else { return }
        // A large reply (a big MAC table) is given back to the system, not kept by malloc.
        let wasLarge = c.output.count > 1 << 20
        c.output = []
        if wasLarge { swale_trim_heap() }
        c.sent = 0
        c.busy = false
        if c.closeAfterWrite { drop(c); return }
        watch(c.fd, tag: UInt64(UInt32(bitPattern: c.fd)), events: EPOLLIN.rawValue, modify: true)
        readFrom(c)  // a request may already be waiting in the buffer
    }

    // MARK: ending

    /// Ends a connection. A worker still running its request finishes first (`finish` then).
    func drop(_ c: Connection) {
        guard !c.gone else { return }
        c.gone = true
        unwatch(c.fd)
        let workerRunning = c.busy && c.output.isEmpty
        if !workerRunning { finish(c) }
    }

    func finish(_ c: Connection) {
        guard connections[c.fd] === c else { return }
        connections[c.fd] = nil
        c.heldFDs.forEach { close($0) }
        c.outFDs.forEach { close($0) }
        c.heldFDs = []
        c.outFDs = []
        c.input = []
        c.output = []
        close(c.fd)
        let sid = c.session
        if sid != 0 { workers.async(group: inflight) { [service] in service.closeSession(sid) } }
    }

    func housekeeping() {
        let now = ControlServer.now()
        if acceptPaused && now >= acceptPausedUntil {
            acceptPaused = false
            watch(listener.fd, tag: ControlServer.listenerTag, events: EPOLLIN.rawValue)
        }
        for c in connections.values where !c.gone && !c.output.isEmpty && now - c.lastProgress > ControlServer.stallSeconds {
            log.notice(
                "pid \(c.who.pid) uid \(c.who.uid) did not read its reply for \(Int(ControlServer.stallSeconds)) s: connection dropped"
            )
            drop(c)
        }
    }
}
