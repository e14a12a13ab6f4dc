/*
 * SwaleConfig — the declarative configuration: service settings, bridges, and their kernel ports.
 *
 *   {
 *     "socket": "/run/swale/swaled.sock", "socketGroup": "swale",
 *     "slots": 1024, "batch": 1024, "busyPollMicros": 50, "pollMode": "yield",
 *     "forwardingNice": -10, "forwardingCPUs": "1", "fastpath": true,
 *     "clientMaxPorts": 256, "clientMaxPipes": 1024, "clientMaxSessions": 64, "clientMaxBridges": 16,
 *     "clientMaxMemoryMiB": 1024, "maxSessions": 1024, "maxBridges": 1024, "maxMemoryMiB": 8192,
 *     "bridges": [
 *       { "name": "vale0", "agingSeconds": 300, "batch": 512,
 *         "allowUsers": ["alice"], "allowGroups": ["lab"], "ports": [
 *           { "kind": "tap",    "name": "tap0", "mtu": 1500, "mac": "02:00:00:00:00:01" },
 *           { "kind": "veth",   "name": "c1", "peer": "eth0", "netns": "ctr1", "address": "10.0.0.1/24" },
 *           { "kind": "attach", "name": "dummy0" } ] } ]
 *   }
 *
 * The whole-number settings of the service live in one table (`SwaleConfig.settings`: key, range,
 * where it is kept); the reader, the writer and equality walk that table, so a new limit is one
 * line there and one where the service takes it.
 *
 * `parse` checks the whole file before anything is applied: syntax, unknown keys, types, ranges,
 * names (the one SwaleNames parser), an interface used twice. Every error names the file, the line
 * and the setting. `rendered()` writes the same format (what `swalectl config dump` prints), so a
 * dump loads back into the same state. The same parser serves swaled, `swaled --check-config` and
 * `swalectl config check`.
 */
import Foundation
import Glibc
import SwaleNames

public struct SwaleConfig: Equatable, Sendable {
    public enum PortKind: String, Sendable, CaseIterable { case tap, veth, attach, vxlan, geneve }

    public struct Port: Equatable, Sendable {
        public var kind: PortKind
        public var name: String
        public var peer: String?
        public var netns: String?
        public var address: String?
        public var mtu: Int?
        public var mac: String?
        /// A container's attachment (the CNI plugin's ports): the runtime's container id and network
        /// name. Never read from a config file and never written to one: the runtime owns them.
        public var container: String?
        public var network: String?
        /// The attachment's VLANs and isolation (CNI `vlan`, `trunk`, `isolated`), carried with the
        /// interface so a restart of swaled gives the container back exactly the rules it had.
        public var vlan: Int?
        public var trunk: [Int]?
        public var isolated: Bool?
        /// Where it was written (0 when built in code); not part of equality.
        public var line = 0
        /// vxlan and geneve ports: VNI, remotes or group, underlay (Tunnels.swift).
        public var tunnel: Tunnel?
        public init(kind: PortKind, name: String) { self.kind = kind; self.name = name }
        public static func == (a: Port, b: Port) -> Bool {
            a.kind == b.kind && a.name == b.name && a.peer == b.peer && a.netns == b.netns && a.address == b.address
                && a.mtu == b.mtu && a.mac == b.mac && a.container == b.container && a.network == b.network
                && a.vlan == b.vlan && a.trunk == b.trunk && a.isolated == b.isolated && a.tunnel == b.tunnel
        }
    }

    public struct Bridge: Equatable, Sendable {
        public var name: String
        public var agingSeconds: Int?
        public var batch: Int?
        /// Users and groups (names or numbers) admitted besides root.
        public var allowUsers: [String]?
        public var allowGroups: [String]?
        public var ports: [Port] = []
        /// Bridge rules (BridgeRules.swift).
        public var vlanFiltering = false
        public var groupFwdMask: UInt16 = 0
        public var portRules: [PortRules] = []
        public var fdb: [StaticEntry] = []
        public var line = 0
        public init(name: String) { self.name = name }
        public static func == (a: Bridge, b: Bridge) -> Bool {
            a.name == b.name && a.agingSeconds == b.agingSeconds && a.batch == b.batch && a.ports == b.ports
                && a.allowUsers == b.allowUsers && a.allowGroups == b.allowGroups && a.vlanFiltering == b.vlanFiltering
                && a.groupFwdMask == b.groupFwdMask && a.portRules == b.portRules && a.fdb == b.fdb
        }
    }

    public var socket: String?
    public var socketGroup: String?
    public var pollMode: String?
    /// Where swaled serves Prometheus metrics ("127.0.0.1:9477"); off when absent.
    public var metrics: String?
    /// The kernel fast path for kernel-to-kernel flows (eBPF); on when absent.
    public var fastpath: Bool?
    /// The CPUs forwarding threads may run on (CPUList); wherever the scheduler puts them when absent.
    public var forwardingCPUs: [Int]?
    /// Whole-number settings by key (see `settings`).
    public var numbers: [String: Int] = [:]
    public var bridges: [Bridge] = []
    /// Lines of the top-level settings, for errors found later (a socket group that does not exist).
    public var lines: [String: Int] = [:]

    public init() {}

    public static func == (a: SwaleConfig, b: SwaleConfig) -> Bool {
        a.socket == b.socket && a.socketGroup == b.socketGroup && a.pollMode == b.pollMode && a.numbers == b.numbers
            && a.bridges == b.bridges && a.metrics == b.metrics && a.fastpath == b.fastpath
            && a.forwardingCPUs == b.forwardingCPUs
    }

    /// A whole-number setting of the service: its key and the values it may take.
    public struct Setting: Sendable {
        public let key: String
        public let range: ClosedRange<Int>
        public let summary: String
    }

    /// Every whole-number setting, in the order the writer prints them.
    public static let settings: [Setting] = [
        Setting(key: "slots", range: slotRange, summary: "slots per ring of a new port"),
        Setting(key: "batch", range: batchRange, summary: "frames per forwarding batch"),
        Setting(key: "busyPollMicros", range: busyPollRange, summary: "how long a bridge polls after its last frame"),
        Setting(
            key: "forwardingNice", range: niceRange,
            summary: "nice value of forwarding threads while their bridge has kernel ports"),
        Setting(
            key: "flowControlMicros", range: flowControlRange,
            summary: "how long an application's frame may wait for room at an application destination (0: dropped at once)"),
        Setting(key: "maxPorts", range: maxPortsRange, summary: "ports per bridge"),
        Setting(key: "fdbCapacity", range: fdbRange, summary: "MAC table entries per bridge"),
        Setting(key: "clientMaxSessions", range: clientLimitRange, summary: "connections per user"),
        Setting(key: "clientMaxPorts", range: clientLimitRange, summary: "ports per user, pipe parents included"),
        Setting(key: "clientMaxPipes", range: clientLimitRange, summary: "pipes per user"),
        Setting(key: "clientMaxBridges", range: clientLimitRange, summary: "bridges per user"),
        Setting(key: "clientMaxMemoryMiB", range: memoryRange, summary: "shared memory per user"),
        Setting(key: "clientFdbCapacity", range: fdbRange, summary: "MAC table entries of a bridge a member makes"),
        Setting(key: "maxSessions", range: globalLimitRange, summary: "connections in all (root keeps a reserve)"),
        Setting(key: "maxBridges", range: globalLimitRange, summary: "bridges in all (root keeps a reserve)"),
        Setting(key: "maxMemoryMiB", range: memoryRange, summary: "shared memory in all (root keeps a reserve)")
    ]

    public subscript(_ key: String) -> Int? {
        get { numbers[key] }
        set { numbers[key] = newValue }
    }

    public var slots: Int? {
        get { self["slots"] }
        set { self["slots"] = newValue }
    }
    public var batch: Int? {
        get { self["batch"] }
        set { self["batch"] = newValue }
    }

    // Ranges shared with swaled's command-line options.
    public static let slotRange = 64...16384
    public static let batchRange = 1...4096
    public static let busyPollRange = 0...1_000_000
    public static let flowControlRange = 0...100_000
    public static let niceRange = -20...19
    public static let maxPortsRange = 2...4094
    public static let fdbRange = 8...(1 << 24)
    public static let clientLimitRange = 1...65536
    public static let globalLimitRange = 64...1_048_576
    public static let memoryRange = 16...(1 << 24)
    public static let agingRange = 1...Int(Int32.max)
    public static let mtuRange = 68...65535
}

/// A configuration problem: file, line, what.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int
    public let message: String
    public init(file: String, line: Int, message: String) { self.file = file; self.line = line; self.message = message }
    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

// MARK: parsing

extension SwaleConfig {
    public static func load(path: String) throws -> SwaleConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, message: "cannot read the file (\(String(cString: strerror(errno))))")
        }
        guard data.count <= 16 << 20 else { throw ConfigError(file: path, line: 0, message: "file is larger than 16 MiB") }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigError(file: path, line: 0, message: "file is not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String = "config") throws -> SwaleConfig {
        let doc: JSONValue
        do { doc = try JSONValue.parse(text) } catch let e as JSONSyntaxError {
            throw ConfigError(file: file, line: e.line, message: "column \(e.column): \(e.message)")
        }
        var c = ConfigChecker(file: file)
        return try c.config(doc)
    }
}

/// Walks a parsed document, type- and range-checking each setting and remembering its line.
struct ConfigChecker {
    let file: String
    var interfaces: [String: (String, Int)] = [:]  // interface → (what uses it, line)

    init(file: String) { self.file = file }

    func fail(_ v: JSONValue, _ m: String) -> ConfigError { ConfigError(file: file, line: v.line, message: m) }

    func members(_ v: JSONValue, _ path: String, known: [String]) throws -> [JSONValue.Member] {
        guard case .object(let ms) = v.kind else { throw fail(v, "\(path) must be an object, found \(v.typeName)") }
        for m in ms where !known.contains(m.key) {
            throw fail(m.value, "unknown setting '\(m.key)' in \(path) (known: \(known.joined(separator: ", ")))")
        }
        return ms
    }

    func string(_ v: JSONValue, _ path: String) throws -> String {
        guard case .string(let s) = v.kind else { throw fail(v, "\(path) must be a string, found \(v.typeName)") }
        return s
    }

    func int(_ v: JSONValue, _ path: String, _ range: ClosedRange<Int>) throws -> Int {
        guard case .number(let text) = v.kind, let n = Int(text) else {
            throw fail(v, "\(path) must be a whole number, found \(v.typeName == "a number" ? "\(v.rendered())" : v.typeName)")
        }
        guard range.contains(n) else {
            throw fail(v, "\(path) = \(n) is out of range (\(range.lowerBound)...\(range.upperBound))")
        }
        return n
    }

    func named<T>(_ v: JSONValue, _ path: String, _ check: (String) throws -> T) throws -> T {
        let s = try string(v, path)
        do { return try check(s) } catch { throw fail(v, "\(path): \(error)") }
    }

    mutating func config(_ doc: JSONValue) throws -> SwaleConfig {
        let known =
            ["socket", "socketGroup", "pollMode", "metrics", "fastpath", "forwardingCPUs", "bridges"]
            + SwaleConfig.settings.map(\.key)
        var c = SwaleConfig()
        for m in try members(doc, "the configuration", known: known) {
            let v = m.value
            c.lines[m.key] = v.line
            switch m.key {
            case "socket":
                let s = try string(v, "socket")
                guard s.hasPrefix("/"), s.utf8.count < 108 else {
                    throw fail(v, "socket must be an absolute path shorter than 108 bytes")
                }
                c.socket = s
            case "socketGroup":
                let s = try string(v, "socketGroup")
                guard !s.isEmpty, s.utf8.count <= 32, !s.contains(where: { $0.isWhitespace || $0 == ":" }) else {
                    throw fail(v, "socketGroup must be a group name or number")
                }
                c.socketGroup = s
            case "metrics":
                let s = try string(v, "metrics")
                guard SwaleConfig.isMetricsAddress(s) else {
                    throw fail(v, "metrics must be an IPv4 address and a port, like \"127.0.0.1:9477\" (found \"\(s)\")")
                }
                c.metrics = s
            case "fastpath":
                c.fastpath = try bool(v, "fastpath")
            case "forwardingCPUs":
                c.forwardingCPUs = try named(v, "forwardingCPUs", CPUList.parse)
            case "pollMode":
                let s = try string(v, "pollMode")
                guard s == "yield" || s == "spin" else {
                    throw fail(v, "pollMode must be \"yield\" or \"spin\" (found \"\(s)\")")
                }
                c.pollMode = s
            case "bridges":
                guard case .array(let items) = v.kind else { throw fail(v, "bridges must be an array, found \(v.typeName)") }
                var seen: [String: Int] = [:]
                for (i, item) in items.enumerated() {
                    let b = try bridge(item, "bridges[\(i)]")
                    if let first = seen[b.name] {
                        throw fail(item, "bridge '\(b.name)' is configured twice (first on line \(first))")
                    }
                    seen[b.name] = item.line
                    c.bridges.append(b)
                }
            default:
                let setting = SwaleConfig.settings.first { $0.key == m.key }!
                c[m.key] = try int(v, m.key, setting.range)
            }
        }
        return c
    }

    mutating func bridge(_ v: JSONValue, _ path: String) throws -> SwaleConfig.Bridge {
        let ms = try members(
            v, path,
            known: [
                "name", "agingSeconds", "batch", "allowUsers", "allowGroups", "vlanFiltering", "groupFwdMask", "portRules", "fdb",
                "ports"
            ])
        guard let nameV = ms.first(where: { $0.key == "name" })?.value else { throw fail(v, "\(path) has no name") }
        var b = SwaleConfig.Bridge(
            name: try named(nameV, "\(path).name") { s in
                try Names.validateBridge(s); return s
            })
        b.line = v.line
        let where_ = "bridge \(b.name)"
        for m in ms {
            switch m.key {
            case "agingSeconds": b.agingSeconds = try int(m.value, "\(where_): agingSeconds", SwaleConfig.agingRange)
            case "batch": b.batch = try int(m.value, "\(where_): batch", SwaleConfig.batchRange)
            case "allowUsers", "allowGroups":
                guard case .array(let items) = m.value.kind else {
                    throw fail(m.value, "\(where_): \(m.key) must be an array of names, found \(m.value.typeName)")
                }
                let names = try items.map { item -> String in
                    let s = try string(item, "\(where_): \(m.key)")
                    guard !s.isEmpty, s.utf8.count <= 32, !s.contains(where: { $0.isWhitespace || $0 == ":" }) else {
                        throw fail(item, "\(where_): \(m.key): '\(s)' is not a user or group name or number")
                    }
                    return s
                }
                if m.key == "allowUsers" { b.allowUsers = names } else { b.allowGroups = names }
            case "vlanFiltering": b.vlanFiltering = try bool(m.value, "\(where_): vlanFiltering")
            case "groupFwdMask": b.groupFwdMask = try groupFwdMask(m.value, "\(where_): groupFwdMask")
            case "portRules", "fdb":
                guard case .array(let items) = m.value.kind else {
                    throw fail(m.value, "\(where_): \(m.key) must be an array, found \(m.value.typeName)")
                }
                for (i, item) in items.enumerated() {
                    if m.key == "fdb" {
                        let e = try staticEntry(item, "\(where_): fdb[\(i)]")
                        guard !b.fdb.contains(where: { $0.mac == e.mac && $0.vlan == e.vlan }) else {
                            throw fail(item, "\(where_): fdb[\(i)]: \(Names.formatMAC(e.mac)) vlan \(e.vlan) is listed twice")
                        }
                        b.fdb.append(e)
                    } else {
                        let r = try portRules(item, "\(where_): portRules[\(i)]")
                        guard !b.portRules.contains(where: { $0.port == r.port }) else {
                            throw fail(item, "\(where_): portRules[\(i)]: port \(r.port) has rules twice")
                        }
                        b.portRules.append(r)
                    }
                }
            case "ports":
                guard case .array(let items) = m.value.kind else {
                    throw fail(m.value, "\(where_): ports must be an array, found \(m.value.typeName)")
                }
                for (i, item) in items.enumerated() { b.ports.append(try port(item, "\(where_): ports[\(i)]", bridge: b.name)) }
            default: break
            }
        }
        return b
    }

    mutating func claim(_ ifname: String, by user: String, at v: JSONValue) throws {
        if let (other, line) = interfaces[ifname] {
            throw fail(v, "interface \(ifname) is used twice: \(user), and \(other) on line \(line)")
        }
        interfaces[ifname] = (user, v.line)
    }

    mutating func port(_ v: JSONValue, _ path: String, bridge: String) throws -> SwaleConfig.Port {
        let ms = try members(v, path, known: ["kind", "name", "peer", "netns", "address", "mtu", "mac"] + Self.tunnelKeys)
        func member(_ k: String) -> JSONValue? { ms.first(where: { $0.key == k })?.value }
        guard let kindV = member("kind") else { throw fail(v, "\(path) has no kind (tap, veth, attach, vxlan or geneve)") }
        let kindS = try string(kindV, "\(path).kind")
        guard let kind = SwaleConfig.PortKind(rawValue: kindS) else {
            throw fail(kindV, "\(path).kind must be tap, veth, attach, vxlan or geneve (found \"\(kindS)\")")
        }
        guard let nameV = member("name") else { throw fail(v, "\(path) has no name (the interface name)") }
        var p = SwaleConfig.Port(
            kind: kind,
            name: try named(nameV, "\(path).name") { s in
                try Names.validateInterfaceName(s); return s
            })
        p.line = v.line
        let what = "\(kind.rawValue) port \(p.name) on \(bridge)"
        try claim(p.name, by: what, at: nameV)
        for m in ms {
            let x = m.value
            switch m.key {
            case "peer", "netns", "address":
                guard kind == .veth else { throw fail(x, "\(what): '\(m.key)' is a veth setting") }
                if m.key == "peer" {
                    p.peer = try named(x, "\(what): peer") { s in
                        try Names.validateInterfaceName(s); return s
                    }
                    guard p.peer != p.name else { throw fail(x, "\(what): the peer needs a name of its own") }
                } else if m.key == "netns" {
                    p.netns = try string(x, "\(what): netns")
                    let ns = p.netns!
                    let ok =
                        ns.hasPrefix("/")
                        ? ns.utf8.count < 4096
                        : (!ns.isEmpty && ns.utf8.count <= 255 && !ns.contains("/") && ns != "." && ns != "..")
                    guard ok else {
                        throw fail(x, "\(what): netns must be a namespace name (under /var/run/netns) or an absolute path")
                    }
                } else {
                    p.address = try string(x, "\(what): address")
                    guard SwaleConfig.isCIDR(p.address!) else {
                        throw fail(
                            x,
                            "\(what): address \"\(p.address!)\" is not an address with a prefix length (10.0.0.1/24, fd00::1/64)")
                    }
                }
            case "mtu":
                guard kind != .attach else { throw fail(x, "\(what): an attached interface keeps its own MTU") }
                p.mtu = try int(x, "\(what): mtu", SwaleConfig.mtuRange)
            case "mac":
                guard kind != .attach else { throw fail(x, "\(what): an attached interface keeps its own MAC address") }
                let s = try string(x, "\(what): mac")
                let mac: UInt64
                do { mac = try Names.parseMAC(s) } catch { throw fail(x, "\(what): mac: \(error)") }
                guard mac & (1 << 40) == 0, mac != 0 else {
                    throw fail(x, "\(what): mac \(s) is a group or zero address; a port needs a unicast one")
                }
                p.mac = Names.formatMAC(mac)
            default: break
            }
        }
        p.tunnel = try tunnel(v, ms, kind: kind, what: what)
        if kind == .veth {
            guard let peer = p.peer else { throw fail(v, "\(what) has no peer (the other end's name)") }
            // A peer moved into a namespace lives in that namespace's name space, not ours.
            if p.netns == nil { try claim(peer, by: "peer of \(what)", at: v) }
        }
        return p
    }
}

extension SwaleConfig {
    /// `a.b.c.d:port` (port 1...65535): where metrics are served.
    public static func isMetricsAddress(_ s: String) -> Bool {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        var buf = [UInt8](repeating: 0, count: 4)
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port), String(port) == parts[1] else {
            return false
        }
        return inet_pton(AF_INET, String(parts[0]), &buf) == 1
    }

    /// `a.b.c.d/n` (n ≤ 32) or an IPv6 address `/n` (n ≤ 128).
    public static func isCIDR(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let len = Int(parts[1]), String(len) == parts[1] else { return false }
        var buf = [UInt8](repeating: 0, count: 16)
        let addr = String(parts[0])
        if inet_pton(AF_INET, addr, &buf) == 1 { return (0...32).contains(len) }
        if inet_pton(AF_INET6, addr, &buf) == 1 { return (0...128).contains(len) }
        return false
    }
}

// MARK: writing

extension SwaleConfig {
    public var document: JSONValue {
        let bridgeDocs = bridges.map { b in
            JSONValue.object([
                ("name", .string(b.name)), ("agingSeconds", b.agingSeconds.map(JSONValue.int)),
                ("batch", b.batch.map(JSONValue.int)),
                ("allowUsers", b.allowUsers.map { .array($0.map(JSONValue.string)) }),
                ("allowGroups", b.allowGroups.map { .array($0.map(JSONValue.string)) }),
                ("vlanFiltering", b.vlanFiltering ? .bool(true) : nil),
                ("groupFwdMask", b.groupFwdMask != 0 ? .string(SwaleConfig.hex(Int(b.groupFwdMask))) : nil),
                ("portRules", b.portRules.isEmpty ? nil : .array(b.portRules.map(\.document))),
                ("fdb", b.fdb.isEmpty ? nil : .array(b.fdb.map(\.document))),
                (
                    "ports",
                    .array(
                        b.ports.map { p in
                            JSONValue.object([
                                ("kind", .string(p.kind.rawValue)), ("name", .string(p.name)),
                                ("peer", p.peer.map(JSONValue.string)),
                                ("netns", p.netns.map(JSONValue.string)), ("address", p.address.map(JSONValue.string)),
                                ("mtu", p.mtu.map(JSONValue.int)), ("mac", p.mac.map(JSONValue.string))
                            ]).appending(p.tunnel?.members)
                        })
                )
            ])
        }
        let cpus: JSONValue? = forwardingCPUs.map { JSONValue.string(CPUList.render($0)) }
        return .object(
            [
                ("socket", socket.map(JSONValue.string)), ("socketGroup", socketGroup.map(JSONValue.string)),
                ("pollMode", pollMode.map(JSONValue.string)), ("metrics", metrics.map(JSONValue.string)),
                ("fastpath", fastpath.map(JSONValue.bool)), ("forwardingCPUs", cpus)
            ]
                + SwaleConfig.settings.map { ($0.key, numbers[$0.key].map(JSONValue.int)) }
                + [("bridges", .array(bridgeDocs))])
    }

    /// The file format, pretty-printed, ending with a newline.
    public func rendered() -> String { document.rendered() + "\n" }
}
