/*
 * SystemError — the one error of the rings layer (and of everything that calls the kernel without
 * a more specific layer above it): the failed call, the errno (kept, not just its text), and what
 * it was about. `retryingInterrupts` is the one place a system call is retried after a signal
 * (EINTR) and where "would block" (EAGAIN/EWOULDBLOCK) is told apart from a failure.
 */
import Glibc

public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32
    public let detail: String

    public init(_ call: String, errno: Int32 = Glibc.errno, detail: String = "") {
        self.call = call
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        return detail.isEmpty ? "\(call): \(reason)" : "\(call) \(detail): \(reason)"
    }
}

/// What a system call came to once no signal interrupted it.
public enum SyscallResult: Equatable, Sendable {
    /// It succeeded with this result (bytes, messages...).
    case done(Int)
    /// EAGAIN / EWOULDBLOCK: nothing to do now (a non-blocking descriptor).
    case wouldBlock
    /// It failed with this errno.
    case failed(Int32)
}

/// Runs `body`, a system call in libc's convention (>= 0 on success, -1 with errno set on
/// failure), again as long as it is interrupted by a signal (EINTR).
@inlinable @inline(__always)
public func retryingInterrupts(_ body: () -> Int) -> SyscallResult {
    while true {
        let r = body()
        if r >= 0 { return .done(r) }
        let e = errno
        if e == EINTR { continue }
        return e == EAGAIN || e == EWOULDBLOCK ? .wouldBlock : .failed(e)
    }
}
