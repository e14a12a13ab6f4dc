// An eventfd: the wake-up line of one direction of one port. Non-blocking; signal and drain are
// one syscall each, and the need-wakeup flags in swale_csb make them rare under load.
import CSwale
import Glibc

public struct EventFD {
    public let fd: Int32

    public init() throws {
        let fd = swale_eventfd(0)
        guard fd >= 0 else { throw SystemError("eventfd") }
        self.fd = fd
    }

    public init(adopting fd: Int32) { self.fd = fd }

    @inline(__always) public func signal() { _ = swale_eventfd_signal(fd) }
    @inline(__always) @discardableResult public func drain() -> UInt64 { swale_eventfd_drain(fd) }

    /// Blocks until signalled or timeout (ms, -1 = forever). Returns true if signalled.
    public func wait(timeoutMs: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, timeoutMs)
        if r > 0 { drain(); return true }
        return false
    }

    public func close() { _ = Glibc.close(fd) }
}
