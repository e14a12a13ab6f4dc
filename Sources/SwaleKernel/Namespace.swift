/*
 * Namespace — a network namespace named by a client, opened without blocking and checked to be one.
 *
 * `NAME` means /var/run/netns/NAME (iproute2's); a path is taken as it is. The file is opened with
 * O_NONBLOCK (a FIFO given as a namespace cannot hold the caller), and accepted only if it is an nsfs
 * file for a network namespace: its /proc/self/fd link reads `net:[inode]` (any other file reads as
 * a path). Later steps use that
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
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/fd/\(fd)", &buf, buf.count - 1)
        let link = n > 0 ? String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        // Files of nsfs read as "KIND:[inode]"; every path-named file starts with "/".
        guard link.hasPrefix("net:[") else {
            Glibc.close(fd)
            return nil
        }
        return NetworkNamespace(fd: fd)
    }

    public func close() { Glibc.close(fd) }
}
