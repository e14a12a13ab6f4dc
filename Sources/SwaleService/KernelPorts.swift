/*
 * KernelPorts — TAP devices, veth pairs and existing interfaces as bridge ports (netmap's bwrap).
 *
 * `port add BRIDGE tap NAME` creates a persistent TAP (so a restart of swaled finds it again) and
 * wraps its fd; `port add BRIDGE veth NAME --peer PEER` creates the pair through netlink, moves the
 * peer into a namespace and configures it there, and wraps NAME with an AF_PACKET socket;
 * `port attach BRIDGE IFNAME` wraps an interface that already exists. What Swale created is deleted
 * with the port; what it merely attached is left as it was found (its promiscuous membership ends
 * with the packet socket; an attached veth's GRO, turned on while it is a port, is put back). Every
 * step that fails undoes the steps before it: nothing half-created is left behind.
 *
 * Every packet-socket port is also put on its bridge's kernel fast path (`attachFastpath`:
 * SwaleKernel/Fastpath.swift), unless swaled runs with --no-fastpath or the kernel refused it.
 *
 * Every interface Swale creates is tagged in its kernel alias (OwnerTag, Config.swift), which is
 * how a restart tells its own interfaces from anyone else's.
 *
 * A link watcher (RTNLGRP_LINK) notices interfaces that disappear — a container's namespace was
 * deleted — and removes their ports, logged and counted.
 */
import Foundation
import Glibc
import SwaleConfig
import SwaleDatapath
import SwaleKernel
import SwaleNames
import SwaleProtocol
import SwaleRings

extension Service {
    func netlink() throws -> Netlink {
        guard options.kernelPortsEnabled else { throw ControlError(.system, "kernel ports are disabled in this service") }
        if let nl = netlinkSocket { return nl }
        let nl = try Netlink()
        netlinkSocket = nl
        return nl
    }

    func kernelPortName(_ ifname: String) throws -> String {
        try Netlink.validateName(ifname)
        for b in bridges.values {
            for p in b.ports.values where p.ifname == ifname {
                throw ControlError(.exists, "interface \(ifname) is already a port of bridge \(b.bridge.name)")
            }
        }
        return ifname
    }

    /// `port add` from a client: the request becomes a port spec like a config file's.
    func addKernelPort(_ req: PortAdd) throws -> PortInfo {
        let b = try kernelBridge(req.bridge)
        guard let kind = SwaleConfig.PortKind(rawValue: req.kind), kind != .attach else {
            throw ControlError(
                .invalidArgument,
                "port kind must be 'tap', 'veth', 'vxlan' or 'geneve' (got '\(LogText.clean(req.kind))'); use 'port attach' for an existing interface"
            )
        }
        if kind.isTunnel { return try addTunnelPort(req, kind: kind, to: b) }
        try refuseTunnelOptions(req)
        var spec = SwaleConfig.Port(kind: kind, name: req.name)
        spec.peer = req.peer; spec.netns = req.netns; spec.address = req.address; spec.mtu = req.mtu; spec.mac = req.mac
        try takeAttachment(req, into: &spec)
        return portInfo(try addKernelPort(spec, to: b, origin: .cli, reuseExisting: false))
    }

    /// Creates (or, with `reuseExisting`, picks up an interface this swaled created earlier) a TAP or
    /// veth port, attaches it, and tags the interface as ours (OwnerTag).
    func addKernelPort(_ spec: SwaleConfig.Port, to b: BridgeEntry, origin: PortOrigin, reuseExisting: Bool) throws -> PortEntry {
        if spec.kind.isTunnel { return try addTunnelPort(spec, to: b, origin: origin, reuseExisting: reuseExisting).0 }
        var spec = spec
        let kind = spec.kind
        let name = try kernelPortName(spec.name)
        if b.ports[name] != nil { throw ControlError(.exists, "bridge \(b.bridge.name) already has a port named \(name)") }
        let nl = try netlink()
        let mac = try checkLinkSettings(&spec)
        // A container's rules are in place before its port can forward a frame (makePort installs them).
        let attachment = spec.container != nil
        if attachment { try store(Service.attachmentRules(spec, port: name), on: b) }
        var attached = false
        defer { if attachment && !attached { b.portRules[name] = nil } }

        // An interface of that name may be one this swaled made before (a restart): take it back.
        var existed = false
        if let info = try nl.linkInfo(name: name) {
            let ours = OwnerTag(alias: info.alias)?.instance == ownerInstance
            let expected = kind == .tap ? "tun" : "veth"
            guard reuseExisting, ours, info.kind == expected else {
                throw ControlError(
                    .exists,
                    "interface \(name) already exists\(info.kind.map { " (a \($0))" } ?? "")\(ours || info.alias == nil ? "" : " and was not created by this swaled"); pick another name or use 'port attach'"
                )
            }
            existed = true
            looseInterfaces[name] = nil
        }
        let p: PortEntry
        if kind == .tap {
            let tap = try TapAdapter.create(name: name, mtu: spec.mtu, mac: mac, up: true, persist: true, netlink: nl)
            do {
                p = try makePort(bridge: b, name: name, kind: .tap, slots: options.slots, owner: 0, adapter: tap)
            } catch {
                if !existed { tap.destroy() }
                throw error
            }
            p.ifname = name
            p.ifindex = tap.ifindex
            attachFastpath(p, ifindex: tap.ifindex, socketFD: nil, to: b, nl: nl)
        } else {
            p = try addVeth(spec, name: name, mac: mac, existed: existed, into: b, nl: nl)
        }
        p.created = true
        p.spec = spec
        p.origin = origin
        tag(name, origin: origin, bridge: b.bridge.name, spec: spec)
        attached = true
        log.info(
            "\(kind.rawValue) port \(p.fullName) \(existed ? "re-attached" : "created")\(spec.peer.map { " (peer \($0)\(spec.netns.map { " in netns \($0)" } ?? ""))" } ?? "")"
        )
        return p
    }

    private func addVeth(_ spec: SwaleConfig.Port, name: String, mac: [UInt8]?, existed: Bool, into b: BridgeEntry, nl: Netlink)
        throws -> PortEntry
    {
        guard let peer = spec.peer, !peer.isEmpty else {
            throw ControlError(.invalidArgument, "a veth port needs --peer NAME for the other end")
        }
        try Netlink.validateName(peer)
        guard peer != name else { throw ControlError(.invalidArgument, "veth peer name must differ from the port name") }
        var nsPath: String?
        var nsHandle: NetworkNamespace?
        defer { nsHandle?.close() }
        // Taken back after a restart: the peer is already where it belongs (and a container's
        // namespace may have been named by a /proc path that no longer means it).
        if !existed, let ns = spec.netns, !ns.isEmpty {
            guard let h = NetworkNamespace.open(ns) else {
                throw ControlError(
                    .invalidArgument,
                    "netns '\(LogText.clean(ns))' is not a network namespace (a name under /var/run/netns or a path to one)")
            }
            nsHandle = h
            nsPath = h.path
        }
        if let a = spec.address, !SwaleConfig.isCIDR(a) {
            throw ControlError(.invalidArgument, "address '\(a)' is not an address with a prefix length (10.0.0.1/24)")
        }
        if !existed {
            if nsPath == nil, nl.exists(name: peer) { throw ControlError(.exists, "interface \(peer) (the peer) already exists") }
            // The peer is created inside its namespace, under its final name.
            try nl.createVeth(name: name, peer: peer, peerNamespace: nsPath, mtu: spec.mtu, peerMAC: mac)
        }
        do {
            if !existed {
                if let nsPath {
                    try nl.configureInNamespace(nsPath: nsPath, link: peer, up: true, address: spec.address, mtu: nil)
                } else {
                    try nl.setUp(peer, true)
                    if let a = spec.address { try nl.addAddress(link: peer, cidr: a) }
                }
            }
            try nl.setUp(name, true)
            // GRO on the switch's own end: the kernel merges a container's MTU-sized TCP segments
            // before the packet socket sees them, so the switch and the receiving stack handle one
            // large frame (carried with its virtio-net GSO header) instead of dozens.
            do { try nl.setGRO(name, true) } catch { log.warning("GRO on \(name): \(error); frames stay MTU-sized") }
            let p = try plugPacketSocket(name, into: b, kind: .veth, nl: nl)
            p.peerName = peer
            return p
        } catch {
            if !existed { try? nl.delete(link: name) }  // deleting one end deletes the pair
            throw error
        }
    }

    /// MTU in range; MAC unicast and written the canonical way. Returns the MAC's bytes.
    func checkLinkSettings(_ spec: inout SwaleConfig.Port) throws -> [UInt8]? {
        if let mtu = spec.mtu, !SwaleConfig.mtuRange.contains(mtu) {
            throw ControlError(.invalidArgument, "MTU \(mtu) out of range (68-65535)")
        }
        guard let m = spec.mac else { return nil }
        guard let mac = Netlink.parseMAC(m) else { throw ControlError(.invalidArgument, "invalid MAC address '\(m)'") }
        guard mac[0] & 1 == 0 else {
            throw ControlError(.invalidArgument, "MAC address \(m) is a group address; a port needs a unicast one")
        }
        spec.mac = Netlink.formatMAC(mac)
        return mac
    }

    /// Writes the owner tag into the interface's alias (what a restart reads back).
    func tag(_ ifname: String, origin: PortOrigin, bridge: String?, spec: SwaleConfig.Port) {
        let tag = OwnerTag(instance: ownerInstance, origin: origin, bridge: bridge, spec: spec)
        do { try netlink().setAlias(ifname, tag.alias) } catch {
            log.warning("could not tag \(ifname) as Swale's (a restart will not recognize it): \(error)")
        }
    }

    /// Attaches an existing interface; one this swaled created with `-n` becomes a TAP port again.
    func attachPort(bridge b: BridgeEntry, ifname: String, origin: PortOrigin) throws -> PortEntry {
        let name = try kernelPortName(ifname)
        if let spec = looseInterfaces[name] {
            return try addKernelPort(spec, to: b, origin: origin, reuseExisting: true)
        }
        let nl = try netlink()
        guard let info = try nl.linkInfo(name: name) else { throw ControlError(.notFound, "no interface named \(name)") }
        if let master = info.masterIndex, master > 0 {
            let mname = (try? nl.linkInfo(ifindex: master))??.name ?? "ifindex \(master)"
            throw ControlError(.invalidArgument, "interface \(name) is enslaved to \(mname); detach it there first")
        }
        if info.flags & 0x8 != 0 { throw ControlError(.invalidArgument, "interface \(name) is a loopback device") }
        if b.ports[name] != nil { throw ControlError(.exists, "bridge \(b.bridge.name) already has a port named \(name)") }
        // GRO on while attached, as on the veth ends swaled creates (restored on detach, like
        // promiscuous mode): frames that stay on the slow path arrive merged too.
        var groFound: Bool?
        if info.kind == "veth", let on = nl.gro(name), !on {
            do {
                try nl.setGRO(name, true)
                groFound = false
            } catch { log.warning("GRO on \(name): \(error); frames stay MTU-sized") }
        }
        let p: PortEntry
        do { p = try plugPacketSocket(name, into: b, kind: .netdev, nl: nl) } catch {
            if groFound == false { try? nl.setGRO(name, false) }
            throw error
        }
        p.groFound = groFound
        p.created = false
        p.spec = SwaleConfig.Port(kind: .attach, name: name)
        p.origin = origin
        log.info("interface \(name) attached to \(b.bridge.name)")
        return p
    }

    /// vale-ctl -n NAME: a persistent TAP that belongs to no bridge yet (`-a BRIDGE:NAME` attaches it).
    func createLooseTap(_ req: IfaceCreate) throws -> PortInfo {
        let name = try kernelPortName(req.name)
        let nl = try netlink()
        if looseInterfaces[name] != nil || nl.exists(name: name) {
            throw ControlError(.exists, "interface \(name) already exists; pick another name")
        }
        var spec = SwaleConfig.Port(kind: .tap, name: name)
        spec.mtu = req.mtu
        spec.mac = req.mac
        let mac = try checkLinkSettings(&spec)
        let tap = try TapAdapter.create(name: name, mtu: spec.mtu, mac: mac, up: true, persist: true, netlink: nl)
        let ifindex = tap.ifindex
        tap.close()  // persistent: the device stays until -r
        tag(name, origin: .cli, bridge: nil, spec: spec)
        looseInterfaces[name] = spec
        log.info("tap interface \(name) created (not attached)")
        return PortInfo(
            bridge: "", name: name, index: -1, kind: "tap", ifname: name, openBy: nil, created: true, owner: "root",
            counters: {
                var c = PortCounters(); c.adapter = ["ifindex": UInt64(ifindex)]; return c
            }())
    }

    /// vale-ctl -r NAME: deletes an interface made with -n (it must be detached first).
    func removeLooseInterface(_ ifname: String) throws {
        let name = try kernelPortName(ifname)  // refuses names that are a port right now
        guard looseInterfaces[name] != nil else {
            throw ControlError(.notFound, "\(name) is not an interface created with -n (nothing to remove)")
        }
        let nl = try netlink()
        if nl.exists(name: name) {
            if let tap = try? TapAdapter.create(name: name, up: false, persist: true, netlink: nl) { tap.destroy() }
            if nl.exists(name: name) { try nl.delete(link: name) }
        }
        looseInterfaces[name] = nil
        log.info("interface \(name) removed")
    }

    /// Wraps an interface with a packet socket and plugs it into the bridge (socket closed on failure).
    func plugPacketSocket(_ name: String, into b: BridgeEntry, kind: PortKind, nl: Netlink) throws -> PortEntry {
        let adapter = try PacketSocketAdapter.attach(name: name, frameCount: options.packetRingFrames, netlink: nl)
        do {
            let p = try makePort(bridge: b, name: name, kind: kind, slots: options.slots, owner: 0, adapter: adapter)
            p.ifname = name
            p.ifindex = adapter.ifindex
            attachFastpath(p, ifindex: adapter.ifindex, socketFD: adapter.fd, to: b, nl: nl)
            return p
        } catch {
            adapter.close()
            throw error
        }
    }

    /// Puts a kernel port (a packet socket's interface, or a TAP: `socketFD` nil) on its bridge's
    /// kernel fast path (Fastpath.swift), loading the bridge's copy of the programs first. If the
    /// kernel or the object says no, that is logged once and the port, like every other, keeps the
    /// slow path.
    func attachFastpath(_ p: PortEntry, ifindex: Int32, socketFD: Int32?, to b: BridgeEntry, nl: Netlink) {
        guard options.fastpath, fastpathFailure == nil else { return }
        if b.fastpath == nil {
            do {
                let fp = try KernelFastpath()
                b.fastpath = fp
                b.bridge.setFastpath(fp)
                log.info("bridge \(b.bridge.name): kernel fast path loaded from \(fp.path)")
            } catch {
                fastpathFailure = "\(error)"
                log.warning("kernel fast path unavailable, every bridge runs without it: \(error)")
                return
            }
        }
        guard let fp = b.fastpath else { return }
        do {
            try fp.attach(ifindex: ifindex, socketFD: socketFD, name: p.name)
        } catch let e as KernelError where e.isErrno && ![EPERM, EACCES, EINVAL, EOPNOTSUPP, ENOSYS].contains(e.code) {
            // This interface only (it vanished meanwhile, say): its frames take the slow path.
            log.warning("port \(p.fullName) stays off the kernel fast path: \(e)")
            return
        } catch {
            // The kernel refuses the programs themselves (no tcx, no permission): once, for all.
            fastpathFailure = "\(error)"
            log.warning("kernel fast path unavailable, every bridge runs without it: \(error)")
            return
        }
        p.fastpathAttached = true
        // A veth whose peer lives in another namespace takes frames with bpf_redirect_peer
        // (straight to the peer's ingress); any other interface with bpf_redirect (out of it).
        // A TAP gets frames up its host stack.
        let info = (try? nl.linkInfo(ifindex: ifindex)) ?? nil
        let peer = info?.kind == "veth" && info?.linkNetnsID != nil
        b.bridge.attachFastpath(port: p.index, ifindex: ifindex, peer: peer, hostStack: socketFD == nil)
    }

    /// An attached veth gets back the GRO setting swaled found on it.
    func restoreGRO(_ p: PortEntry) {
        guard p.groFound == false, !p.created, let name = p.ifname else { return }
        p.groFound = nil
        guard let nl = try? netlink(), nl.exists(name: name) else { return }
        do { try nl.setGRO(name, false) } catch { log.warning("restoring GRO off on \(name): \(error)") }
    }

    /// Detaches a port. Interfaces Swale created are deleted, unless `keepInterface` (vale-ctl -d):
    /// then a TAP or veth stays, untouched, to be attached again (-a) or removed (-r).
    func deletePort(bridge: String, port: String, keepInterface: Bool = false) throws {
        let b = try bridgeEntry(bridge)
        guard let p = b.ports[port] else { throw ControlError(.notFound, "no port '\(port)' on bridge '\(bridge)'") }
        if p.kind == .app {
            if let pid = p.holderPid {
                throw ControlError(
                    .exists, "port \(p.fullName) is held open by pid \(pid); it goes away when that application closes it")
            }
        }
        if p.pipes > 0 { throw ControlError(.exists, "port \(p.fullName) has \(p.pipes) pipe(s) open on it") }
        removePortEntry(p, from: b)
        if keepInterface, p.created, var spec = p.spec, let ifname = p.ifname {
            spec.name = ifname
            looseInterfaces[ifname] = spec
            tag(ifname, origin: .cli, bridge: nil, spec: spec)
            log.info("interface \(ifname) detached and kept")
            return
        }
        destroyKernelSide(p)
    }

    /// Deletes what Swale created for a port; leaves attached interfaces alone.
    func destroyKernelSide(_ p: PortEntry) {
        guard p.created, let ifname = p.ifname else { return }
        if let tap = p.adapter as? TapAdapter { tap.destroy() }
        if let nl = try? netlink(), nl.exists(name: ifname) {
            do { try nl.delete(link: ifname) } catch { log.warning("deleting \(ifname): \(error)") }
        }
        log.info("interface \(ifname) deleted")
    }

    /// Watches for links that disappear and removes their ports. Runs on its own thread.
    public func startLinkMonitor() {
        let watcher: LinkWatcher
        do { watcher = try LinkWatcher() } catch {
            log.warning("link watcher unavailable: \(error); vanished interfaces will not be noticed")
            return
        }
        let t = Thread { [self] in
            while true {
                var pfd = pollfd(fd: watcher.fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, 1000)
                let events = watcher.drainEvents()
                lock.lock()
                if !events.isEmpty || linkCheckDue() { reapVanishedLinks(events) }
                lock.unlock()
            }
        }
        t.name = "swale-links"
        t.start()
    }

    private func linkCheckDue() -> Bool {
        let now = Date()
        if now.timeIntervalSince(lastLinkCheck) >= 2 { lastLinkCheck = now; return true }
        return false
    }

    func reapVanishedLinks(_ events: [LinkEvent]) {
        var gone = Set<Int32>()
        for e in events { if case .removed(let idx, _) = e { gone.insert(idx) } }
        guard let nl = try? netlink() else { return }
        for b in bridges.values {
            for p in b.ports.values where p.adapter != nil {
                guard let idx = p.ifindex else { continue }
                if gone.contains(idx) || !nl.exists(ifindex: idx) {
                    removePortEntry(p, from: b)
                    if let tap = p.adapter as? TapAdapter { tap.destroy() }
                    linksLost += 1
                    log.notice("interface \(p.ifname ?? "?") disappeared: port \(p.fullName) removed (\(linksLost) so far)")
                }
            }
        }
    }
}
