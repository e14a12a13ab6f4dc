/*
 * Access — who a client is, and the object rules that follow the permission table.
 *
 * Credentials come from the socket (SO_PEERCRED: pid, uid, gid, fixed at connect) and, for what
 * SO_PEERCRED does not carry (supplementary groups, capabilities), from /proc/PID/status, read
 * through a pidfd of the peer (SO_PEERPIDFD) that is checked to be alive after the read: a pid the
 * peer left behind and someone else took cannot lend its groups or capabilities.
 *
 * Root means uid 0 (or swaled's own uid) or CAP_NET_ADMIN held in swaled's user namespace — the
 * capability counts only when the peer's user namespace is swaled's, since anyone can hold every
 * capability inside a user namespace of their own.
 *
 * Object rules:
 *   a bridge admits root, its owner, the uids in allowUsers and members of the gids in allowGroups;
 *   a member may use (open ports on, list, read counters and the MAC table of) bridges that admit
 *   them, and change (delete, age, flush, set access) only bridges they own;
 *   a port and its pipes belong to whoever opened the port: nobody else opens them (root aside).
 */
import CSwaleSys
import Foundation
import Glibc
import SwaleProtocol

/// A connected client as the service sees it.
struct Credentials: Sendable {
    var pid: UInt32
    var uid: UInt32
    var gid: UInt32
    /// Supplementary groups (the primary one too).
    var groups: Set<UInt32>
    var root: Bool

    /// SO_PEERCRED + /proc/PID/status through the peer's pidfd. nil when the peer is gone.
    static func of(socket fd: Int32) -> Credentials? {
        var pid: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        guard swale_peer_cred(fd, &pid, &uid, &gid) == 0 else { return nil }
        var c = Credentials(pid: pid, uid: uid, gid: gid, groups: [gid], root: uid == 0 || uid == getuid())
        // SO_PEERPIDFD (Linux 6.5): the peer's process, not just a number that may be reused.
        var pidfd: Int32 = -1
        var len = socklen_t(MemoryLayout<Int32>.size)
        let havePidfd = getsockopt(fd, SOL_SOCKET, 77, &pidfd, &len) == 0 && pidfd >= 0
        defer { if havePidfd { Glibc.close(pidfd) } }
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return c }
        let sameUserNS = Credentials.userNamespace("/proc/\(pid)/ns/user") == Credentials.userNamespace("/proc/self/ns/user")
        var groups: Set<UInt32> = [gid]
        var netAdmin = false
        for line in status.split(separator: "\n") {
            if line.hasPrefix("Groups:") {
                for g in line.dropFirst(7).split(whereSeparator: { $0 == " " || $0 == "\t" }) {
                    if let n = UInt32(g) { groups.insert(n) }
                }
            } else if line.hasPrefix("CapEff:"),
                let caps = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16)
            {
                netAdmin = caps & (1 << 12) != 0  // CAP_NET_ADMIN
            }
        }
        // What was read belongs to the peer only if the peer is still alive now (a pidfd turns
        // readable when its process exits).
        guard havePidfd else { return c }
        var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) == 0 else { return c }
        c.groups = groups
        if netAdmin && sameUserNS { c.root = true }
        return c
    }

    static func userNamespace(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink(path, &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }
}

/// Users and groups by name or number.
enum Identity {
    static func uid(_ s: String) throws -> UInt32 {
        if let n = UInt32(s) { return n }
        var pw = passwd(), out: UnsafeMutablePointer<passwd>?
        var buf = [CChar](repeating: 0, count: 4096)
        guard s.utf8.count <= 64, getpwnam_r(s, &pw, &buf, buf.count, &out) == 0, out != nil else {
            throw ControlError(.notFound, "no user named '\(LogText.clean(s, max: 64))'")
        }
        return pw.pw_uid
    }

    static func gid(_ s: String) throws -> UInt32 {
        if let n = UInt32(s) { return n }
        var gr = group(), out: UnsafeMutablePointer<group>?
        var buf = [CChar](repeating: 0, count: 16384)
        guard s.utf8.count <= 64, getgrnam_r(s, &gr, &buf, buf.count, &out) == 0, out != nil else {
            throw ControlError(.notFound, "no group named '\(LogText.clean(s, max: 64))'")
        }
        return gr.gr_gid
    }

    static func userName(_ uid: UInt32) -> String {
        var pw = passwd(), out: UnsafeMutablePointer<passwd>?
        var buf = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &pw, &buf, buf.count, &out) == 0, out != nil, let n = pw.pw_name else { return "\(uid)" }
        return String(cString: n)
    }

    static func groupName(_ gid: UInt32) -> String {
        var gr = group(), out: UnsafeMutablePointer<group>?
        var buf = [CChar](repeating: 0, count: 16384)
        guard getgrgid_r(gid, &gr, &buf, buf.count, &out) == 0, out != nil, let n = gr.gr_name else { return "\(gid)" }
        return String(cString: n)
    }
}

extension BridgeEntry {
    func admits(_ s: Session) -> Bool {
        s.root || owner == s.uid || allowUsers.contains(s.uid) || !allowGroups.isDisjoint(with: s.who.groups)
    }

    func isOwned(by s: Session) -> Bool { s.root || owner == s.uid }
}

extension Service {
    /// Bridges the caller may use, by name.
    func visibleBridges(_ s: Session) -> [BridgeEntry] {
        bridges.keys.sorted().compactMap { bridges[$0] }.filter { $0.admits(s) }
    }

    func checkAdmits(_ b: BridgeEntry, _ s: Session, _ op: String) throws {
        guard b.admits(s) else {
            log.notice("refused \(op) on \(b.bridge.name) to pid \(s.pid) uid \(s.uid): not admitted")
            throw ControlError(
                .permissionDenied,
                "\(op): bridge \(b.bridge.name) does not admit uid \(s.uid) (owner \(Identity.userName(b.owner)); its owner or root can add you with `swalectl bridge set \(b.bridge.name) --allow-user`)"
            )
        }
    }

    /// A bridge the caller may use; one they may not see is reported as refused, not as missing
    /// only when it exists — a name alone is no secret worth an oracle, the traffic is.
    func usableBridge(_ name: String, _ s: Session, _ op: String) throws -> BridgeEntry {
        let b = try bridgeEntry(name)
        try checkAdmits(b, s, op)
        return b
    }

    /// A bridge the caller owns (or root).
    func ownedBridge(_ name: String, _ s: Session, _ op: String) throws -> BridgeEntry {
        let b = try bridgeEntry(name)
        guard b.isOwned(by: s) else {
            log.notice("refused \(op) on \(b.bridge.name) to pid \(s.pid) uid \(s.uid): not the owner")
            throw ControlError(
                .permissionDenied, "\(op) needs root or the owner of bridge \(b.bridge.name) (\(Identity.userName(b.owner)))")
        }
        return b
    }

    /// Ports and their pipes are their opener's.
    func checkOwner(_ p: PortEntry, _ s: Session) throws {
        guard s.root || p.owner == s.uid else {
            log.notice("refused access to \(p.fullName) to pid \(s.pid) uid \(s.uid): it belongs to uid \(p.owner)")
            throw ControlError(
                .permissionDenied,
                "port \(p.fullName) belongs to another user (\(Identity.userName(p.owner))); neither it nor its pipes are yours to open"
            )
        }
    }
}

/// Text from clients, made safe for one log line: control characters escaped, length capped.
enum LogText {
    static func clean(_ s: String, max: Int = 64) -> String {
        var out = ""
        var n = 0
        for u in s.unicodeScalars {
            if n >= max {
                out += "…(\(s.utf8.count) bytes)"
                break
            }
            if u.value < 0x20 || u.value == 0x7f || (0x80..<0xa0).contains(u.value) || u == "\\" {
                out += u == "\\" ? "\\\\" : String(format: "\\x%02x", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
            n += 1
        }
        return out
    }
}
