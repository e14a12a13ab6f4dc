/*
 * Bridge rules in the configuration: VLAN filtering, the reserved-group forward mask, per-port rules
 * (VLANs, PVID, isolation, locking, MAC limit) and static MAC entries. One bridge's part of the file:
 *
 *   { "name": "vale0", "vlanFiltering": true, "groupFwdMask": "0x4008",
 *     "portRules": [
 *       { "port": "c1", "vlans": [ { "vid": 10, "untagged": true } ], "pvid": 10 },
 *       { "port": "trunk", "vlans": [ { "vid": 10 }, { "vid": 20 } ], "isolated": true, "maxMacs": 64 },
 *       { "port": "vx2", "horizon": 1 } ],
 *     "fdb": [ { "mac": "02:00:00:00:00:01", "port": "c1", "vlan": 10 } ] }
 *
 * Port rules name ports by their name on the bridge (kernel ports and app ports alike) and apply
 * whenever a port of that name is attached; a port without rules is in VLAN 1, PVID, untagged (as
 * on Linux). A port with "vlans" has exactly those, and a PVID only if "pvid" says so. The same
 * checks serve the file, `swalectl` and the service (`SwaleConfig.groupFwdMask(_:)`, `vidRange`).
 */
import SwaleNames

extension JSONValue {
    static func bool(_ b: Bool) -> JSONValue { JSONValue(.bool(b)) }
}

extension SwaleConfig {
    public struct Vlan: Equatable, Sendable, Codable {
        public var vid: Int
        public var untagged: Bool
        public init(vid: Int, untagged: Bool) { self.vid = vid; self.untagged = untagged }
    }

    /// One port's rules. `vlans` nil: the default (VLAN 1, PVID, untagged).
    public struct PortRules: Equatable, Sendable {
        public var port: String
        public var vlans: [Vlan]?
        public var pvid: Int?
        public var isolated = false
        public var locked = false
        /// 0: no limit.
        public var maxMacs = 0
        /// Split-horizon group (0: none): ports of one group never forward to each other.
        public var horizon = 0
        public init(port: String) { self.port = port }

        /// The VLANs in effect (the default when none were set).
        public var effectiveVlans: [Vlan] { vlans ?? [Vlan(vid: 1, untagged: true)] }
        public var effectivePvid: Int? { vlans == nil ? 1 : pvid }
        /// Nothing differs from a new port's defaults.
        public var isDefault: Bool { vlans == nil && !isolated && !locked && maxMacs == 0 && horizon == 0 }
    }

    public struct StaticEntry: Equatable, Sendable {
        public var mac: UInt64
        public var port: String
        /// 0 when the bridge does not filter VLANs (the entry then matches untagged-as-is traffic).
        public var vlan: Int
        public init(mac: UInt64, port: String, vlan: Int) { self.mac = mac; self.port = port; self.vlan = vlan }
    }

    public static let vidRange = 1...4094
    public static let maxMacsRange = 0...(1 << 24)
    /// Reserved groups Linux never lets group_fwd_mask forward: STP (bit 0), MAC pause (1), LACP (2).
    public static let restrictedGroupBits = 0x0007

    /// A group forward mask from text ("0x4008" or "16392"), with Linux's rules.
    public static func groupFwdMask(_ text: String) throws(RuleError) -> UInt16 {
        let t = text.lowercased()
        let v = t.hasPrefix("0x") ? Int(t.dropFirst(2), radix: 16) : Int(t)
        guard let v else { throw RuleError("group forward mask '\(text)' is not a number (write it like 0x4008)") }
        return try groupFwdMask(v)
    }

    public static func groupFwdMask(_ v: Int) throws(RuleError) -> UInt16 {
        guard (0...0xFFFF).contains(v) else {
            throw RuleError("group forward mask \(v) does not fit in 16 bits (one bit per group 01:80:C2:00:00:00...0F)")
        }
        guard v & restrictedGroupBits == 0 else {
            throw RuleError(
                "group forward mask \(hex(v)) sets \(hex(v & restrictedGroupBits)): STP (bit 0), MAC pause (bit 1) and LACP (bit 2) are never forwarded, as on Linux"
            )
        }
        return UInt16(v)
    }

    /// VLAN ids as ranges, "10,20-29" (sorted, duplicates merged).
    public static func formatVids(_ vids: [Int]) -> String {
        var parts: [String] = []
        var run: (Int, Int)?
        func close() { if let (a, b) = run { parts.append(a == b ? "\(a)" : "\(a)-\(b)") } }
        for v in Set(vids).sorted() {
            if let (a, b) = run, v == b + 1 { run = (a, v) } else { close(); run = (v, v) }
        }
        close()
        return parts.joined(separator: ",")
    }

    /// The inverse of formatVids; nil unless every id is in 1...4094 and every range ascends.
    public static func parseVids(_ text: String) -> [Int]? {
        var out: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard (1...2).contains(ends.count), let a = ends.first!, let b = ends.last!, vidRange.contains(a),
                vidRange.contains(b), a <= b
            else { return nil }
            out.append(contentsOf: a...b)
        }
        return out
    }

    public static func hex(_ v: Int) -> String {
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// A unicast MAC for a static entry.
    public static func staticMAC(_ text: String) throws(RuleError) -> UInt64 {
        let mac: UInt64
        do { mac = try Names.parseMAC(text) } catch { throw RuleError("\(error)") }
        guard mac & (1 << 40) == 0, mac != 0 else {
            throw RuleError("\(text) is a group or zero address; static entries are for unicast stations")
        }
        return mac
    }
}

/// A rule value that is not acceptable, and why.
public struct RuleError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: reading and writing (ConfigChecker and SwaleConfig.document call these)

extension ConfigChecker {
    func bool(_ v: JSONValue, _ path: String) throws -> Bool {
        guard case .bool(let b) = v.kind else { throw fail(v, "\(path) must be true or false, found \(v.typeName)") }
        return b
    }

    func groupFwdMask(_ v: JSONValue, _ path: String) throws -> UInt16 {
        do {
            switch v.kind {
            case .string(let s): return try SwaleConfig.groupFwdMask(s)
            case .number: return try SwaleConfig.groupFwdMask(try int(v, path, 0...0xFFFF))
            default: throw fail(v, "\(path) must be a mask like \"0x4008\", found \(v.typeName)")
            }
        } catch let e as RuleError { throw fail(v, "\(path): \(e)") }
    }

    func portRules(_ v: JSONValue, _ path: String) throws -> SwaleConfig.PortRules {
        let ms = try members(v, path, known: ["port", "vlans", "pvid", "isolated", "locked", "maxMacs", "horizon"])
        guard let nameV = ms.first(where: { $0.key == "port" })?.value else { throw fail(v, "\(path) has no port") }
        var r = SwaleConfig.PortRules(
            port: try named(nameV, "\(path).port") { s in
                try Names.validatePortComponent(s); return s
            })
        let what = "\(path) (port \(r.port))"
        for m in ms {
            switch m.key {
            case "vlans":
                guard case .array(let items) = m.value.kind else {
                    throw fail(m.value, "\(what): vlans must be an array, found \(m.value.typeName)")
                }
                var list: [SwaleConfig.Vlan] = []
                for item in items {
                    let vm = try members(item, "\(what): vlans[]", known: ["vid", "untagged"])
                    guard let vidV = vm.first(where: { $0.key == "vid" })?.value else {
                        throw fail(item, "\(what): a VLAN has no vid")
                    }
                    let vid = try int(vidV, "\(what): vid", SwaleConfig.vidRange)
                    guard !list.contains(where: { $0.vid == vid }) else {
                        throw fail(vidV, "\(what): VLAN \(vid) is listed twice")
                    }
                    let untagged =
                        try vm.first(where: { $0.key == "untagged" }).map { try bool($0.value, "\(what): untagged") } ?? false
                    list.append(SwaleConfig.Vlan(vid: vid, untagged: untagged))
                }
                r.vlans = list
            case "pvid": r.pvid = try int(m.value, "\(what): pvid", SwaleConfig.vidRange)
            case "isolated": r.isolated = try bool(m.value, "\(what): isolated")
            case "locked": r.locked = try bool(m.value, "\(what): locked")
            case "maxMacs": r.maxMacs = try int(m.value, "\(what): maxMacs", SwaleConfig.maxMacsRange)
            case "horizon": r.horizon = try int(m.value, "\(what): horizon", SwaleConfig.horizonRange)
            default: break
            }
        }
        if let pvid = r.pvid {
            guard let list = r.vlans, list.contains(where: { $0.vid == pvid }) else {
                throw fail(v, "\(what): pvid \(pvid) is not one of the port's vlans")
            }
        }
        return r
    }

    func staticEntry(_ v: JSONValue, _ path: String) throws -> SwaleConfig.StaticEntry {
        let ms = try members(v, path, known: ["mac", "port", "vlan"])
        func member(_ k: String) -> JSONValue? { ms.first(where: { $0.key == k })?.value }
        guard let macV = member("mac"), let portV = member("port") else { throw fail(v, "\(path) needs a mac and a port") }
        let mac = try named(macV, "\(path).mac") { s in try SwaleConfig.staticMAC(s) }
        let port = try named(portV, "\(path).port") { s in
            try Names.validatePortComponent(s); return s
        }
        let vlan = try member("vlan").map { try int($0, "\(path).vlan", 0...4094) } ?? 0
        return SwaleConfig.StaticEntry(mac: mac, port: port, vlan: vlan)
    }
}

extension SwaleConfig.PortRules {
    var document: JSONValue {
        JSONValue.object([
            ("port", .string(port)),
            (
                "vlans",
                vlans.map { list in
                    .array(
                        list.map { JSONValue.object([("vid", .int($0.vid)), ("untagged", $0.untagged ? .bool(true) : nil)]) })
                }
            ),
            ("pvid", vlans == nil ? nil : pvid.map(JSONValue.int)),
            ("isolated", isolated ? .bool(true) : nil), ("locked", locked ? .bool(true) : nil),
            ("maxMacs", maxMacs > 0 ? .int(maxMacs) : nil), ("horizon", horizon > 0 ? .int(horizon) : nil)
        ])
    }
}

extension SwaleConfig.StaticEntry {
    var document: JSONValue {
        JSONValue.object([("mac", .string(Names.formatMAC(mac))), ("port", .string(port)), ("vlan", vlan > 0 ? .int(vlan) : nil)])
    }
}
