/*
 * Tunnels — VXLAN and Geneve devices as bridge ports, so one bridge spans several hosts.
 *
 * `port add BRIDGE vxlan NAME --vni N --remote IP [--remote IP ...]` creates a VXLAN device
 * through netlink (SwaleKernel/Tunnels.swift), gives it one all-zeros flood entry per remote
 * (head-end replication: the kernel sends each flood to every remote; unicast goes where the
 * device learned the MAC), brings it up and wraps it with an AF_PACKET socket like a veth port.
 * `--group MCAST --dev UNDERLAY` uses a multicast group instead of remotes. A Geneve device has
 * one remote (Linux geneve has no forwarding table): a Geneve mesh is one port per remote.
 *
 * MTU: a tunnel adds 50 bytes over IPv4 (outer Ethernet 14, IP 20, UDP 8, VXLAN/Geneve 8), 70
 * over IPv6. The underlay is `--dev`, or else the interface the route to the first remote leaves
 * through (a connect()ed UDP socket tells the source address, getifaddrs the interface holding
 * it; that address is also VXLAN's default source). The port's MTU defaults to the underlay's less
 * the overhead; a larger `--mtu` is refused, since its packets would be fragmented or dropped
 * under the tunnel. The switch drops frames above a destination's MTU (counted as too-long), so
 * a tunnel narrower than the bridge's other ports loses their large frames: the reply carries a
 * warning naming those ports, and swalectl prints it.
 *
 * Split horizon: the ports of a full mesh share a horizon group (a port rule, BridgeRules.swift,
 * kept by port name), so what arrives over one tunnel never leaves over another: no loop, one copy
 * per host. `--horizon G` at `port add` stores that rule before the port is attached, so the port
 * never forwards a single frame without it; the group is also written into the interface's alias.
 *
 * Restart: the device is tagged like TAP and veth ports (OwnerTag: vni, group, dev, local,
 * dstport, horizon); a restarted swaled re-adopts it as it is, takes the VXLAN remotes back from
 * the device's flood entries (the kernel's list, not the alias, which has room for few), and puts
 * back the horizon group before the port forwards.
 *
 * Every step that fails undoes those before it: the device is deleted (unless it was re-adopted)
 * and the port's rules are as they were.
 */
import Foundation
import Glibc
import SwaleConfig
import SwaleKernel
import SwaleNames
import SwaleProtocol
import SwaleSwitch

extension SwaleConfig.PortKind {
    var isTunnel: Bool { self == .vxlan || self == .geneve }
}

extension Service {
    /// A horizon group from a client: 0...255.
    func horizonGroup(_ g: Int) throws -> Int {
        guard SwaleConfig.horizonRange.contains(g) else {
            throw ControlError(.invalidArgument, "horizon group \(g) out of range (0...255; 0: none)")
        }
        return g
    }

    /// A TAP or veth port: the tunnel options are refused, not ignored.
    func refuseTunnelOptions(_ req: PortAdd) throws {
        let given: [(String, String?)] = [
            ("--vni", req.vni.map(String.init)), ("--remote", req.remotes?.first), ("--group", req.group),
            ("--dev", req.dev), ("--local", req.local), ("--dstport", req.dstPort.map(String.init)),
            ("--horizon", req.horizon.map(String.init))
        ]
        for (option, value) in given where value != nil {
            throw ControlError(
                .invalidArgument, "\(option) is for vxlan and geneve ports (use 'port set --horizon' for other ports)")
        }
    }

    /// `port add BRIDGE vxlan|geneve NAME ...` from a client.
    func addTunnelPort(_ req: PortAdd, kind: SwaleConfig.PortKind, to b: BridgeEntry) throws -> PortInfo {
        let attachment: [(String, String?)] = [
            ("container", req.container), ("network", req.network), ("vlan", req.vlan.map(String.init)),
            ("trunk", req.trunk.map { "\($0)" }), ("isolated", req.isolated.map { "\($0)" })
        ]
        for (field, value) in attachment where value != nil {
            throw ControlError(
                .invalidArgument, "\(field) describes a container's veth port; a \(kind.rawValue) port does not take it")
        }
        for (option, value) in [("--peer", req.peer), ("--netns", req.netns), ("--address", req.address)] where value != nil {
            throw ControlError(.invalidArgument, "\(option) is a veth option; a \(kind.rawValue) port does not take it")
        }
        guard let vni = req.vni else {
            throw ControlError(
                .invalidArgument,
                "a \(kind.rawValue) port needs --vni N (\(SwaleConfig.vniRange.lowerBound)...\(SwaleConfig.vniRange.upperBound))")
        }
        var t = SwaleConfig.Tunnel(vni: vni)
        t.remotes = req.remotes ?? []
        t.group = req.group
        t.dev = req.dev
        t.local = req.local
        t.dstPort = req.dstPort
        var spec = SwaleConfig.Port(kind: kind, name: req.name)
        spec.tunnel = t
        spec.mtu = req.mtu
        spec.mac = req.mac
        let horizon = try req.horizon.map(horizonGroup)
        let (p, warning) = try addTunnelPort(spec, to: b, origin: .cli, reuseExisting: false, horizon: horizon)
        var info = portInfo(p)
        info.warning = warning
        return info
    }

    /// Creates (or re-adopts) a tunnel device and attaches it. Returns the port and a warning when
    /// its MTU is below that of other kernel ports on the bridge.
    func addTunnelPort(
        _ spec: SwaleConfig.Port, to b: BridgeEntry, origin: PortOrigin, reuseExisting: Bool, horizon: Int? = nil
    ) throws -> (PortEntry, String?) {
        var spec = spec
        let kind = spec.kind
        let name = try kernelPortName(spec.name)
        if b.ports[name] != nil { throw ControlError(.exists, "bridge \(b.bridge.name) already has a port named \(name)") }
        guard var t = spec.tunnel else { throw ControlError(.invalidArgument, "a \(kind.rawValue) port needs a VNI and remotes") }
        let mac = try checkLinkSettings(&spec)
        let nl = try netlink()

        var existed = false
        if let info = try nl.linkInfo(name: name) {
            let ours = OwnerTag(alias: info.alias)?.instance == ownerInstance
            guard reuseExisting, ours, info.kind == kind.rawValue else {
                throw ControlError(
                    .exists,
                    "interface \(name) already exists\(info.kind.map { " (a \($0))" } ?? "")\(ours || info.alias == nil ? "" : " and was not created by this swaled"); pick another name or use 'port attach'"
                )
            }
            existed = true
            looseInterfaces[name] = nil
            // The kernel's flood list is the truth (swalectl or `bridge fdb` may have changed it).
            if kind == .vxlan && t.group == nil, let remotes = try? nl.floodRemotes(link: name), !remotes.isEmpty {
                t.remotes = remotes
                spec.tunnel = t
            }
        }

        do { try SwaleConfig.checkTunnel(kind, t) } catch {
            throw ControlError(.invalidArgument, "\(kind.rawValue) port \(name): \(error)")
        }
        var device: TunnelDevice?
        if !existed { device = try plan(spec, t, mac: mac, nl: nl) }

        // The horizon group is in place before the port can forward its first frame.
        let rulesBefore = b.portRules[name]
        if let horizon {
            var r = rules(b, name)
            r.horizon = horizon
            try store(r, on: b)
        }
        let p: PortEntry
        do {
            if let device {
                try nl.createTunnel(device)
                if kind == .vxlan { for r in t.remotes { try nl.addFloodRemote(link: name, remote: r) } }
            }
            try nl.setUp(name, true)
            p = try plugPacketSocket(name, into: b, kind: kind == .vxlan ? .vxlan : .geneve, nl: nl)
        } catch {
            if !existed { try? nl.delete(link: name) }
            b.portRules[name] = rulesBefore
            throw error
        }
        p.created = true
        p.spec = spec
        p.origin = origin
        tagTunnel(p, in: b)
        let mtu = portMTU(p, b) ?? device?.mtu ?? 0
        log.info(
            "\(kind.rawValue) port \(p.fullName) \(existed ? "re-attached" : "created"): vni \(t.vni), \(t.group.map { "group \($0) dev \(t.dev ?? "?")" } ?? "remotes \(t.remotes.joined(separator: ","))"), mtu \(mtu)"
        )
        let warning = mtuWarning(p, mtu: mtu, in: b)
        if let warning { log.warning("\(warning)") }  // a client sees it in the reply; the config's only here
        return (p, warning)
    }

    /// The device to create: addresses, underlay and MTU worked out and checked.
    private func plan(_ spec: SwaleConfig.Port, _ t: SwaleConfig.Tunnel, mac: [UInt8]?, nl: Netlink) throws -> TunnelDevice {
        let name = spec.name
        let kind = spec.kind
        let family = SwaleConfig.tunnelFamily(t)
        let overhead = SwaleConfig.tunnelOverhead(family: family)
        let underlay: LinkInfo
        var local = t.local
        if let dev = t.dev {
            guard let u = try nl.linkInfo(name: dev) else {
                throw ControlError(.notFound, "underlay device \(dev) (--dev) does not exist")
            }
            underlay = u
        } else {
            let remote = t.remotes[0]
            let route: (local: String, ifname: String)
            do { route = try Underlay.route(to: remote) } catch {
                throw ControlError(.invalidArgument, "cannot reach remote \(remote) from this host: \(error)")
            }
            guard let u = try nl.linkInfo(name: route.ifname) else {
                throw ControlError(.notFound, "the route to \(remote) leaves through \(route.ifname), which is gone")
            }
            underlay = u
            if kind == .vxlan && local == nil { local = route.local }
        }
        if let l = t.local, Underlay.interface(holding: l) == nil {
            throw ControlError(.invalidArgument, "local address \(l) (--local) is not an address of this host")
        }
        let ipv = family == AF_INET6 ? "IPv6" : "IPv4"
        let largest = underlay.mtu - overhead
        if let m = spec.mtu, m > largest {
            throw ControlError(
                .invalidArgument,
                "MTU \(m) is too large for \(kind.rawValue) port \(name): the underlay \(underlay.name) has MTU \(underlay.mtu), less \(overhead) bytes of \(kind.rawValue) over \(ipv) leaves at most \(largest)"
            )
        }
        let mtu = spec.mtu ?? largest
        guard SwaleConfig.mtuRange.contains(mtu) else {
            throw ControlError(
                .invalidArgument,
                "the underlay \(underlay.name) has MTU \(underlay.mtu): less \(overhead) bytes of \(kind.rawValue) over \(ipv) leaves \(mtu), below the minimum 68"
            )
        }
        var d = TunnelDevice(
            kind: kind == .vxlan ? .vxlan : .geneve, name: name, vni: UInt32(t.vni),
            dstPort: t.dstPort ?? SwaleConfig.defaultDstPort(kind), mtu: mtu)
        d.mac = mac
        if kind == .vxlan {
            d.group = t.group
            d.local = local
            if t.dev != nil { d.underlayIndex = underlay.ifindex }
        } else {
            d.remote = t.remotes[0]
        }
        return d
    }

    /// The MTU the switch uses toward a kernel port (re-read from the interface every second).
    func portMTU(_ p: PortEntry, _ b: BridgeEntry) -> Int? {
        let i = p.index
        return b.bridge.perform { $0.engine.port(i)?.mtu }
    }

    /// Kernel ports on the bridge whose MTU is larger than a new tunnel's, named in a warning.
    func mtuWarning(_ p: PortEntry, mtu: Int, in b: BridgeEntry) -> String? {
        let larger = b.ports.values.filter { $0 !== p && $0.ifname != nil }.sorted { $0.index < $1.index }
            .compactMap { q in portMTU(q, b).flatMap { $0 > mtu ? "\(q.name) (\($0))" : nil } }
        guard !larger.isEmpty else { return nil }
        return
            "\(p.name)'s MTU \(mtu) is below that of \(larger.joined(separator: ", ")) on \(b.bridge.name): frames larger than \(mtu) bytes from those ports are dropped at the tunnel (counted as too-long); give those interfaces MTU \(mtu)"
    }

    /// MTU and horizon group in a port's info.
    func addLinkDetails(_ info: inout PortInfo, _ p: PortEntry) {
        guard let b = bridges[p.bridge], b.ports[p.name] === p else { return }
        if p.ifname != nil { info.mtu = portMTU(p, b) }
        if let h = b.portRules[p.name]?.horizon, h > 0 { info.horizon = h }
    }

    /// Writes a tunnel port's owner tag, with its horizon group (what a restart puts back).
    func tagTunnel(_ p: PortEntry, in b: BridgeEntry) {
        guard p.created, p.kind == .vxlan || p.kind == .geneve, let spec = p.spec, let ifname = p.ifname else { return }
        var tag = OwnerTag(instance: ownerInstance, origin: p.origin, bridge: b.bridge.name, spec: spec)
        let h = rules(b, p.name).horizon
        tag.horizon = h > 0 ? h : nil
        do { try netlink().setAlias(ifname, tag.alias) } catch {
            log.warning("could not tag \(ifname) as Swale's (a restart will not recognize it): \(error)")
        }
    }

    /// Before a re-adopted tunnel attaches: its horizon group from the alias, unless rules say otherwise.
    func restoreHorizon(_ tag: OwnerTag, name: String, on b: BridgeEntry) {
        guard tag.spec.kind.isTunnel, let h = tag.horizon, h > 0, b.portRules[name] == nil else { return }
        var r = rules(b, name)
        r.horizon = h
        do { try store(r, on: b) } catch { log.warning("horizon group \(h) of \(name) not restored: \(error)") }
    }
}

extension OwnerTag {
    /// A tunnel's alias fields, the bounded ones first: the remotes (a list of any length) come
    /// last and are left out when they do not fit (a restart reads them from the device's flood
    /// entries anyway; a Geneve port's one remote always fits).
    static func tunnelFields(_ t: SwaleConfig.Tunnel?, horizon: Int?) -> [(String, String?)] {
        guard let t else { return [] }
        return [
            ("vni", String(t.vni)), ("dstport", t.dstPort.map(String.init)), ("dev", t.dev), ("local", t.local),
            ("group", t.group), ("horizon", horizon.map(String.init)),
            ("remotes", t.remotes.isEmpty ? nil : t.remotes.joined(separator: ","))
        ]
    }

    /// The tunnel from an alias' fields; nil when the VNI is missing or damaged.
    static func tunnel(_ f: [String: String]) -> SwaleConfig.Tunnel? {
        guard let vni = f["vni"].flatMap({ Int($0) }), SwaleConfig.vniRange.contains(vni) else { return nil }
        var t = SwaleConfig.Tunnel(vni: vni)
        t.dstPort = f["dstport"].flatMap { Int($0) }
        t.dev = f["dev"]
        t.local = f["local"]
        t.group = f["group"]
        t.remotes = f["remotes"].map { $0.split(separator: ",").map(String.init) } ?? []
        return t
    }
}
