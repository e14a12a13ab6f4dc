/*
 * Plugin — the CNI verbs.
 *
 *   ADD      swaled makes a veth port on `bridge` whose peer is born in CNI_NETNS as CNI_IFNAME
 *            (with the requested MAC and MTU, the attachment's VLANs and isolation); the IPAM
 *            plugin picks addresses; they and the routes are applied inside the namespace; the
 *            result (merged after prevResult) goes to stdout. Any failure undoes what was done,
 *            IPAM's allocation included.
 *   DEL      removes the port (a missing port or namespace is success; with swaled unreachable the
 *            host end is deleted directly if its owner tag names this container), then IPAM DEL.
 *   CHECK    the port is attached for this container, the interface has prevResult's MAC and
 *            addresses, and IPAM's CHECK passes.
 *   STATUS   swaled answers and the IPAM plugin is there (and ready, if it knows STATUS).
 *   GC       ports of this network whose attachment is not in cni.dev/valid-attachments go, and
 *            their IPAM allocations are released.
 *   VERSION  the versions above.
 *
 * swaled is reached over its control socket (`socket`, else the default); the port operations are
 * root's in its permission table, as runtimes run plugins. The host end is named from the
 * attachment (`swc` + 12 hex digits of a hash of network, container id and interface), so it is
 * unique per attachment and `swalectl port list` shows whose it is.
 */
import Foundation
import SwaleKernel
import SwaleNames
import SwaleProtocol

public enum CNIPlugin {
    /// Runs one invocation; returns what to print on stdout and the exit status.
    public static func run(env rawEnv: [String: String], stdin: Data) -> (output: Data, status: Int32) {
        var version = CNIVersion.current
        do {
            let env = try CNIEnvironment(rawEnv)
            if env.command == "VERSION" {
                if let o = try? JSON.object(stdin, "config"), let v = o["cniVersion"] as? String { version = v }
                return (JSON.encode(["cniVersion": version, "supportedVersions": CNIVersion.supported]), 0)
            }
            if let o = try? JSON.object(stdin, "config"), let v = o["cniVersion"] as? String, CNIVersion.supported.contains(v) {
                version = v
            }
            let conf = try NetConf.parse(stdin)
            let out: Data?
            switch env.command {
            case "ADD": out = try add(conf, env)
            case "DEL": try del(conf, env); out = nil
            case "CHECK": try check(conf, env); out = nil
            case "STATUS": try status(conf, env); out = nil
            case "GC": try gc(conf, env); out = nil
            default:
                throw CNIError(
                    CNIError.invalidEnvironment, "unknown CNI_COMMAND '\(env.command)'",
                    details: "expected ADD, DEL, CHECK, STATUS, GC or VERSION")
            }
            return (out ?? Data(), 0)
        } catch let e as CNIError {
            return (e.json(cniVersion: version), 1)
        } catch {
            return (CNIError(CNIError.ioFailure, "\(error)").json(cniVersion: version), 1)
        }
    }

    /// The host end's name (and the port's): `swc` + 12 hex digits, at most 15 bytes.
    public static func hostName(network: String, container: String, ifname: String) -> String {
        let h = Names.fnv1a(Array(network.utf8) + [0] + Array(container.utf8) + [0] + Array(ifname.utf8))
        let hex = String(h & 0xFFFF_FFFF_FFFF, radix: 16)
        return "swc" + String(repeating: "0", count: 12 - hex.count) + hex
    }

    static func session(_ conf: NetConf, code: Int = CNIError.tryAgainLater) throws -> ControlSession {
        do { return try ControlSession.connect(socket: conf.socket, client: "swale-cni") } catch {
            throw CNIError(code, "swaled is not reachable", details: "\(error)")
        }
    }

    static func switchError(_ what: String, _ e: Error) -> CNIError {
        CNIError(CNIError.switchFailure, what, details: "\(e)")
    }

    // MARK: ADD

    static func add(_ conf: NetConf, _ env: CNIEnvironment) throws -> Data {
        let id = try env.require(env.containerID, "CNI_CONTAINERID")
        let netns = try env.require(env.netns, "CNI_NETNS")
        let ifname = try env.require(env.ifname, "CNI_IFNAME")
        let host = hostName(network: conf.name, container: id, ifname: ifname)
        let ipam = try conf.ipam.map { _ in try IPAMPlugin(conf: conf, env: env) }
        let prev = try conf.prevResult.map { try CNIResult.parse($0, "prevResult") }
        // The MAC the runtime asks for wins over the network's (podman passes the old one on reload).
        let mac = try conf.runtimeMAC ?? env.args["MAC"].map { try NetConf.mac($0, "CNI_ARGS MAC", argError) } ?? conf.mac

        let s = try session(conf)
        defer { s.close() }
        do {
            if try !s.call(BridgeList()).contains(where: { $0.name == conf.bridge }) {
                do { _ = try s.call(BridgeAdd(bridge: conf.bridge)) } catch let e as ControlError where e.code == .exists {}
            }
        } catch let e as ControlError { throw switchError("bridge \(conf.bridge) is not usable", e) }
        var req = PortAdd(bridge: conf.bridge, kind: "veth", name: host)
        req.peer = ifname; req.netns = netns; req.mtu = conf.mtu; req.mac = mac
        req.container = id; req.network = conf.name
        req.vlan = conf.vlan; req.trunk = conf.trunk; req.isolated = conf.isolated
        do { _ = try s.call(req) } catch let e as ControlError {
            throw switchError("swaled could not attach \(ifname) of \(id) to \(conf.bridge)", e)
        }
        var allocated = false
        do {
            var ours = CNIResult()
            if let ipam {
                ours = try ipam.add()
                allocated = true
            }
            if ours.dns.isEmpty, let d = conf.dns { ours.dns = d }
            for i in ours.ips.indices { ours.ips[i].interface = 1 }
            let containerMAC = try Sandbox.configure(netns: netns, ifname: ifname, result: ours)
            let hostMAC = (try? Netlink().linkInfo(name: host))??.macString ?? ""
            ours.interfaces = [
                .init(name: host, mac: hostMAC, mtu: conf.mtu),
                .init(name: ifname, mac: containerMAC, sandbox: netns, mtu: conf.mtu)
            ]
            let result = prev.map { ours.merged(after: $0) } ?? ours
            return JSON.encode(result.json(version: conf.cniVersion))
        } catch {
            // Undo: the allocation, then the port (which takes both veth ends with it).
            if allocated { _ = try? ipam?.call("DEL") }
            _ = try? s.call(PortDel(bridge: conf.bridge, port: host))
            throw error
        }
    }

    static func argError(_ m: String) -> CNIError { CNIError(CNIError.invalidEnvironment, "invalid CNI_ARGS", details: m) }

    // MARK: DEL

    static func del(_ conf: NetConf, _ env: CNIEnvironment) throws {
        let id = try env.require(env.containerID, "CNI_CONTAINERID")
        let ifname = try env.require(env.ifname, "CNI_IFNAME")
        let host = hostName(network: conf.name, container: id, ifname: ifname)
        var problem: CNIError?
        do {
            let s = try session(conf)
            defer { s.close() }
            do { _ = try s.call(PortDel(bridge: conf.bridge, port: host)) } catch let e as ControlError where e.code == .notFound
            {
                // Not a port: swaled may have died between creating the pair and tagging it.
                problem = deleteHostEnd(host, container: id, untaggedToo: true)
            }
        } catch let e as CNIError where e.code == CNIError.tryAgainLater {
            // swaled is down: the host end can still go (its peer goes with it), if it is this container's.
            problem = deleteHostEnd(host, container: id, untaggedToo: false)
        } catch let e as ControlError {
            problem = switchError("swaled could not remove \(host)", e)
        }
        // IPAM DEL runs whatever happened above: an address must not leak.
        if conf.ipam != nil { try IPAMPlugin(conf: conf, env: env).call("DEL") }
        if let problem { throw problem }
    }

    /// Deletes the host end `host` if it is this container's: its owner tag names the container, or
    /// (`untaggedToo`, when swaled says it has no such port) it is a veth with no tag at all, which is
    /// what a swaled that died between creating the pair and tagging it leaves under our name.
    static func deleteHostEnd(_ host: String, container id: String, untaggedToo: Bool) -> CNIError? {
        guard let nl = try? Netlink(), let info = (try? nl.linkInfo(name: host)) ?? nil else { return nil }
        let alias = info.alias ?? ""
        let ours = alias.hasPrefix("swale:") && (alias.contains(" container=\(id) ") || alias.hasSuffix(" container=\(id)"))
        guard ours || (untaggedToo && info.alias == nil && info.kind == "veth") else { return nil }
        do { try nl.delete(link: host) } catch { return CNIError(CNIError.ioFailure, "deleting \(host)", details: "\(error)") }
        return nil
    }

    // MARK: CHECK

    static func check(_ conf: NetConf, _ env: CNIEnvironment) throws {
        guard CNIVersion.atLeast(conf.cniVersion, "0.4.0") else {
            throw CNIError(CNIError.incompatibleVersion, "CHECK needs cniVersion 0.4.0 or later (config: \(conf.cniVersion))")
        }
        let id = try env.require(env.containerID, "CNI_CONTAINERID")
        let netns = try env.require(env.netns, "CNI_NETNS")
        let ifname = try env.require(env.ifname, "CNI_IFNAME")
        guard let prevObj = conf.prevResult else {
            throw CNIError(CNIError.invalidConfig, "invalid network configuration", details: "CHECK needs prevResult")
        }
        let prev = try CNIResult.parse(prevObj, "prevResult")
        let host = hostName(network: conf.name, container: id, ifname: ifname)
        func fail(_ m: String) -> CNIError {
            CNIError(CNIError.checkFailed, "attachment \(id)/\(ifname) is not as ADD left it", details: m)
        }
        let s = try session(conf)
        defer { s.close() }
        let ports: [PortInfo]
        do { ports = try s.call(PortList(bridge: conf.bridge)) } catch {
            throw switchError("listing ports of \(conf.bridge)", error)
        }
        guard let p = ports.first(where: { $0.name == host }), p.container == id, p.peer == ifname else {
            throw fail("no port \(host) for it on bridge \(conf.bridge)")
        }
        guard let now = try Sandbox.inspect(netns: netns, ifname: ifname) else { throw fail("\(ifname) is not in \(netns)") }
        guard now.up else { throw fail("\(ifname) is down") }
        guard let index = prev.interfaces.firstIndex(where: { $0.name == ifname && $0.sandbox != nil }) else {
            throw fail("prevResult has no interface \(ifname) in a sandbox")
        }
        let want = prev.interfaces[index]
        if !want.mac.isEmpty, want.mac.lowercased() != now.mac.lowercased() {
            throw fail("\(ifname) has MAC \(now.mac), prevResult says \(want.mac)")
        }
        for ip in prev.ips where ip.interface == index && !now.addresses.contains(ip.address) {
            throw fail("\(ifname) lacks \(ip.address) (has \(now.addresses.joined(separator: ", ")))")
        }
        if conf.ipam != nil { try IPAMPlugin(conf: conf, env: env).call("CHECK") }
    }

    // MARK: STATUS and GC (1.1.0)

    static func requireVerbs(_ conf: NetConf, _ verb: String) throws {
        guard CNIVersion.atLeast(conf.cniVersion, "1.1.0") else {
            throw CNIError(CNIError.incompatibleVersion, "\(verb) needs cniVersion 1.1.0 (config: \(conf.cniVersion))")
        }
    }

    static func status(_ conf: NetConf, _ env: CNIEnvironment) throws {
        try requireVerbs(conf, "STATUS")
        let s = try session(conf, code: CNIError.pluginNotAvailable)
        defer { s.close() }
        do { _ = try s.call(Status()) } catch {
            throw CNIError(CNIError.pluginNotAvailable, "swaled does not answer", details: "\(error)")
        }
        if conf.ipam != nil {
            let ipam: IPAMPlugin
            do { ipam = try IPAMPlugin(conf: conf, env: env) } catch let e as CNIError {
                throw CNIError(CNIError.pluginNotAvailable, e.msg, details: e.details)
            }
            if ipam.knows("1.1.0") { try ipam.call("STATUS") }
        }
    }

    static func gc(_ conf: NetConf, _ env: CNIEnvironment) throws {
        try requireVerbs(conf, "GC")
        let valid = Set((conf.validAttachments ?? []).map { "\($0.container)/\($0.ifname)" })
        let s = try session(conf)
        defer { s.close() }
        let ports: [PortInfo]
        do { ports = try s.call(PortList(bridge: conf.bridge)) } catch let e as ControlError where e.code == .notFound {
            ports = []
        } catch { throw switchError("listing ports of \(conf.bridge)", error) }
        let ipam = try conf.ipam.map { _ in try IPAMPlugin(conf: conf, env: env) }
        var first: Error?
        for p in ports where p.network == conf.name {
            guard let id = p.container, let ifn = p.peer, !valid.contains("\(id)/\(ifn)") else { continue }
            do {
                do { _ = try s.call(PortDel(bridge: conf.bridge, port: p.name)) } catch let e as ControlError
                    where e.code == .notFound
                {}
                // Released as DEL would (host-local keys its leases by container id and interface).
                try ipam?.call("DEL", overrides: ["CNI_CONTAINERID": id, "CNI_IFNAME": ifn])
            } catch { first = first ?? error }
        }
        if let ipam, ipam.knows("1.1.0") { try ipam.call("GC") }
        if let first { throw first is CNIError ? first : switchError("GC", first) }
    }
}
