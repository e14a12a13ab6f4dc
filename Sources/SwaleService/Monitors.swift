/*
 * Monitor ports, service side: `open vale0:p1/r` (or /t, /rt) gives the caller a read-only port
 * of its own (own region, own rings) that the engine fills with copies of p1's traffic
 * (SwaleDatapath/Monitors.swift). Who may: whoever may open p1 itself — the bridge admits them
 * and p1 is theirs (root for kernel ports). A monitor counts as a port in the caller's budget,
 * lives while its session holds it, and is not one of the bridge's ports (not listed, never
 * forwarded to). Up to ForwardingEngine.maxMonitors per port.
 */
import Glibc
import SwaleDatapath
import SwaleKernel
import SwaleNames
import SwaleProtocol
import SwaleRings

extension Service {
    func openMonitor(_ name: PortName, _ m: PortName.Monitor, session: Session, slots: Int) throws -> (OpenInfo, [Int32]) {
        guard case .bridgePort(let bname, let pname) = name.base else {
            throw ControlError(.invalidArgument, "monitors watch bridge ports (vale0:NAME/r)")
        }
        let b = try bridgeEntry(bname)
        try checkAdmits(b, session, "open")
        guard let target = b.ports[pname] else {
            throw ControlError(.notFound, "no port '\(pname)' on bridge '\(bname)' to monitor")
        }
        try checkOwner(target, session)
        try checkNewPort(session, slots: slots)
        let s = max(64, min(slots, 16384))
        let pool = try MemoryPool(
            name: "swale:\(name.description)", bufSize: options.bufSize,
            initialBlocks: Budgets.portBlocks(slots: s, bufSize: options.bufSize))
        let layout = try pool.makeInterface(name: "\(pname)/\(m.rawValue)", slots: s)
        let kick = try Doorbell()
        let notify = try Doorbell()
        let p = PortEntry(
            bridge: bname, name: "\(pname)/\(m.rawValue)", kind: .monitor, owner: session.ownerID, pool: pool, layout: layout,
            kick: kick, notify: notify)
        guard
            let idx = b.bridge.addMonitor(
                pool: pool, layout: layout, kickFD: kick.waitEnd.fd, notifyFD: notify.ringEnd.fd, of: target.index,
                rx: m.copiesRx, tx: m.copiesTx)
        else {
            kick.close(); notify.close()
            throw ControlError(
                .limit,
                "cannot monitor \(target.fullName): it has \(ForwardingEngine.maxMonitors) monitors already, or the bridge is full"
            )
        }
        p.index = idx
        p.monitor = m
        p.openSession = session.id
        p.openPid = session.pid
        b.monitors[idx] = p
        session.holdings.append(.port(p))
        log.info("monitor \(name.description) opened by pid \(session.pid) uid \(session.uid)")
        let info = OpenInfo(
            name: name.description, kind: "port", bufSize: pool.bufSize, regionSize: pool.region.mappedSize,
            nifpOffset: layout.nifpOffset, txRing: layout.txRingOffsets[0], rxRing: layout.rxRingOffsets[0],
            slots: layout.slotsPerRing)
        return (info, [pool.region.fd, notify.waitEnd.fd, kick.ringEnd.fd])
    }
}

// MARK: mirrors (`swalectl mirror add vale0:p1 --to swmon0`, what ovs-tcpdump does)

extension Service {
    /// `--dir` of a mirror and what its monitor copies.
    static let mirrorDirections: [(String, PortName.Monitor)] = [("rx", .rx), ("tx", .tx), ("both", .both)]

    /// A monitor whose copies go to a new, non-persistent TAP: stock tcpdump opens it. Root only
    /// (it creates an interface); the TAP goes away with the mirror or with swaled.
    func addMirror(_ a: MirrorAdd) throws -> MirrorInfo {
        let n = try PortName.parse(a.port)
        guard case .bridgePort(let bname, let pname) = n.base, n.pipe == nil, n.monitor == nil else {
            throw ControlError(.invalidArgument, "mirror add takes BRIDGE:PORT, not '\(a.port)'")
        }
        let dir = a.dir ?? "both"
        guard let m = Service.mirrorDirections.first(where: { $0.0 == dir })?.1 else {
            throw ControlError(.invalidArgument, "--dir must be rx, tx or both (got '\(dir)')")
        }
        try Names.validateInterfaceName(a.to)
        guard if_nametoindex(a.to) == 0 else {
            throw ControlError(.exists, "interface \(a.to) exists; a mirror makes a new TAP")
        }
        let b = try bridgeEntry(bname)
        guard let target = b.ports[pname] else { throw ControlError(.notFound, "no port '\(pname)' on bridge '\(bname)'") }
        let tap = try TapAdapter.create(name: a.to, up: true, persist: false, offloads: false, netlink: try netlink())
        let pool = try MemoryPool(
            name: "swale:\(bname):\(pname)>\(a.to)", bufSize: options.bufSize,
            initialBlocks: Budgets.portBlocks(slots: options.slots, bufSize: options.bufSize))
        let layout = try pool.makeInterface(name: a.to, slots: options.slots)
        let kick = try Doorbell()
        let notify = try Doorbell()
        let p = PortEntry(
            bridge: bname, name: "\(pname)/\(m.rawValue)", kind: .monitor, owner: 0, pool: pool, layout: layout, kick: kick,
            notify: notify)
        guard
            let idx = b.bridge.addMonitor(
                pool: pool, layout: layout, kickFD: kick.waitEnd.fd, notifyFD: notify.ringEnd.fd, of: target.index,
                rx: m.copiesRx, tx: m.copiesTx, backend: tap)
        else {
            kick.close(); notify.close(); tap.close()
            throw ControlError(
                .limit, "cannot mirror \(target.fullName): it has \(ForwardingEngine.maxMonitors) monitors already")
        }
        p.index = idx
        p.monitor = m
        p.adapter = tap
        p.ifname = a.to
        b.mirrors[a.to] = p
        log.info("mirror of \(target.fullName) (\(dir)) on \(a.to)")
        return mirrorInfo(p)
    }

    func mirrorInfo(_ p: PortEntry) -> MirrorInfo {
        let c = portInfo(p).counters
        let dir = Service.mirrorDirections.first { $0.1 == p.monitor }?.0 ?? "?"
        let port = String(p.name.prefix { $0 != "/" })
        return MirrorInfo(
            port: "\(p.bridge):\(port)", to: p.ifname ?? "?", dir: dir, frames: c.rxPackets, dropped: c.dropRingFull)
    }

    func deleteMirror(_ to: String) throws {
        guard let b = bridges.values.first(where: { $0.mirrors[to] != nil }), let p = b.mirrors[to] else {
            throw ControlError(.notFound, "no mirror on \(to)")
        }
        b.bridge.removePort(p.index)
        b.mirrors[to] = nil
        p.adapter?.close()
        p.kick.close(); p.notify.close()
        log.info("mirror on \(to) removed")
    }

    func mirrorList() -> [MirrorInfo] {
        bridges.keys.sorted().flatMap { n in bridges[n]!.mirrors.keys.sorted().map { mirrorInfo(bridges[n]!.mirrors[$0]!) } }
    }
}
