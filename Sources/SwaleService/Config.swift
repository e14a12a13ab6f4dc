/*
 * Config — applying a SwaleConfig (the SwaleConfig module) at start, and the running configuration
 * that `swalectl config dump` prints in the same format.
 *
 * The file was checked as a whole before this runs (SwaleConfig.parse): an invalid file stops
 * swaled before anything is created. What can still fail here depends on the machine (a namespace
 * that is gone, an interface name taken by something else): such an item is logged with its file
 * and line, and the rest applies, so one vanished container does not keep every other port down.
 *
 * After the config, `reconcileOwnedInterfaces` looks at the interfaces an earlier run of this
 * swaled created (their alias says so, see OwnerTag): ones that came from the config and are no
 * longer in it are deleted; ones added at run time with swalectl are attached again, so a restart
 * loses nothing.
 */
import Foundation
import Glibc
import SwaleConfig
import SwaleKernel
import SwaleNames
import SwaleProtocol

extension ServiceOptions {
    /// Service-wide settings from the file; command-line options given explicitly win (swaled main).
    public mutating func take(_ cfg: SwaleConfig) {
        if let m = cfg.pollMode { bridge.yieldWhilePolling = m == "yield" }
        if let g = cfg.socketGroup { socketGroup = g }
        if let m = cfg.metrics { metrics = m }
        if let f = cfg.fastpath { fastpath = f }
        if let cpus = cfg.forwardingCPUs { bridge.forwardingCPUs = cpus }
        for (key, value) in cfg.numbers { self[setting: key] = value }
    }

    /// Where each whole-number setting of SwaleConfig.settings is kept (forwardingNice, which may
    /// be unset, is the one exception).
    static let settingPaths: [String: WritableKeyPath<ServiceOptions, Int>] = [
        "slots": \.slots, "batch": \.bridge.batch, "busyPollMicros": \.bridge.busyPollMicros,
        "flowControlMicros": \.bridge.flowControlMicros,
        "maxPorts": \.bridge.maxPorts, "fdbCapacity": \.bridge.fdbCapacity,
        "clientMaxSessions": \.budgets.clientMaxSessions, "clientMaxPorts": \.budgets.clientMaxPorts,
        "clientMaxPipes": \.budgets.clientMaxPipes, "clientMaxBridges": \.budgets.clientMaxBridges,
        "clientMaxMemoryMiB": \.budgets.clientMaxMemoryMiB, "clientFdbCapacity": \.budgets.clientFdbCapacity,
        "maxSessions": \.budgets.maxSessions,
        "maxBridges": \.budgets.maxBridges, "maxMemoryMiB": \.budgets.maxMemoryMiB
    ]

    /// A whole-number setting by its config key.
    public subscript(setting key: String) -> Int? {
        get { key == "forwardingNice" ? bridge.forwardingNice : ServiceOptions.settingPaths[key].map { self[keyPath: $0] } }
        set {
            guard let v = newValue else { return }
            if key == "forwardingNice" {
                bridge.forwardingNice = v
            } else if let path = ServiceOptions.settingPaths[key] {
                self[keyPath: path] = v
            }
        }
    }
}

extension Service {
    /// Creates the configured bridges and ports; per-item failures are logged with file:line.
    /// `fromFile`: the config came from a file, so interfaces that left it are deleted; without a
    /// file (swaled started bare) nothing is deleted, only run-time ports are restored.
    public func apply(_ cfg: SwaleConfig, file: String, fromFile: Bool = true) {
        lock.lock(); defer { lock.unlock() }
        for b in cfg.bridges {
            let entry: BridgeEntry
            do {
                entry = try addBridge(b.name, mustBeNew: false, batch: b.batch)
                if let a = b.agingSeconds { entry.bridge.setAging(UInt32(a)) }
                applyRules(b, to: entry)
            } catch {
                log.error("\(file):\(b.line): bridge \(b.name): \(error)")
                continue
            }
            do { try setAccess(entry, users: b.allowUsers, groups: b.allowGroups) } catch {
                // A user or group missing on this machine: the list is not applied (the bridge admits
                // only root and its owner, failing closed); its ports still apply.
                log.error("\(file):\(b.line): bridge \(b.name): access list not applied: \(error)")
            }
            for p in b.ports {
                do {
                    if p.kind == .attach {
                        _ = try attachPort(bridge: entry, ifname: p.name, origin: .config)
                    } else {
                        _ = try addKernelPort(p, to: entry, origin: .config, reuseExisting: true)
                    }
                } catch {
                    log.error("\(file):\(p.line): \(p.kind.rawValue) port \(p.name) on \(b.name): \(error)")
                }
            }
        }
        reconcileOwnedInterfaces(configured: fromFile ? Set(cfg.bridges.flatMap { $0.ports.map(\.name) }) : nil)
    }

    /// Interfaces an earlier run created: removed from the config → deleted; added with swalectl →
    /// attached again (their alias carries what is needed).
    func reconcileOwnedInterfaces(configured: Set<String>?) {
        guard let nl = try? netlink(), let links = try? nl.links() else { return }
        let inUse = Set(bridges.values.flatMap { $0.ports.values.compactMap(\.ifname) })
        for link in links {
            guard var tag = OwnerTag(alias: link.alias), tag.instance == ownerInstance, !inUse.contains(link.name) else {
                continue
            }
            tag.spec.name = link.name
            if tag.origin == .config, let configured, !configured.contains(link.name) {
                do {
                    try nl.delete(link: link.name)
                    log.notice("interface \(link.name) (\(tag.spec.kind.rawValue)) is no longer in the configuration: deleted")
                } catch { log.warning("deleting \(link.name), which left the configuration: \(error)") }
                continue
            }
            if tag.origin == .config { continue }  // configured but failed to apply (logged above), or no config given
            guard let bname = tag.bridge else {
                looseInterfaces[link.name] = tag.spec
                log.info("interface \(link.name) (created with -n) found again, not attached")
                continue
            }
            do {
                let b = try addBridge(bname, mustBeNew: false)
                restoreHorizon(tag, name: link.name, on: b)
                _ = try addKernelPort(tag.spec, to: b, origin: .cli, reuseExisting: true)
            } catch {
                log.error("re-attaching \(link.name) to \(bname) (added with swalectl before the restart): \(error)")
            }
        }
    }

    /// The running configuration: settings in effect, bridges, and their kernel ports.
    func runningConfig() -> SwaleConfig {
        var c = SwaleConfig()
        let o = options
        c.socket = o.socketPath
        c.socketGroup = o.socketGroup
        c.metrics = o.metrics
        c.pollMode = o.bridge.yieldWhilePolling ? "yield" : "spin"
        c.forwardingCPUs = o.bridge.forwardingCPUs
        for s in SwaleConfig.settings { c[s.key] = o[setting: s.key] }
        // Bridges an application made for itself go with their last port: not configuration (unless
        // root attached kernel ports to one, which then keep it).
        for name in bridges.keys.sorted()
        where bridges[name]!.persistent || bridges[name]!.ports.values.contains(where: Service.isConfiguration) {
            let e = bridges[name]!
            var b = SwaleConfig.Bridge(name: name)
            b.allowUsers = e.allowUsers.isEmpty ? nil : e.allowUsers.sorted().map(Identity.userName)
            b.allowGroups = e.allowGroups.isEmpty ? nil : e.allowGroups.sorted().map(Identity.groupName)
            b.agingSeconds = Int(e.bridge.agingSeconds)
            b.batch = e.bridge.config.batch == o.bridge.batch ? nil : e.bridge.config.batch
            let configured = e.ports.values.filter(Service.isConfiguration)
            b.ports = configured.sorted { $0.index < $1.index }.compactMap(\.spec)
            writeRules(e, into: &b)
            // A container's port and its rules belong to the container runtime (swale-cni), not here.
            let attachments = Set(e.ports.values.filter { $0.spec?.container != nil }.map(\.name))
            b.portRules.removeAll { attachments.contains($0.port) }
            b.fdb.removeAll { attachments.contains($0.port) }
            c.bridges.append(b)
        }
        return c
    }
}

extension Service {
    /// A port `config dump` writes: a kernel port Swale made or attached, not a container's.
    static func isConfiguration(_ p: PortEntry) -> Bool { p.spec != nil && p.spec?.container == nil }
}

/// Where a kernel port came from: the config file or a swalectl command at run time.
enum PortOrigin: String { case config, cli }

/// The alias Swale writes on each interface it creates:
///   `swale:<instance> <origin> <bridge|-> <kind> [peer=P] [netns=N] [address=A] [mtu=M] [mac=X]`
///   tunnels also `vni=V [dstport=P] [dev=D] [local=L] [group=G] [remotes=A,B] [horizon=H]`
/// `instance` is a hash of the control socket path, so two swaleds on one machine (tests, a second
/// instance) never claim each other's interfaces. The kernel keeps it with the interface — no state
/// file to lose or to disagree with what exists.
struct OwnerTag: Equatable {
    var instance: String
    var origin: PortOrigin
    var bridge: String?
    var spec: SwaleConfig.Port
    /// Tunnel ports: the split-horizon group to put back on re-adoption (a port rule, kept here too).
    var horizon: Int? = nil

    init(instance: String, origin: PortOrigin, bridge: String?, spec: SwaleConfig.Port) {
        self.instance = instance; self.origin = origin; self.bridge = bridge; self.spec = spec
    }

    static func instance(socketPath: String) -> String {
        String(Names.fnv1a(socketPath.utf8), radix: 16)
    }

    /// The alias text; optional fields that would push it past 255 bytes are left out.
    var alias: String { encoded.alias }

    /// The alias, and the names of fields left out (too long, or unwritable).
    var encoded: (alias: String, omitted: [String]) {
        var s = "swale:\(instance) \(origin.rawValue) \(bridge ?? "-") \(spec.kind.rawValue)"
        var omitted: [String] = []
        // Most needed first: what re-creates the port and a container's rules, then the rest.
        var fields: [(String, String?)] = [
            ("peer", spec.peer), ("container", spec.container), ("network", spec.network),
            ("vlan", spec.vlan.map(String.init)), ("isolated", spec.isolated.map { $0 ? "1" : "0" }),
            ("trunk", spec.trunk.map(SwaleConfig.formatVids)), ("mtu", spec.mtu.map(String.init)), ("mac", spec.mac),
            ("address", spec.address), ("netns", spec.netns)
        ]
        fields += OwnerTag.tunnelFields(spec.tunnel, horizon: horizon)
        for (k, v) in fields {
            guard let v else { continue }
            let item = " \(k)=\(v)"
            if !v.contains(where: { $0.isWhitespace || $0 == "=" }) && s.utf8.count + item.utf8.count <= 255 {
                s += item
            } else {
                omitted.append(k)
            }
        }
        return (s, omitted)
    }

    /// nil for any alias that is not one of ours (or is damaged): such interfaces are never touched.
    init?(alias: String?) {
        guard let alias, alias.hasPrefix("swale:") else { return nil }
        let parts = alias.dropFirst(6).split(separator: " ").map(String.init)
        guard parts.count >= 4, let origin = PortOrigin(rawValue: parts[1]), let kind = SwaleConfig.PortKind(rawValue: parts[3]),
            kind != .attach
        else { return nil }
        let bridge: String? = parts[2] == "-" ? nil : parts[2]
        if let bridge, (try? Names.validateBridge(bridge)) == nil { return nil }
        var fields: [String: String] = [:]
        for item in parts.dropFirst(4) {
            guard let eq = item.firstIndex(of: "=") else { return nil }
            fields[String(item[..<eq])] = String(item[item.index(after: eq)...])
        }
        // The name is filled in by the caller from the interface itself.
        var spec = SwaleConfig.Port(kind: kind, name: "")
        spec.peer = fields["peer"]
        spec.netns = fields["netns"]
        spec.address = fields["address"]
        spec.mtu = fields["mtu"].flatMap { Int($0) }
        spec.mac = fields["mac"]
        spec.container = fields["container"]
        spec.network = fields["network"]
        spec.vlan = fields["vlan"].flatMap { Int($0) }
        spec.isolated = fields["isolated"].map { $0 == "1" }
        spec.trunk = fields["trunk"].flatMap(SwaleConfig.parseVids)
        if kind == .veth, spec.peer == nil { return nil }
        if kind.isTunnel {
            guard let t = OwnerTag.tunnel(fields) else { return nil }
            spec.tunnel = t
        }
        self.init(instance: parts[0], origin: origin, bridge: bridge, spec: spec)
        if kind.isTunnel { horizon = fields["horizon"].flatMap { Int($0) } }
    }
}
