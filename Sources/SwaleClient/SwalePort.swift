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
 */
import CSwaleABI
import CSwaleSys
import Foundation
import Glibc
import SwaleControl
import SwaleRings
import SwaleNames

public struct SwaleError: Error, CustomStringConvertible {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

public final class SwalePort {
    /// The canonical name of what was opened.
    public let name: String
    public let isPipe: Bool
    /// The netmap-compatible interface descriptor (struct swale_if / netmap_if).
    public let interface: UnsafeMutableRawPointer
    /// Ring the application fills (frames out of the app).
    @exclusivity(unchecked) public private(set) var tx: UserRing
    /// Ring the application reads (frames into the app).
    @exclusivity(unchecked) public private(set) var rx: UserRing
    public var bufferSize: Int { region.bufSize }
    /// Wakes when rx frames arrive or tx slots free up (after wait() armed it).
    public var fileDescriptor: Int32 { notify.fd }

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
    /// Invalid peer indices seen by pipe syncs (a misbehaving peer).
    @exclusivity(unchecked) public private(set) var peerErrors: UInt64 = 0

    /// Opens a port (`vale0:app1`) or a pipe end (`vale0:app1<7`, `vale0:app1>7`, `{`/`}` too).
    public static func open(_ name: String, socket: String? = nil, slots: Int? = nil) throws -> SwalePort {
        do { _ = try PortName.parse(name) } catch { throw SwaleError("\(error)") }
        let conn = try ControlConnection.connect(path: ControlPaths.resolve(socket))
        do {
            var req = Request(op: "open")
            req.name = name
            req.slots = slots
            try conn.send(JSONEncoder().encode(req))
            guard let (data, fds) = try conn.receive() else { throw SwaleError("swaled closed the connection") }
            let reply = try JSONDecoder().decode(Reply<OpenInfo>.self, from: data)
            guard reply.ok, let info = reply.result else {
                fds.forEach { Glibc.close($0) }
                throw SwaleError(reply.error ?? "open \(name) failed")
            }
            guard fds.count == 3 else {
                fds.forEach { Glibc.close($0) }
                throw SwaleError("open \(name): expected 3 descriptors, got \(fds.count)")
            }
            return try SwalePort(info: info, fds: fds, connection: conn)
        } catch {
            conn.close()
            throw error
        }
    }

    init(info: OpenInfo, fds: [Int32], connection: ControlConnection) throws {
        self.connection = connection
        region = try Region(mapping: fds[0], bufSize: info.bufSize)
        notify = BellEnd(adopting: fds[1])
        kick = BellEnd(adopting: fds[2])
        name = info.name
        isPipe = info.kind == "pipe"
        for off in [info.nifpOffset, info.txRing, info.rxRing, info.peerRxRing ?? 0, info.peerCsb ?? 0]
        where off < 0 || off + RingPointer.bytes(slots: info.slots) > region.mappedSize {
            throw SwaleError("open \(info.name): layout offset \(off) outside the region")
        }
        interface = region.base + info.nifpOffset
        csb = (region.base + info.nifpOffset + Int(SWALE_CSB_OFFSET)).assumingMemoryBound(to: swale_csb.self)
        guard (2...65536).contains(info.slots) else { throw SwaleError("open \(info.name): bad ring size \(info.slots)") }
        // Ring sizes come from the service's reply, never from shared memory a peer could change.
        tx = UserRing(pointer: RingPointer(region.base + info.txRing, slots: info.slots), bufBase: region.base,
                      bufSize: region.bufSize, bufLimit: region.blockLimit)
        rx = UserRing(pointer: RingPointer(region.base + info.rxRing, slots: info.slots), bufBase: region.base,
                      bufSize: region.bufSize, bufLimit: region.blockLimit)
        if isPipe, let prx = info.peerRxRing, let pcsb = info.peerCsb {
            pipe = PipeLink(ownTx: tx.ptr, peerRx: RingPointer(region.base + prx, slots: info.slots),
                            peerCsb: (region.base + pcsb).assumingMemoryBound(to: swale_csb.self))
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

    // MARK: sync

    /// Submits the tx slots up to head. On a pipe this moves them into the peer's rx ring.
    @inline(__always)
    public func txSync() {
        if let pipe {
            let moved = pipe.txsync(limit: &tx.bufLimit, errors: &peerErrors)
            if moved > 0 {
                swale_fence()
                if swale_load_relaxed(&pipe.peerCsb.pointee.app_rx_waiting) != 0 { kick.ring() }
            }
            return
        }
        swale_fence()
        if swale_load_relaxed(&csb.pointee.switch_sleeping) != 0 { kick.ring() }
    }

    /// Tells the other side that rx slots up to head were released.
    @inline(__always)
    public func rxSync() {
        if let pipe {
            swale_fence()
            if swale_load_relaxed(&pipe.peerCsb.pointee.app_tx_waiting) != 0 { kick.ring() }
        }
    }

    /// Free tx slots (on a pipe, refreshed from the peer's released room).
    @inline(__always)
    public func txSpace() -> UInt32 {
        if pipe != nil {
            let s = tx.space()
            if s > 0 { return s }
            txSync()
        }
        return tx.space()
    }

    /// Frames waiting in rx.
    @inline(__always)
    public func rxAvailable() -> UInt32 { rx.space() }

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
        if what != .tx { swale_store_relaxed(&csb.pointee.app_rx_waiting, 1) }
        if what != .rx { swale_store_relaxed(&csb.pointee.app_tx_waiting, 1) }
        swale_fence()
        defer {
            swale_store_relaxed(&csb.pointee.app_rx_waiting, 0)
            swale_store_relaxed(&csb.pointee.app_tx_waiting, 0)
        }
        if ready() { return true }
        _ = notify.wait(timeoutMs: timeoutMs)
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
        let bs = region.bufSize
        let need = UInt32(max(1, (frame.count + bs - 1) / bs))
        guard tx.space() >= need else { return false }
        var w = SlotWriter(tx, at: tx.head)
        if let base = frame.baseAddress { w.write(base, frame.count) }
        guard w.ok else { return false }
        tx.advance(to: RingMath.add(tx.head, w.finish(), tx.numSlots))
        return true
    }

    /// Sends one frame (copy + sync), waiting up to timeoutMs for room.
    public func send(_ frame: UnsafeRawBufferPointer, timeoutMs: Int32 = 1000) -> Bool {
        if enqueue(frame) { txSync(); return true }
        txSync()
        guard wait(for: .tx, timeoutMs: timeoutMs) else { return false }
        if enqueue(frame) { txSync(); return true }
        return false
    }

    /// Calls body for each complete frame in rx (a frame spanning slots is passed as its slots'
    /// bytes joined), releases them, and returns how many frames were read. Slots with invalid
    /// buffer indices or lengths are skipped.
    @discardableResult
    public func receive(max: Int = Int.max, _ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        var n = 0
        var i = rx.head
        var avail = rx.space()
        let bs = region.bufSize
        var assembly: [UInt8] = []
        while avail > 0 && n < max {
            let s = rx.slot(i)
            let len = min(Int(s.pointee.len), bs)
            let more = s.pointee.flags & UInt16(SWALE_NS_MOREFRAG) != 0
            if rx.buffer(s) == nil && s.pointee.buf_idx >= rx.bufLimit {
                refreshMapping()   // a buffer from memory the region gained after we mapped it
            }
            if let buf = rx.buffer(s) {
                if more || !assembly.isEmpty {
                    assembly.append(contentsOf: UnsafeRawBufferPointer(start: buf, count: len))
                } else {
                    body(UnsafeRawBufferPointer(start: buf, count: len))
                    n += 1
                }
            }
            i = rx.next(i)
            avail -= 1
            if !more && !assembly.isEmpty {
                assembly.withUnsafeBytes { body($0) }
                assembly.removeAll(keepingCapacity: true)
                n += 1
            }
            if !more { rx.advance(to: i) }
        }
        rxSync()
        return n
    }
}

extension SwalePort {
    /// Tx slots submitted but not yet taken by the other side.
    public func txPending() -> UInt32 {
        if let pipe { return RingMath.distance(pipe.ownTx.hwcur, tx.head, tx.numSlots) }
        return tx.numSlots &- 1 &- min(tx.space(), tx.numSlots &- 1)
    }
}
