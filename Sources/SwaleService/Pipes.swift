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
 *
 * A pipe end maps its parent's whole region, so pipes are their parent's owner's: on an app port
 * only its owner (or root) opens them, and a parent made by a pipe belongs to whoever made it; on a
 * kernel port only root does. A pipe ends with its bridge (`bridge del --force`): it is never
 * handed out again, even if a bridge and port of the same names appear later.
 */
import Foundation
import SwaleDatapath
import SwaleNames
import SwaleProtocol
import SwaleRings

extension Service {
    /// The pipe's parent port, made for the caller if it does not exist. The Bool says it was made.
    func findParent(_ parent: PortName, session: Session, slots: Int) throws -> (PortEntry, Bool) {
        switch parent.base {
        case .bridgePort(let bname, let pname):
            let (b, newBridge) = try bridgeForOpen(bname, session)
            if let p = b.ports[pname] {
                guard p.kind == .app || session.root else {
                    throw ControlError(
                        .permissionDenied,
                        "pipes on \(p.kind.rawValue) port \(p.fullName) are for root only: they map the port's traffic")
                }
                try checkOwner(p, session)
                return (p, false)
            }
            do {
                try checkNewPort(session, slots: slots)
                let p = try makePort(bridge: b, name: pname, kind: .app, slots: slots, owner: session.ownerID)
                log.info("app port \(p.fullName) created as the parent of a pipe (owner uid \(p.owner))")
                return (p, true)
            } catch {
                if newBridge { reapIfEmpty(b) }
                throw error
            }
        case .interface(let ifname):
            guard session.root else {
                throw ControlError(
                    .permissionDenied, "open \(ifname)<ID: pipes on an interface are for root only: they map its traffic")
            }
            for b in bridges.values {
                for p in b.ports.values where p.ifname == ifname { return (p, false) }
            }
            throw ControlError(
                .notFound,
                "unknown parent '\(ifname)': no port uses that interface (pipes hang off BRIDGE:PORT or an attached interface)")
        }
    }

    func openPipeEnd(parent: PortName, role: PipeRole, id: String, session: Session, slots: Int) throws -> (OpenInfo, [Int32]) {
        let (p, _) = try findParent(parent, session: session, slots: slots)
        let key = "\(p.fullName){\(id)"
        let pipe: PipeEntry
        if let existing = pipes[key] {
            pipe = existing
        } else {
            do {
                try checkNewPipe(session, slots: slots, in: p.pool)
                let limitBefore = p.pool.region.blockLimit
                let m = try p.pool.makeInterface(name: "\(p.name){\(id)", slots: slots)
                let s = try p.pool.makeInterface(name: "\(p.name)}\(id)", slots: slots)
                pipe = PipeEntry(
                    parent: p, id: id, master: m, slave: s, masterNotify: try Doorbell(), slaveNotify: try Doorbell())
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
        if role == .master {
            if let holder = pipe.masterPid ?? pipe.masterAdopters.first?.pid {
                throw ControlError(.exists, "pipe end \(parent)<\(id) is already open (by pid \(holder))")
            }
            pipe.masterSession = session.id
            pipe.masterPid = session.pid
        } else {
            if let holder = pipe.slavePid ?? pipe.slaveAdopters.first?.pid {
                throw ControlError(.exists, "pipe end \(parent)>\(id) is already open (by pid \(holder))")
            }
            pipe.slaveSession = session.id
            pipe.slavePid = session.pid
        }
        session.holdings.append(.pipeEnd(pipe, role))
        forgetSleeper(pipe.parent.pool.csb(role == .master ? pipe.master : pipe.slave))
        return pipeEndOpen(pipe, role, parentName: "\(parent)")
    }

    /// What an opener (or adopter) of one end of `pipe` is told, and the descriptors it gets.
    func pipeEndOpen(_ pipe: PipeEntry, _ role: PipeRole, parentName: String) -> (OpenInfo, [Int32]) {
        let p = pipe.parent
        let mine = role == .master ? pipe.master : pipe.slave
        let peer = role == .master ? pipe.slave : pipe.master
        var info = OpenInfo(
            name: "\(parentName)\(role.separator)\(pipe.id)", kind: "pipe", bufSize: p.pool.bufSize,
            regionSize: p.pool.region.mappedSize, nifpOffset: mine.nifpOffset,
            txRing: mine.txRingOffsets[0], rxRing: mine.rxRingOffsets[0], slots: mine.slotsPerRing)
        info.peerRxRing = peer.rxRingOffsets[0]
        info.peerTxRing = peer.txRingOffsets[0]
        info.peerCsb = peer.csbOffset
        let myNotify = role == .master ? pipe.masterNotify : pipe.slaveNotify
        let peerNotify = role == .master ? pipe.slaveNotify : pipe.masterNotify
        return (info, [p.pool.region.fd, myNotify.waitEnd.fd, peerNotify.ringEnd.fd])
    }

    /// The port's bridge is going: its pipes end now (their holders keep their mappings until they
    /// close; nobody else gets them).
    func endPipes(of p: PortEntry) {
        for pipe in pipes.values where pipe.parent === p {
            pipes[pipe.key] = nil
            pipe.ended = true
            pipe.masterNotify.close()
            pipe.slaveNotify.close()
            p.pipes -= 1
            log.info("pipe \(pipe.key) ended with bridge \(p.bridge)")
        }
    }

    func destroyPipe(_ pipe: PipeEntry) {
        pipes[pipe.key] = nil
        let refused = pipe.parent.pool.freeInterface(pipe.master) + pipe.parent.pool.freeInterface(pipe.slave)
        if refused > 0 {
            log.warning("pipe \(pipe.key): \(refused) buffer index(es) in its rings were invalid or duplicated (refused)")
        }
        pipe.masterNotify.close()
        pipe.slaveNotify.close()
        pipe.parent.pipes -= 1
        log.info("pipe \(pipe.key) destroyed")
        releaseIfUnused(pipe.parent)
    }
}
