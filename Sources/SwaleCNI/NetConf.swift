/*
 * NetConf — the network configuration a runtime passes on stdin, and the CNI_* environment.
 *
 *   { "cniVersion": "1.0.0", "name": "swalenet", "type": "swale-cni",
 *     "bridge": "vale0", "mtu": 1500, "mac": "02:...", "vlan": 10, "trunk": [ {"id": 20}, {"minID": 30, "maxID": 39} ],
 *     "isolated": false, "socket": "/run/swale/swaled.sock",
 *     "ipam": { "type": "host-local", ... }, "dns": {...}, "prevResult": {...},
 *     "runtimeConfig": { "mac": "02:..." }, "args": { "cni": { "mac": "02:..." } } }
 *
 * Everything is checked before anything is created; a bad value is the spec's error 7 naming the
 * key. Unknown keys are ignored (other plugins of a conflist, runtimes' additions).
 */
import Foundation
import SwaleConfig
import SwaleNames

public struct NetConf {
    public var cniVersion: String
    public var name: String
    public var bridge: String
    public var mtu: Int?
    public var mac: String?
    public var vlan: Int?
    public var trunk: [Int]?
    public var isolated: Bool?
    public var socket: String?
    /// The IPAM section as given (its `type` names the plugin).
    public var ipam: [String: Any]?
    public var ipamType: String? { ipam?["type"] as? String }
    public var dns: [String: Any]?
    public var prevResult: [String: Any]?
    /// runtimeConfig.mac, then args.cni.mac: what the runtime asks for this attachment.
    public var runtimeMAC: String?
    /// GC: the attachments still in use (`cni.dev/valid-attachments`).
    public var validAttachments: [(container: String, ifname: String)]?
    /// The bytes as received: delegated plugins get the same configuration.
    public var raw: [String: Any]

    public static func parse(_ data: Data) throws -> NetConf {
        let o = try JSON.object(data, "the network configuration")
        func fail(_ msg: String) -> CNIError { CNIError(CNIError.invalidConfig, "invalid network configuration", details: msg) }
        guard let version = o["cniVersion"] as? String else { throw fail("cniVersion is missing or not a string") }
        try CNIVersion.check(version)
        guard let name = o["name"] as? String, !name.isEmpty else { throw fail("name (the network's name) is missing") }
        guard let bridge = o["bridge"] as? String else { throw fail("bridge (the Swale bridge to attach to) is missing") }
        do { try Names.validateBridge(bridge) } catch { throw fail("bridge '\(bridge)': \(error)") }
        var c = NetConf(cniVersion: version, name: name, bridge: bridge, raw: o)
        if let v = o["mtu"] {
            guard let m = int(v), SwaleConfig.mtuRange.contains(m) else { throw fail("mtu must be a number in 68-65535") }
            c.mtu = m
        }
        if let v = o["mac"] { c.mac = try mac(v, "mac", fail) }
        if let v = o["vlan"] {
            guard let n = int(v), SwaleConfig.vidRange.contains(n) else { throw fail("vlan must be a VLAN id in 1-4094") }
            c.vlan = n
        }
        if let v = o["trunk"] ?? o["vlanTrunk"] { c.trunk = try trunk(v, fail) }
        if let v = o["isolated"] {
            guard let b = bool(v) else { throw fail("isolated must be true or false") }
            c.isolated = b
        }
        if let v = o["socket"] {
            guard let s = v as? String, s.hasPrefix("/") else { throw fail("socket must be an absolute path") }
            c.socket = s
        }
        if let v = o["ipam"] {
            guard let d = v as? [String: Any] else { throw fail("ipam must be an object") }
            if !d.isEmpty {
                guard let t = d["type"] as? String, isPluginName(t) else {
                    throw fail("ipam.type must name an IPAM plugin (letters, digits, '-', '_', '.')")
                }
            }
            c.ipam = d.isEmpty ? nil : d
        }
        if let v = o["dns"] { c.dns = v as? [String: Any] }
        if let v = o["prevResult"] {
            guard let d = v as? [String: Any] else { throw fail("prevResult must be an object") }
            c.prevResult = d
        }
        if let rc = o["runtimeConfig"] as? [String: Any], let v = rc["mac"] {
            c.runtimeMAC = try mac(v, "runtimeConfig.mac", fail)
        } else if let a = o["args"] as? [String: Any], let cni = a["cni"] as? [String: Any], let v = cni["mac"] {
            c.runtimeMAC = try mac(v, "args.cni.mac", fail)
        }
        if let v = o["cni.dev/valid-attachments"] {
            guard let list = v as? [Any] else { throw fail("cni.dev/valid-attachments must be a list") }
            c.validAttachments = try list.map { item in
                guard let d = item as? [String: Any], let id = d["containerID"] as? String, let ifn = d["ifname"] as? String
                else {
                    throw fail("each of cni.dev/valid-attachments needs containerID and ifname")
                }
                return (id, ifn)
            }
        }
        return c
    }

    init(cniVersion: String, name: String, bridge: String, raw: [String: Any]) {
        self.cniVersion = cniVersion; self.name = name; self.bridge = bridge; self.raw = raw
    }

    static func int(_ v: Any) -> Int? {
        guard let n = v as? NSNumber, !isBool(n) else { return nil }
        let d = n.doubleValue
        guard d == d.rounded(), abs(d) < 1e15 else { return nil }
        return Int(d)
    }

    /// JSON true/false (Foundation reads them as NSNumbers of type "c"; 1 and 0 are not booleans here).
    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    static func bool(_ v: Any) -> Bool? {
        guard let n = v as? NSNumber, isBool(n) else { return nil }
        return n.boolValue
    }

    static func mac(_ v: Any, _ key: String, _ fail: (String) -> CNIError) throws -> String {
        guard let s = v as? String, let m = try? Names.parseMAC(s) else { throw fail("\(key) '\(v)' is not a MAC address") }
        guard m & (1 << 40) == 0, m != 0 else {
            throw fail("\(key) \(s) is a group or zero address; an interface needs a unicast one")
        }
        return Names.formatMAC(m)
    }

    /// `[10, 20]`, `[{"id": 10}, {"minID": 20, "maxID": 29}]` (the bridge plugin's vlanTrunk), or "10,20-29".
    static func trunk(_ v: Any, _ fail: (String) -> CNIError) throws -> [Int] {
        var out: [Int] = []
        func vid(_ x: Any?) throws -> Int {
            guard let x, let n = int(x), SwaleConfig.vidRange.contains(n) else { throw fail("trunk VLAN ids must be in 1-4094") }
            return n
        }
        if let s = v as? String {
            guard let l = SwaleConfig.parseVids(s) else { throw fail("trunk '\(s)' is not a list of VLAN ids like 10,20-29") }
            out = l
        } else if let list = v as? [Any] {
            for item in list {
                if let d = item as? [String: Any] {
                    if let id = d["id"] {
                        out.append(try vid(id))
                    } else {
                        let a = try vid(d["minID"]), b = try vid(d["maxID"])
                        guard a <= b else { throw fail("trunk range minID \(a) is above maxID \(b)") }
                        out.append(contentsOf: a...b)
                    }
                } else {
                    out.append(try vid(item))
                }
            }
        } else {
            throw fail("trunk must be a list of VLAN ids or ranges")
        }
        guard !out.isEmpty else { throw fail("trunk lists no VLAN") }
        return Array(Set(out)).sorted()
    }

    static func isPluginName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s != "." && s != ".."
            && s.unicodeScalars.allSatisfy {
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0))
            }
    }
}

/// The CNI_* variables of one invocation.
public struct CNIEnvironment {
    public var command: String
    public var containerID: String?
    public var netns: String?
    public var ifname: String?
    /// CNI_ARGS, `K=V;K2=V2`.
    public var args: [String: String] = [:]
    public var path: [String] = []
    /// The whole environment, handed on to delegated plugins.
    public var all: [String: String]

    public init(_ env: [String: String]) throws {
        all = env
        guard let cmd = env["CNI_COMMAND"], !cmd.isEmpty else {
            throw CNIError(CNIError.invalidEnvironment, "CNI_COMMAND is not set")
        }
        command = cmd
        containerID = env["CNI_CONTAINERID"].flatMap { $0.isEmpty ? nil : $0 }
        netns = env["CNI_NETNS"].flatMap { $0.isEmpty ? nil : $0 }
        ifname = env["CNI_IFNAME"].flatMap { $0.isEmpty ? nil : $0 }
        path = (env["CNI_PATH"] ?? "").split(separator: ":").map(String.init)
        if let a = env["CNI_ARGS"], !a.isEmpty { args = try CNIEnvironment.parseArgs(a) }
    }

    public static func parseArgs(_ text: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: ";") {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw CNIError(CNIError.invalidEnvironment, "CNI_ARGS item '\(pair)' is not KEY=VALUE")
            }
            out[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        return out
    }

    /// A required variable, or the spec's error 4 naming it.
    public func require(_ value: String?, _ name: String) throws -> String {
        guard let value else { throw CNIError(CNIError.invalidEnvironment, "\(name) is not set (needed by \(command))") }
        return value
    }
}
