/*
 * Tunnel ports in the configuration: VXLAN and Geneve devices that carry a bridge's frames to other
 * hosts over UDP. One port object of a bridge, with the keys of a TAP or veth port plus these:
 *
 *   { "kind": "vxlan",  "name": "vx42", "vni": 42, "remotes": ["192.168.1.2", "192.168.1.3"] }
 *   { "kind": "vxlan",  "name": "vx43", "vni": 43, "group": "239.1.1.1", "dev": "eth1" }
 *   { "kind": "geneve", "name": "gn7",  "vni": 7,  "remotes": ["192.168.1.2"], "dstPort": 6081 }
 *
 * A VXLAN port reaches either a list of unicast remotes (head-end replication: the kernel sends a
 * copy of each flood to every remote) or a multicast group through an underlay device. Linux's
 * Geneve device has no forwarding table and no multicast: one remote per device, so a Geneve mesh
 * is one port per remote, all in one split-horizon group (the bridge rules' "horizon"). The same
 * checks serve the file, swalectl and the service (`SwaleConfig.checkTunnel`).
 */
import Glibc
import SwaleNames

extension SwaleConfig {
    public struct Tunnel: Equatable, Sendable {
        /// VXLAN network identifier / Geneve VNI, 1...16777215.
        public var vni: Int
        /// Unicast remote endpoints (IPv4 or IPv6), one FDB flood entry each.
        public var remotes: [String] = []
        /// VXLAN multicast group (instead of remotes), reached through `dev`.
        public var group: String?
        /// The underlay device: required with a group; otherwise the route to the first remote decides.
        public var dev: String?
        /// Source address of the tunnel's packets (VXLAN); default: the address routing to the first remote.
        public var local: String?
        /// UDP destination port; nil: the IANA port (4789 VXLAN, 6081 Geneve).
        public var dstPort: Int?
        public init(vni: Int) { self.vni = vni }
    }

    public static let vniRange = 1...16_777_215
    public static let udpPortRange = 1...65535
    public static let horizonRange = 0...255
    /// More remotes than this on one device is a mistake, not a mesh.
    public static let maxRemotes = 256

    public static func defaultDstPort(_ kind: PortKind) -> Int { kind == .geneve ? 6081 : 4789 }

    /// IPv4 or IPv6 address text → its family (AF_INET / AF_INET6) and bytes; nil if it is neither.
    public static func ipAddress(_ text: String) -> (family: Int32, bytes: [UInt8])? {
        var buf = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &buf) == 1 { return (AF_INET, Array(buf.prefix(4))) }
        if inet_pton(AF_INET6, text, &buf) == 1 { return (AF_INET6, buf) }
        return nil
    }

    static func isMulticast(_ a: (family: Int32, bytes: [UInt8])) -> Bool {
        a.family == AF_INET ? a.bytes[0] & 0xf0 == 0xe0 : a.bytes[0] == 0xff
    }

    static func isUnspecified(_ a: (family: Int32, bytes: [UInt8])) -> Bool { a.bytes.allSatisfy { $0 == 0 } }

    /// Everything about a tunnel port that can be checked without the machine: VNI, addresses and
    /// their families, remotes or a group (not both), the port, Geneve's limits.
    public static func checkTunnel(_ kind: PortKind, _ t: Tunnel) throws(RuleError) {
        let name = kind == .geneve ? "Geneve" : "VXLAN"
        guard vniRange.contains(t.vni) else {
            throw RuleError("\(name) VNI \(t.vni) is out of range (\(vniRange.lowerBound)...\(vniRange.upperBound))")
        }
        if let p = t.dstPort, !udpPortRange.contains(p) {
            throw RuleError("UDP destination port \(p) is out of range (1...65535)")
        }
        var family: Int32?
        func same(_ f: Int32, _ what: String) throws(RuleError) {
            if let family, family != f {
                throw RuleError("\(what) is \(f == AF_INET ? "IPv4" : "IPv6") but the tunnel's other addresses are not")
            }
            family = f
        }
        guard t.remotes.count <= maxRemotes else {
            throw RuleError("\(t.remotes.count) remotes on one port; at most \(maxRemotes)")
        }
        for r in t.remotes {
            guard let a = ipAddress(r) else { throw RuleError("remote '\(r)' is not an IPv4 or IPv6 address") }
            guard !isMulticast(a), !isUnspecified(a) else {
                throw RuleError(
                    "remote \(r) is not a unicast address\(kind == .vxlan ? " (a multicast group goes in --group)" : "")")
            }
            try same(a.family, "remote \(r)")
        }
        if Set(t.remotes).count != t.remotes.count { throw RuleError("a remote is listed twice") }
        if let g = t.group {
            guard kind == .vxlan else {
                throw RuleError("Geneve has no multicast groups on Linux: give one --remote per port instead")
            }
            guard let a = ipAddress(g) else { throw RuleError("group '\(g)' is not an IPv4 or IPv6 address") }
            guard isMulticast(a) else { throw RuleError("group \(g) is not a multicast address (224.0.0.0/4 or ff00::/8)") }
            try same(a.family, "group \(g)")
            guard t.remotes.isEmpty else { throw RuleError("give either remotes or a group, not both") }
            guard t.dev != nil else { throw RuleError("a multicast group needs --dev, the underlay device to join it on") }
        }
        guard !t.remotes.isEmpty || t.group != nil else {
            throw RuleError(
                kind == .vxlan
                    ? "a vxlan port needs --remote IP (repeatable) or --group MCAST --dev DEV" : "a geneve port needs --remote IP"
            )
        }
        if kind == .geneve {
            guard t.remotes.count == 1 else {
                throw RuleError(
                    "a Linux geneve device has one remote (it has no forwarding table): add one geneve port per remote, all with the same --horizon group"
                )
            }
            if t.local != nil { throw RuleError("Linux geneve devices take no local address (--local is for vxlan)") }
            if t.dev != nil { throw RuleError("Linux geneve devices are not bound to an underlay device (--dev is for vxlan)") }
        }
        if let l = t.local {
            guard let a = ipAddress(l) else { throw RuleError("local '\(l)' is not an IPv4 or IPv6 address") }
            guard !isMulticast(a), !isUnspecified(a) else { throw RuleError("local \(l) is not a unicast address") }
            try same(a.family, "local \(l)")
        }
        if let d = t.dev {
            do { try Names.validateInterfaceName(d) } catch { throw RuleError("dev: \(error)") }
        }
    }

    /// The tunnel's address family: that of its remotes or group.
    public static func tunnelFamily(_ t: Tunnel) -> Int32 {
        (t.group ?? t.remotes.first).flatMap { ipAddress($0)?.family } ?? AF_INET
    }

    /// Bytes a tunnel adds to each frame: outer Ethernet 14 + IP (20 or 40) + UDP 8 + VXLAN/Geneve 8.
    public static func tunnelOverhead(family: Int32) -> Int { family == AF_INET6 ? 70 : 50 }
}

extension JSONValue {
    /// An object with more members after its own (absent values left out, as `object` does).
    func appending(_ members: [(String, JSONValue?)]?) -> JSONValue {
        guard let members, case .object(let own) = kind else { return self }
        return JSONValue(.object(own + members.compactMap { k, v in v.map { Member(k, $0) } }))
    }
}

extension SwaleConfig.Tunnel {
    var members: [(String, JSONValue?)] {
        [
            ("vni", .int(vni)), ("remotes", remotes.isEmpty ? nil : .array(remotes.map(JSONValue.string))),
            ("group", group.map(JSONValue.string)), ("dev", dev.map(JSONValue.string)),
            ("local", local.map(JSONValue.string)), ("dstPort", dstPort.map(JSONValue.int))
        ]
    }
}

extension ConfigChecker {
    static let tunnelKeys = ["vni", "remotes", "group", "dev", "local", "dstPort"]

    /// The tunnel keys of a port object: required for vxlan/geneve, refused for the other kinds.
    func tunnel(_ v: JSONValue, _ ms: [JSONValue.Member], kind: SwaleConfig.PortKind, what: String) throws
        -> SwaleConfig.Tunnel?
    {
        let given = ms.filter { ConfigChecker.tunnelKeys.contains($0.key) }
        guard kind == .vxlan || kind == .geneve else {
            if let m = given.first { throw fail(m.value, "\(what): '\(m.key)' is a vxlan/geneve setting") }
            return nil
        }
        guard let vniV = given.first(where: { $0.key == "vni" })?.value else { throw fail(v, "\(what) has no vni") }
        var t = SwaleConfig.Tunnel(vni: try int(vniV, "\(what): vni", SwaleConfig.vniRange))
        for m in given {
            let x = m.value
            switch m.key {
            case "remotes":
                guard case .array(let items) = x.kind else { throw fail(x, "\(what): remotes must be an array of addresses") }
                t.remotes = try items.map { try string($0, "\(what): remotes[]") }
            case "group": t.group = try string(x, "\(what): group")
            case "dev":
                t.dev = try named(x, "\(what): dev") { s in
                    try Names.validateInterfaceName(s); return s
                }
            case "local": t.local = try string(x, "\(what): local")
            case "dstPort": t.dstPort = try int(x, "\(what): dstPort", SwaleConfig.udpPortRange)
            default: break
            }
        }
        do { try SwaleConfig.checkTunnel(kind, t) } catch { throw fail(v, "\(what): \(error)") }
        return t
    }
}
