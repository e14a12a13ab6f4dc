/*
 * KernelPorts — TAP devices, veth pairs and existing interfaces as bridge ports (netmap's bwrap).
 *
 * `port add BRIDGE tap NAME` creates a persistent TAP (so a restart of swaled finds it again) and
 * wraps its fd; `port add BRIDGE veth NAME --peer PEER` creates the pair through netlink, moves the
 * peer into a namespace and configures it there, and wraps NAME with an AF_PACKET socket;
 * `port attach BRIDGE IFNAME` wraps an interface that already exists. What Swale created is deleted
 * with the port; what it merely attached is left as it was found (its promiscuous membership ends
 * with the packet socket). Every step that fails undoes the steps before it: nothing half-created
 * is left behind.
 *
 * A link watcher (RTNLGRP_LINK) notices interfaces that disappear — a container's namespace was
 * deleted — and removes their ports, logged and counted.
 */
import Foundation
import Glibc
import SwaleControl
import SwaleKernel
import SwaleMemory
import SwaleNames

extension Service {
    func netlink() throws -> Netlink {
        if let nl = netlinkSocket { return nl }
        let nl = try Netlink()
        netlinkSocket = nl
        return nl
    }

    func kernelPortName(_ ifname: String) throws -> String {
        try Netlink.validateName(ifname)
        for b in bridges.values {
            for p in b.ports.values where p.ifname == ifname {
                throw ServiceError("interface \(ifname) is already a port of bridge \(b.bridge.name)")
            }
        }
        return ifname
    }

    func addKernelPort(_ req: Request, reuseExisting: Bool = false) throws -> PortInfo {
        let b = try bridgeEntry(req.bridge ?? "")
        guard let kind = req.kind, kind == "tap" || kind == "veth" else {
            throw ServiceError("port kind must be 'tap' or 'veth' (got '\(req.kind ?? "")'); use 'port attach' for an existing interface")
        }
        let name = try kernelPortName(req.ifname ?? req.port ?? "")
        if b.ports[name] != nil { throw ServiceError("bridge \(b.bridge.name) already has a port named \(name)") }
        let nl = try netlink()
        var mac: [UInt8]?
        if let m = req.mac {
            guard let parsed = Netlink.parseMAC(m) else { throw ServiceError("invalid MAC address '\(m)'") }
            mac = parsed
        }
        if let mtu = req.mtu, !(68...65535).contains(mtu) { throw ServiceError("MTU \(mtu) out of range (68-65535)") }

        if kind == "tap" {
            let existed = nl.exists(name: name)
            if existed {
                let info = try nl.linkInfo(name: name)
                guard reuseExisting, info?.kind == "tun" else {
                    throw ServiceError("interface \(name) already exists\(info?.kind.map { " (a \($0))" } ?? ""); pick another name or use 'port attach'")
                }
            }
            let tap = try TapAdapter.create(name: name, mtu: req.mtu, mac: mac, up: true, persist: true, netlink: nl)
            do {
                let p = try makePort(bridge: b, name: name, kind: .tap, slots: options.slots, adapter: tap)
                p.ifname = name
                p.ifindex = tap.ifindex
                p.created = true
                log.info("tap port \(p.fullName) \(existed ? "re-attached" : "created")")
                return portInfo(p)
            } catch {
                tap.destroy()
                throw error
            }
        }

        // veth
        guard let peer = req.peer, !peer.isEmpty else { throw ServiceError("a veth port needs --peer NAME for the other end") }
        try Netlink.validateName(peer)
        guard peer != name else { throw ServiceError("veth peer name must differ from the port name") }
        var nsPath: String?
        if let ns = req.netns, !ns.isEmpty {
            let path = Netlink.namespacePath(ns)
            guard FileManager.default.fileExists(atPath: path) else {
                throw ServiceError("network namespace '\(ns)' does not exist (\(path))")
            }
            nsPath = path
        }
        if let a = req.address, nsPath == nil, a.isEmpty { throw ServiceError("empty --address") }
        var createdHere = false
        if nl.exists(name: name) {
            let info = try nl.linkInfo(name: name)
            guard reuseExisting, info?.kind == "veth" else {
                throw ServiceError("interface \(name) already exists\(info?.kind.map { " (a \($0))" } ?? ""); pick another name or use 'port attach'")
            }
        } else {
            if nsPath == nil, nl.exists(name: peer) { throw ServiceError("interface \(peer) (the peer) already exists") }
            try nl.createVeth(name: name, peer: peer)
            createdHere = true
        }
        do {
            if createdHere {
                if let mtu = req.mtu { try nl.setMTU(name, mtu); try nl.setMTU(peer, mtu) }
                if let mac { try nl.setMAC(peer, mac) }
                if let nsPath {
                    try nl.moveToNamespace(link: peer, nsPath: nsPath)
                    try nl.configureInNamespace(nsPath: nsPath, link: peer, up: true, address: req.address, mtu: nil)
                } else {
                    try nl.setUp(peer, true)
                    if let a = req.address { try nl.addAddress(link: peer, cidr: a) }
                }
            }
            try nl.setUp(name, true)
            let p = try plugPacketSocket(name, into: b, kind: .veth, nl: nl)
            p.peerName = peer
            p.created = true
            log.info("veth port \(p.fullName) \(createdHere ? "created" : "re-attached") (peer \(peer)\(req.netns.map { " in netns \($0)" } ?? ""))")
            return portInfo(p)
        } catch {
            if createdHere { try? nl.delete(link: name) }   // deleting one end deletes the pair
            throw error
        }
    }

    func attachPort(_ req: Request) throws -> PortInfo {
        let b = try bridgeEntry(req.bridge ?? "")
        let name = try kernelPortName(req.ifname ?? req.port ?? "")
        let nl = try netlink()
        guard let info = try nl.linkInfo(name: name) else { throw ServiceError("no interface named \(name)") }
        if let master = info.masterIndex, master > 0 {
            let mname = (try? nl.linkInfo(ifindex: master))??.name ?? "ifindex \(master)"
            throw ServiceError("interface \(name) is enslaved to \(mname); detach it there first")
        }
        if info.flags & 0x8 != 0 { throw ServiceError("interface \(name) is a loopback device") }
        if b.ports[name] != nil { throw ServiceError("bridge \(b.bridge.name) already has a port named \(name)") }
        let p = try plugPacketSocket(name, into: b, kind: .netdev, nl: nl)
        p.created = false
        log.info("interface \(name) attached to \(b.bridge.name)")
        return portInfo(p)
    }

    /// Wraps an interface with a packet socket and plugs it into the bridge (socket closed on failure).
    func plugPacketSocket(_ name: String, into b: BridgeEntry, kind: PortKind, nl: Netlink) throws -> PortEntry {
        let adapter = try PacketSocketAdapter.attach(name: name, frameCount: options.packetRingFrames, netlink: nl)
        do {
            let p = try makePort(bridge: b, name: name, kind: kind, slots: options.slots, adapter: adapter)
            p.ifname = name
            p.ifindex = adapter.ifindex
            return p
        } catch {
            adapter.close()
            throw error
        }
    }

    func deletePort(bridge: String, port: String) throws {
        let b = try bridgeEntry(bridge)
        guard let p = b.ports[port] else { throw ServiceError("no port '\(port)' on bridge '\(bridge)'") }
        if p.kind == .app {
            if let pid = p.openPid { throw ServiceError("port \(p.fullName) is held open by pid \(pid); it goes away when that application closes it") }
        }
        if p.pipes > 0 { throw ServiceError("port \(p.fullName) has \(p.pipes) pipe(s) open on it") }
        removePortEntry(p, from: b)
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
