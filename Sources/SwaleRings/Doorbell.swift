// Doorbells: the wake-up lines of one direction of one port. A nonblocking datagram socketpair:
// one end rings, the other is polled and drained. The need-wakeup flags in swale_csb make rings
// rare under load. A socketpair rather than an eventfd because the ringing end is often handed to a
// client: with an eventfd the client could clear O_NONBLOCK on the shared file description or
// saturate the counter and make the service's write block; send(MSG_DONTWAIT) never blocks.
import CSwaleABI
import CSwaleSys
import Glibc

/// One end of a doorbell.
public struct BellEnd {
    public let fd: Int32

    public init(adopting fd: Int32) { self.fd = fd }

    @inlinable @inline(__always) public func ring() { _ = swale_doorbell_ring(fd) }
    @inlinable @inline(__always) @discardableResult public func drain() -> UInt64 { swale_doorbell_drain(fd) }

    /// Blocks until rung or timeout (ms, -1 = forever). Returns true if rung.
    public func wait(timeoutMs: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, timeoutMs)
        if r > 0 { drain(); return true }
        return false
    }

    public func close() { _ = Glibc.close(fd) }
}

public struct Doorbell {
    /// The end that rings.
    public let ringEnd: BellEnd
    /// The end that is polled and drained.
    public let waitEnd: BellEnd

    public init() throws {
        var fds: [Int32] = [-1, -1]
        let r = swale_doorbell(&fds)
        guard r == 0 else { throw SystemError("socketpair", errno: -r, detail: "doorbell") }
        ringEnd = BellEnd(adopting: fds[0])
        waitEnd = BellEnd(adopting: fds[1])
    }

    public func close() {
        ringEnd.close()
        waitEnd.close()
    }
}
