/*
 * Access — who a client is, and the object rules that follow the permission table.
 *
 * Credentials come from the socket only: SO_PEERCRED (pid, uid, gid) and SO_PEERGROUPS
 * (supplementary groups), both fixed by the kernel when the peer connected. Root means uid 0 or
 * swaled's own uid. Capabilities are not accepted instead: the kernel records none at connect, and
 * what /proc shows later belongs to whatever the peer exec'd since — a setuid program (passwd) or
 * one with file capabilities — not to who connected (a review reproduced exactly that escalation).
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
import Logging
import SwaleProtocol

/// A connected client as the service sees it.
struct Credentials: Sendable {
    var pid: UInt32
    var uid: UInt32
    var gid: UInt32
    /// Supplementary groups (the primary one too).
    var groups: Set<UInt32>
    var root: Bool

    /// SO_PEERCRED and SO_PEERGROUPS: what the kernel recorded when the peer connected. Nothing
    /// is read from /proc: the process behind a socket can exec a setuid or file-capability program
    /// after connecting (same pid, same pidfd), so its status then is not who connected.
    static func of(socket fd: Int32) -> Credentials? {
        var pid: UInt32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        guard swale_peer_cred(fd, &pid, &uid, &gid) == 0 else { return nil }
        var c = Credentials(pid: pid, uid: uid, gid: gid, groups: [gid], root: uid == 0 || uid == getuid())
        c.groups.formUnion(peerGroups(fd))
        return c
    }

    /// A local user as the account database describes them (primary and supplementary groups): who
    /// made a connection that carries no credentials of its own (MetricsServer's TCP peers).
    static func ofUser(_ uid: UInt32) -> Credentials {
        var c = Credentials(pid: 0, uid: uid, gid: uid, groups: [], root: uid == 0 || uid == getuid())
        // The reentrant lookup: workers and the metrics thread may ask at the same time.
        var pw = passwd()
        var buf = [CChar](repeating: 0, count: 4096)
        var out: UnsafeMutablePointer<passwd>?
        guard getpwuid_r(uid, &pw, &buf, buf.count, &out) == 0, out != nil, let name = pw.pw_name else { return c }
        c.gid = pw.pw_gid
        var n: Int32 = 256
        for _ in 0..<2 {
            var list = [gid_t](repeating: 0, count: Int(n))
            // -1 with n set to the number needed when the list is too short: one more try with room.
            if getgrouplist(name, pw.pw_gid, &list, &n) >= 0 {
                c.groups = Set(list.prefix(Int(n)))
                break
            }
            guard n <= 65536 else { break }
        }
        c.groups.insert(pw.pw_gid)
        return c
    }

    /// SO_PEERGROUPS (59): the peer's supplementary groups at connect time.
    static func peerGroups(_ fd: Int32) -> [UInt32] {
        var groups = [UInt32](repeating: 0, count: 64)
        for _ in 0..<2 {
            var len = socklen_t(groups.count * MemoryLayout<UInt32>.size)
            if getsockopt(fd, SOL_SOCKET, 59, &groups, &len) == 0 {
                return Array(groups.prefix(Int(len) / MemoryLayout<UInt32>.size))
            }
            // ERANGE: len says how much room the list needs (at most NGROUPS_MAX, 65536).
            guard errno == ERANGE, Int(len) <= 65536 * MemoryLayout<UInt32>.size else { return [] }
            groups = [UInt32](repeating: 0, count: Int(len) / MemoryLayout<UInt32>.size)
        }
        return []
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
            let category = u.properties.generalCategory
            // Control characters, and the invisible ones that reorder or break a line when shown
            // (U+202E right-to-left override, U+2028 line separator...).
            let hidden = category == .format || category == .lineSeparator || category == .paragraphSeparator
            if u.value < 0x20 || u.value == 0x7f || (0x80..<0xa0).contains(u.value) || hidden || u == "\\" {
                out += u == "\\" ? "\\\\" : String(format: "\\x%02x", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
            n += 1
        }
        return out
    }
}

/// At most `perSecond` request lines per user and second in the log; what is left out is counted
/// and said in one line when that user's next second starts. Root is not limited.
struct LogBudget {
    var perSecond = 50
    var windows: [UInt32: (second: Int, lines: Int, skipped: Int)] = [:]

    mutating func allow(uid: UInt32, now: Double, log: Logger) -> Bool {
        guard uid != 0 else { return true }
        let second = Int(now)
        var w = windows[uid] ?? (second, 0, 0)
        if w.second != second {
            if w.skipped > 0 { log.notice("uid \(uid): \(w.skipped) more request(s) not logged in one second") }
            w = (second, 0, 0)
        }
        w.lines += 1
        let ok = w.lines <= perSecond
        if !ok { w.skipped += 1 }
        windows[uid] = w
        if windows.count > 4096 { windows = windows.filter { $0.value.second == second } }
        return ok
    }
}
