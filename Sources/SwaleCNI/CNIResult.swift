/*
 * CNIResult — the result an interface-creating plugin prints after ADD, read from and written to
 * any supported version.
 *
 *   { "cniVersion", "interfaces": [ {"name", "mac", "sandbox"?, "mtu"?} ],
 *     "ips": [ {"address": "10.1.0.2/24", "gateway"?, "interface": index, "version"? (0.3.x, 0.4.0)} ],
 *     "routes": [ {"dst", "gw"?} ], "dns": {"nameservers", "domain", "search", "options"} }
 *
 * IPAM plugins return the same shape without interfaces. A chained call's prevResult is merged by
 * appending: our interfaces after the earlier ones (our IPs' interface indices shifted to match).
 */
import Foundation

public struct CNIResult: Equatable {
    public struct Interface: Equatable {
        public var name: String
        public var mac: String
        public var sandbox: String?
        public var mtu: Int?
        public init(name: String, mac: String, sandbox: String? = nil, mtu: Int? = nil) {
            self.name = name; self.mac = mac; self.sandbox = sandbox; self.mtu = mtu
        }
    }
    public struct IP: Equatable {
        public var address: String
        public var gateway: String?
        public var interface: Int?
        public var isIPv6: Bool { address.contains(":") }
        public init(address: String, gateway: String? = nil, interface: Int? = nil) {
            self.address = address; self.gateway = gateway; self.interface = interface
        }
    }
    public struct Route: Equatable {
        public var dst: String
        public var gw: String?
        public init(dst: String, gw: String? = nil) { self.dst = dst; self.gw = gw }
    }

    public var interfaces: [Interface] = []
    public var ips: [IP] = []
    public var routes: [Route] = []
    /// Kept as given (nameservers, domain, search, options).
    public var dns: [String: Any] = [:]

    public init() {}

    public static func == (a: CNIResult, b: CNIResult) -> Bool {
        a.interfaces == b.interfaces && a.ips == b.ips && a.routes == b.routes
            && JSON.encode(a.dns) == JSON.encode(b.dns)
    }

    /// Reads a result of any supported version (IPAM's, or a prevResult).
    public static func parse(_ o: [String: Any], _ what: String) throws -> CNIResult {
        func fail(_ m: String) -> CNIError { CNIError(CNIError.decodeFailure, "\(what) is not a CNI result", details: m) }
        var r = CNIResult()
        for item in o["interfaces"] as? [Any] ?? [] {
            guard let d = item as? [String: Any], let name = d["name"] as? String else { throw fail("an interface has no name") }
            r.interfaces.append(
                Interface(
                    name: name, mac: d["mac"] as? String ?? "", sandbox: d["sandbox"] as? String,
                    mtu: d["mtu"].flatMap(NetConf.int)))
        }
        for item in o["ips"] as? [Any] ?? [] {
            guard let d = item as? [String: Any], let a = d["address"] as? String, a.contains("/") else {
                throw fail("an IP has no address with a prefix length")
            }
            r.ips.append(IP(address: a, gateway: d["gateway"] as? String, interface: d["interface"].flatMap(NetConf.int)))
        }
        for item in o["routes"] as? [Any] ?? [] {
            guard let d = item as? [String: Any], let dst = d["dst"] as? String else { throw fail("a route has no dst") }
            r.routes.append(Route(dst: dst, gw: d["gw"] as? String))
        }
        r.dns = o["dns"] as? [String: Any] ?? [:]
        return r
    }

    /// `prev` first, then this result (its interface indices shifted past prev's interfaces).
    public func merged(after prev: CNIResult) -> CNIResult {
        var r = prev
        let shift = prev.interfaces.count
        r.interfaces += interfaces
        r.ips += ips.map { ip in
            var ip = ip
            ip.interface = ip.interface.map { $0 + shift }
            return ip
        }
        r.routes += routes
        if !dns.isEmpty { r.dns = dns }
        return r
    }

    /// The result as `version` writes it.
    public func json(version: String) -> [String: Any] {
        let legacy = CNIVersion.less(version, "1.0.0")
        var o: [String: Any] = ["cniVersion": version]
        if !interfaces.isEmpty {
            o["interfaces"] = interfaces.map { i -> [String: Any] in
                var d: [String: Any] = ["name": i.name, "mac": i.mac]
                if let s = i.sandbox { d["sandbox"] = s }
                if let m = i.mtu, CNIVersion.atLeast(version, "1.1.0") { d["mtu"] = m }
                return d
            }
        }
        if !ips.isEmpty {
            o["ips"] = ips.map { ip -> [String: Any] in
                var d: [String: Any] = ["address": ip.address]
                if let g = ip.gateway { d["gateway"] = g }
                if let i = ip.interface { d["interface"] = i }
                if legacy { d["version"] = ip.isIPv6 ? "6" : "4" }
                return d
            }
        }
        if !routes.isEmpty {
            o["routes"] = routes.map { r -> [String: Any] in
                var d: [String: Any] = ["dst": r.dst]
                if let g = r.gw { d["gw"] = g }
                return d
            }
        }
        if !dns.isEmpty { o["dns"] = dns }
        return o
    }
}
