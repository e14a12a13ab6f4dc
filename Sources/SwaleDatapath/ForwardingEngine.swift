/*
 * ForwardingEngine — one switch's forwarding state and netmap VALE's nm_bdg_flush, in user space,
 * with no thread: `pass(now:)` does one forwarding pass over the ports and returns. The bridge
 * (SwaleSwitch) calls it in a loop on its thread; the tests call it on theirs.
 *
 * State: a flat array of PortState (pointers and indices only), the backends of the ports that
 * have one (kernel backends, in-memory test ports), the learning table, and scratch for one batch
 * (the forwarding table, the slot snapshots, the destination list, the offload scratch area), all
 * allocated once in init. Ports are added and removed between passes by whoever owns the engine
 * (the bridge's thread, through its mailbox): the engine itself takes no locks.
 *
 * Once a second (when `now` changes) a pass also does the housekeeping: it ages a slice of the
 * learning table and re-reads the MTU of each port that has a backend (an `ip link set X mtu N`
 * takes effect within a second). Then the pass proper:
 *   1. Kernel ports pull what the kernel has into their tx rings (one adapter call per port).
 *   2. For each port with submitted tx slots, take a batch (up to `batch` slots, whole frames only):
 *      validate every slot (buffer index, length), drop runts and oversize frames (counted), apply
 *      the bridge rules (BridgeRules.swift: bad sources, VLAN ingress, static entries, MAC limits,
 *      locked ports, reserved groups), learn the source MAC, look up the destination: known unicast
 *      goes to its port (dropped if that is the source: no hairpin); broadcast, multicast and
 *      unknown unicast flood to every other port (of the frame's VLAN; isolated ports not to each
 *      other). The batch is recorded in a forwarding table (ft) of (first slot, frags, length,
 *      destination, VLAN) — pointers and indices, nothing allocated.
 *   3. For each destination touched by the batch: read its free room once, copy the frames it gets
 *      (resegmenting into its buffers; frames span slots with NS_MOREFRAG), publish its tail once and
 *      wake it once. Frames that do not fit are dropped and counted against that port (VALE drops
 *      silently; we count). A destination ring holding a buffer index outside its region (an
 *      application scribbled on it) is reset, the frame counted as a bad slot, and that port gets
 *      nothing more in this batch; what was already copied for it is published.
 *   4. The source's tx slots are released at once (tail = hwcur - 1), and a waiting sender is woken.
 *      A kernel port with nothing queued is not copied into: its frames go to the kernel straight
 *      from the source's slots (direct transmit, one adapter call per destination per batch); only
 *      what the kernel cannot take at once, or frames needing software offload, are copied.
 *   5. Kernel ports with frames queued in their rx ring hand them to the kernel (one adapter call
 *      per port).
 *
 * With the kernel fast path (Fastpath.swift), what a batch learned (a new or moved station) is
 * written to the kernel's map before step 3 delivers it, so the replies it causes already find the
 * new path; the check costs one branch per batch when nothing changed.
 *
 * Frames that carry offload metadata (a virtio-net header, SWALE_NS_VNET_HDR) pass unchanged to
 * ports that accept it; for the others the checksum is completed and GSO frames are segmented in
 * software (Offload.swift) first.
 */
import CSwaleABI
import CSwaleSys
import Glibc
import SwaleRings

/// What a forwarding engine is sized for and how it forwards.
public struct EngineConfig: Sendable {
    public var maxPorts = 256
    public var batch = 1024
    public var fdbCapacity = 1 << 20
    public var agingSeconds: UInt32 = 300
    /// Largest frame without offload metadata (multi-slot jumbo frames).
    public var maxFrame = 9216
    /// Frames for a kernel port with nothing queued go to the kernel straight from the source's
    /// slots (no copy into the port's rx ring). Off: always copy first (for comparison).
    public var directTransmit = true
    /// Flow control between applications (0: off, netmap's VALE behaviour): a frame from an
    /// application port whose application destination's ring is full waits at the head of its
    /// sender's ring, for at most this many microseconds, instead of being dropped. The sender then
    /// finds its ring full and waits too, which leaves the cores to the receiver and the switch (three
    /// busy parties on two cores). After the wait the frame is dropped as without it, so a receiver
    /// that stopped reading costs its senders at most this long per batch.
    public var flowControlMicros = 0
    public init() {}
}

public final class ForwardingEngine {
    public let config: EngineConfig
    public let table: LearningTable
    let ports: UnsafeMutablePointer<PortState>
    @exclusivity(unchecked) var backends: [PortBackend?]
    /// Highest active index + 1.
    @exclusivity(unchecked) public private(set) var portCount = 0
    @exclusivity(unchecked) public internal(set) var activeCount = 0
    /// Active ports with a backend (TAP, veth, attached interfaces), monitors not counted.
    public var kernelPortCount: Int {
        (0..<portCount).reduce(0) { $0 + (ports[$1].active && ports[$1].hasBackend && !ports[$1].isMonitor ? 1 : 0) }
    }

    // Counters (the thread that runs passes writes them).
    @exclusivity(unchecked) public internal(set) var flooded: UInt64 = 0
    @exclusivity(unchecked) public internal(set) var batches: UInt64 = 0
    /// Frames forwarded by runs of one flow (forwardRun) rather than frame by frame.
    @exclusivity(unchecked) public internal(set) var runFrames: UInt64 = 0
    /// Batches by slots taken: bucket k counts batches of at most 2^k slots (k = 0...10), the last
    /// bucket those of more than 1024; `batchSlots` is the total (a Prometheus histogram's parts).
    public let batchSizes: UnsafeMutablePointer<UInt64>
    public static let batchSizeBuckets = 12
    @exclusivity(unchecked) public internal(set) var batchSlots: UInt64 = 0

    // Scratch for one batch, allocated once.
    let ftSlot: UnsafeMutablePointer<UInt32>
    let ftFrags: UnsafeMutablePointer<UInt16>
    let ftLen: UnsafeMutablePointer<UInt32>
    let ftDst: UnsafeMutablePointer<UInt16>
    // VLAN filtering only: the frame's VLAN, the tag it leaves with where tagged, and how the
    // source frame is tagged (BridgeRules: untaggedFrame, taggedFrame, retagFrame).
    let ftVid: UnsafeMutablePointer<UInt16>
    let ftTci: UnsafeMutablePointer<UInt16>
    let ftTag: UnsafeMutablePointer<UInt8>
    /// Per port, 64 words of VLAN membership then 64 of "leaves untagged" (BridgeRules.swift).
    let vlanBits: UnsafeMutablePointer<UInt64>
    let vlanBitsBytes: Int
    /// 802.1Q filtering: frames are classified into VLANs at ingress and tagged at egress.
    @exclusivity(unchecked) public var vlanFiltering = false {
        didSet { refreshFastpathPorts() }
    }
    /// Which of the reserved groups 01:80:C2:00:00:0X are forwarded (bit X), like Linux's
    /// group_fwd_mask. 01:80:C2:00:00:00 (STP BPDUs) is always forwarded: Swale runs no STP.
    @exclusivity(unchecked) public var groupForwardMask: UInt16 = 0
    // The current batch: rules that make egress depend on the frame (VLANs, an isolated source).
    @exclusivity(unchecked) var batchScoped = false
    @exclusivity(unchecked) var batchIsolated = false
    /// The source's split-horizon group (0: none).
    @exclusivity(unchecked) var batchHorizon: UInt8 = 0
    // Each slot of the batch copied once out of shared memory (a client may change its ring while
    // we work: everything after validation reads these copies, never the ring again).
    let snapIdx: UnsafeMutablePointer<UInt32>
    let snapLen: UnsafeMutablePointer<UInt16>
    let snapFlags: UnsafeMutablePointer<UInt16>
    static let maxFrags = 64
    let dstList: UnsafeMutablePointer<UInt16>
    let dstMark: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) var dstGeneration: UInt64 = 0
    /// Flow control: the room each application destination of this batch has left (valid where
    /// roomMark is the batch's generation).
    let roomLeft: UnsafeMutablePointer<UInt32>
    /// The last pass left a frame waiting for room (flow control): the thread should give its core
    /// to the receiver rather than poll or sleep.
    @exclusivity(unchecked) public private(set) var waitingForRoom = false
    /// The last pass dropped frames at an application's full rx ring: its reader is behind, and if
    /// it shares this thread's core it catches up only when the thread lets it run.
    @exclusivity(unchecked) public private(set) var overranReader = false
    /// The last pass found an application's rx ring full (dropping, or holding a sender back
    /// under flow control) whose reader is alive (`noteFull`): a reader that is behind. A
    /// forwarding thread running above its readers' priority must step down to let it catch up
    /// (Bridge); one that never reads does not count.
    @exclusivity(unchecked) public private(set) var liveReaderBehind = false
    let roomMark: UnsafeMutablePointer<UInt64>
    let scratch: UnsafeMutableRawPointer
    static let scratchBytes = 1 << 17
    static let broadcast: UInt16 = .max - 1
    /// How many slots ahead of the frame in hand the gather loop prefetches headers.
    static let prefetchAhead: UInt32 = 6
    // Direct transmit: the frames of a batch for one kernel port, and their forwarding-table entries.
    @exclusivity(unchecked) var direct = OutFrames()
    let directEntry: UnsafeMutablePointer<Int32>
    @exclusivity(unchecked) var lastHousekeeping: UInt32 = 0
    /// Per port, the indices of up to `maxMonitors` monitors watching it (Monitors.swift).
    let monitorTable: UnsafeMutablePointer<Int16>
    // The kernel fast path (Fastpath.swift): its maps, and per port the host end's ifindex (0: not
    // attached), how frames reach it (fastpathPeer, fastpathHost), the flags last written; the
    // mirrored addresses.
    @exclusivity(unchecked) public internal(set) var fastpath: FastpathMaps?
    @exclusivity(unchecked) var fpIfindex: [Int32]
    @exclusivity(unchecked) var fpPeer: [UInt32]
    @exclusivity(unchecked) var fpFlags: [UInt32]
    @exclusivity(unchecked) var fpMirrored: [UInt64: FastpathMirror] = [:]
    /// `now` of the last pass (the table's clock, for work done between passes); 0 before the first.
    @exclusivity(unchecked) var lastPassNow: UInt32 = 0

    public init(config: EngineConfig = EngineConfig()) throws {
        self.config = config
        _ = swale_barrier_register()  // the wake-up checks after publishing may skip their fence
        table = try LearningTable(capacity: config.fdbCapacity, agingSeconds: config.agingSeconds)
        ports = .allocate(capacity: config.maxPorts)
        backends = Array(repeating: nil, count: config.maxPorts)
        let maxFt = config.batch + 64
        ftSlot = .allocate(capacity: maxFt)
        ftFrags = .allocate(capacity: maxFt)
        ftLen = .allocate(capacity: maxFt)
        ftDst = .allocate(capacity: maxFt)
        ftVid = .allocate(capacity: maxFt)
        ftTci = .allocate(capacity: maxFt)
        ftTag = .allocate(capacity: maxFt)
        // Lazily committed zero pages: a port's 1 KiB of bitmaps costs memory once it exists.
        vlanBitsBytes = (config.maxPorts * ForwardingEngine.vlanWordsPerPort * 8 + 4095) & ~4095
        guard let raw = mmap(nil, vlanBitsBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            raw != MAP_FAILED
        else { throw SystemError("mmap", detail: "VLAN bitmaps of \(vlanBitsBytes) bytes") }
        vlanBits = raw.bindMemory(to: UInt64.self, capacity: vlanBitsBytes / 8)
        snapIdx = .allocate(capacity: config.batch + 2 * Self.maxFrags)
        snapLen = .allocate(capacity: config.batch + 2 * Self.maxFrags)
        snapFlags = .allocate(capacity: config.batch + 2 * Self.maxFrags)
        dstList = .allocate(capacity: config.maxPorts)
        dstMark = .allocate(capacity: config.maxPorts)
        dstMark.initialize(repeating: 0, count: config.maxPorts)
        roomLeft = .allocate(capacity: config.maxPorts)
        roomLeft.initialize(repeating: 0, count: config.maxPorts)
        roomMark = .allocate(capacity: config.maxPorts)
        roomMark.initialize(repeating: 0, count: config.maxPorts)
        scratch = .allocate(byteCount: Self.scratchBytes, alignment: 64)
        directEntry = .allocate(capacity: OutFrames.frameCapacity)
        directEntry.initialize(repeating: 0, count: OutFrames.frameCapacity)
        monitorTable = .allocate(capacity: config.maxPorts * ForwardingEngine.maxMonitors)
        monitorTable.initialize(repeating: -1, count: config.maxPorts * ForwardingEngine.maxMonitors)
        batchSizes = .allocate(capacity: ForwardingEngine.batchSizeBuckets)
        batchSizes.initialize(repeating: 0, count: ForwardingEngine.batchSizeBuckets)
        fpIfindex = Array(repeating: 0, count: config.maxPorts)
        fpPeer = Array(repeating: 0, count: config.maxPorts)
        fpFlags = Array(repeating: 0, count: config.maxPorts)
    }

    deinit {
        ports.deallocate()
        ftSlot.deallocate(); ftFrags.deallocate(); ftLen.deallocate(); ftDst.deallocate()
        ftVid.deallocate(); ftTci.deallocate(); ftTag.deallocate()
        munmap(UnsafeMutableRawPointer(vlanBits), vlanBitsBytes)
        snapIdx.deallocate(); snapLen.deallocate(); snapFlags.deallocate()
        dstList.deallocate(); dstMark.deallocate(); scratch.deallocate()
        roomLeft.deallocate(); roomMark.deallocate()
        directEntry.deallocate()
        batchSizes.deallocate()
        monitorTable.deallocate()
    }

    // MARK: ports (between passes)

    /// Installs a port whose rings are the first tx and rx ring of `layout` in `pool`. A port with
    /// a backend is driven by it from the passes; one without is an application's (woken through
    /// the control block and `notifyFD`). `mtu` defaults to the backend's, else to the frame
    /// limit; a backend's MTU is re-read every second by the housekeeping and wins over `mtu`.
    /// Returns the port's index, or nil when the engine is full.
    public func addPort(
        pool: MemoryPool, layout: InterfaceLayout, kickFD: Int32, notifyFD: Int32,
        backend: PortBackend?, mtu: Int? = nil
    ) -> Int? {
        addPort(pool: pool, layout: layout, kickFD: kickFD, notifyFD: notifyFD, backend: backend, mtu: mtu, monitor: false)
    }

    func addPort(
        pool: MemoryPool, layout: InterfaceLayout, kickFD: Int32, notifyFD: Int32, backend: PortBackend?, mtu: Int? = nil,
        monitor: Bool
    ) -> Int? {
        // Never read past initialized slots: a free index is below portCount and inactive, or portCount.
        guard let i = (0..<config.maxPorts).first(where: { $0 >= portCount || !ports[$0].active }) else { return nil }
        var state = PortState(
            tx: KRing(pool.ring(at: layout.txRingOffsets[0]), isTx: true),
            rx: KRing(pool.ring(at: layout.rxRingOffsets[0]), isTx: false),
            region: pool.region, csb: backend == nil ? pool.csb(layout) : nil,
            kickFD: backend == nil ? kickFD : -1, notifyFD: backend == nil ? notifyFD : -1,
            hasBackend: backend != nil, mtu: mtu ?? backend?.mtu ?? (config.maxFrame - 14),
            acceptsVnet: backend?.acceptsVnetHeader ?? false)
        state.active = true
        // The thread that runs this engine (Bridge) sleeps the membarrier way where it works: the
        // application may then skip its fence before it looks at switch_sleeping (swale_atomics.h).
        if let c = state.csb { swale_store_relaxed_u16(&c.pointee.switch_membarrier, swale_barrier_sleeper() != 0 ? 1 : 0) }
        (ports + i).initialize(to: state)
        backends[i] = backend
        activeCount += 1
        portCount = max(portCount, i + 1)
        resetVlans(port: i)
        if !monitor { table.events.record(.portAdded, port: UInt16(i), time: ForwardingEngine.now()) }
        return i
    }

    /// Removes a port: it stops forwarding and its learning-table entries are flushed. Returns its
    /// final counters, or nil if there is no such port.
    @discardableResult
    public func removePort(_ index: Int) -> PortStats? {
        guard index < portCount, ports[index].active else { return nil }
        detachFastpath(port: index)
        detachMonitors(index)
        if !ports[index].isMonitor { table.events.record(.portRemoved, port: UInt16(index), time: ForwardingEngine.now()) }
        ports[index].active = false
        if !ports[index].isMonitor { activeCount -= 1 }
        backends[index] = nil
        _ = table.flush(port: UInt16(index), includingStatic: true)
        table.setLimit(port: index, 0)
        while portCount > 0 && !ports[portCount - 1].active { portCount -= 1 }
        syncFastpath()
        refreshFastpathPorts()
        return ports[index].stats
    }

    /// A copy of port `index`'s state (nil if there is no such port).
    public func port(_ index: Int) -> PortState? {
        guard index >= 0, index < portCount, ports[index].active else { return nil }
        return ports[index]
    }

    /// The backend of port `index`, if it has one.
    public func backend(_ index: Int) -> PortBackend? {
        index >= 0 && index < portCount && ports[index].active ? backends[index] : nil
    }

    public func updateBufferLimit(_ index: Int, limit: UInt32) {
        if index < portCount { ports[index].bufLimit = limit }
    }

    /// Virtio-net headers on an application port (see PortState.vnetApp); false if it is not one.
    public func setVnetApp(_ index: Int, _ on: Bool) -> Bool {
        guard index < portCount, ports[index].active, !ports[index].hasBackend, !ports[index].isMonitor else { return false }
        ports[index].vnetApp = on
        ports[index].acceptsVnet = on
        return true
    }

    /// The wake-up lines of a port's other holders (at most `PortState.maxSharedNotify`), rung with
    /// its own. Returns false if there are too many.
    public func setSharedNotify(_ index: Int, _ fds: [Int32]) -> Bool {
        guard index < portCount, fds.count <= PortState.maxSharedNotify else { return false }
        func at(_ i: Int) -> Int32 { i < fds.count ? fds[i] : -1 }
        ports[index].sharedNotify = (at(0), at(1), at(2))
        return true
    }

    // MARK: passes

    /// One forwarding pass over every port (and, once a second, the housekeeping); returns the
    /// frames moved. `now` is in seconds of a monotonic clock (`ForwardingEngine.now()`).
    @inline(never)
    public func pass(now: UInt32) -> Int {
        lastPassNow = now
        if now != lastHousekeeping {
            lastHousekeeping = now
            housekeeping(now: now)
        }
        waitingForRoom = false
        overranReader = false
        liveReaderBehind = false
        return forwardPass(now: now)
    }

    /// Ages a slice of the learning table (a whole 1M-entry sweep would stall forwarding; lookups
    /// never return expired entries anyway, this only frees their slots) and re-reads the MTU of
    /// every port with a backend.
    func housekeeping(now: UInt32) {
        if fastpath != nil {
            refreshFastpathSources(now: now)
            refreshFastpathPorts()
        }
        _ = table.expire(now: now, buckets: max(1024, table.bucketCount / 8))
        for i in 0..<portCount where ports[i].active {
            if let a = backends[i], let m = a.currentMTU() { ports[i].mtu = m }
        }
    }

    /// Whether a port has work a pass would do (checked after asking applications to kick us).
    public func anyPending() -> Bool {
        for i in 0..<portCount where ports[i].active && !ports[i].isMonitor {
            if ports[i].needsTransmit { return true }
            guard !ports[i].hasBackend else { continue }
            let h = ports[i].tx.ptr.loadHead()
            if h != ports[i].tx.hwcur && h != ports[i].stalledHead { return true }
        }
        return false
    }

    /// Sets or clears "switch sleeping" in every application port's control block: while set,
    /// applications kick the port's doorbell after publishing tx.
    public func setSleeping(_ on: Bool) {
        let v: UInt32 = on ? 1 : 0
        for i in 0..<portCount where ports[i].active {
            if let c = ports[i].csb { swale_store_relaxed(&c.pointee.switch_sleeping, v) }
        }
    }

    /// Microseconds of a monotonic clock (flow control's waits).
    static func micros() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec &* 1_000_000 &+ ts.tv_nsec / 1000
    }

    /// Flow control: takes room for a frame of `bytes` in application port d's rx ring from what the
    /// batch has left of it (read once per batch); true for kernel ports, which are never waited for.
    @inline(__always)
    func roomFor(_ bytes: Int, vnet: Bool, at d: Int, generation gen: UInt64) -> Bool {
        let dst = ports + d
        if dst.pointee.hasBackend || dst.pointee.isMonitor { return true }
        if roomMark[d] != gen {
            roomMark[d] = gen
            roomLeft[d] = dst.pointee.rx.rxRoom()
        }
        // As `deliver` counts a plain frame. Not counted: a VLAN tag pushed on the way (+4 bytes),
        // GSO frames cut for a port without headers, floods: what they lack is dropped at delivery.
        let need = dst.pointee.slots(for: bytes, frameHasVnet: vnet)
        guard roomLeft[d] >= need else { return false }
        roomLeft[d] &-= need
        return true
    }

    /// An application port's rx ring was found full: is its reader alive (it moved since the last
    /// time, or did so within `deadReaderMillis`)? Called once per destination and batch; nothing
    /// to do once this pass found one.
    @inline(__always)
    func noteFull(_ dst: UnsafeMutablePointer<PortState>) {
        if liveReaderBehind { return }
        let t = ForwardingEngine.coarseMillis()
        let at = dst.pointee.rx.hwcur
        if at != dst.pointee.fullAt {
            dst.pointee.fullAt = at
            dst.pointee.fullMovedAt = t
        }
        if t &- dst.pointee.fullMovedAt < ForwardingEngine.deadReaderMillis { liveReaderBehind = true }
    }

    /// A reader whose full ring has not moved for this long is taken as not reading (stopped, hung).
    public static let deadReaderMillis = 100

    /// Monotonic milliseconds at the clock tick's resolution (a few nanoseconds a read).
    @inline(__always)
    public static func coarseMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return ts.tv_sec &* 1000 &+ ts.tv_nsec / 1_000_000
    }

    /// Monotonic seconds (coarse clock: one read costs a few nanoseconds).
    @inline(__always)
    public static func now() -> UInt32 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return UInt32(truncatingIfNeeded: ts.tv_sec)
    }
}

extension ForwardingEngine {
    /// One pass over all ports; returns frames moved.
    @inline(never)
    func forwardPass(now: UInt32) -> Int {
        var work = 0
        let count = portCount
        for i in 0..<count where ports[i].active && ports[i].hasBackend && !ports[i].isMonitor {
            let p = ports + i
            if let a = backends[i] {
                let tx = UserRing(
                    kring: p.pointee.tx, base: p.pointee.bufBase, bufSize: p.pointee.bufSize, limit: p.pointee.bufLimit)
                work &+= a.receive(into: tx)
            }
        }
        for i in 0..<count where ports[i].active && !ports[i].isMonitor {
            work &+= forwardBatch(source: i, now: now)
        }
        for i in 0..<count where ports[i].active && ports[i].needsTransmit {
            let p = ports + i
            p.pointee.needsTransmit = false
            if let a = backends[i] {
                let rx = UserRing(
                    kring: p.pointee.rx, base: p.pointee.bufBase, bufSize: p.pointee.bufSize, limit: p.pointee.bufLimit)
                _ = a.transmit(from: rx)
                // The kernel said "later" (EAGAIN): keep them and try again next pass.
                if rx.space() > 0 { p.pointee.needsTransmit = true }
            }
        }
        syncFastpath()
        return work
    }

    @inline(__always)
    private func forwardBatch(source s: Int, now: UInt32) -> Int {
        let src = ports + s
        let pending = src.pointee.tx.pendingTx()
        if pending == 0 { return 0 }
        batches &+= 1
        let n = src.pointee.tx.n
        let limit = src.pointee.bufLimit
        let bufSize = src.pointee.bufSize
        let base = src.pointee.bufBase
        let maxSlots = UInt32(config.batch)
        let maxFrags = min((65536 + VnetHeader.size + bufSize - 1) / bufSize, ForwardingEngine.maxFrags)
        var snap = 0

        var consumed: UInt32 = 0
        var ft = 0
        var anyFlood = false
        dstGeneration &+= 1
        let gen = dstGeneration
        var ndst = 0
        var cursor = src.pointee.tx.hwcur
        var lastSrc = UInt64.max
        var lastSrcDrop = Drop.none
        var lastDstMac = UInt64.max
        var lastDstPort = ForwardingEngine.broadcast
        let vf = vlanFiltering
        batchIsolated = src.pointee.isolated
        batchHorizon = src.pointee.horizon
        let scoped = vf || batchIsolated || batchHorizon != 0
        batchScoped = scoped
        var flowControl = config.flowControlMicros > 0 && !src.pointee.hasBackend
        var waitForRoom = false
        if !scoped && src.pointee.monitors == 0 && !src.pointee.vnetApp {
            consumed = forwardRun(source: s, count: min(pending, maxSlots), now: now)
            cursor = RingMath.add(cursor, consumed, n)
        }

        while consumed < pending && consumed < maxSlots {
            // Gather one frame: [cursor, cursor + frags).
            var frags: UInt32 = 0
            var total = 0
            var bad = false
            var j = cursor
            var complete = false
            // The headers of frames a few slots ahead are on their way while this one is handled:
            // each was just written by the sender's core, and reading it is this loop's main stall.
            if consumed == 0 {
                var k: UInt32 = 0
                while k < pending && k <= ForwardingEngine.prefetchAhead {
                    let ahead = src.pointee.tx.slot(RingMath.add(cursor, k, n)).pointee.buf_idx
                    if ahead < limit { swale_prefetch(base + Int(ahead) &* bufSize) }
                    k &+= 1
                }
            } else if consumed &+ ForwardingEngine.prefetchAhead < pending {
                let ahead = src.pointee.tx.slot(RingMath.add(cursor, ForwardingEngine.prefetchAhead, n)).pointee.buf_idx
                if ahead < limit { swale_prefetch(base + Int(ahead) &* bufSize) }
            }
            while consumed &+ frags < pending {
                let sv = src.pointee.tx.slot(j).pointee  // one read of the shared slot
                let len = Int(sv.len)
                if sv.buf_idx < BlockAllocator.reserved || sv.buf_idx >= limit || len > bufSize { bad = true }
                if Int(frags) < maxFrags {
                    snapIdx[snap &+ Int(frags)] = sv.buf_idx
                    snapLen[snap &+ Int(frags)] = sv.len
                    snapFlags[snap &+ Int(frags)] = sv.flags
                }
                total &+= len
                frags &+= 1
                j = RingMath.next(j, n)
                if sv.flags & SlotFlags.moreFrag == 0 { complete = true; break }
            }
            if !complete {
                // The rest of the frame is not submitted yet: leave it for the next pass,
                // unless it can never fit (a ring full of MOREFRAG), which is dropped.
                if frags < n &- 1 || consumed > 0 {
                    src.pointee.stalledHead = RingMath.add(src.pointee.tx.hwcur, pending, n)
                    break
                }
                src.pointee.stats.dropTooLong &+= 1
                consumed &+= frags
                cursor = j
                break
            }
            if src.pointee.vnetApp { snapFlags[snap] |= SlotFlags.vnetHdr }  // every frame carries one
            let firstFlags = snapFlags[snap]
            let hasVnet = firstFlags & SlotFlags.vnetHdr != 0
            let hdr = hasVnet ? VnetHeader.size : 0
            if bad {
                src.pointee.stats.dropBadSlot &+= 1
            } else if Int(frags) > maxFrags || total &- hdr > (hasVnet ? 65535 + 14 : config.maxFrame) {
                src.pointee.stats.dropTooLong &+= 1
            } else if total &- hdr < 14 || Int(snapLen[snap]) < hdr &+ 14 {
                src.pointee.stats.dropTooShort &+= 1
            } else {
                frame: do {
                    let buf = base + Int(snapIdx[snap]) &* bufSize + hdr
                    let dstMac = LearningTable.mac(fromFrame: buf, offset: 0)
                    let srcMac = LearningTable.mac(fromFrame: buf, offset: 6)
                    // The frame's VLAN as the high bits of its (VLAN, MAC) addresses; 0 without filtering.
                    var vlanBits: UInt64 = 0
                    if vf {
                        // 802.1Q ingress: the frame's VLAN, from its tag or the port's PVID.
                        let c = classify(buf, length: total &- hdr, firstSlot: Int(snapLen[snap]) &- hdr, port: s)
                        guard c.vid != 0 else { countDrop(.vlan, src); break frame }
                        vlanBits = UInt64(c.vid) &<< 48
                        ftVid[ft] = c.vid
                        ftTci[ft] = c.tci
                        ftTag[ft] = c.tag
                    }
                    // A batch is usually one flow: check and learn once per distinct (VLAN, source).
                    let srcKey = srcMac | vlanBits
                    if srcKey != lastSrc {
                        lastSrc = srcKey
                        lastSrcDrop = admitSource(srcKey, port: s, learn: firstFlags & SlotFlags.noLearn == 0, now: now)
                        lastDstMac = UInt64.max  // a learn may have moved the cached destination
                    }
                    if lastSrcDrop != .none { countDrop(lastSrcDrop, src); break frame }
                    var d = ForwardingEngine.broadcast
                    let dstKey = dstMac | vlanBits
                    if dstKey == lastDstMac {
                        d = lastDstPort
                    } else if !LearningTable.isGroup(dstMac) {
                        let found = table.lookup(address: dstKey, now: now)
                        if found != LearningTable.none { d = found }
                        lastDstMac = dstKey
                        lastDstPort = d
                    } else if isReservedGroup(dstMac) {
                        countDrop(.reserved, src); break frame
                    }
                    if d != ForwardingEngine.broadcast && (Int(d) >= portCount || !ports[Int(d)].active) {
                        d = ForwardingEngine.broadcast
                    }
                    if scoped && d != ForwardingEngine.broadcast && d != UInt16(s) {
                        let why = unicastEgress(vid: UInt16(truncatingIfNeeded: vlanBits &>> 48), to: Int(d))
                        if why != .none { countDrop(why, src); break frame }
                    }
                    if d == UInt16(s) || (d == ForwardingEngine.broadcast && activeCount < 2) {
                        // No hairpin; and a flood with no other port has nowhere to go: both counted.
                        src.pointee.stats.dropNoRoute &+= 1
                        d = UInt16(s)
                    } else if d == ForwardingEngine.broadcast {
                        anyFlood = true
                        flooded &+= 1
                    }
                    if flowControl && d != ForwardingEngine.broadcast && d != UInt16(s)
                        && !roomFor(total, vnet: hasVnet, at: Int(d), generation: gen)
                    {
                        let t = ForwardingEngine.micros()
                        if src.pointee.blockedSince == 0 { src.pointee.blockedSince = t }
                        if t &- src.pointee.blockedSince < config.flowControlMicros {
                            waitForRoom = true  // this frame and the rest stay in the sender's ring
                            waitingForRoom = true
                            noteFull(ports + Int(d))
                            break frame
                        }
                        // Waited long enough: this batch goes as without flow control (what does not
                        // fit is dropped at delivery), and the next one may wait again.
                        flowControl = false
                    }
                    if d != UInt16(s) {
                        ftSlot[ft] = UInt32(snap)
                        ftFrags[ft] = UInt16(frags)
                        ftLen[ft] = UInt32(total)
                        ftDst[ft] = d
                        ft &+= 1
                        if d != ForwardingEngine.broadcast && dstMark[Int(d)] != gen {
                            dstMark[Int(d)] = gen
                            dstList[ndst] = d
                            ndst &+= 1
                        }
                    }
                    src.pointee.stats.txPackets &+= 1
                    src.pointee.stats.txBytes &+= UInt64(total &- hdr)
                }
            }
            if waitForRoom { break }
            consumed &+= frags
            cursor = j
            snap &+= min(Int(frags), maxFrags)
        }

        if !waitForRoom { src.pointee.blockedSince = 0 }  // moved on (delivered, or waited out)
        // What this batch learned (a new or moved station) reaches the kernel fast path before the
        // frames are delivered, so the replies they cause already find the new path.
        syncFastpath()
        if anyFlood {
            for d in 0..<portCount where d != s && ports[d].active && !ports[d].isMonitor && dstMark[d] != gen {
                dstMark[d] = gen
                dstList[ndst] = UInt16(d)
                ndst &+= 1
            }
        }
        if src.pointee.monitors != 0 { mirror(batchOf: s, count: ft, of: s, transmitted: true) }
        for k in 0..<ndst {
            let d = Int(dstList[k])
            if ports[d].monitors != 0 { mirror(batchOf: s, count: ft, of: d, transmitted: false) }
            deliver(batchOf: s, count: ft, to: d)
        }

        // Every consumed slot is free again for the sender.
        src.pointee.tx.consumeTx(consumed, available: n &- 1)
        let bucket = consumed <= 1 ? 0 : min(32 &- (consumed &- 1).leadingZeroBitCount, ForwardingEngine.batchSizeBuckets &- 1)
        batchSizes[bucket] &+= 1
        batchSlots &+= UInt64(consumed)
        if consumed > 0, let c = src.pointee.csb {  // nothing consumed (a frame waits for room): no room to tell of
            swale_barrier_toward(&c.pointee.app_membarrier)
            if swale_load_relaxed(&c.pointee.app_tx_waiting) != 0 {
                src.pointee.ringNotify()
            }
        }
        return Int(consumed)
    }

    /// The batch's first frames while they are one flow: whole single-slot frames with the same
    /// addresses as the first, known unicast to an application port, neither side watched or
    /// carrying virtio-net headers, no bridge rules in play for the source. The decisions the loop
    /// above makes per frame (admission and learning, lookup, egress) are made once, for the first
    /// frame, and each frame is then checked and copied straight into the destination's rx ring:
    /// a few dozen instructions a frame where the general path takes several times that. The run
    /// ends at the first frame that differs in any way, or when the destination's ring is full, and
    /// the general path takes the rest of the batch in order, so nothing is decided differently.
    /// Returns the slots consumed (0: the first frame is not such a frame).
    @inline(__always)
    private func forwardRun(source s: Int, count: UInt32, now: UInt32) -> UInt32 {
        let src = ports + s
        let n = src.pointee.tx.n
        let limit = src.pointee.bufLimit
        let bufSize = src.pointee.bufSize
        let base = src.pointee.bufBase
        let slots = src.pointee.tx.ptr.slots
        var i = src.pointee.tx.hwcur
        @inline(__always) func word(_ k: UInt32) -> UInt64 {
            swale_load_relaxed_u64(UnsafeRawPointer(slots + Int(k)).assumingMemoryBound(to: UInt64.self))
        }
        // The first frame decides: buf_idx, len and flags in one read (see UserRing.read), the
        // limits the general path applies before it learns anything.
        var w = word(i)
        let idx0 = UInt32(truncatingIfNeeded: w), len0 = Int(UInt16(truncatingIfNeeded: w &>> 32))
        // Flags that change what the switch does (the rest, like BUF_CHANGED, it ignores as the general path does).
        let deciding = UInt64(SlotFlags.moreFrag | SlotFlags.noLearn | SlotFlags.vnetHdr) &<< 48
        guard w & deciding == 0, idx0 >= BlockAllocator.reserved, idx0 < limit, len0 >= 14, len0 <= bufSize,
            len0 <= config.maxFrame
        else { return 0 }
        // The flow: the first 12 bytes (destination, source) in one read each; every decision and
        // every later frame's check uses these values, never a second read of the first frame.
        let first = base + Int(idx0) &* bufSize
        let a0 = first.loadUnaligned(as: UInt64.self), a1 = first.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let dstMac = UInt64(bigEndian: a0) &>> 16
        let srcMac = (UInt64(bigEndian: a0) & 0xFFFF) &<< 32 | UInt64(UInt32(bigEndian: a1))
        guard !LearningTable.isGroup(dstMac) else { return 0 }
        let admitted = admitSource(srcMac, port: s, learn: true, now: now)
        if admitted != .none {
            countDrop(admitted, src)
            return 1
        }
        syncFastpath()  // as the general path does before delivering: a new station reaches the kernel first
        let found = table.lookup(address: dstMac, now: now)
        guard found != LearningTable.none, Int(found) < portCount, Int(found) != s else { return 0 }
        let d = Int(found)
        let dst = ports + d
        guard dst.pointee.active, !dst.pointee.hasBackend, !dst.pointee.isMonitor, dst.pointee.monitors == 0,
            !dst.pointee.vnetApp
        else { return 0 }
        let dBufSize = dst.pointee.bufSize, dBase = dst.pointee.bufBase, dLimit = dst.pointee.bufLimit
        let dSlots = dst.pointee.rx.ptr.slots, dn = dst.pointee.rx.n
        // Longest frame the run takes: one buffer each side, within the bridge's and the port's limits.
        let maxLen = min(bufSize, dBufSize, config.maxFrame, dst.pointee.mtu &+ 14)
        var room = dst.pointee.rx.rxRoom()
        var tail = dst.pointee.rx.hwtail
        var k: UInt32 = 0
        var bytes: UInt64 = 0
        var ahead: UInt32 = 1
        while ahead <= ForwardingEngine.prefetchAhead && ahead < count {
            let idx = UInt32(truncatingIfNeeded: word(RingMath.add(i, ahead, n)))
            if idx < limit { swale_prefetch(base + Int(idx) &* bufSize) }
            ahead &+= 1
        }
        while room > 0 {
            let idx = UInt32(truncatingIfNeeded: w), len = Int(UInt16(truncatingIfNeeded: w &>> 32))
            guard w & deciding == 0, idx >= BlockAllocator.reserved, idx < limit, len >= 14, len <= maxLen else { break }
            let frame = base + Int(idx) &* bufSize
            // The first frame's addresses are a0/a1 as read; later frames must carry the same.
            guard
                k == 0
                    || (frame.loadUnaligned(as: UInt64.self) == a0
                        && frame.loadUnaligned(fromByteOffset: 8, as: UInt32.self) == a1)
            else { break }
            // The destination's slot, its buffer index read once (a bad one: the general path resets the ring).
            let ds = UnsafeMutableRawPointer(dSlots + Int(tail))
            let didx = ds.load(as: UInt32.self)
            guard didx >= BlockAllocator.reserved, didx < dLimit else { break }
            let to = dBase + Int(didx) &* dBufSize
            FrameCopy.copy(to, frame, count: len)
            // The addresses decided on, not whatever the sender may have written since its check.
            to.storeBytes(of: a0, as: UInt64.self)
            to.storeBytes(of: a1, toByteOffset: 8, as: UInt32.self)
            ds.storeBytes(of: UInt32(truncatingIfNeeded: len), toByteOffset: 4, as: UInt32.self)  // len; flags 0
            bytes &+= UInt64(len)
            tail = RingMath.next(tail, dn)
            room &-= 1
            i = RingMath.next(i, n)
            k &+= 1
            if k == count { break }
            if k &+ ForwardingEngine.prefetchAhead < count {
                let ahead = UInt32(truncatingIfNeeded: word(RingMath.add(i, ForwardingEngine.prefetchAhead, n)))
                if ahead < limit { swale_prefetch(base + Int(ahead) &* bufSize) }
            }
            w = word(i)
        }
        guard k > 0 else { return 0 }
        runFrames &+= UInt64(k)
        src.pointee.stats.txPackets &+= UInt64(k)
        src.pointee.stats.txBytes &+= bytes
        dst.pointee.stats.rxPackets &+= UInt64(k)
        dst.pointee.stats.rxBytes &+= bytes
        dst.pointee.rx.publishRx(k)
        if let c = dst.pointee.csb {
            swale_barrier_toward(&c.pointee.app_membarrier)
            if swale_load_relaxed(&c.pointee.app_rx_waiting) != 0 { dst.pointee.ringNotify() }
        }
        return k
    }

    /// Copies the frames of the current batch that go to port d into its rx ring.
    @inline(__always)
    private func deliver(batchOf s: Int, count ft: Int, to d: Int) {
        let dst = ports + d
        let src = ports + s
        var room = dst.pointee.rx.rxRoom()
        let dn = dst.pointee.rx.n
        var tail = dst.pointee.rx.hwtail
        var filled: UInt32 = 0
        let dBufSize = dst.pointee.bufSize
        let dBase = dst.pointee.bufBase
        let dLimit = dst.pointee.bufLimit
        let sBufSize = src.pointee.bufSize
        let sBase = src.pointee.bufBase
        let scoped = batchScoped
        // Frames dropped here for want of room, on any of the ways below (plain, retagged, offloaded).
        let fullBefore = dst.pointee.stats.dropRingFull

        // A kernel port with nothing queued takes the frames straight from the source's slots;
        // whatever it does not take now (or cannot take as is) is copied into its ring below.
        var e0 = 0
        if config.directTransmit && !dst.pointee.needsTransmit && dst.pointee.hasBackend, let a = backends[d] {
            e0 = transmitDirect(batchOf: s, count: ft, to: d, adapter: a)
        }

        for e in e0..<ft {
            let fd = ftDst[e]
            if fd != UInt16(d) && fd != ForwardingEngine.broadcast { continue }
            if scoped {
                let how = egress(entry: e, to: d)
                if how == .skip { continue }
                if how == .retag {
                    deliverRetagged(entry: e, source: s, to: d, room: &room, tail: &tail, filled: &filled)
                    continue
                }
            }
            let pos = Int(ftSlot[e])
            let hasVnet = snapFlags[pos] & SlotFlags.vnetHdr != 0
            let total = Int(ftLen[e])
            if hasVnet && !dst.pointee.acceptsVnet {
                // Offload metadata the destination cannot take: finish it in software.
                let sent = deliverOffloaded(entry: e, source: s, to: d, room: &room, tail: &tail, filled: &filled)
                _ = sent
                continue
            }
            let hdr = hasVnet ? VnetHeader.size : 0
            let payload = total &- hdr &- 14
            if payload > dst.pointee.mtu
                && ForwardingEngine.payloadLength(sBase + Int(snapIdx[pos]) &* sBufSize + hdr, total &- hdr) > dst.pointee.mtu
                && !(hasVnet && dst.pointee.acceptsVnet && VnetHeader(sBase + Int(snapIdx[pos]) &* sBufSize).isGSO)
            {
                dst.pointee.stats.dropTooLong &+= 1
                continue
            }
            let pad = dst.pointee.headroom(frameHasVnet: hasVnet)
            let need = dst.pointee.slots(for: total, frameHasVnet: hasVnet)
            if need > room {
                dst.pointee.stats.dropRingFull &+= 1
                continue
            }
            let slots = dst.pointee.rx.ptr.slots
            let firstFlags = hasVnet || pad != 0 ? SlotFlags.vnetHdr : 0
            var used: UInt32 = 1
            let written: Bool
            if ftFrags[e] == 1 && total <= dBufSize && pad == 0 {
                // One slot in, one slot out (most frames): no writer state to carry.
                written = SlotWriter.writeOne(
                    slots: slots, bufBase: dBase, bufSize: dBufSize, bufLimit: dLimit, at: tail,
                    from: sBase + Int(snapIdx[pos]) &* sBufSize, count: total, flags: firstFlags)
            } else {
                // Copy fragment by fragment, refilling destination buffers as they fill up.
                var w = SlotWriter(
                    slots: slots, numSlots: dn, bufBase: dBase, bufSize: dBufSize, bufLimit: dLimit, at: tail, headroom: pad)
                for k in 0..<Int(ftFrags[e]) where w.ok {
                    w.write(sBase + Int(snapIdx[pos &+ k]) &* sBufSize, Int(snapLen[pos &+ k]))
                }
                written = w.ok
                if written { used = w.finish(firstFlags: firstFlags) }
            }
            guard written else {
                // The application scribbled a bad buffer index into its rx ring: reset it and
                // deliver nothing more to it in this batch (what was copied before is published).
                dst.pointee.rx.reset()
                dst.pointee.stats.dropBadSlot &+= 1
                room = 0
                continue
            }
            tail = RingMath.add(tail, used, dn)
            room &-= used
            filled &+= used
            dst.pointee.stats.rxPackets &+= 1
            dst.pointee.stats.rxBytes &+= UInt64(total &- hdr)
        }
        if dst.pointee.stats.dropRingFull != fullBefore && !dst.pointee.hasBackend {
            // Every pass that drops, also for a reader that has not read since the last one: it
            // may be waiting for this very core (yielding only once per stretch of its progress
            // left a reader sharing the core at 0.2 Mpps). Bounded: one yield per pass.
            overranReader = true
            noteFull(dst)  // once per destination and batch, not per dropped frame
        }
        if filled > 0 {
            dst.pointee.rx.publishRx(filled)
            if dst.pointee.hasBackend {
                dst.pointee.needsTransmit = true
            } else if let c = dst.pointee.csb {
                swale_barrier_toward(&c.pointee.app_membarrier)
                if swale_load_relaxed(&c.pointee.app_rx_waiting) != 0 {
                    dst.pointee.ringNotify()
                }
            }
        }
    }
}

extension ForwardingEngine {
    /// Hands port d's frames of the current batch to its adapter as they lie in the source's
    /// buffers, in order, until one needs the copy path (software offload, over the MTU) or the
    /// kernel takes no more. Returns the first forwarding-table entry left for the copy path.
    @inline(__always)
    private func transmitDirect(batchOf s: Int, count ft: Int, to d: Int, adapter: PortBackend) -> Int {
        let dst = ports + d
        let src = ports + s
        let sBufSize = src.pointee.bufSize
        let sBase = src.pointee.bufBase
        let scoped = batchScoped
        direct.reset()
        var e = 0
        while e < ft {
            let fd = ftDst[e]
            if fd != UInt16(d) && fd != ForwardingEngine.broadcast { e &+= 1; continue }
            if scoped {
                let how = egress(entry: e, to: d)
                if how == .skip { e &+= 1; continue }
                if how == .retag { break }  // the copy path rewrites the tag
            }
            let pos = Int(ftSlot[e])
            let hasVnet = snapFlags[pos] & SlotFlags.vnetHdr != 0
            if hasVnet && !dst.pointee.acceptsVnet { break }
            let hdr = hasVnet ? VnetHeader.size : 0
            let total = Int(ftLen[e])
            if total &- hdr &- 14 > dst.pointee.mtu
                && ForwardingEngine.payloadLength(sBase + Int(snapIdx[pos]) &* sBufSize + hdr, total &- hdr) > dst.pointee.mtu
                && !(hasVnet && VnetHeader(sBase + Int(snapIdx[pos]) &* sBufSize).isGSO)
            {
                break
            }
            var fits = !direct.isFull
            for k in 0..<Int(ftFrags[e]) where fits {
                fits = direct.addSegment(sBase + Int(snapIdx[pos &+ k]) &* sBufSize, Int(snapLen[pos &+ k]))
            }
            if !fits {
                direct.abandonFrame()
                if direct.count == 0 { break }
                let taken = flushDirect(direct, to: d, adapter: adapter)
                if taken < direct.count { return Int(directEntry[taken]) }
                direct.reset()
                continue  // the same entry again, into the empty batch
            }
            direct.commitFrame(vnet: hasVnet, payload: total &- hdr)
            directEntry[direct.count &- 1] = Int32(truncatingIfNeeded: e)
            e &+= 1
        }
        if direct.count == 0 { return e }
        let taken = flushDirect(direct, to: d, adapter: adapter)
        return taken < direct.count ? Int(directEntry[taken]) : e
    }

    /// Sends the direct batch; counts what the port took as delivered. Returns frames taken.
    @inline(__always)
    private func flushDirect(_ out: borrowing OutFrames, to d: Int, adapter: PortBackend) -> Int {
        let taken = adapter.transmit(out).consumed
        let dst = ports + d
        for k in 0..<taken {
            dst.pointee.stats.rxPackets &+= 1
            dst.pointee.stats.rxBytes &+= UInt64(out.payload[k])
        }
        return taken
    }
}

extension UserRing {
    /// The user-side view of a ring the switch also drives (kernel ports, same thread).
    @inline(__always)
    init(kring: KRing, base: UnsafeMutableRawPointer, bufSize: Int, limit: UInt32) {
        self.init(pointer: kring.ptr, bufBase: base, bufSize: bufSize, bufLimit: limit)
    }
}
