/*
 * Pipes — netmap_pipe.c's control side: `X<ID` / `X>ID` (and `X{ID` / `X}ID`).
 *
 * Both ends are created together on the first open of either, as two interfaces (each one tx and
 * one rx ring) in the memory region of the parent port X, which is what lets frames move between
 * the ends — and between the parent's rings and the pipe's — by swapping buffer indices. If X is a
 * BRIDGE:NAME that does not exist, an app port is created for it and removed with the last pipe.
 * The data path is entirely in the applications (SwaleClient/Pipe.swift); the service only hands
 * out the region and the two doorbells, tracks which ends are open, and frees the rings' buffers
 * when both ends are closed.
 */
import Foundation
import SwaleControl
import SwaleDatapath
import SwaleRings
import SwaleNames

extension Service {
    func findParent(_ parent: PortName, slots: Int) throws -> PortEntry {
        switch parent.base {
        case .bridgePort(let bname, let pname):
            let b = try addBridge(bname, mustBeNew: false)
            if let p = b.ports[pname] { return p }
            let p = try makePort(bridge: b, name: pname, kind: .app, slots: slots)
            log.info("app port \(p.fullName) created as the parent of a pipe")
            return p
        case .interface(let ifname):
            for b in bridges.values {
                for p in b.ports.values where p.ifname == ifname { return p }
            }
            throw ServiceError("unknown parent '\(ifname)': no port uses that interface (pipes hang off BRIDGE:PORT or an attached interface)")
        }
    }

    func openPipeEnd(parent: PortName, role: PipeRole, id: String, session: Session, slots: Int) throws -> (OpenInfo, [Int32]) {
        try checkClientLimit(session, pipe: true)
        let p = try findParent(parent, slots: slots)
        // A pipe end maps its parent's whole region: only who may see that port's traffic gets it.
        if session.uid != 0 {
            if p.kind != .app {
                releaseIfUnused(p)
                throw ServiceError("pipes on \(p.kind.rawValue) port \(p.fullName) are for root only: they map the port's traffic")
            }
            if let holder = p.openSession, let other = sessions[holder], other.uid != session.uid {
                throw ServiceError("port \(p.fullName) belongs to another user (uid \(other.uid)); its pipes are not yours to open")
            }
        }
        let key = "\(p.fullName){\(id)"
        let pipe: PipeEntry
        if let existing = pipes[key] {
            pipe = existing
        } else {
            do {
                let limitBefore = p.pool.region.blockLimit
                let m = try p.pool.makeInterface(name: "\(p.name){\(id)", slots: slots)
                let s = try p.pool.makeInterface(name: "\(p.name)}\(id)", slots: slots)
                pipe = PipeEntry(parent: p, id: id, master: m, slave: s, masterNotify: try Doorbell(), slaveNotify: try Doorbell())
                if p.pool.region.blockLimit != limitBefore, let b = bridges[p.bridge], p.index >= 0 {
                    // The region grew: let the switch accept buffer indices in the new part.
                    b.bridge.updateBufferLimit(p.index, limit: p.pool.region.blockLimit)
                }
            } catch {
                releaseIfUnused(p)
                throw error
            }
            pipes[key] = pipe
            p.pipes += 1
            log.info("pipe \(key) created in the region of \(p.fullName)")
        }
        let mine = role == .master ? pipe.master : pipe.slave
        let peer = role == .master ? pipe.slave : pipe.master
        if role == .master {
            if let holder = pipe.masterPid { throw ServiceError("pipe end \(parent)<\(id) is already open (by pid \(holder))") }
            pipe.masterSession = session.id
            pipe.masterPid = session.pid
        } else {
            if let holder = pipe.slavePid { throw ServiceError("pipe end \(parent)>\(id) is already open (by pid \(holder))") }
            pipe.slaveSession = session.id
            pipe.slavePid = session.pid
        }
        session.holdings.append(.pipeEnd(pipe, role))
        var info = OpenInfo(name: "\(parent)\(role.separator)\(id)", kind: "pipe", bufSize: p.pool.bufSize,
                            regionSize: p.pool.region.mappedSize, nifpOffset: mine.nifpOffset,
                            txRing: mine.txRingOffsets[0], rxRing: mine.rxRingOffsets[0], slots: mine.slotsPerRing)
        info.peerRxRing = peer.rxRingOffsets[0]
        info.peerTxRing = peer.txRingOffsets[0]
        info.peerCsb = peer.csbOffset
        let myNotify = role == .master ? pipe.masterNotify : pipe.slaveNotify
        let peerNotify = role == .master ? pipe.slaveNotify : pipe.masterNotify
        return (info, [p.pool.region.fd, myNotify.waitEnd.fd, peerNotify.ringEnd.fd])
    }

    func destroyPipe(_ pipe: PipeEntry) {
        pipes[pipe.key] = nil
        let refused = pipe.parent.pool.freeInterface(pipe.master) + pipe.parent.pool.freeInterface(pipe.slave)
        if refused > 0 { log.warning("pipe \(pipe.key): \(refused) buffer index(es) in its rings were invalid or duplicated (refused)") }
        pipe.masterNotify.close()
        pipe.slaveNotify.close()
        pipe.parent.pipes -= 1
        log.info("pipe \(pipe.key) destroyed")
        releaseIfUnused(pipe.parent)
    }
}
