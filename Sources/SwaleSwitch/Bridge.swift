/*
 * Bridge — one VALE-style switch: a forwarding engine (SwaleDatapath: ports, learning table, the
 * per-pass algorithm) plus the thread that runs its passes, the mailbox through which the control
 * plane reaches it, and the epoll set it sleeps on.
 *
 * The control plane never touches the engine directly. It posts a command (add a port, remove
 * one, read or flush the table) into a small mailbox and wakes the thread; the thread takes the
 * mailbox lock only when a flag says something is there, runs the commands between two passes,
 * and signals completion. So the thread never waits on the control plane, and the control plane
 * knows exactly when a removed port's memory is no longer referenced.
 *
 * Sleeping: after `busyPollMicros` without work the thread sets "switch sleeping" in every
 * application port's control block, fences, and looks once more (no lost wake-up: an application
 * publishes tx, fences, then reads the flag); only then does it wait in epoll on the application
 * doorbells, the backends' poll fds and its own mailbox doorbell, at most a second (housekeeping).
 *
 * Placement: the thread runs where the scheduler puts it, or only on `forwardingCPUs`, which it
 * applies to itself when it starts; its priority is raised while the bridge has kernel ports and
 * lent to an application reader it overran (`followKernelPorts`, `lendPriority`).
 */
import CSwaleSys
import Foundation
import Glibc
import SwaleDatapath
import SwaleRings

/// A bridge's settings: its engine's (reachable as `config.batch` etc.) and its thread's.
@dynamicMemberLookup
public struct BridgeConfig: Sendable {
    public var engine = EngineConfig()
    /// Keep polling this long after the last frame before sleeping on its doorbells (0: sleep at once).
    public var busyPollMicros = 50
    /// While polling, give the core away (sched_yield) instead of spinning (pause): better when more
    /// busy threads than cores share the machine, worse for latency when a core is free.
    public var yieldWhilePolling = true
    /// Nice value of the forwarding thread while its bridge has kernel ports (nil: inherit). The
    /// Linux bridge forwards in softirq, ahead of every process; a switch thread at normal priority
    /// shares its core with the very programs flooding it and can be kept off the CPU long enough
    /// for a kernel port's packet ring to overflow. Raising the thread's priority (needs
    /// CAP_SYS_NICE) keeps it ahead of them. A bridge of application ports only keeps the priority
    /// its thread inherited: its readers are programs too, and a thread that outranks the reader it
    /// shares a core with starves it (app -> switch -> app with swaled on the receiver's CPU:
    /// 5-6 Mpps at nice -10, 22-36 at the applications' own).
    public var forwardingNice: Int? = -10
    /// The CPUs the forwarding thread may run on (nil: wherever the scheduler puts it), as Open
    /// vSwitch's pmd-cpu-mask places its polling threads. On a machine with cores to spare, a core
    /// of its own keeps the thread from time-sharing with the programs it serves; on a small one,
    /// the core of its busiest reader saves the frames one crossing between cores (each frame the
    /// thread copies is then read where it was written).
    public var forwardingCPUs: [Int]?
    public init() {}

    public subscript<T>(dynamicMember key: WritableKeyPath<EngineConfig, T>) -> T {
        get { engine[keyPath: key] }
        set { engine[keyPath: key] = newValue }
    }
}

public final class Bridge: @unchecked Sendable {
    public let name: String
    public let config: BridgeConfig
    /// The forwarding state. Touch it only on the bridge's thread (inside `perform`).
    public let engine: ForwardingEngine
    private let wake: Doorbell
    private let epollFD: Int32

    private let mailboxLock = NSLock()
    private var mailbox: [(Bridge) -> Void] = []
    private let mailboxFlag: UnsafeMutablePointer<UInt32>
    private var thread: Thread?
    @exclusivity(unchecked) private var running = true

    /// Times the thread went to sleep in epoll (forwarding thread only).
    @exclusivity(unchecked) public private(set) var wakeups: UInt64 = 0

    public init(name: String, config: BridgeConfig = BridgeConfig()) throws {
        self.name = name
        self.config = config
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw SystemError("epoll_create1") }
        do { wake = try Doorbell() } catch { close(epollFD); throw error }
        self.epollFD = epollFD
        do { engine = try ForwardingEngine(config: config.engine) } catch { wake.close(); close(epollFD); throw error }
        mailboxFlag = .allocate(capacity: 1)
        mailboxFlag.initialize(to: 0)
        addToEpoll(wake.waitEnd.fd, tag: UInt64.max)
    }

    deinit {
        stop()
        mailboxFlag.deallocate()
        close(epollFD)
        wake.close()
    }

    private func addToEpoll(_ fd: Int32, tag: UInt64) {
        guard fd >= 0 else { return }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = tag
        _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev)
    }

    private func removeFromEpoll(_ fd: Int32) {
        guard fd >= 0 else { return }
        var ev = epoll_event()
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &ev)
    }

    public func start() {
        let t = Thread { [unowned self] in
            // Named for top -H / ps -L (the kernel keeps 15 bytes).
            _ = swale_set_thread_name("swale-\(self.name)")
            self.threadID = swale_gettid()
            self.applyPriority()
            self.applyCPUs()
            self.threadReady.signal()
            self.run()
        }
        thread = t
        t.start()
        threadReady.wait()
    }

    /// The forwarding thread's kernel id (for /proc/self/task/ID).
    public private(set) var threadID: Int32 = 0
    /// errno of setting `config.forwardingNice` on the forwarding thread (0: applied or not asked).
    public private(set) var priorityError: Int32 = 0
    private let threadReady = DispatchSemaphore(value: 0)
    /// The nice value the thread was created with, and whether the raised one is in force.
    private var inheritedNice: Int32 = 0
    private var raised = false

    private func applyPriority() {
        inheritedNice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(threadID))
    }

    /// errno of placing the thread on `config.forwardingCPUs` (0: placed, or not asked). The thread
    /// then runs wherever the scheduler puts it.
    public private(set) var placementError: Int32 = 0

    private func applyCPUs() {
        guard let cpus = config.forwardingCPUs else { return }
        let r = cpus.map { Int32(clamping: $0) }.withUnsafeBufferPointer {
            swale_set_thread_cpus(threadID, $0.baseAddress, Int32($0.count))
        }
        placementError = r < 0 ? -r : 0
    }

    /// The CPUs the forwarding thread may run on now (nil before it started, or if it cannot be read).
    public var threadCPUs: [Int]? { threadID == 0 ? nil : Bridge.cpus(ofThread: threadID) }

    /// The CPUs a thread (0: the caller) may run on, ascending; nil if they cannot be read.
    public static func cpus(ofThread tid: Int32) -> [Int]? {
        var out = [Int32](repeating: 0, count: 1024)
        let n = out.withUnsafeMutableBufferPointer { swale_thread_cpus(tid, $0.baseAddress, Int32($0.count)) }
        return n < 0 ? nil : out.prefix(Int(n)).map(Int.init)
    }

    /// The raised priority while the bridge has kernel ports, the inherited one otherwise (see
    /// `BridgeConfig.forwardingNice`). Called after every port change; setpriority on a thread id
    /// changes only that thread (Linux: nice is per thread).
    private func followKernelPorts() {
        guard let nice = config.forwardingNice else { return }
        let want = engine.kernelPortCount > 0
        guard want != raised else { return }
        let value = want ? Int32(nice) : inheritedNice
        if setNice(value) != 0 {
            priorityError = errno
            return
        }
        priorityError = 0
        raised = want
        if !want { lent = false }
    }

    /// The raised priority is lent out: the thread runs at the inherited one until its reader
    /// caught up (forwarding thread only; read it through `perform`).
    @exclusivity(unchecked) public private(set) var lent = false
    /// Times the thread stepped down for an application reader (forwarding thread only).
    @exclusivity(unchecked) public private(set) var priorityLends: UInt64 = 0

    /// A raised thread that overran a live application reader steps down to the priority it
    /// inherited before it yields: from nice -10 a yield to a nice-0 reader sharing its core gives
    /// that reader almost nothing. It takes the raised priority back before it sleeps, or after
    /// `lendQuietMillis` of passes (busy polling included) that found no reader behind: taking it
    /// back at the first such pass made it flap every millisecond or two against a reader that
    /// drains and falls behind again, and the reader starved in the raised stretches. Kernel ports
    /// lose their head start only while an application is catching up. Two setpriority calls per
    /// stretch behind (docs/BENCHMARKS.md, "Mixed bridges").
    @inline(__always)
    private func lendPriority(behind: Bool, idle: Bool = false) {
        guard raised, let nice = config.forwardingNice else { return }
        if behind {
            lastBehind = ForwardingEngine.coarseMillis()
            guard !lent, setNice(inheritedNice) == 0 else { return }
            lent = true
            priorityLends &+= 1
        } else if lent, idle || ForwardingEngine.coarseMillis() &- lastBehind >= Bridge.lendQuietMillis {
            if setNice(Int32(nice)) != 0 {
                // Refused now (RLIMIT_NICE lowered, capability dropped): report it and stop trying
                // until the next port change.
                priorityError = errno
                raised = false
            }
            lent = false
        }
    }
    /// When a reader was last found behind (coarse milliseconds).
    @exclusivity(unchecked) private var lastBehind = 0
    static let lendQuietMillis = 20

    private func setNice(_ value: Int32) -> Int32 {
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(threadID), value)
    }

    private let stopped = DispatchSemaphore(value: 0)

    public func stop() {
        guard thread != nil else { return }
        perform { b in b.running = false }
        stopped.wait()
        thread = nil
        threadID = 0  // the id may be another thread's from now on
    }

    /// Runs `body` on the forwarding thread between two passes and waits for it.
    /// A command that changed the learning table (a flush, a static entry, a removed port) reaches
    /// the kernel fast path before it returns.
    public func perform<T>(_ body: @escaping (Bridge) -> T) -> T {
        guard thread != nil else {
            let r = body(self)
            engine.syncFastpath()
            return r
        }
        let done = DispatchSemaphore(value: 0)
        var result: T?
        mailboxLock.lock()
        mailbox.append { b in
            result = body(b)
            b.engine.syncFastpath()
            done.signal()
        }
        swale_store_release(mailboxFlag, 1)
        mailboxLock.unlock()
        wake.ringEnd.ring()
        done.wait()
        return result!
    }

    private func drainMailbox() {
        mailboxLock.lock()
        let work = mailbox
        mailbox = []
        swale_store_release(mailboxFlag, 0)
        mailboxLock.unlock()
        for w in work { w(self) }
    }

    @inline(__always)
    private var mailboxPending: Bool { swale_load_acquire(mailboxFlag) != 0 }

    // MARK: ports (through perform)

    /// Installs a port (see `ForwardingEngine.addPort`) and polls its doorbell or its backend's fd.
    /// Returns its index and the sequence number of its "port-added" event (from there on, events
    /// about that index are about this port), or nil when the bridge is full.
    public func addPort(
        pool: MemoryPool, layout: InterfaceLayout, kickFD: Int32, notifyFD: Int32,
        backend: PortBackend?, mtu: Int? = nil
    ) -> (index: Int, since: UInt64)? {
        perform { b -> (index: Int, since: UInt64)? in
            guard
                let i = b.engine.addPort(
                    pool: pool, layout: layout, kickFD: kickFD, notifyFD: notifyFD,
                    backend: backend, mtu: mtu)
            else { return nil }
            b.addToEpoll(backend?.pollFD ?? kickFD, tag: UInt64(i))
            b.followKernelPorts()
            return (i, b.engine.table.events.last)
        }
    }

    /// Installs a monitor of port `target` (ForwardingEngine.addMonitor); nil when it cannot.
    public func addMonitor(
        pool: MemoryPool, layout: InterfaceLayout, kickFD: Int32, notifyFD: Int32, of target: Int, rx: Bool, tx: Bool,
        backend: PortBackend? = nil
    ) -> Int? {
        perform { b in
            b.engine.addMonitor(
                pool: pool, layout: layout, kickFD: kickFD, notifyFD: notifyFD, of: target, rx: rx, tx: tx, backend: backend)
        }
    }

    /// Removes a port: it stops forwarding and its learning-table entries are flushed.
    @discardableResult
    public func removePort(_ index: Int) -> PortStats? {
        perform { b -> PortStats? in
            guard let p = b.engine.port(index) else { return nil }
            b.removeFromEpoll(b.engine.backend(index)?.pollFD ?? p.kickFD)
            let stats = b.engine.removePort(index)
            b.followKernelPorts()
            return stats
        }
    }

    public func updateBufferLimit(_ index: Int, limit: UInt32) {
        perform { b in b.engine.updateBufferLimit(index, limit: limit) }
    }

    /// Sets the other holders' wake-up lines of a port; once this returns, the thread rings only these.
    @discardableResult
    public func setSharedNotify(_ index: Int, _ fds: [Int32]) -> Bool {
        perform { b in b.engine.setSharedNotify(index, fds) }
    }

    /// A port's counters (what the kernel fast path moved for it included) and its ring resets.
    public func portStats(_ index: Int) -> (PortStats, UInt64)? {
        perform { b -> (PortStats, UInt64)? in
            guard let p = b.engine.port(index), let s = b.engine.portStatsWithFastpath(index) else { return nil }
            return (s, p.tx.resets &+ p.rx.resets)
        }
    }

    /// The backend's counters, and the fast path's for a port attached to it: `fastpath` 1 while
    /// its frames may take it (0 while watched or under a rule the program lacks), and the frames
    /// and bytes it moved (already part of the port's rx/tx counters).
    public func adapterCounters(_ index: Int) -> [String: UInt64]? {
        perform { b -> [String: UInt64]? in
            guard var c = b.engine.backend(index)?.counters else { return nil }
            if let f = b.engine.fastpathCounters(port: index) {
                c["fastpath"] = b.engine.fastpathActive(port: index) ? 1 : 0
                c["fastpath_tx_packets"] = f.txPackets
                c["fastpath_tx_bytes"] = f.txBytes
                c["fastpath_rx_packets"] = f.rxPackets
                c["fastpath_rx_bytes"] = f.rxBytes
            }
            return c
        }
    }

    // MARK: the kernel fast path (SwaleDatapath/Fastpath.swift)

    public func setFastpath(_ maps: FastpathMaps?) { perform { b in b.engine.setFastpath(maps) } }

    public func attachFastpath(port: Int, ifindex: Int32, peer: Bool, hostStack: Bool = false) {
        perform { b in b.engine.attachFastpath(port: port, ifindex: ifindex, peer: peer, hostStack: hostStack) }
    }

    public func detachFastpath(port: Int) { perform { b in b.engine.detachFastpath(port: port) } }

    public struct TableStats: Sendable {
        public var learned: UInt64, moved: UInt64, aged: UInt64, evicted: UInt64, entries: Int
        public var flooded: UInt64, batches: UInt64, wakeups: UInt64
        /// Frames forwarded in runs of one flow (ForwardingEngine.forwardRun).
        public var runFrames: UInt64 = 0
        /// Times the raised forwarding thread stepped down for an application reader behind.
        public var priorityLends: UInt64 = 0
        /// Entries the table was sized for (it runs at most half full at this many).
        public var capacity: Int
        /// Batches by size (ForwardingEngine.batchSizes) and the slots they took in all.
        public var batchSizes: [UInt64] = []
        public var batchSlots: UInt64 = 0
    }

    public func tableStats() -> TableStats {
        perform { b in
            let t = b.engine.table
            var s = TableStats(
                learned: t.learned, moved: t.moved, aged: t.aged, evicted: t.evicted,
                entries: t.count, flooded: b.engine.flooded, batches: b.engine.batches, wakeups: b.wakeups,
                capacity: b.config.fdbCapacity)
            s.batchSizes = Array(UnsafeBufferPointer(start: b.engine.batchSizes, count: ForwardingEngine.batchSizeBuckets))
            s.batchSlots = b.engine.batchSlots
            s.runFrames = b.engine.runFrames
            s.priorityLends = b.priorityLends
            return s
        }
    }

    /// The MAC table, unsorted, copied 64K slots per visit to the forwarding thread so a large
    /// table never holds forwarding for more than a slice (entries learned or aged between slices
    /// may be missed or seen once more, as any live listing may).
    public func fdbEntries() -> [LearningTable.Record] {
        var out: [LearningTable.Record] = []
        let slots = perform { b in b.engine.table.slotCount }
        var start = 0
        while start < slots {
            let range = start..<min(start + 65536, slots)
            out += perform { b -> [LearningTable.Record] in
                var part: [LearningTable.Record] = []
                b.engine.table.appendEntries(slots: range, now: ForwardingEngine.now(), to: &part)
                return part
            }
            start = range.upperBound
        }
        return out
    }

    @discardableResult
    public func fdbFlush(port: Int?) -> Int {
        perform { b in b.engine.table.flush(port: port.map { UInt16($0) }) }
    }

    // MARK: bridge rules (BridgeRules.swift in SwaleDatapath)

    public func setVlanFiltering(_ on: Bool) { perform { b in b.engine.vlanFiltering = on } }
    public func setGroupForwardMask(_ mask: UInt16) { perform { b in b.engine.groupForwardMask = mask } }

    /// Replaces a port's VLANs and PVID (0: none).
    public func setVlans(port: Int, _ vlans: [(vid: UInt16, untagged: Bool)], pvid: UInt16) {
        perform { b in b.engine.setVlans(port: port, vlans, pvid: pvid) }
    }

    public func setPortRules(port: Int, isolated: Bool, locked: Bool, maxMacs: UInt32, horizon: UInt8) {
        perform { b in
            b.engine.setPortRules(port: port, isolated: isolated, locked: locked, maxMacs: maxMacs, horizon: horizon)
        }
    }

    /// Installs a static MAC entry; false when the address is a group one or its bucket is full of static entries.
    @discardableResult
    public func addStatic(mac: UInt64, vlan: UInt16, port: Int) -> Bool {
        perform { b in b.engine.table.addStatic(mac, vlan: vlan, port: UInt16(port), now: ForwardingEngine.now()) }
    }

    @discardableResult
    public func removeStatic(mac: UInt64, vlan: UInt16) -> Bool {
        perform { b in b.engine.table.removeStatic(mac, vlan: vlan) }
    }

    /// Events after `seq` (at most 1024), how many were missed, and the last sequence number.
    public func events(after seq: UInt64?) -> (events: [EventLog.Event], missed: UInt64, last: UInt64) {
        perform { b in
            let log = b.engine.table.events
            guard let seq else { return ([], 0, log.last) }
            let r = log.events(after: seq)
            return (r.events, r.missed, r.events.last?.seq ?? max(seq, log.last))
        }
    }

    /// Dynamic MAC entries of a port (what its MAC limit counts).
    public func learnedCount(port: Int) -> Int { perform { b in b.engine.table.entryCount(port: port) } }

    public func setAging(_ seconds: UInt32) {
        perform { b in b.engine.table.agingSeconds = seconds }
    }

    public var agingSeconds: UInt32 { perform { b in b.engine.table.agingSeconds } }

    static func nowMicros() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
    }

    // MARK: the thread

    private func run() {
        var idleSince = 0
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        let engine = self.engine
        while running {
            if mailboxPending { drainMailbox(); if !running { break } }
            let work = engine.pass(now: ForwardingEngine.now())
            if work > 0 {
                idleSince = 0
                // A reader that fell behind gets the core, should it share this one: otherwise it
                // gets the scheduler's time slices (milliseconds), in which this thread fills its
                // ring many times over, and loses all but one ring of what is sent meanwhile.
                lendPriority(behind: engine.liveReaderBehind)
                if engine.overranReader { sched_yield() }
                continue
            }
            if engine.waitingForRoom {
                // A receiver's ring is full and a sender waits for it (flow control): its reader
                // needs a core more than this thread needs to look again at once.
                lendPriority(behind: engine.liveReaderBehind)
                sched_yield()
                continue
            }
            lendPriority(behind: false)
            let t = Bridge.nowMicros()
            if idleSince == 0 { idleSince = t }
            if t - idleSince < config.busyPollMicros {
                if config.yieldWhilePolling { sched_yield() } else { swale_cpu_relax() }; continue
            }

            // Going to sleep: with the raised priority back (a kernel port's frames may be the next
            // to come); ask apps to kick us, then look once more (no lost wake-ups).
            lendPriority(behind: false, idle: true)
            engine.setSleeping(true)
            swale_barrier_heavy()  // the apps' side of the handshake is only a compiler barrier
            if engine.anyPending() || mailboxPending {
                engine.setSleeping(false)
                continue
            }
            wakeups &+= 1
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epollFD, $0.baseAddress, 64, 1000) }
            engine.setSleeping(false)
            if n > 0 {
                for k in 0..<Int(n) {
                    let tag = events[k].data.u64
                    if tag == UInt64.max { wake.waitEnd.drain(); continue }
                    let i = Int(tag)
                    guard let p = engine.port(i) else { continue }
                    if let a = engine.backend(i) {
                        if events[k].events & EPOLLERR.rawValue != 0 { a.handlePollError() }
                    } else {
                        _ = swale_doorbell_drain(p.kickFD)
                    }
                }
            }
            idleSince = 0
        }
        stopped.signal()
    }
}
