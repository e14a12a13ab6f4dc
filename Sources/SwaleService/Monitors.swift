/*
 * Monitor ports, service side: `open vale0:p1/r` (or /t, /rt) gives the caller a read-only port
 * of its own (own region, own rings) that the engine fills with copies of p1's traffic
 * (SwaleDatapath/Monitors.swift). Who may: whoever may open p1 itself — the bridge admits them
 * and p1 is theirs (root for kernel ports). A monitor counts as a port in the caller's budget,
 * lives while its session holds it, and is not one of the bridge's ports (not listed, never
 * forwarded to). Up to ForwardingEngine.maxMonitors per port.
 */
import SwaleDatapath
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
