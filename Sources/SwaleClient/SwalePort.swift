/*
 * SwalePort — an application's handle on a Swale port or pipe end.
 *
 * `SwalePort.open("vale0:app1")` asks swaled for the port over the control socket and maps the
 * port's memory region (a memfd passed with SCM_RIGHTS). The port has one tx ring and one rx ring
 * with netmap's rules: fill tx slots in [head, tail), advance head, call txSync(); read rx slots in
 * [head, tail), advance head to release, call rxSync(). Slots name buffers by index, so frames can
 * move between rings of the same region by swapping indices (zero copy), as in netmap.
 *
 * - Switch port: the bridge's forwarding thread consumes tx and fills rx. txSync() wakes it only if
 *   it is asleep (a flag in shared memory), so a busy port makes no system call per batch.
 * - Pipe end (`X<ID` / `X>ID`): there is no third party. txSync() moves the submitted slots straight
 *   into the peer's rx ring by swapping buffer indices with slots the peer has released, then wakes
 *   the peer if it is waiting. Frames never pass through swaled.
 *
 * `fileDescriptor` is a doorbell socket to put in poll/epoll; `wait(...)` blocks on it with the
 * need-wakeup handshake done right. The connection to swaled stays open while the port is open:
 * closing it (or the process dying) releases the port.
 *
 * Everything in the region can be written by someone else: the switch, and on a pipe the peer (and
 * any other pipe of the same parent), which maps the whole region. So every value the library takes
 * from shared memory — ring head/cur/tail, a slot's buf_idx/len/flags, the peer's ring indices, the
 * control-block flags — is read once into a local, checked where it is used (indices below
 * num_slots, buf_idx naming a mapped buffer, len within a buffer; the peer's head/cur by netmap's
 * sync prologue) and never read again. `rxWindow()`/`txWindow()` and `rxSlot(_:)`/`txBuffer(_:)`
 * are those checked reads for applications. A bad value is counted in `peerErrors` (the last kind in
 * `lastPeerFault`, `checkPeer()` throws it) and treated as empty or skipped: never a crash or an
 * access outside the mapping.
 *
 * Opening takes three descriptors from swaled (region memfd, two doorbells); every failing path
 * closes each of them and the connection.
 *
 * Speed: without the old `-enforce-exclusivity=unchecked` flag, code in another module that reads
 * a class's stored property (`port.rx`) pays a run-time exclusivity check on each read, more than a
 * whole slot costs. Per-frame loops should take the ring view once per batch (`let rx = port.rx`,
 * a struct of pointers) and read slots through it (`rx.read(i)`), leaving the port's checked
 * methods (`rxSlot`, `nextTxBuffer`) for the slow path, as swale-pktgen does.
 */
import CSwaleABI
import CSwaleSys
import Foundation
import Glibc
import SwaleNames
import SwaleProtocol
import SwaleRings

public struct SwaleError: Error, CustomStringConvertible {
    public let message: String
    /// The service's error code, when the service refused (nil for local failures).
    public let code: ErrorCode?
    public init(_ m: String, code: ErrorCode? = nil) { message = m; self.code = code }
    public var description: String { message }
}

/// What a misbehaving peer (or anyone else writing the shared region) did.
public enum PeerFault: String, CustomStringConvertible, Sendable {
    case rxIndices = "rx ring head or tail out of range"
    case txIndices = "tx ring head or tail out of range"
    case bufferIndex = "slot buffer index outside the region"
    case length = "slot length larger than a buffer"
    case ownTxRing = "tx ring head/cur broke the ring rules (ring reset)"
    case peerRxRing = "peer's rx ring head/cur broke the ring rules (ring reset)"
    case unterminatedFrame = "a frame's fragments fill the whole rx ring (dropped)"
    public var description: String { rawValue }
}

/// Per side: syncs, doorbells rung, sleeps and wake-ups (swale-pktgen reports them per frame).
public struct WakeCounters: Sendable, Codable {
    public var txSyncs: UInt64 = 0
    public var rxSyncs: UInt64 = 0
    /// Doorbells this side rang (the switch or the pipe's peer had asked to be woken).
    public var kicks: UInt64 = 0
    /// wait() calls that went to sleep on the doorbell, and those a doorbell ended (not the timeout).
    public var sleeps: UInt64 = 0
    public var wakeups: UInt64 = 0
    public init() {}
}

public final class SwalePort {
    /// The canonical name of what was opened.
    public let name: String
    public let isPipe: Bool
    /// Spare buffers the service granted at open (chained from the interface's ni_bufs_head).
    public let extraBuffers: Int
    /// The netmap-compatible interface descriptor (struct swale_if / netmap_if).
    public let interface: UnsafeMutableRawPointer
    /// Ring the application fills (frames out of the app).
    @exclusivity(unchecked) public private(set) var tx: UserRing
    /// Ring the application reads (frames into the app).
    @exclusivity(unchecked) public private(set) var rx: UserRing
    /// Pipe end: the peer's rings (same region). Our txSync writes the peer's rx tail and slots;
    /// nothing else here is ours to write. Exposed for diagnostics and for `swale-pktgen -f
    /// scribble`, which plays a hostile peer.
    public private(set) var peerRings: (tx: UserRing, rx: UserRing)?
    public var bufferSize: Int { region.bufSize }
    /// Wakes when rx frames arrive or tx slots free up (after wait() armed it).
    public var fileDescriptor: Int32 { notify.fd }
    /// The region as this process maps it (its memfd, base, reserved span, buffers mapped now), for
    /// code that presents the rings another way (the netmap emulation).
    public var mapping: (fd: Int32, base: UnsafeMutableRawPointer, reserve: Int, buffers: UInt32) {
        (region.fd, region.base, region.reserve, region.blockLimit)
    }
    /// The wake-up control block (need-wakeup flags) of this port.
    public var controlBlock: UnsafeMutablePointer<swale_csb> { csb }

    let connection: ControlConnection
    let region: Region
    let notify: BellEnd
    let kick: BellEnd
    let csb: UnsafeMutablePointer<swale_csb>
    @exclusivity(unchecked) var pipe: PipeLink?
    /// How long wait() polls before it sleeps on the doorbell (0: sleep at once).
    @exclusivity(unchecked) public var busyPollMicros = SwalePort.defaultBusyPoll
    /// SWALE_BUSY_POLL_US overrides the default (50 µs) for every port of the process.
    static let defaultBusyPoll: Int = {
        if let v = ProcessInfo.processInfo.environment["SWALE_BUSY_POLL_US"], let n = Int(v), n >= 0 { return n }
        return 50
    }()
    /// Invalid values seen in shared memory: ring indices out of range or against the ring rules,
    /// buffer indices outside the region, lengths beyond a buffer (a misbehaving peer).
    @exclusivity(unchecked) public private(set) var peerErrors: UInt64 = 0
    /// The kind of the last one.
    @exclusivity(unchecked) public private(set) var lastPeerFault: PeerFault?
    /// How this side synchronised and slept: what separates a fast run from a slow one.
    @exclusivity(unchecked) public private(set) var wakeCounters = WakeCounters()

    /// Opens a port (`vale0:app1`) or a pipe end (`vale0:app1<7`, `vale0:app1>7`, `{`/`}` too).
    /// `extraBuffers`: spare buffers to ask for (netmap's nr_extra_bufs), listed from the interface's
    /// ni_bufs_head; `extraBuffers` on the port says how many came. Leave them in that list on close.
    /// `share`: netmap's non-exclusive open; joins a port already held by openers who shared it too
    /// (see `Open.share`). Without it the port is this process's alone while open.
    public static func open(
        _ name: String, socket: String? = nil, slots: Int? = nil, extraBuffers: Int? = nil, share: Bool = false
    ) throws -> SwalePort {
        do { _ = try PortName.parse(name) } catch { throw SwaleError("\(error)", code: .invalidArgument) }
        return try request(Open(name: name, slots: slots, extraBuffers: extraBuffers, share: share ? true : nil), socket: socket)
    }

    /// The open port or pipe end whose wake-up descriptor this process holds as `descriptor` (it came
    /// from another process, over SCM_RIGHTS or by fork): netmap's descriptor passing. The port must
    /// be the caller's. The returned port has wake-up descriptor of its own (a duplicate of the same line).
    public static func adopt(descriptor: Int32, socket: String? = nil) throws -> SwalePort {
        try request(Adopt(fd: Int(descriptor)), socket: socket)
    }

    /// One connection per port: the request that opens it, then the port built from the reply.
    static func request<O: ControlOperation>(_ op: O, socket: String?) throws -> SwalePort where O.Result == OpenInfo {
        let session: ControlSession
        do { session = try ControlSession.connect(socket: socket, client: "SwaleClient") } catch let e as ControlError {
            throw SwaleError(e.message, code: e.code)
        }
        let conn = session.connection
        // Descriptors received and not yet handed to a port: closed on every failure (issue #11).
        var fds: [Int32] = []
        do {
            let info: OpenInfo
            do {
                (info, fds) = try session.callWithDescriptors(op)
            } catch let e as ControlError {
                throw SwaleError(e.message, code: e.code)
            }
            guard fds.count == 3 else { throw SwaleError("\(O.op): expected 3 descriptors, got \(fds.count)") }
            let owned = fds
            fds = []
            return try SwalePort(info: info, fds: owned, connection: conn)
        } catch {
            fds.forEach { _ = Glibc.close($0) }
            conn.close()
            throw error
        }
    }

    /// Virtio-net headers on this port (netmap's NETMAP_REQ_PORT_HDR_SET): 12 (every frame sent and
    /// received starts with a struct virtio_net_hdr_v1) or 0. Asked on the port's own connection.
    public func setVirtioHeader(length: Int) throws {
        do { _ = try ControlSession.call(PortHeader(name: name, length: length), on: connection) } catch let e as ControlError {
            throw SwaleError(e.message, code: e.code)
        }
    }

    /// Takes ownership of `fds` (region memfd, own doorbell, doorbell to ring), not of `connection`:
    /// if it throws, all three descriptors are closed and the caller closes the connection. Nothing
    /// is stored before the last check, so a failed init never runs deinit (no double close).
    init(info: OpenInfo, fds: [Int32], connection: ControlConnection) throws {
        guard fds.count == 3 else {
            fds.forEach { _ = Glibc.close($0) }
            throw SwaleError("open \(info.name): expected 3 descriptors, got \(fds.count)")
        }
        let notifyEnd = BellEnd(adopting: fds[1])
        let kickEnd = BellEnd(adopting: fds[2])
        let mapped: Region
        do {
            mapped = try Region(mapping: fds[0], bufSize: info.bufSize)  // closes fds[0] if it throws
            try SwalePort.checkLayout(info, mappedSize: mapped.mappedSize)
        } catch {
            // `mapped`, if made, is released on the way out: its deinit unmaps and closes fds[0].
            notifyEnd.close()
            kickEnd.close()
            throw error
        }
        let base = mapped.base
        func ring(_ off: Int) -> UserRing {
            // Ring sizes come from the service's reply, never from shared memory a peer could change.
            UserRing(
                pointer: RingPointer(base + off, slots: info.slots), bufBase: base,
                bufSize: mapped.bufSize, bufLimit: mapped.blockLimit)
        }
        self.connection = connection
        region = mapped
        notify = notifyEnd
        kick = kickEnd
        name = info.name
        extraBuffers = info.extraBuffers ?? 0
        isPipe = info.kind == "pipe"
        interface = base + info.nifpOffset
        csb = (base + info.nifpOffset + Int(SWALE_CSB_OFFSET)).assumingMemoryBound(to: swale_csb.self)
        tx = ring(info.txRing)
        rx = ring(info.rxRing)
        // The wake-up handshake the membarrier way (swale_atomics.h): syncs may skip their fence
        // toward sleepers that say they sleep so, and the other side is told that this one does.
        _ = swale_barrier_register()
        // 0 -> 1 only: a 2 (another holder shares the block) stays, and the other side fences.
        if swale_barrier_sleeper() != 0 {
            _ = swale_cas_relaxed_u16(&csb.pointee.app_membarrier, 0, UInt16(SWALE_SLEEPS_MEMBARRIER))
        }
        if isPipe, let prx = info.peerRxRing, let pcsb = info.peerCsb {
            let peerRx = ring(prx)
            pipe = PipeLink(ownTx: tx.ptr, peerRx: peerRx.ptr, peerCsb: (base + pcsb).assumingMemoryBound(to: swale_csb.self))
            if let ptx = info.peerTxRing { peerRings = (ring(ptx), peerRx) }
        }
    }

    /// The service's layout must fit the mapping (a reply is trusted, but a wrong one must not
    /// make us touch memory outside the region).
    static func checkLayout(_ info: OpenInfo, mappedSize: Int) throws {
        guard (2...65536).contains(info.slots) else { throw SwaleError("open \(info.name): bad ring size \(info.slots)") }
        let bytes = RingPointer.bytes(slots: info.slots)
        for off in [info.nifpOffset, info.txRing, info.rxRing, info.peerRxRing ?? 0, info.peerTxRing ?? 0, info.peerCsb ?? 0]
        where off < 0 || off > mappedSize - bytes || off % 8 != 0 {
            throw SwaleError("open \(info.name): layout offset \(off) outside the region")
        }
    }

    deinit { close() }

    @exclusivity(unchecked) private var closed = false
    /// Releases the port (the service frees it, or the pipe when both ends are closed).
    public func close() {
        guard !closed else { return }
        closed = true
        connection.close()
        notify.close()
        kick.close()
    }

    // MARK: errors from shared memory

    @inline(never)
    func fault(_ f: PeerFault) {
        peerErrors &+= 1
        lastPeerFault = f
    }

    /// Throws "peer misbehaved: ..." if any invalid value was seen in shared memory.
    public func checkPeer() throws {
        if peerErrors > 0, let f = lastPeerFault {
            throw SwaleError("peer misbehaved: \(peerErrors) invalid value(s) in shared memory, last: \(f)")
        }
    }

    // MARK: sync

    /// Submits the tx slots up to head. On a pipe this moves them into the peer's rx ring.
    @inline(__always)
    public func txSync() {
        wakeCounters.txSyncs &+= 1
        if pipe != nil {
            let moved = pipe!.txsync(errors: &peerErrors, last: &lastPeerFault)
            if moved > 0 {
                swale_barrier_toward(&pipe!.peerCsb.pointee.app_membarrier)
                if swale_load_relaxed(&pipe!.peerCsb.pointee.app_rx_waiting) != 0 {
                    kick.ring()
                    wakeCounters.kicks &+= 1
                }
            }
            return
        }
        swale_barrier_toward(&csb.pointee.switch_membarrier)
        if swale_load_relaxed(&csb.pointee.switch_sleeping) != 0 {
            kick.ring()
            wakeCounters.kicks &+= 1
        }
    }

    /// Tells the other side that rx slots up to head were released.
    @inline(__always)
    public func rxSync() {
        wakeCounters.rxSyncs &+= 1
        if let peerCsb = pipe?.peerCsb {
            swale_barrier_toward(&peerCsb.pointee.app_membarrier)
            if swale_load_relaxed(&peerCsb.pointee.app_tx_waiting) != 0 {
                kick.ring()
                wakeCounters.kicks &+= 1
            }
        }
    }

    /// Free tx slots (on a pipe, refreshed from the peer's released room).
    @inline(__always)
    public func txSpace() -> UInt32 { txWindow().count }

    /// Frames waiting in rx.
    @inline(__always)
    public func rxAvailable() -> UInt32 { rx.space() }

    /// The rx slots to read: head and how many, from one read of head and tail. Empty (and counted)
    /// if either index is out of range. Read slots with `rxSlot(_:)`, release with `rx.advance(to:)`.
    @inline(__always)
    public func rxWindow() -> RingWindow {
        if let w = rx.window() { return w }
        fault(.rxIndices)
        return RingWindow(head: 0, count: 0)
    }

    /// The tx slots to fill: head and how many (on a pipe, synced first if there was no room).
    /// Empty (and counted) if an index is out of range. Fill with `txBuffer(_:)`.
    @inline(__always)
    public func txWindow() -> RingWindow {
        var w = tx.window()
        if pipe != nil, (w?.count ?? 0) == 0 {
            if w == nil { fault(.txIndices) }  // counted even though the sync rewrites tail
            txSync()
            w = tx.window()  // a new read: the sync moved tail
        }
        if let w { return w }
        fault(.txIndices)
        return RingWindow(head: 0, count: 0)
    }

    /// rx slot i read once and checked (i from `rxWindow()`). An invalid slot has `buffer == nil`
    /// and is counted; its flags still tell whether the frame goes on.
    @inline(__always)
    public func rxSlot(_ i: UInt32) -> SlotView {
        let v = rx.read(i)
        if _fastPath(v.isValid) { return v }
        return recheck(v, rx: true)
    }

    /// The buffer of tx slot i (its index read once and checked), or nil (counted) if the index is
    /// bad. Only buf_idx matters here: the application writes len and flags.
    @inline(__always)
    public func txBuffer(_ i: UInt32) -> UnsafeMutableRawPointer? {
        guard i < tx.numSlots else { return nil }
        let v = tx.check(bufIndex: swale_load_relaxed(&tx.slot(i).pointee.buf_idx), len: 0, flags: 0)
        if _fastPath(v.isValid) { return v.buffer }
        return recheck(v, rx: false).buffer
    }

    /// The next tx slot from i (at most `remaining` of them) that has a good buffer. Slots with a bad
    /// one are made empty fragments (len 0, MOREFRAG) of the frame being written, so the frame and
    /// the ring still move; the receiver skips them.
    @inline(__always)
    public func nextTxBuffer(_ i: inout UInt32, remaining: inout UInt32) -> UnsafeMutableRawPointer? {
        while remaining > 0 {
            if let b = txBuffer(i) { return b }
            let s = tx.slot(i)
            s.pointee.len = 0
            s.pointee.flags = UInt16(SWALE_NS_MOREFRAG)
            i = tx.next(i)
            remaining -= 1
        }
        return nil
    }

    /// Slow path of a slot that failed its check: a buffer index beyond what we mapped may be in
    /// memory the region gained since (pipes added later), so grow the mapping and check the same
    /// values again; otherwise count it.
    @inline(never)
    func recheck(_ v: SlotView, rx isRx: Bool) -> SlotView {
        let limit = isRx ? rx.bufLimit : tx.bufLimit
        if v.bufIndex >= limit, Int(v.bufIndex) < region.reserve / region.bufSize, Int(v.len) <= region.bufSize {
            refreshMapping()
            let again = (isRx ? rx : tx).check(bufIndex: v.bufIndex, len: v.len, flags: v.flags)
            if again.isValid { return again }
        }
        let idxOK = v.bufIndex >= BlockAllocator.reserved && v.bufIndex < (isRx ? rx.bufLimit : tx.bufLimit)
        fault(idxOK ? .length : .bufferIndex)
        return v
    }

    /// Call when window `w` (from rxWindow) held no complete frame. If it is the whole ring, its
    /// frame can never end (MOREFRAG on every slot): it is released and counted, and true returned,
    /// so that a reader waiting for the end does not wait forever.
    @inline(never)
    public func dropUnterminatedFrame(_ w: RingWindow) -> Bool {
        guard w.count == rx.numSlots &- 1 else { return false }
        rx.advance(to: RingMath.add(w.head, w.count, rx.numSlots))
        fault(.unterminatedFrame)
        rxSync()
        return true
    }

    public enum WaitFor { case rx, tx, either }

    /// Blocks until rx has frames / tx has room, or the timeout (ms; -1 forever). Returns true if ready.
    public func wait(for what: WaitFor, timeoutMs: Int32) -> Bool {
        func ready() -> Bool {
            switch what {
            case .rx: return rxAvailable() > 0
            case .tx: return txSpace() > 0
            case .either: return rxAvailable() > 0 || txSpace() > 0
            }
        }
        if ready() { return true }
        // Poll a little before sleeping: under load the other side answers within microseconds,
        // and a sleep costs two system calls on each side.
        if busyPollMicros > 0 {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let until = ts.tv_sec * 1_000_000_000 + ts.tv_nsec + busyPollMicros * 1000
            var spins = 0
            while true {
                // Yield rather than spin: on a machine with fewer cores than busy parties (app,
                // switch, app on 2 cores) a spinning waiter would steal the core its peer needs.
                sched_yield()
                if ready() { return true }
                spins += 1
                if spins & 7 == 0 {
                    clock_gettime(CLOCK_MONOTONIC, &ts)
                    if ts.tv_sec * 1_000_000_000 + ts.tv_nsec > until { break }
                }
            }
        }
        // Counts, not flags: the holders of a shared port share this control block, and one
        // waking up must not lower the flag another still sleeps under.
        if what != .tx { swale_add_relaxed(&csb.pointee.app_rx_waiting, 1) }
        if what != .rx { swale_add_relaxed(&csb.pointee.app_tx_waiting, 1) }
        swale_barrier_heavy()  // the publishers' side of the handshake is only a compiler barrier
        defer {
            if what != .tx { swale_sub_relaxed(&csb.pointee.app_rx_waiting, 1) }
            if what != .rx { swale_sub_relaxed(&csb.pointee.app_tx_waiting, 1) }
        }
        if ready() { return true }
        wakeCounters.sleeps &+= 1
        if notify.wait(timeoutMs: timeoutMs) { wakeCounters.wakeups &+= 1 }
        return ready()
    }

    /// Picks up buffers in parts of the region that grew since it was mapped (pipes added later).
    public func refreshMapping() {
        if (try? region.refresh()) == true {
            tx.bufLimit = region.blockLimit
            rx.bufLimit = region.blockLimit
        }
    }

    // MARK: convenience (copying) helpers

    /// Copies one frame into tx (spanning slots if larger than a buffer) without syncing.
    /// Returns false if there is no room.
    public func enqueue(_ frame: UnsafeRawBufferPointer) -> Bool {
        let w = txWindow()
        var i = w.head
        var left = w.count
        let start = i
        let wrote = writeFrame(frame, at: &i, remaining: &left)
        // Not written: publish only the empty fragments of bad slots before it (the receiver joins
        // them to the next frame), never part of the frame.
        if wrote || i != start { tx.advance(to: i) }
        return wrote
    }

    /// Writes one frame into tx slots from `i` on (at most `remaining` slots),
    /// MOREFRAG on all but the last, and moves `i` and `remaining` past them. Slots with a bad
    /// buffer become empty fragments first (nextTxBuffer). False, with `i` after those empty
    /// fragments only, when the good slots run out: nothing of the frame is to be published.
    @inline(__always)
    public func writeFrame(_ frame: UnsafeRawBufferPointer, at i: inout UInt32, remaining: inout UInt32) -> Bool {
        let bs = region.bufSize
        let count = frame.count
        let need = max(1, (count + bs - 1) / bs)
        guard remaining >= UInt32(need) else { return false }
        var j = i, left = remaining
        var off = 0
        for k in 0..<need {
            guard let buf = nextTxBuffer(&j, remaining: &left) else {
                if k == 0 { i = j; remaining = left }
                return false
            }
            let s = tx.slot(j)
            let chunk = min(bs, count - off)
            if chunk > 0 { memcpy(buf, frame.baseAddress! + off, chunk) }
            s.pointee.len = UInt16(chunk)
            s.pointee.flags = k + 1 < need ? UInt16(SWALE_NS_MOREFRAG) : 0
            off += chunk
            j = tx.next(j)
            left -= 1
        }
        i = j
        remaining = left
        return true
    }

    /// Sends one frame (copy + sync), waiting up to timeoutMs (-1: as long as it takes) for room.
    /// A wake-up that brings no room (an earlier ring still on the line) is not the end of the wait.
    public func send(_ frame: UnsafeRawBufferPointer, timeoutMs: Int32 = 1000) -> Bool {
        if enqueue(frame) { txSync(); return true }
        func nowMs() -> Int {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000
        }
        let deadline = timeoutMs < 0 ? Int.max : nowMs() + Int(timeoutMs)
        repeat {
            txSync()
            let left = deadline == Int.max ? -1 : max(0, deadline - nowMs())
            _ = wait(for: .tx, timeoutMs: Int32(clamping: left))
            if enqueue(frame) { txSync(); return true }
        } while nowMs() < deadline
        return false
    }

    /// Calls body for each complete frame in rx (a frame spanning slots is passed as its slots'
    /// bytes joined), releases them, and returns how many frames were read. Invalid slots (counted
    /// in peerErrors) contribute no bytes; a frame made only of them is not passed on.
    @discardableResult
    public func receive(max: Int = Int.max, _ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        var n = 0
        let w = rxWindow()
        var i = w.head
        var avail = w.count
        var assembly: [UInt8] = []
        var partial = false  // inside a multi-slot frame
        var released = false
        while avail > 0 && n < max {
            if avail > 4 { rx.prefetch(RingMath.add(i, 4, rx.numSlots)) }  // see UserRing.prefetch
            let v = rxSlot(i)
            let more = v.moreFragments
            if let bytes = v.bytes {
                if more || partial {
                    assembly.append(contentsOf: bytes)
                } else {
                    body(bytes)
                    n += 1
                }
            }
            i = rx.next(i)
            avail -= 1
            if more {
                partial = true
                continue
            }
            if partial {
                if !assembly.isEmpty {
                    assembly.withUnsafeBytes { body($0) }
                    n += 1
                }
                assembly.removeAll(keepingCapacity: true)
                partial = false
            }
            rx.advance(to: i)
            released = true
        }
        if partial && !released { _ = dropUnterminatedFrame(w) }
        rxSync()
        return n
    }
}

extension SwalePort {
    /// Tx slots submitted but not yet taken by the other side.
    public func txPending() -> UInt32 {
        guard let w = tx.window() else { return 0 }
        if let pipe { return RingMath.distance(pipe.ownTx.hwcur, w.head, tx.numSlots) }
        return tx.numSlots &- 1 &- min(w.count, tx.numSlots &- 1)
    }
}
