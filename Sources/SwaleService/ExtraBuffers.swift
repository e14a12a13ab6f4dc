/*
 * Extra buffers — spare buffers an application asks for when it opens a port or pipe end
 * (netmap's nr_extra_bufs): for frames it keeps aside, or swaps into and out of its rings.
 *
 * They come from the region of what was opened and are handed over netmap's way: the interface
 * descriptor's ni_bufs_head names the first, and the first four bytes of each name the next (0
 * ends the list). The application may swap them with ring slots' buffers; when it closes, the list
 * it leaves is taken back: at most as many entries as were granted, each checked (inside the region,
 * not a block of a descriptor or ring, not named by any live ring slot of the region, allocated, not
 * seen twice: a damaged or hostile list can neither free a block in use nor loop), and ni_bufs_head
 * is cleared. A grant the budget or the region cannot cover is none, as netmap grants fewer. What cannot be taken back is logged and stays allocated until the region goes. The
 * grant is charged to the caller's memory budget like rings are, and counted in `status` (a
 * region's accounted buffers), so leaks show.
 */
import CSwaleABI
import SwaleNames
import SwaleProtocol
import SwaleRings

extension Service {
    static let maxExtraBuffers = 4096

    /// Gives the interface the session just opened `count` spare buffers; returns how many.
    func grantExtraBuffers(_ count: Int, for info: OpenInfo, session s: Session) throws -> Int {
        guard (0...Service.maxExtraBuffers).contains(count) else {
            throw ControlError(.invalidArgument, "extra buffers \(count) out of range (0...\(Service.maxExtraBuffers))")
        }
        guard let held = s.holdings.last else { return 0 }
        let pool: MemoryPool
        let layout: InterfaceLayout
        let owner: PortEntry
        switch held {
        case .port(let p):
            guard p.monitor == nil else { return 0 }  // a monitor's buffers are copies; none to spare
            (pool, layout, owner) = (p.pool, p.layout, p)
        case .pipeEnd(let pipe, let role):
            (pool, layout, owner) = (pipe.parent.pool, role == .master ? pipe.master : pipe.slave, pipe.parent)
        case .sharedPort, .adoptedPipeEnd:
            return 0  // the interface's one list belongs to its first opener
        }
        // As netmap does, fewer (none) rather than a failed open when memory or the budget is short.
        do { try checkMemory(s, adding: count * pool.bufSize) } catch {
            log.notice("no extra buffers for \(info.name) (pid \(s.pid)): \(error)")
            return 0
        }
        let limitBefore = pool.region.blockLimit
        var head: UInt32 = 0
        var granted = 0
        // Built back to front, so the list reads in allocation order.
        var indices: [UInt32] = []
        do {
            for _ in 0..<count { indices.append(try pool.allocateBuffer()) }
        } catch {
            indices.forEach { pool.freeBuffer($0) }
            log.notice("no extra buffers for \(info.name) (pid \(s.pid)): no room in \(pool.name): \(error)")
            return 0
        }
        for i in indices.reversed() {
            pool.region.buffer(i).storeBytes(of: head, as: UInt32.self)
            head = i
            granted += 1
        }
        nifp(pool, layout).pointee.ni_bufs_head = head
        if pool.region.blockLimit != limitBefore, let b = bridges[owner.bridge], owner.index >= 0 {
            b.bridge.updateBufferLimit(owner.index, limit: pool.region.blockLimit)
        }
        switch held {
        case .port(let p): p.extraBuffers = granted
        case .pipeEnd(let pipe, let role):
            if role == .master { pipe.masterExtra = granted } else { pipe.slaveExtra = granted }
        case .sharedPort, .adoptedPipeEnd: break
        }
        log.info("\(granted) extra buffers for \(info.name) (pid \(s.pid))")
        return granted
    }

    func reclaimExtraBuffers(of p: PortEntry) {
        guard p.extraBuffers > 0 else { return }
        reclaim(p.extraBuffers, pool: p.pool, layout: p.layout, region: p, what: p.fullName)
        p.extraBuffers = 0
    }

    func reclaimExtraBuffers(of pipe: PipeEntry, _ role: PipeRole) {
        let granted = role == .master ? pipe.masterExtra : pipe.slaveExtra
        guard granted > 0 else { return }
        reclaim(
            granted, pool: pipe.parent.pool, layout: role == .master ? pipe.master : pipe.slave, region: pipe.parent,
            what: "\(pipe.key) \(role.rawValue)")
        if role == .master { pipe.masterExtra = 0 } else { pipe.slaveExtra = 0 }
    }

    /// Blocks of `owner`'s region that no list may give back: every interface's descriptor and ring
    /// run, and every buffer a live ring slot names (a client may list them to free what is in use).
    private func inUse(region owner: PortEntry) -> (runs: [Range<UInt32>], slots: Set<UInt32>) {
        let layouts = [owner.layout] + pipes.values.filter { $0.parent === owner }.flatMap { [$0.master, $0.slave] }
        var slots = Set<UInt32>()
        for l in layouts {
            for off in l.txRingOffsets + l.rxRingOffsets {
                let ring = owner.pool.ring(at: off)
                for i in 0..<Int(ring.numSlots) { slots.insert(ring.slots[i].buf_idx) }
            }
        }
        return (layouts.map { $0.metaStart..<($0.metaStart + UInt32($0.metaBlocks)) }, slots)
    }

    /// Frees the list at ni_bufs_head: at most `granted` entries, each checked once (not part of a
    /// descriptor or ring, not in a live ring slot, allocated, not seen before).
    private func reclaim(_ granted: Int, pool: MemoryPool, layout: InterfaceLayout, region owner: PortEntry, what: String) {
        let ifp = nifp(pool, layout)
        var index = ifp.pointee.ni_bufs_head
        ifp.pointee.ni_bufs_head = 0
        var freed = 0
        let limit = pool.region.blockLimit
        let used = inUse(region: owner)
        while index != 0 && freed < granted && index < limit {
            if used.slots.contains(index) || used.runs.contains(where: { $0.contains(index) }) { break }
            let next = pool.region.buffer(index).load(as: UInt32.self)  // read before the buffer is free
            guard pool.freeBuffer(index) else { break }  // not allocated, or seen already: a damaged list
            freed += 1
            index = next
        }
        if freed < granted {
            log.warning(
                "\(what): \(granted - freed) of \(granted) extra buffers were not in its list when it closed (kept until the region goes)"
            )
        }
    }

    private func nifp(_ pool: MemoryPool, _ layout: InterfaceLayout) -> UnsafeMutablePointer<swale_if> {
        (pool.region.base + layout.nifpOffset).assumingMemoryBound(to: swale_if.self)
    }
}
