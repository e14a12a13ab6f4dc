/*
 * Namespace — a network namespace named by a client, opened without blocking and checked to be one.
 *
 * `NAME` means /var/run/netns/NAME (iproute2's); a path is taken as it is. The file is opened with
 * O_NONBLOCK (a FIFO given as a namespace cannot hold the caller), and accepted only if it is an nsfs
 * file for a network namespace: the NS_GET_NSTYPE ioctl answers CLONE_NEWNET (any other file answers
 * ENOTTY, another kind of namespace another type). Later steps use that
 * descriptor's /proc/self/fd path, so the file cannot be swapped between the check and the use.
 * Anything else — missing, a FIFO, a directory, another kind of namespace — is the same nil, so
 * the answer tells nothing about files that are not network namespaces.
 */
import Foundation
import Glibc

public final class NetworkNamespace {
    public let fd: Int32
    /// The checked descriptor as a path (`/proc/self/fd/N`), for calls that take a path.
    public var path: String { "/proc/self/fd/\(fd)" }

    private init(fd: Int32) { self.fd = fd }

    /// nil unless `nameOrPath` names a network namespace.
    public static func open(_ nameOrPath: String) -> NetworkNamespace? {
        guard !nameOrPath.isEmpty, nameOrPath.utf8.count < 4096, !nameOrPath.utf8.contains(0) else { return nil }
        let path = Netlink.namespacePath(nameOrPath)
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        // NS_GET_NSTYPE is _IO(0xb7, 0x3); CLONE_NEWNET is 0x40000000.
        guard ioctl(fd, UInt(0xb703)) == 0x4000_0000 else {
            Glibc.close(fd)
            return nil
        }
        return NetworkNamespace(fd: fd)
    }

    public func close() { Glibc.close(fd) }
}
