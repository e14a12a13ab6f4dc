/*
 * Routes — the addresses and routes a container's interface gets inside its namespace (the CNI
 * plugin applies what the IPAM plugin chose), and reading them back (CNI CHECK).
 *
 * Routes go into the main table with protocol "boot", as `ip route add` does. A route with a
 * gateway has universe scope; one without is on-link (link scope), like a subnet route.
 */
import CNetlink
import Glibc

extension Netlink {
    /// Adds `destination` ("0.0.0.0/0", "10.1.0.0/16", "fd00::/64") via `gateway` (optional) on `link`.
    public func addRoute(link name: String, destination: String, gateway: String?) throws {
        let what = "\(destination)\(gateway.map { " via \($0)" } ?? "") dev \(name)"
        let link = try require(name, "add route \(what)")
        let ifindex = rtnl_link_get_ifindex(link)
        rtnl_link_put(link)
        let dst = try Netlink.parseAddress(destination, "add route", what)
        defer { nl_addr_put(dst) }
        guard let route = rtnl_route_alloc() else { throw KernelError("add route", what, reason: "out of memory") }
        defer { rtnl_route_put(route) }
        let family = nl_addr_get_family(dst)
        _ = rtnl_route_set_family(route, UInt8(family))
        var err = rtnl_route_set_dst(route, dst)
        if err < 0 { throw KernelError("add route", what, nlError: err) }
        rtnl_route_set_table(route, UInt32(RT_TABLE_MAIN.rawValue))
        rtnl_route_set_protocol(route, UInt8(RTPROT_BOOT))
        guard let nh = rtnl_route_nh_alloc() else { throw KernelError("add route", what, reason: "out of memory") }
        rtnl_route_nh_set_ifindex(nh, ifindex)
        if let gateway {
            let gw = try Netlink.parseAddress(gateway, "add route", what)
            defer { nl_addr_put(gw) }
            guard nl_addr_get_family(gw) == family else {
                rtnl_route_nh_free(nh)
                throw KernelError("add route", what, reason: "the gateway is not of the destination's address family")
            }
            rtnl_route_nh_set_gateway(nh, gw)
            rtnl_route_set_scope(route, UInt8(RT_SCOPE_UNIVERSE.rawValue))
        } else {
            rtnl_route_set_scope(route, UInt8(RT_SCOPE_LINK.rawValue))
        }
        rtnl_route_add_nexthop(route, nh)  // the route owns it from here
        err = rtnl_route_add(sk, route, NLM_F_CREATE | NLM_F_EXCL)
        if err < 0 { throw KernelError("add route", what, nlError: err) }
    }

    /// The addresses on `link`, as "10.1.0.2/24" / "fd00::2/64".
    public func addresses(link name: String) throws -> [String] {
        let link = try require(name, "list addresses")
        let ifindex = rtnl_link_get_ifindex(link)
        rtnl_link_put(link)
        var cache: OpaquePointer?
        let err = rtnl_addr_alloc_cache(sk, &cache)
        if err < 0 { throw KernelError("list addresses", name, nlError: err) }
        guard let cache else { return [] }
        defer { nl_cache_free(cache) }
        var out: [String] = []
        var obj = nl_cache_get_first(cache)
        while let o = obj {
            if rtnl_addr_get_ifindex(o) == ifindex, let local = rtnl_addr_get_local(o) {
                var buf = [CChar](repeating: 0, count: 128)
                nl_addr2str(local, &buf, buf.count)
                var text = String(cString: buf)
                if !text.contains("/") { text += "/\(nl_addr_get_prefixlen(local))" }
                out.append(text)
            }
            obj = nl_cache_get_next(o)
        }
        return out
    }

    /// An IPv4 or IPv6 address or prefix; the caller puts it.
    static func parseAddress(_ text: String, _ operation: String, _ object: String) throws -> OpaquePointer {
        var a: OpaquePointer?
        let err = nl_addr_parse(text, AF_UNSPEC, &a)
        guard err >= 0, let a else { throw KernelError(operation, object, reason: "'\(text)' is not an IP address or prefix") }
        let family = nl_addr_get_family(a)
        guard family == AF_INET || family == AF_INET6 else {
            nl_addr_put(a)
            throw KernelError(operation, object, reason: "'\(text)' is not an IPv4 or IPv6 address")
        }
        return a
    }
}
