/*
 * Netlink — link management over rtnetlink (libnl-3 / libnl-route-3), for the control plane.
 *
 * Swale creates and configures the kernel side of its ports the way `ip link` does: a
 * NETLINK_ROUTE socket carries RTM_NEWLINK / RTM_DELLINK / RTM_NEWADDR requests and the kernel
 * answers each with an ack or an errno. libnl builds and parses the messages:
 *
 *   - a veth pair is one RTM_NEWLINK with IFLA_LINKINFO kind "veth" and the peer nested in
 *     VETH_INFO_PEER (rtnl_link_veth_add);
 *   - up/down, MTU, MAC, promiscuity and the move to another network namespace are one
 *     RTM_NEWLINK "change" request each (rtnl_link_change), built from a sparse `changes` link
 *     object so that only the attributes asked for are sent (IFLA_MTU, IFLA_ADDRESS,
 *     IFLA_NET_NS_FD, ifi_flags/ifi_change);
 *   - queries are RTM_GETLINK for one link (rtnl_link_get_kernel), which also returns the master
 *     (IFLA_MASTER) and the kind (IFLA_INFO_KIND: "veth", "tun", "bridge"; nil for hardware).
 *
 * A netlink socket acts in the network namespace it was created in. A link moved into another
 * namespace arrives there DOWN and without addresses, so configuring it needs a socket opened
 * inside that namespace: `inNamespace` runs a closure on a short-lived helper pthread that
 * setns()es into the namespace (setns on a network namespace changes only the calling thread),
 * opens a fresh Netlink there, runs, and exits — the caller's threads never change namespace.
 *
 * Promiscuity: the IFF_PROMISC that RTM_GETLINK reports is the administrative flag (dev->gflags),
 * not the reference count that PACKET_MR_PROMISC memberships add; setPromiscuous returns the
 * previous admin state so a caller can restore it.
 *
 * Link disappearance: `LinkWatcher` is a non-blocking NETLINK_ROUTE socket subscribed to
 * RTNLGRP_LINK. The service adds `fd` to its poll set and calls `drainEvents()`, which reports
 * every RTM_DELLINK (a link deleted, or moved to another namespace) by ifindex and name. Netlink
 * multicast can overflow (ENOBUFS) under a storm of link changes; then `drainEvents` reports
 * `.overflow` and the caller re-checks each port's link with `Netlink.exists(ifindex:)` — events
 * for promptness, the re-check for robustness.
 *
 * Errors: every failure of the kernel layer (here, and the TUN, AF_PACKET and ioctl calls of the
 * adapters) is a KernelError naming the operation, the object (link name, CIDR, namespace path)
 * and libnl's reason (nl_geterror) or the errno.
 *
 * GRO: `setGRO` switches generic receive offload on a netdev (ethtool's ETHTOOL_SGRO through
 * SIOCETHTOOL, not netlink; it lives here with the other link settings).
 *
 * Not thread-safe: one Netlink (one socket) per thread or actor.
 */
import CNetlink
import CSwaleSys
import Glibc
import SwaleNames
import SwaleRings

/// The one error of the kernel layer (netlink, TUN, AF_PACKET, ioctls): which operation on which
/// object failed, and why (libnl's reason or the errno, kept).
public struct KernelError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let object: String
    /// libnl error code (NLE_*, positive) or errno when `isErrno`.
    public let code: Int32
    public let isErrno: Bool
    public let reason: String

    init(_ operation: String, _ object: String, nlError: Int32) {
        self.operation = operation
        self.object = object
        self.code = abs(nlError)
        self.isErrno = false
        self.reason = String(cString: nl_geterror(nlError))
    }

    init(_ operation: String, _ object: String, errno e: Int32, hint: String = "") {
        self.operation = operation
        self.object = object
        self.code = e
        self.isErrno = true
        self.reason = String(cString: strerror(e)) + hint
    }

    init(_ operation: String, _ object: String, reason: String) {
        self.operation = operation
        self.object = object
        self.code = 0
        self.isErrno = false
        self.reason = reason
    }

    public var description: String { "\(operation) \(object): \(reason)" }

    /// The link (or object) does not exist.
    public var isNotFound: Bool {
        isErrno ? (code == ENODEV || code == ENOENT) : code == Int32(NLE_OBJ_NOTFOUND) || code == Int32(NLE_NODEV)
    }
    /// The object already exists.
    public var isExists: Bool { isErrno ? code == EEXIST : code == Int32(NLE_EXIST) }
}

/// ifi_flags bits (linux/if.h; they import inconsistently into Swift, so spelled out here).
public enum LinkFlags {
    public static let up: UInt32 = 0x1
    public static let broadcast: UInt32 = 0x2
    public static let running: UInt32 = 0x40
    public static let promisc: UInt32 = 0x100
    public static let lowerUp: UInt32 = 0x10000
}

/// What RTM_GETLINK says about one link.
public struct LinkInfo: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var ifindex: Int32
    public var mtu: Int
    /// Hardware address (6 bytes for Ethernet; empty if the link has none).
    public var mac: [UInt8]
    /// ifi_flags: IFF_UP, IFF_PROMISC (administrative), IFF_RUNNING, IFF_LOWER_UP...
    public var flags: UInt32
    /// ifindex of the master (bridge, bond) if the link is enslaved.
    public var masterIndex: Int32?
    /// IFLA_INFO_KIND: "veth", "tun", "bridge", "dummy"...; nil for hardware devices.
    public var kind: String?
    /// IFLA_IFALIAS: Swale marks the interfaces it created here (see KernelPorts.swift).
    public var alias: String? = nil
    /// IFLA_LINK_NETNSID: set when the link's other side (a veth's peer) is in another namespace.
    public var linkNetnsID: Int32? = nil

    public var isUp: Bool { flags & LinkFlags.up != 0 }
    public var isPromiscuous: Bool { flags & LinkFlags.promisc != 0 }
    public var isLowerUp: Bool { flags & LinkFlags.lowerUp != 0 }
    public var macString: String { Netlink.formatMAC(mac) }

    public var description: String {
        "\(name)#\(ifindex) kind=\(kind ?? "-") mtu=\(mtu) mac=\(macString) up=\(isUp) promisc=\(isPromiscuous)"
            + (masterIndex.map { " master=\($0)" } ?? "")
    }
}

public final class Netlink {
    /// Internal, not private: Tunnels.swift and Routes.swift build their requests on the same socket.
    let sk: OpaquePointer

    /// Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
    public init() throws {
        guard let sk = nl_socket_alloc() else {
            throw KernelError("socket", "NETLINK_ROUTE", reason: "nl_socket_alloc failed")
        }
        let err = nl_connect(sk, NETLINK_ROUTE)
        if err < 0 {
            nl_socket_free(sk)
            throw KernelError("connect", "NETLINK_ROUTE", nlError: err)
        }
        self.sk = sk
    }

    deinit { nl_socket_free(sk) }

    // MARK: names

    /// Linux interface names: 1...15 bytes, no '/', ':' or whitespace, not "." or "..".
    public static func validateName(_ name: String) throws {
        // The one name grammar (SwaleNames) decides; this only puts it in netlink's error type.
        do { try Names.validateInterfaceName(name) } catch {
            throw KernelError("validate", name, reason: error.description)
        }
    }

    /// The MTUs a link may be given (Ethernet's IPv4 minimum to the largest netlink carries).
    public static let mtuRange = 68...65535

    static func checkMTU(_ mtu: Int, _ operation: String, _ name: String) throws {
        guard mtuRange.contains(mtu) else { throw KernelError(operation, name, reason: "MTU \(mtu) is outside \(mtuRange)") }
    }

    /// 6 bytes, group bit clear.
    static func checkUnicastMAC(_ mac: [UInt8], _ operation: String, _ name: String) throws {
        guard mac.count == 6 else { throw KernelError(operation, name, reason: "a MAC address has 6 bytes, not \(mac.count)") }
        guard mac[0] & 1 == 0 else {
            throw KernelError(operation, name, reason: "\(formatMAC(mac)) is a multicast address, not a unicast one")
        }
    }

    /// A namespace name ("ns1" → /var/run/netns/ns1) or a path (anything with a '/', e.g. /proc/PID/ns/net).
    public static func namespacePath(_ nameOrPath: String) -> String {
        nameOrPath.contains("/") ? nameOrPath : "/var/run/netns/" + nameOrPath
    }

    public static func formatMAC(_ mac: [UInt8]) -> String {
        Names.formatMAC(mac.prefix(6).reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// "02:00:00:aa:bb:cc" → 6 bytes, or nil (parsed by the one MAC parser in SwaleNames).
    public static func parseMAC(_ text: String) -> [UInt8]? {
        guard let v = try? Names.parseMAC(text) else { return nil }
        return (0..<6).map { UInt8(truncatingIfNeeded: v >> (40 - 8 * UInt64($0))) }
    }

    // MARK: queries

    /// The link named `name`, or nil if there is none in this namespace.
    public func linkInfo(name: String) throws -> LinkInfo? {
        try Netlink.validateName(name)
        guard let link = try fetch(name: name, operation: "get link") else { return nil }
        defer { rtnl_link_put(link) }
        return Netlink.info(link)
    }

    /// The link with this ifindex, or nil.
    public func linkInfo(ifindex: Int32) throws -> LinkInfo? {
        var link: OpaquePointer?
        let err = rtnl_link_get_kernel(sk, ifindex, nil, &link)
        if err < 0 {
            let e = KernelError("get link", "ifindex \(ifindex)", nlError: err)
            if e.isNotFound { return nil }
            throw e
        }
        guard let link else { return nil }
        defer { rtnl_link_put(link) }
        return Netlink.info(link)
    }

    /// Whether a link with this ifindex exists in this namespace (false on any error).
    public func exists(ifindex: Int32) -> Bool {
        (try? linkInfo(ifindex: ifindex)) != nil
    }

    public func exists(name: String) -> Bool {
        ((try? linkInfo(name: name)) ?? nil) != nil
    }

    private func fetch(name: String, operation: String) throws -> OpaquePointer? {
        var link: OpaquePointer?
        let err = rtnl_link_get_kernel(sk, 0, name, &link)
        if err < 0 {
            let e = KernelError(operation, name, nlError: err)
            if e.isNotFound { return nil }
            throw e
        }
        return link
    }

    func require(_ name: String, _ operation: String) throws -> OpaquePointer {
        try Netlink.validateName(name)
        guard let link = try fetch(name: name, operation: operation) else {
            throw KernelError(operation, name, reason: "no such interface")
        }
        return link
    }

    private static func info(_ link: OpaquePointer) -> LinkInfo {
        let name = rtnl_link_get_name(link).map { String(cString: $0) } ?? ""
        var mac: [UInt8] = []
        if let a = rtnl_link_get_addr(link), let bin = nl_addr_get_binary_addr(a) {
            let n = Int(nl_addr_get_len(a))
            mac = Array(UnsafeRawBufferPointer(start: bin, count: n))
        }
        let master = rtnl_link_get_master(link)
        let kind = rtnl_link_get_type(link).map { String(cString: $0) }
        let alias = rtnl_link_get_ifalias(link).map { String(cString: $0) }
        var nsid: Int32 = 0
        let hasNsid = rtnl_link_get_link_netnsid(link, &nsid) == 0
        return LinkInfo(
            name: name, ifindex: rtnl_link_get_ifindex(link), mtu: Int(rtnl_link_get_mtu(link)),
            mac: mac, flags: rtnl_link_get_flags(link), masterIndex: master > 0 ? master : nil, kind: kind,
            alias: alias.flatMap { $0.isEmpty ? nil : $0 }, linkNetnsID: hasNsid ? nsid : nil)
    }

    /// Every link in this namespace (one RTM_GETLINK dump).
    public func links() throws -> [LinkInfo] {
        var cache: OpaquePointer?
        let err = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache)
        if err < 0 { throw KernelError("list links", "all", nlError: err) }
        guard let cache else { return [] }
        defer { nl_cache_free(cache) }
        var out: [LinkInfo] = []
        var obj = nl_cache_get_first(cache)
        while let o = obj {
            out.append(Netlink.info(o))
            obj = nl_cache_get_next(o)
        }
        return out
    }

    // MARK: create / delete

    /// Creates a veth pair `name` <-> `peer` (both DOWN) in one request. With `peerNamespace` (a
    /// path such as /var/run/netns/NS) the peer is born inside that namespace, so it may take a name
    /// that exists here (containers call their end eth0). MTU and the peer's MAC are set at birth.
    public func createVeth(name: String, peer: String, peerNamespace: String? = nil, mtu: Int? = nil, peerMAC: [UInt8]? = nil)
        throws
    {
        try Netlink.validateName(name)
        try Netlink.validateName(peer)
        guard peerNamespace != nil || name != peer else {
            throw KernelError("create veth", name, reason: "both ends have the same name")
        }
        if let mtu { try Netlink.checkMTU(mtu, "create veth", name) }
        guard let link = rtnl_link_veth_alloc() else { throw KernelError("create veth", name, reason: "out of memory") }
        defer { rtnl_link_put(link) }
        guard let p = rtnl_link_veth_get_peer(link) else { throw KernelError("create veth", name, reason: "no peer object") }
        defer { rtnl_link_put(p) }
        rtnl_link_set_name(link, name)
        rtnl_link_set_name(p, peer)
        if let mtu { rtnl_link_set_mtu(link, UInt32(mtu)); rtnl_link_set_mtu(p, UInt32(mtu)) }
        if let peerMAC {
            try Netlink.checkUnicastMAC(peerMAC, "create veth", peer)
            let addr = peerMAC.withUnsafeBytes { nl_addr_build(AF_LLC, UnsafeMutableRawPointer(mutating: $0.baseAddress), 6) }
            guard let addr else { throw KernelError("create veth", peer, reason: "out of memory") }
            rtnl_link_set_addr(p, addr)
            nl_addr_put(addr)
        }
        var nsFD: Int32 = -1
        if let peerNamespace {
            nsFD = open(peerNamespace, O_RDONLY | O_CLOEXEC)
            guard nsFD >= 0 else {
                throw KernelError(
                    "create veth", "\(name)/\(peer)",
                    reason: "cannot open namespace \(peerNamespace): \(String(cString: strerror(errno)))")
            }
            rtnl_link_set_ns_fd(p, nsFD)
        }
        defer { if nsFD >= 0 { close(nsFD) } }
        let err = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL)
        if err < 0 { throw KernelError("create veth", "\(name)/\(peer)", nlError: err) }
    }

    /// Deletes a link (for a veth, both ends go).
    public func delete(link name: String) throws {
        try Netlink.validateName(name)
        guard let link = rtnl_link_alloc() else { throw KernelError("delete", name, reason: "out of memory") }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let err = rtnl_link_delete(sk, link)
        if err < 0 { throw KernelError("delete", name, nlError: err) }
    }

    // MARK: changes

    /// Applies one RTM_NEWLINK change request: `configure` sets attributes on a sparse link object.
    private func change(_ name: String, _ operation: String, _ configure: (OpaquePointer) throws -> Void) throws {
        let orig = try require(name, operation)
        defer { rtnl_link_put(orig) }
        guard let changes = rtnl_link_alloc() else { throw KernelError(operation, name, reason: "out of memory") }
        defer { rtnl_link_put(changes) }
        try configure(changes)
        let err = rtnl_link_change(sk, orig, changes, 0)
        if err < 0 { throw KernelError(operation, name, nlError: err) }
    }

    public func setUp(_ name: String, _ up: Bool) throws {
        try change(name, up ? "set up" : "set down") { c in
            if up { rtnl_link_set_flags(c, LinkFlags.up) } else { rtnl_link_unset_flags(c, LinkFlags.up) }
        }
    }

    /// Sets the interface's alias (IFLA_IFALIAS, at most 255 bytes; "" clears it).
    public func setAlias(_ name: String, _ alias: String) throws {
        guard alias.utf8.count < 256 else { throw KernelError("set alias", name, reason: "an alias has at most 255 bytes") }
        try change(name, "set alias") { c in rtnl_link_set_ifalias(c, alias) }
    }

    public func setMTU(_ name: String, _ mtu: Int) throws {
        try Netlink.checkMTU(mtu, "set mtu", name)
        try change(name, "set mtu \(mtu)") { c in rtnl_link_set_mtu(c, UInt32(mtu)) }
    }

    /// Generic receive offload on or off (SIOCETHTOOL ETHTOOL_SGRO).
    public func setGRO(_ name: String, _ on: Bool) throws {
        try Netlink.validateName(name)
        let rc = swale_set_gro(name, on ? 1 : 0)
        if rc < 0 { throw KernelError(on ? "set gro on" : "set gro off", name, errno: -rc) }
    }

    /// Whether GRO is on (SIOCETHTOOL ETHTOOL_GGRO); nil when the interface does not say.
    public func gro(_ name: String) -> Bool? {
        let rc = swale_get_gro(name)
        return rc < 0 ? nil : rc != 0
    }

    public func setMAC(_ name: String, _ mac: [UInt8]) throws {
        try Netlink.checkUnicastMAC(mac, "set mac", name)
        try change(name, "set mac \(Netlink.formatMAC(mac))") { c in
            let addr = mac.withUnsafeBytes { nl_addr_build(AF_LLC, UnsafeMutableRawPointer(mutating: $0.baseAddress), 6) }
            guard let addr else { throw KernelError("set mac", name, reason: "out of memory") }
            rtnl_link_set_addr(c, addr)
            nl_addr_put(addr)
        }
    }

    /// Sets or clears the administrative IFF_PROMISC; returns whether it was set before, so the
    /// caller can restore it.
    @discardableResult
    public func setPromiscuous(_ name: String, _ on: Bool) throws -> Bool {
        guard let before = try linkInfo(name: name) else { throw KernelError("set promisc", name, reason: "no such interface") }
        if before.isPromiscuous == on { return on }
        try change(name, on ? "set promisc on" : "set promisc off") { c in
            if on { rtnl_link_set_flags(c, LinkFlags.promisc) } else { rtnl_link_unset_flags(c, LinkFlags.promisc) }
        }
        return before.isPromiscuous
    }

    public func isPromiscuous(_ name: String) throws -> Bool {
        guard let i = try linkInfo(name: name) else { throw KernelError("get promisc", name, reason: "no such interface") }
        return i.isPromiscuous
    }

    /// Moves a link into another network namespace (a name under /var/run/netns, or a path).
    /// The link arrives there DOWN and without addresses: see configureInNamespace.
    public func moveToNamespace(link name: String, nsPath: String) throws {
        let path = Netlink.namespacePath(nsPath)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KernelError("move \(name) to namespace", path, errno: errno) }
        defer { Glibc.close(fd) }
        try change(name, "move to namespace \(path)") { c in rtnl_link_set_ns_fd(c, fd) }
    }

    /// Adds an IPv4 or IPv6 address ("10.0.0.1/24", "fd00::1/64"). `noDAD` skips IPv6 duplicate
    /// address detection, so the address is usable at once.
    public func addAddress(link name: String, cidr: String, noDAD: Bool = false) throws {
        let link = try require(name, "add address \(cidr)")
        let ifindex = rtnl_link_get_ifindex(link)
        rtnl_link_put(link)
        guard cidr.contains("/") else {
            throw KernelError(
                "add address", "\(cidr) on \(name)", reason: "expected an address with a prefix length, e.g. 10.0.0.1/24")
        }
        var local: OpaquePointer?
        var err = nl_addr_parse(cidr, AF_UNSPEC, &local)
        guard err >= 0, let local else {
            throw KernelError("add address", "\(cidr) on \(name)", nlError: err < 0 ? err : -Int32(NLE_INVAL))
        }
        defer { nl_addr_put(local) }
        let family = nl_addr_get_family(local)
        guard family == AF_INET || family == AF_INET6 else {
            throw KernelError("add address", "\(cidr) on \(name)", reason: "not an IPv4 or IPv6 address")
        }
        guard let addr = rtnl_addr_alloc() else { throw KernelError("add address", cidr, reason: "out of memory") }
        defer { rtnl_addr_put(addr) }
        rtnl_addr_set_ifindex(addr, ifindex)
        err = rtnl_addr_set_local(addr, local)
        if err < 0 { throw KernelError("add address", "\(cidr) on \(name)", nlError: err) }
        if family == AF_INET {
            // Like `ip addr add ... brd +`: the subnet's broadcast address, so broadcasts work.
            let plen = Int(nl_addr_get_prefixlen(local))
            if plen < 31, let bin = nl_addr_get_binary_addr(local) {
                var v = UInt32(bigEndian: bin.loadUnaligned(as: UInt32.self))
                v |= plen == 0 ? 0xFFFF_FFFF : (UInt32.max >> UInt32(plen))
                var be = v.bigEndian
                if let b = nl_addr_build(AF_INET, &be, 4) {
                    rtnl_addr_set_broadcast(addr, b)
                    nl_addr_put(b)
                }
            }
        }
        if noDAD && family == AF_INET6 { rtnl_addr_set_flags(addr, UInt32(IFA_F_NODAD)) }
        err = rtnl_addr_add(sk, addr, 0)
        if err < 0 { throw KernelError("add address", "\(cidr) on \(name)", nlError: err) }
    }

    // MARK: namespaces

    /// Runs `body` with a Netlink socket opened inside the network namespace `nsPath` (a name
    /// under /var/run/netns or a path), on a helper thread that exits afterwards.
    public static func inNamespace<T>(_ nsPath: String, _ body: @escaping (Netlink) throws -> T) throws -> T {
        let job = NamespaceJob<T>(path: namespacePath(nsPath), body: body)
        let ctx = Unmanaged.passRetained(job).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(
            &tid, nil,
            { raw in
                let job = Unmanaged<NamespaceJobBase>.fromOpaque(raw!).takeRetainedValue()
                job.run()
                return nil
            }, ctx)
        guard rc == 0 else {
            Unmanaged<NamespaceJob<T>>.fromOpaque(ctx).release()
            throw KernelError("start namespace helper", job.path, errno: rc)
        }
        pthread_join(tid, nil)
        switch job.result {
        case .success(let v)?: return v
        case .failure(let e)?: throw e
        case nil: throw KernelError("enter namespace", job.path, reason: "helper thread did not finish")
        }
    }

    /// Instance spelling of `Netlink.configureInNamespace` (the work happens on a socket opened
    /// inside the namespace, not on this one).
    public func configureInNamespace(
        nsPath: String, link: String, up: Bool = true, address: String? = nil,
        mtu: Int? = nil, noDAD: Bool = false
    ) throws {
        try Netlink.configureInNamespace(nsPath: nsPath, link: link, up: up, address: address, mtu: mtu, noDAD: noDAD)
    }

    /// Brings a link up inside a namespace, optionally sets its MTU and adds an address.
    public static func configureInNamespace(
        nsPath: String, link: String, up: Bool = true, address: String? = nil,
        mtu: Int? = nil, noDAD: Bool = false
    ) throws {
        try inNamespace(nsPath) { nl in
            if let mtu { try nl.setMTU(link, mtu) }
            if let address { try nl.addAddress(link: link, cidr: address, noDAD: noDAD) }
            try nl.setUp(link, up)
        }
    }
}

class NamespaceJobBase {
    func run() {}
}

private final class NamespaceJob<T>: NamespaceJobBase {
    let path: String
    let body: (Netlink) throws -> T
    var result: Result<T, Error>?

    init(path: String, body: @escaping (Netlink) throws -> T) {
        self.path = path
        self.body = body
    }

    override func run() {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            result = .failure(KernelError("open namespace", path, errno: errno))
            return
        }
        let rc = swale_setns_net(fd)
        Glibc.close(fd)
        guard rc == 0 else {
            result = .failure(KernelError("enter namespace", path, errno: -rc))
            return
        }
        result = Result { try body(try Netlink()) }
    }
}

// MARK: - link events

public enum LinkEvent: Sendable, Equatable {
    /// RTM_DELLINK: the link was deleted or moved to another namespace.
    case removed(ifindex: Int32, name: String)
    /// Events were lost (netlink ENOBUFS): re-check every link of interest with Netlink.exists(ifindex:).
    case overflow
}

/// Learns when links disappear: a NETLINK_ROUTE socket subscribed to RTNLGRP_LINK. Add `fd` to a
/// poll set (readable = events waiting) and call `drainEvents()`.
public final class LinkWatcher {
    public let fd: Int32
    private var buffer: UnsafeMutableRawPointer
    private let bufferSize = 64 * 1024

    public init() throws {
        let fd = socket(
            AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { throw KernelError("socket", "link watcher", errno: errno) }
        var sa = sockaddr_nl()
        sa.nl_family = sa_family_t(AF_NETLINK)
        sa.nl_groups = UInt32(RTMGRP_LINK)
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw KernelError("bind RTNLGRP_LINK", "link watcher", errno: e)
        }
        var rcvbuf: Int32 = 1 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, socklen_t(MemoryLayout<Int32>.size))
        self.fd = fd
        buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 8)
    }

    deinit {
        Glibc.close(fd)
        buffer.deallocate()
    }

    /// Reads every pending event without blocking.
    public func drainEvents() -> [LinkEvent] {
        var events: [LinkEvent] = []
        while true {
            switch retryingInterrupts({ recv(fd, buffer, bufferSize, SysConst.msgDontWait) }) {
            case .done(let n) where n > 0: parse(count: n, into: &events)
            case .failed(ENOBUFS): events.append(.overflow)
            default: return events
            }
        }
    }

    private func parse(count: Int, into events: inout [LinkEvent]) {
        var off = 0
        while off + 16 <= count {
            let len = Int(buffer.loadUnaligned(fromByteOffset: off, as: UInt32.self))
            let type = buffer.loadUnaligned(fromByteOffset: off + 4, as: UInt16.self)
            guard len >= 16, off + len <= count else { break }
            if type == UInt16(RTM_DELLINK), len >= 16 + 16 {
                let ifindex = buffer.loadUnaligned(fromByteOffset: off + 16 + 4, as: Int32.self)
                var name = ""
                var a = off + 32
                while a + 4 <= off + len {
                    let alen = Int(buffer.loadUnaligned(fromByteOffset: a, as: UInt16.self))
                    let atype = buffer.loadUnaligned(fromByteOffset: a + 2, as: UInt16.self)
                    guard alen >= 4, a + alen <= off + len else { break }
                    if atype == UInt16(truncatingIfNeeded: IFLA_IFNAME) {
                        let p = (buffer + a + 4).assumingMemoryBound(to: UInt8.self)
                        let raw = UnsafeBufferPointer(start: p, count: alen - 4)
                        name = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    a += (alen + 3) & ~3
                }
                events.append(.removed(ifindex: ifindex, name: name))
            }
            off += (len + 3) & ~3
        }
    }
}
