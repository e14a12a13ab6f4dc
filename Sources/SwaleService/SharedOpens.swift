/*
 * SharedOpens — more than one process on a port, as netmap allows it.
 *
 * netmap binds a port's rings to every file that registers it, unless someone asked for exclusive
 * use (`/x`, NR_EXCLUSIVE): then others get EBUSY, and an exclusive open of a port in use gets it too.
 * A file handed to another process (fork, SCM_RIGHTS) is the same open, used from two places. Swale
 * keeps both rules:
 *
 *   shared open   `open` with `share: true` of a port whose first opener also shared it joins it:
 *                 the same region, rings and kick doorbell, and a wake-up line of its own, which the
 *                 bridge thread rings with the first one (PortState.sharedNotify: at most three more
 *                 lines, so a port has at most four such holders). Without `share`, an open is
 *                 exclusive: refused while anyone holds the port, and it keeps others out; Swale's
 *                 own clients open that way.
 *   adoption      `adopt` names a wake-up descriptor the caller was given (SCM_RIGHTS, fork): the
 *                 service reads its /proc/PID/fd link (the socket's inode says which open it
 *                 belongs to) and the caller joins that open: the reply is what the opener got,
 *                 and the adopter keeps the line it holds. Holding the descriptor proves the open
 *                 was handed over; the port must still be the caller's (or the caller root), as
 *                 for any open. Ports and pipe ends both.
 *
 * Every holder keeps the port (or pipe end) alive; it goes when the last one closes. Extra buffers
 * belong to the first opener (ni_bufs_head is one list per interface): joiners get none. Holders
 * share one ring pair, so they must agree on who transmits and who receives, as on netmap with one
 * ring; the switch checks whatever they write, as it does for one application. How a control
 * block's holders sleep is the service's to say first: 0 for a new holder, 2 once a second one
 * joins (the publishers then fence; swale_atomics.h), never 1, which only a holder's library writes.
 */
import CSwaleABI
import CSwaleSys
import Foundation
import SwaleDatapath
import SwaleNames
import SwaleProtocol
import SwaleRings

extension Service {
    /// Adopters of one port or pipe end: bounded, so one descriptor cannot grow the service's tables.
    static let maxAdopters = 64

    /// Joins a port held by shared openers: its own wake-up line, the port's rings.
    func joinShared(_ p: PortEntry, session s: Session) throws -> (OpenInfo, [Int32]) {
        guard let b = bridges[p.bridge], b.ports[p.name] === p, p.index >= 0 else {
            throw ControlError(.notFound, "port \(p.fullName) is going away")
        }
        let lines = p.sharers.filter(\.ownsBell).count
        guard lines < PortState.maxSharedNotify else {
            throw ControlError(
                .limit, "port \(p.fullName) has \(lines + 1) shared opens already (at most \(PortState.maxSharedNotify + 1))")
        }
        let bell = try Doorbell()
        p.sharers.append(Sharer(session: s.id, pid: s.pid, bell: bell, ownsBell: true))
        pushSharedNotify(p)
        s.holdings.append(.sharedPort(p))
        severalSleepers(p.pool.csb(p.layout))
        log.info("port \(p.fullName) shared with pid \(s.pid) uid \(s.uid) (\(p.sharers.count + 1) holders)")
        return (portOpenInfo(p), [p.pool.region.fd, bell.waitEnd.fd, p.kick.ringEnd.fd])
    }

    /// The other holders' lines, as the bridge thread must ring them.
    func pushSharedNotify(_ p: PortEntry) {
        guard let b = bridges[p.bridge], b.ports[p.name] === p, p.index >= 0 else { return }
        b.bridge.setSharedNotify(p.index, p.sharers.filter(\.ownsBell).compactMap { $0.bell?.ringEnd.fd })
    }

    /// A shared open or adopted descriptor of `p` held by session `s` is closed.
    func releaseSharer(_ p: PortEntry, session s: Session) {
        guard let i = p.sharers.firstIndex(where: { $0.session == s.id }) else { return }
        let gone = p.sharers.remove(at: i)
        if gone.ownsBell, let bell = gone.bell {
            if let heir = p.sharers.firstIndex(where: { $0.bell?.ringEnd.fd == bell.ringEnd.fd }) {
                p.sharers[heir].ownsBell = true  // an adopter still waits on this line: it stays, rung
            } else {
                pushSharedNotify(p)  // the thread stops ringing it before it is closed
                bell.close()
            }
        }
        log.info("released shared \(p.fullName) (pid \(s.pid))")
        if !p.held { p.shareable = false }
        releaseIfUnused(p)
    }

    // MARK: adoption

    /// The open whose wake-up descriptor the caller holds as `fd`: a port or a pipe end, joined.
    /// The descriptor is named, not sent: the service reads its /proc/PID/fd link, which for a socket
    /// is "socket:[INODE]". Reading a link touches no file system (a stat would follow it, and a
    /// file on a FUSE mount could then hold this thread, and the service lock, for as long as its
    /// daemon likes); no descriptor is taken, so none has to be closed. The port must be the
    /// caller's (or the caller root): a process can exec a set-user-ID program after connecting,
    /// and that program's descriptors must not become the connection's.
    func adopt(fd: Int, session s: Session) throws -> (OpenInfo, [Int32]) {
        guard (0...Int(Int32.max)).contains(fd) else {
            throw ControlError(.invalidArgument, "adopt: fd \(fd) is not a descriptor number")
        }
        var link = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/\(s.pid)/fd/\(fd)", &link, link.count - 1)
        guard n > 0 else {
            throw ControlError(.invalidArgument, "adopt: descriptor \(fd) of pid \(s.pid): \(String(cString: strerror(errno)))")
        }
        let target = String(decoding: link.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard target.hasPrefix("socket:["), target.hasSuffix("]"), let inode = UInt64(target.dropFirst(8).dropLast()) else {
            throw ControlError(.invalidArgument, "adopt: descriptor \(fd) is not a Swale wake-up descriptor (not a socket)")
        }
        func same(_ e: BellEnd) -> Bool {
            var t = stat()
            return fstat(e.fd, &t) == 0 && UInt64(t.st_ino) == inode
        }
        for b in bridges.values {
            for p in b.ports.values where p.kind == .app && p.held {
                let line: BellEnd
                var bell: Doorbell? = nil  // a shared open's line (nil: the port's own)
                if same(p.notify.waitEnd) {
                    line = p.notify.waitEnd
                } else if let sh = p.sharers.first(where: { $0.bell.map { same($0.waitEnd) } ?? false }) {
                    bell = sh.bell
                    line = sh.bell!.waitEnd
                } else {
                    continue
                }
                try checkAdmits(b, s, Adopt.op)
                try checkOwner(p, s)
                guard p.sharers.count < Service.maxAdopters else {
                    throw ControlError(.limit, "port \(p.fullName) has \(p.sharers.count) holders besides its opener already")
                }
                p.sharers.append(Sharer(session: s.id, pid: s.pid, bell: bell, ownsBell: false))
                s.holdings.append(.sharedPort(p))
                severalSleepers(p.pool.csb(p.layout))
                log.info("port \(p.fullName) adopted by pid \(s.pid) uid \(s.uid) (a descriptor it was given)")
                return (portOpenInfo(p), [p.pool.region.fd, line.fd, p.kick.ringEnd.fd])
            }
        }
        for pipe in pipes.values where !pipe.ended {
            for role in [PipeRole.master, .slave] {
                let mine = role == .master ? pipe.masterNotify : pipe.slaveNotify
                guard same(mine.waitEnd) else { continue }
                if let b = bridges[pipe.parent.bridge] { try checkAdmits(b, s, Adopt.op) }
                try checkOwner(pipe.parent, s)
                let held =
                    role == .master
                    ? pipe.masterSession != nil || !pipe.masterAdopters.isEmpty
                    : pipe.slaveSession != nil || !pipe.slaveAdopters.isEmpty
                guard held else { throw ControlError(.notFound, "adopt: pipe end \(pipe.key) is no longer open") }
                let adopter = Sharer(session: s.id, pid: s.pid, bell: nil, ownsBell: false)
                if role == .master {
                    guard pipe.masterAdopters.count < Service.maxAdopters else { throw tooMany(pipe) }
                    pipe.masterAdopters.append(adopter)
                } else {
                    guard pipe.slaveAdopters.count < Service.maxAdopters else { throw tooMany(pipe) }
                    pipe.slaveAdopters.append(adopter)
                }
                s.holdings.append(.adoptedPipeEnd(pipe, role))
                severalSleepers(pipe.parent.pool.csb(role == .master ? pipe.master : pipe.slave))
                log.info("pipe \(pipe.key) \(role.rawValue) end adopted by pid \(s.pid) uid \(s.uid)")
                return pipeEndOpen(pipe, role, parentName: pipe.parent.fullName)
            }
        }
        throw ControlError(
            .notFound, "adopt: the descriptor sent is not the wake-up descriptor of an open Swale port or pipe end")
    }

    private func tooMany(_ pipe: PipeEntry) -> ControlError {
        ControlError(.limit, "pipe \(pipe.key) has \(Service.maxAdopters) adopters already")
    }

    /// An adopted descriptor of a pipe end is closed.
    func releaseAdopter(_ pipe: PipeEntry, _ role: PipeRole, session s: Session) {
        if role == .master {
            if let i = pipe.masterAdopters.firstIndex(where: { $0.session == s.id }) { pipe.masterAdopters.remove(at: i) }
        } else if let i = pipe.slaveAdopters.firstIndex(where: { $0.session == s.id }) {
            pipe.slaveAdopters.remove(at: i)
        }
        log.info("released adopted \(pipe.key) \(role.rawValue) end (pid \(s.pid))")
        if !pipe.ended && pipe.unheld { destroyPipe(pipe) }
    }

    // MARK: virtio-net headers

    /// netmap's PORT_HDR_SET on a port the caller holds (a port, not a pipe end or monitor).
    func setHeader(_ name: String, length: Int, session s: Session) throws -> PortEntry {
        let n = try PortName.parse(name)
        guard case .bridgePort(let bname, let pname) = n.base, n.pipe == nil, n.monitor == nil else {
            throw ControlError(.invalidArgument, "virtio-net headers are for application ports (BRIDGE:PORT), not '\(name)'")
        }
        guard length == 0 || length == VnetHeader.size else {
            throw ControlError(
                .invalidArgument,
                "virtio-net header length \(length): Swale rings carry the \(VnetHeader.size)-byte virtio_net_hdr_v1, or none (0)"
            )
        }
        // The entry this connection holds, and still the bridge's: after `bridge del --force` a
        // port of the same name may be someone else's.
        let held = s.holdings.lazy.compactMap { h -> PortEntry? in
            switch h {
            case .port(let p), .sharedPort(let p): return p.bridge == bname && p.name == pname ? p : nil
            default: return nil
            }
        }.first
        guard let p = held, let b = bridges[bname], b.ports[pname] === p, p.kind == .app, p.index >= 0 else {
            throw ControlError(.notFound, "\(name) is not an application port this connection holds open")
        }
        guard b.bridge.perform({ $0.engine.setVnetApp(p.index, length != 0) }) else {
            throw ControlError(.notFound, "\(name) is not in its bridge's forwarding table")
        }
        p.vnetHeader = length
        log.info("\(p.fullName): virtio-net headers \(length == 0 ? "off" : "of \(length) bytes") (pid \(s.pid))")
        return p
    }

    /// What an opener of port `p` is told.
    func portOpenInfo(_ p: PortEntry) -> OpenInfo {
        OpenInfo(
            name: p.fullName, kind: "port", bufSize: p.pool.bufSize, regionSize: p.pool.region.mappedSize,
            nifpOffset: p.layout.nifpOffset, txRing: p.layout.txRingOffsets[0], rxRing: p.layout.rxRingOffsets[0],
            slots: p.layout.slotsPerRing)
    }

    // MARK: how the holders of a control block sleep (swale_atomics.h)

    /// A new holder of a port or pipe end has not said yet how it sleeps: until its library does,
    /// the other side fences before it looks at its wake-up flags (a previous holder's word must
    /// not outlive it: the new one may be a program that sleeps after a plain fence). The
    /// membarrier makes every registered publisher see the 0 before the reply reaches the holder.
    func forgetSleeper(_ csb: UnsafeMutablePointer<swale_csb>) {
        swale_store_relaxed_u16(&csb.pointee.app_membarrier, 0)
        swale_barrier_heavy()
    }

    /// A second holder joins a control block (a shared open, an adopted descriptor): how each of
    /// them sleeps is not known here, so publishers fence toward it from now on (swale_atomics.h).
    func severalSleepers(_ csb: UnsafeMutablePointer<swale_csb>) {
        swale_store_relaxed_u16(&csb.pointee.app_membarrier, UInt16(SWALE_SLEEPERS_SEVERAL))
        swale_barrier_heavy()
    }
}
