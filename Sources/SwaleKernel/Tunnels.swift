/*
 * Tunnels — VXLAN and Geneve devices for tunnel ports, their flood lists, and the underlay a
 * tunnel's packets leave through.
 *
 * A tunnel device is made like `ip link add NAME type vxlan id VNI ... dstport 4789`: one
 * RTM_NEWLINK with IFLA_LINKINFO kind "vxlan" (rtnl_link_vxlan_alloc and _set_id/_group/_local/
 * _link/_port) or "geneve" (rtnl_link_geneve_alloc, _set_id/_remote/_port). The UDP port is always
 * sent: the kernel's own default for a VXLAN device made over netlink is 8472, not IANA's 4789.
 *
 * Head-end replication (VXLAN with unicast remotes): the device's forwarding table gets one
 * all-zeros MAC entry per remote, like `bridge fdb append 00:00:00:00:00:00 dev vx42 dst IP`:
 * RTM_NEWNEIGH, family AF_BRIDGE, NTF_SELF (the vxlan device's own table, not a bridge's),
 * NUD_PERMANENT, lladdr 00:00:00:00:00:00, NDA_DST = the remote, flags NLM_F_CREATE|NLM_F_APPEND
 * (append: several entries share the zero MAC). A frame whose destination the device has not
 * learned is sent once to every such remote. `floodRemotes` reads them back (a restart of swaled
 * takes the list from the kernel, not from the interface alias, which has room for few).
 *
 * Geneve on Linux has no forwarding table and no multicast: a device has exactly one remote.
 *
 * The underlay (`Underlay.route`): the interface a remote is reached through and the source
 * address the kernel would pick — a UDP socket connect()ed to the remote (no packet is sent; the
 * kernel resolves the route), getsockname() for the local address, getifaddrs() for the
 * interface holding it. Its MTU less the encapsulation overhead is the tunnel's default MTU.
 */
import CNetlink
import Glibc

/// A tunnel device to create.
public struct TunnelDevice: Sendable {
    public enum Kind: String, Sendable { case vxlan, geneve }
    public var kind: Kind
    public var name: String
    public var vni: UInt32
    /// Geneve: the one remote. (VXLAN remotes are flood entries, added after the device.)
    public var remote: String?
    /// VXLAN: multicast group.
    public var group: String?
    /// VXLAN: source address.
    public var local: String?
    /// VXLAN: underlay device's ifindex.
    public var underlayIndex: Int32?
    public var dstPort: Int
    public var mtu: Int
    public var mac: [UInt8]?
    public init(kind: Kind, name: String, vni: UInt32, dstPort: Int, mtu: Int) {
        self.kind = kind; self.name = name; self.vni = vni; self.dstPort = dstPort; self.mtu = mtu
    }
}

extension Netlink {
    // linux/neighbour.h values (macros Swift does not import reliably).
    static let ntfSelf: UInt32 = 0x02
    static let nudPermanent: Int32 = 0x80
    static let afBridge: Int32 = 7

    /// "192.0.2.1" or "2001:db8::1" as a libnl address (caller puts it), or a KernelError.
    static func address(_ text: String, _ operation: String, _ object: String) throws -> OpaquePointer {
        var a: OpaquePointer?
        let err = nl_addr_parse(text, AF_UNSPEC, &a)
        guard err >= 0, let a else { throw KernelError(operation, object, reason: "'\(text)' is not an IP address") }
        let f = nl_addr_get_family(a)
        guard f == AF_INET || f == AF_INET6, !text.contains("/") else {
            nl_addr_put(a)
            throw KernelError(operation, object, reason: "'\(text)' is not an IPv4 or IPv6 address")
        }
        return a
    }

    /// Creates a VXLAN or Geneve device (DOWN), in one request.
    public func createTunnel(_ d: TunnelDevice) throws {
        let op = "create \(d.kind.rawValue)"
        try Netlink.validateName(d.name)
        try Netlink.checkMTU(d.mtu, op, d.name)
        guard let link = d.kind == .vxlan ? rtnl_link_vxlan_alloc() : rtnl_link_geneve_alloc() else {
            throw KernelError(op, d.name, reason: "out of memory")
        }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, d.name)
        rtnl_link_set_mtu(link, UInt32(d.mtu))
        if let mac = d.mac {
            try Netlink.checkUnicastMAC(mac, op, d.name)
            let addr = mac.withUnsafeBytes { nl_addr_build(AF_LLC, UnsafeMutableRawPointer(mutating: $0.baseAddress), 6) }
            guard let addr else { throw KernelError(op, d.name, reason: "out of memory") }
            rtnl_link_set_addr(link, addr)
            nl_addr_put(addr)
        }
        func check(_ rc: Int32, _ what: String) throws {
            if rc < 0 { throw KernelError(op, "\(d.name) (\(what))", nlError: rc) }
        }
        switch d.kind {
        case .vxlan:
            try check(rtnl_link_vxlan_set_id(link, d.vni), "vni \(d.vni)")
            try check(rtnl_link_vxlan_set_port(link, UInt32(d.dstPort)), "dstport \(d.dstPort)")
            if let g = d.group {
                let a = try Netlink.address(g, op, d.name)
                defer { nl_addr_put(a) }
                try check(rtnl_link_vxlan_set_group(link, a), "group \(g)")
            }
            if let l = d.local {
                let a = try Netlink.address(l, op, d.name)
                defer { nl_addr_put(a) }
                try check(rtnl_link_vxlan_set_local(link, a), "local \(l)")
            }
            if let i = d.underlayIndex { try check(rtnl_link_vxlan_set_link(link, UInt32(i)), "dev #\(i)") }
        case .geneve:
            try check(rtnl_link_geneve_set_id(link, d.vni), "vni \(d.vni)")
            try check(rtnl_link_geneve_set_port(link, UInt32(d.dstPort)), "dstport \(d.dstPort)")
            guard let r = d.remote else { throw KernelError(op, d.name, reason: "a geneve device needs a remote") }
            let a = try Netlink.address(r, op, d.name)
            defer { nl_addr_put(a) }
            try check(rtnl_link_geneve_set_remote(link, a), "remote \(r)")
        }
        let err = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL)
        if err == -Int32(NLE_OPNOTSUPP) {
            throw KernelError(
                op, d.name, reason: "this kernel cannot make \(d.kind.rawValue) devices (no \(d.kind.rawValue) module)")
        }
        if err < 0 { throw KernelError(op, d.name, nlError: err) }
    }

    /// Adds a head-end replication entry: floods on VXLAN device `name` also go to `remote`
    /// (`bridge fdb append 00:00:00:00:00:00 dev NAME dst REMOTE`).
    public func addFloodRemote(link name: String, remote: String) throws {
        let op = "add flood entry dst \(remote)"
        guard let info = try linkInfo(name: name) else { throw KernelError(op, name, reason: "no such interface") }
        guard let n = rtnl_neigh_alloc() else { throw KernelError(op, name, reason: "out of memory") }
        defer { rtnl_neigh_put(n) }
        rtnl_neigh_set_ifindex(n, info.ifindex)
        rtnl_neigh_set_state(n, Netlink.nudPermanent)
        rtnl_neigh_set_flags(n, Netlink.ntfSelf)
        var zero = [UInt8](repeating: 0, count: 6)
        guard let ll = nl_addr_build(AF_LLC, &zero, 6) else { throw KernelError(op, name, reason: "out of memory") }
        rtnl_neigh_set_lladdr(n, ll)
        nl_addr_put(ll)
        // The destination first: libnl takes the object's family from it (and refuses one that
        // differs from a family already set); then the family becomes AF_BRIDGE, the FDB's.
        let dst = try Netlink.address(remote, op, name)
        let rc = rtnl_neigh_set_dst(n, dst)
        nl_addr_put(dst)
        if rc < 0 { throw KernelError(op, name, nlError: rc) }
        rtnl_neigh_set_family(n, Netlink.afBridge)
        let err = rtnl_neigh_add(sk, n, NLM_F_CREATE | NLM_F_APPEND)
        if err < 0 { throw KernelError(op, name, nlError: err) }
    }

    /// The remotes of a VXLAN device's all-zeros (flood) entries, in the kernel's order.
    public func floodRemotes(link name: String) throws -> [String] {
        guard let info = try linkInfo(name: name) else {
            throw KernelError("list flood entries", name, reason: "no such interface")
        }
        // A neighbour dump of family AF_UNSPEC holds IP neighbours only; the FDB is AF_BRIDGE's.
        var c: OpaquePointer?
        var err = nl_cache_alloc_name("route/neigh", &c)
        guard err >= 0, let cache = c else {
            throw KernelError("list flood entries", name, nlError: err < 0 ? err : -Int32(NLE_NOMEM))
        }
        defer { nl_cache_free(cache) }
        nl_cache_set_arg1(cache, Netlink.afBridge)
        err = nl_cache_refill(sk, cache)
        if err < 0 { throw KernelError("list flood entries", name, nlError: err) }
        var out: [String] = []
        var obj = nl_cache_get_first(cache)
        while let o = obj {
            obj = nl_cache_get_next(o)
            guard rtnl_neigh_get_family(o) == Netlink.afBridge, rtnl_neigh_get_ifindex(o) == info.ifindex,
                let ll = rtnl_neigh_get_lladdr(o), nl_addr_iszero(ll) != 0 || Netlink.isZeroMAC(ll),
                let dst = rtnl_neigh_get_dst(o)
            else { continue }
            var buf = [CChar](repeating: 0, count: 64)
            let f = nl_addr_get_family(dst)
            guard let bin = nl_addr_get_binary_addr(dst), f == AF_INET || f == AF_INET6 else { continue }
            guard inet_ntop(f, bin, &buf, socklen_t(buf.count)) != nil else { continue }
            let s = String(cString: buf)
            if !out.contains(s) { out.append(s) }
        }
        return out
    }

    static func isZeroMAC(_ a: OpaquePointer) -> Bool {
        guard nl_addr_get_len(a) == 6, let bin = nl_addr_get_binary_addr(a) else { return false }
        return UnsafeRawBufferPointer(start: bin, count: 6).allSatisfy { $0 == 0 }
    }
}

/// Where a tunnel's packets leave this host.
public enum Underlay {
    /// The local address the kernel picks toward `remote`, and the interface that holds it.
    public static func route(to remote: String) throws -> (local: String, ifname: String) {
        var a4 = sockaddr_in()
        var a6 = sockaddr_in6()
        let family: Int32
        if inet_pton(AF_INET, remote, &a4.sin_addr) == 1 {
            family = AF_INET
            a4.sin_family = sa_family_t(AF_INET)
            a4.sin_port = UInt16(4789).bigEndian
        } else if inet_pton(AF_INET6, remote, &a6.sin6_addr) == 1 {
            family = AF_INET6
            a6.sin6_family = sa_family_t(AF_INET6)
            a6.sin6_port = UInt16(4789).bigEndian
        } else {
            throw KernelError("find route", remote, reason: "not an IP address")
        }
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw KernelError("find route", remote, errno: errno) }
        defer { close(fd) }
        // connect() on a UDP socket only resolves the route and binds the source address.
        let rc =
            family == AF_INET
            ? withUnsafePointer(to: &a4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            : withUnsafePointer(to: &a6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        guard rc == 0 else { throw KernelError("find route", "to \(remote)", errno: errno) }
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let g = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard g == 0 else { throw KernelError("find route", "to \(remote)", errno: errno) }
        let local = withUnsafePointer(to: &ss) { p -> [UInt8] in
            family == AF_INET
                ? p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }
                }
                : p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }
                }
        }
        var text = [CChar](repeating: 0, count: 64)
        _ = local.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        let localText = String(cString: text)
        guard let ifname = interface(holding: local, family: family) else {
            throw KernelError("find route", "to \(remote)", reason: "no interface holds the source address \(localText)")
        }
        return (localText, ifname)
    }

    /// The interface that holds this address ("192.0.2.1", "fd00::1"), if any.
    public static func interface(holding text: String) -> String? {
        var b = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &b) == 1 { return interface(holding: Array(b.prefix(4)), family: AF_INET) }
        if inet_pton(AF_INET6, text, &b) == 1 { return interface(holding: b, family: AF_INET6) }
        return nil
    }

    /// The interface that has this address (getifaddrs).
    static func interface(holding address: [UInt8], family: Int32) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let i = p {
            p = i.pointee.ifa_next
            guard let sa = i.pointee.ifa_addr, Int32(sa.pointee.sa_family) == family else { continue }
            let bytes: [UInt8] =
                family == AF_INET
                ? sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }
                }
                : sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }
                }
            if bytes == address { return String(cString: i.pointee.ifa_name) }
        }
        return nil
    }
}
