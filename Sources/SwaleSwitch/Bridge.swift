/*
 * Bridge — one VALE-style switch: its ports, its learning table, and the thread that runs its
 * forwarding loop (ForwardingLoop.swift holds the per-batch algorithm).
 *
 * The control plane never touches the loop's state directly. It posts a command (add a port,
 * remove one, read or flush the table) into a small mailbox and wakes the loop; the loop takes the
 * mailbox lock only when a flag says something is there, runs the commands between two batches,
 * and signals completion. So the loop never waits on the control plane, and the control plane
 * knows exactly when a removed port's memory is no longer referenced.
 */
import CSwale
import Foundation
import Glibc
import SwaleMemory

public struct BridgeConfig: Sendable {
    public var maxPorts = 256
    public var batch = 1024
    public var fdbCapacity = 1 << 20
    public var agingSeconds: UInt32 = 300
    /// Keep polling this long after the last frame before sleeping on its doorbells (0: sleep at once).
    public var busyPollMicros = 50
    /// While polling, give the core away (sched_yield) instead of spinning (pause): better when more
    /// busy threads than cores share the machine, worse for latency when a core is free.
    public var yieldWhilePolling = true
    /// Largest frame without offload metadata (multi-slot jumbo frames).
    public var maxFrame = 9216
    /// Frames for a kernel port with nothing queued go to the kernel straight from the source's
    /// slots (no copy into the port's rx ring). Off: always copy first (for comparison).
    public var directTransmit = true
    /// Nice value of the forwarding thread (nil: inherit). The Linux bridge forwards in softirq,
    /// ahead of every process; a switch thread at normal priority shares its core with the very
    /// programs flooding it and can be kept off the CPU long enough for a kernel port's packet ring
    /// to overflow. Raising the thread's priority (needs CAP_SYS_NICE) keeps it ahead of them.
    public var forwardingNice: Int? = -10
    public init() {}
}

public final class Bridge: @unchecked Sendable {
    public let name: String
    public let config: BridgeConfig
    let table: LearningTable
    let ports: UnsafeMutablePointer<PortState>
    var adapters: [PortAdapter?]
    var portCount = 0       // highest active index + 1
    var activeCount = 0
    private let wake: Doorbell
    let epollFD: Int32

    private let mailboxLock = NSLock()
    private var mailbox: [(Bridge) -> Void] = []
    private let mailboxFlag: UnsafeMutablePointer<UInt32>
    private var thread: Thread?
    var running = true

    // Bridge counters (forwarding thread only).
    public internal(set) var flooded: UInt64 = 0
    public internal(set) var batches: UInt64 = 0
    public internal(set) var wakeups: UInt64 = 0

    // Scratch for one batch, allocated once.
    let ftSlot: UnsafeMutablePointer<UInt32>
    let ftFrags: UnsafeMutablePointer<UInt16>
    let ftLen: UnsafeMutablePointer<UInt32>
    let ftDst: UnsafeMutablePointer<UInt16>
    // Each slot of the batch copied once out of shared memory (a client may change its ring while
    // we work: everything after validation reads these copies, never the ring again).
    let snapIdx: UnsafeMutablePointer<UInt32>
    let snapLen: UnsafeMutablePointer<UInt16>
    let snapFlags: UnsafeMutablePointer<UInt16>
    static let maxFrags = 64
    let dstList: UnsafeMutablePointer<UInt16>
    let dstMark: UnsafeMutablePointer<UInt64>
    var dstGeneration: UInt64 = 0
    let scratch: UnsafeMutableRawPointer
    static let scratchBytes = 1 << 17
    static let broadcast: UInt16 = .max - 1
    // Direct transmit: the frames of a batch for one kernel port, and their forwarding-table entries.
    var direct = OutFrames.allocate()
    let directEntry: UnsafeMutablePointer<Int32>

    public init(name: String, config: BridgeConfig = BridgeConfig()) throws {
        self.name = name
        self.config = config
        table = LearningTable(capacity: config.fdbCapacity, agingSeconds: config.agingSeconds)
        ports = .allocate(capacity: config.maxPorts)
        adapters = Array(repeating: nil, count: config.maxPorts)
        wake = try Doorbell()
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw SystemError("epoll_create1") }
        mailboxFlag = .allocate(capacity: 1)
        mailboxFlag.initialize(to: 0)
        let maxFt = config.batch + 64
        ftSlot = .allocate(capacity: maxFt)
        ftFrags = .allocate(capacity: maxFt)
        ftLen = .allocate(capacity: maxFt)
        ftDst = .allocate(capacity: maxFt)
        snapIdx = .allocate(capacity: config.batch + 2 * Bridge.maxFrags)
        snapLen = .allocate(capacity: config.batch + 2 * Bridge.maxFrags)
        snapFlags = .allocate(capacity: config.batch + 2 * Bridge.maxFrags)
        dstList = .allocate(capacity: config.maxPorts)
        dstMark = .allocate(capacity: config.maxPorts)
        dstMark.initialize(repeating: 0, count: config.maxPorts)
        scratch = .allocate(byteCount: Bridge.scratchBytes, alignment: 64)
        directEntry = .allocate(capacity: OutFrames.frameCapacity)
        directEntry.initialize(repeating: 0, count: OutFrames.frameCapacity)
        addToEpoll(wake.waitEnd.fd, tag: UInt64.max)
    }

    deinit {
        stop()
        for i in 0..<portCount where ports[i].active { ports[i].active = false }
        ports.deallocate()
        mailboxFlag.deallocate()
        ftSlot.deallocate(); ftFrags.deallocate(); ftLen.deallocate(); ftDst.deallocate()
        snapIdx.deallocate(); snapLen.deallocate(); snapFlags.deallocate()
        dstList.deallocate(); dstMark.deallocate(); scratch.deallocate()
        direct.deallocate(); directEntry.deallocate()
        close(epollFD)
        wake.close()
    }

    func addToEpoll(_ fd: Int32, tag: UInt64) {
        guard fd >= 0 else { return }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = tag
        _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev)
    }

    func removeFromEpoll(_ fd: Int32) {
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

    private func applyPriority() {
        guard let nice = config.forwardingNice else { return }
        // setpriority on a thread id changes only that thread (Linux: nice is per thread).
        if setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(threadID), Int32(nice)) != 0 { priorityError = errno }
    }

    private let stopped = DispatchSemaphore(value: 0)
    private var started = false

    public func stop() {
        guard thread != nil else { return }
        perform { b in b.running = false }
        stopped.wait()
        thread = nil
    }

    /// Runs `body` on the forwarding thread between two batches and waits for it.
    public func perform<T>(_ body: @escaping (Bridge) -> T) -> T {
        guard thread != nil else { return body(self) }
        let done = DispatchSemaphore(value: 0)
        var result: T?
        mailboxLock.lock()
        mailbox.append { b in result = body(b); done.signal() }
        swale_store_release(mailboxFlag, 1)
        mailboxLock.unlock()
        wake.ringEnd.ring()
        done.wait()
        return result!
    }

    func drainMailbox() {
        mailboxLock.lock()
        let work = mailbox
        mailbox = []
        swale_store_release(mailboxFlag, 0)
        mailboxLock.unlock()
        for w in work { w(self) }
    }

    @inline(__always)
    var mailboxPending: Bool { swale_load_acquire(mailboxFlag) != 0 }

    // MARK: ports (called through perform)

    /// Installs a port; returns its index or nil when the bridge is full.
    public func addPort(_ state: PortState, adapter: PortAdapter?) -> Int? {
        perform { b -> Int? in
            guard let i = (0..<b.config.maxPorts).first(where: { $0 >= b.portCount || !b.ports[$0].active }) else { return nil }  // never read past initialized slots
            var s = state
            s.active = true
            if let adapter {
                b.adapters[i] = adapter
                s.adapter = Int32(i)
                b.addToEpoll(adapter.pollFD, tag: UInt64(i))
            } else {
                s.adapter = -1
                b.addToEpoll(s.kickFD, tag: UInt64(i))
            }
            (b.ports + i).initialize(to: s)
            b.activeCount += 1
            b.portCount = max(b.portCount, i + 1)
            return i
        }
    }

    /// Removes a port: it stops forwarding and its learning-table entries are flushed.
    @discardableResult
    public func removePort(_ index: Int) -> PortStats? {
        perform { b -> PortStats? in
            guard index < b.portCount, b.ports[index].active else { return nil }
            b.ports[index].active = false
            b.activeCount -= 1
            if let a = b.adapters[index] { b.removeFromEpoll(a.pollFD) } else { b.removeFromEpoll(b.ports[index].kickFD) }
            b.adapters[index] = nil
            _ = b.table.flush(port: UInt16(index))
            while b.portCount > 0 && !b.ports[b.portCount - 1].active { b.portCount -= 1 }
            return b.ports[index].stats
        }
    }

    public func updateBufferLimit(_ index: Int, limit: UInt32) {
        perform { b in if index < b.portCount { b.ports[index].bufLimit = limit } }
    }

    public func portStats(_ index: Int) -> (PortStats, UInt64)? {
        perform { b -> (PortStats, UInt64)? in
            guard index < b.portCount, b.ports[index].active else { return nil }
            let p = b.ports[index]
            return (p.stats, p.tx.resets &+ p.rx.resets)
        }
    }

    public func adapterCounters(_ index: Int) -> [String: UInt64]? {
        perform { b in b.adapters[index]?.counters }
    }

    public var activePorts: Int { perform { b in (0..<b.portCount).filter { b.ports[$0].active }.count } }

    public struct TableStats: Sendable {
        public var learned: UInt64, moved: UInt64, aged: UInt64, evicted: UInt64, entries: Int
        public var flooded: UInt64, batches: UInt64, wakeups: UInt64
    }

    public func tableStats() -> TableStats {
        perform { b in
            TableStats(learned: b.table.learned, moved: b.table.moved, aged: b.table.aged, evicted: b.table.evicted,
                       entries: b.table.count, flooded: b.flooded, batches: b.batches, wakeups: b.wakeups)
        }
    }

    public func fdbEntries() -> [(mac: UInt64, port: UInt16, age: UInt32)] {
        perform { b in b.table.entries(now: Bridge.now()) }
    }

    @discardableResult
    public func fdbFlush(port: Int?) -> Int {
        perform { b in b.table.flush(port: port.map { UInt16($0) }) }
    }

    public func setAging(_ seconds: UInt32) {
        perform { b in b.table.agingSeconds = seconds }
    }

    public var agingSeconds: UInt32 { perform { b in b.table.agingSeconds } }

    @inline(__always)
    static func now() -> UInt32 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return UInt32(truncatingIfNeeded: ts.tv_sec)
    }

    static func nowMicros() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
    }

    // MARK: the loop

    private func run() {
        var lastSweep = Bridge.now()
        var idleSince = 0
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while running {
            if mailboxPending { drainMailbox(); if !running { break } }
            let now = Bridge.now()
            if now != lastSweep {
                // Age a slice of the table per second (a whole 1M-entry sweep would stall forwarding);
                // lookups never return expired entries anyway, this only frees their slots.
                lastSweep = now
                _ = table.expire(now: now, buckets: max(1024, table.bucketCount / 8))
            }
            let work = forwardPass(now: now)
            if work > 0 { idleSince = 0; continue }
            let t = Bridge.nowMicros()
            if idleSince == 0 { idleSince = t }
            if t - idleSince < config.busyPollMicros { if config.yieldWhilePolling { sched_yield() } else { swale_cpu_relax() }; continue }

            // Going to sleep: ask apps to kick us, then look once more (no lost wake-ups).
            for i in 0..<portCount where ports[i].active { if let c = ports[i].csb { swale_store_relaxed(&c.pointee.switch_sleeping, 1) } }
            swale_fence()
            if anyPending() || mailboxPending {
                clearSleeping()
                continue
            }
            wakeups &+= 1
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epollFD, $0.baseAddress, 64, 1000) }
            clearSleeping()
            if n > 0 {
                for k in 0..<Int(n) {
                    let tag = events[k].data.u64
                    if tag == UInt64.max { wake.waitEnd.drain(); continue }
                    let i = Int(tag)
                    guard i < portCount, ports[i].active else { continue }
                    if ports[i].adapter < 0 {
                        _ = swale_doorbell_drain(ports[i].kickFD)
                    } else if events[k].events & EPOLLERR.rawValue != 0 {
                        adapters[i]?.handlePollError()
                    }
                }
            }
            idleSince = 0
        }
        stopped.signal()
    }

    private func clearSleeping() {
        for i in 0..<portCount where ports[i].active { if let c = ports[i].csb { swale_store_relaxed(&c.pointee.switch_sleeping, 0) } }
    }

    private func anyPending() -> Bool {
        for i in 0..<portCount where ports[i].active {
            if ports[i].needsTransmit { return true }
            guard ports[i].adapter < 0 else { continue }
            let h = ports[i].tx.ptr.loadHead()
            if h != ports[i].tx.hwcur && h != ports[i].stalledHead { return true }
        }
        return false
    }
}
