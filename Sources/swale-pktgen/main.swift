// swale-pktgen — a traffic tool in the spirit of netmap's pkt-gen: tx, rx, ping and pong on a Swale
// port or pipe end, batch at a time, with optional content checks.
//
// Frame layout: Ethernet header (ethertype 0x88b5, local experimental), then at offset 14 a 64-bit
// sequence number, at 22 the frame length (16 bits), at 24 a 64-bit timestamp (ping), and from 32 a
// byte pattern derived from the sequence number, which `--check` verifies on receive.
//
// Rings are read through SwalePort's checked accessors (rxWindow/rxSlot, txWindow/txBuffer): each
// shared index and slot is read once and validated. Invalid values from the other side (a hostile
// pipe peer: try `-f scribble` on the other end) are skipped and counted; the tool keeps going, and
// at the end prints "peer misbehaved: ..." on stderr, reports `peer_errors` in the JSON summary and
// exits with status 2 (scribble mode, which causes them, exits 0).
import ArgumentParser
import CSwaleABI
import CSwaleSys
import Foundation
import Glibc
import SwaleClient
import SwaleNames
import SwaleRings

enum Clock {
    static func ns() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

struct Rng {
    var s: UInt64
    mutating func next() -> UInt64 {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        return s
    }
}

enum Frame {
    static let headerBytes = 32

    /// The first 16 bytes of every frame (MACs, ethertype, two bytes the sequence number covers), as
    /// two words built once: a frame then costs five stores, not one per byte. A sender that writes
    /// into buffers the receiver just read waits for each line, and fewer stores per line let more
    /// frames be in flight meanwhile.
    struct Addresses {
        let w0: UInt64
        let w1: UInt64
        init(dst: UInt64, src: UInt64, ethertype: UInt16 = 0x88b5) {
            var b = [UInt8](repeating: 0, count: 16)
            for k in 0..<6 {
                b[k] = UInt8(truncatingIfNeeded: dst >> (40 - 8 * UInt64(k)))
                b[6 + k] = UInt8(truncatingIfNeeded: src >> (40 - 8 * UInt64(k)))
            }
            b[12] = UInt8(ethertype >> 8)
            b[13] = UInt8(ethertype & 0xff)
            w0 = b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self) }
            w1 = b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
        }
    }

    /// Reads up to `count` rx slots from `head` while each holds a whole frame with a good buffer,
    /// and returns the slots read and the frames and bytes among them (another port's announce
    /// frames are not counted; see verify). Buffers are prefetched a few slots ahead (see
    /// UserRing.prefetch).
    @inline(__always)
    static func countBatch(_ rx: UserRing, from head: UInt32, count: UInt32) -> (slots: UInt32, frames: UInt64, bytes: UInt64) {
        let n = rx.numSlots
        let announce = UInt16(0x88b6).bigEndian
        var i = head
        var k: UInt32 = 0
        var frames: UInt64 = 0, bytes: UInt64 = 0
        while k < count {
            if count &- k > Options.prefetchAhead { rx.prefetch(RingMath.add(i, Options.prefetchAhead, n)) }
            let v = rx.read(i)
            guard let buf = v.buffer, !v.moreFragments else { break }
            if v.len < 14 || buf.load(fromByteOffset: 12, as: UInt16.self) != announce {
                frames &+= 1
                bytes &+= UInt64(v.len)
            }
            i = RingMath.next(i, n)
            k &+= 1
        }
        return (k, frames, bytes)
    }

    /// Fills up to `count` tx slots from `head` with single-slot frames of length `len` (sequence
    /// numbers from `seq`), and returns how many: fewer if a slot names a bad buffer (a scribbling
    /// peer), which the caller's general path then deals with.
    @inline(__always)
    static func fillBatch(
        _ tx: UserRing, from head: UInt32, count: UInt32, len: Int, seq: UInt64, addresses: Addresses, pattern: Bool
    ) -> UInt32 {
        let lenAndFlags = UInt32(truncatingIfNeeded: len)  // len, then flags 0 (slot bytes 4-7)
        let limit = tx.bufLimit, base = tx.bufBase, size = tx.bufSize, n = tx.numSlots
        var i = head
        var k: UInt32 = 0
        while k < count {
            let slot = UnsafeMutableRawPointer(tx.slot(i))
            let idx = slot.load(as: UInt32.self)  // buf_idx, read once
            guard idx >= BlockAllocator.reserved, idx < limit else { break }
            fill(base + Int(idx) &* size, len: len, seq: seq &+ UInt64(k), addresses: addresses, stamp: 0, pattern: pattern)
            slot.storeBytes(of: lenAndFlags, toByteOffset: 4, as: UInt32.self)
            i = RingMath.next(i, n)
            k &+= 1
        }
        return k
    }

    @inline(__always)
    static func fill(_ p: UnsafeMutableRawPointer, len: Int, seq: UInt64, addresses a: Addresses, stamp: UInt64, pattern: Bool) {
        p.storeBytes(of: a.w0, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: a.w1, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: seq.littleEndian, toByteOffset: 14, as: UInt64.self)
        p.storeBytes(of: UInt16(truncatingIfNeeded: len).littleEndian, toByteOffset: 22, as: UInt16.self)
        p.storeBytes(of: stamp.littleEndian, toByteOffset: 24, as: UInt64.self)
        if pattern {
            let b = p.assumingMemoryBound(to: UInt8.self)
            var i = headerBytes
            while i < len { b[i] = UInt8(truncatingIfNeeded: seq &+ UInt64(i)); i += 1 }
        }
    }
}

struct Summary: Codable {
    var mode: String
    var packets: UInt64
    var bytes: UInt64
    var seconds: Double
    var pps: Double
    var gbps: Double
    var errors: UInt64?
    var lost: UInt64?
    var ignored: UInt64?
    var rtt_min_us: Double?
    var rtt_avg_us: Double?
    var rtt_max_us: Double?
    var peer_errors: UInt64?
    /// How this side synchronised and slept, and what the scheduler did to it: the numbers that
    /// tell a fast run from a slow one (per frame: divide by packets).
    var wake: WakeCounters?
    var voluntary_switches: Int?
    var involuntary_switches: Int?
    /// The CPU it ended on (-a pins it).
    var cpu: Int?
}

struct PktGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swale-pktgen", abstract: "Send, receive, ping or pong frames on a Swale port or pipe.")

    @Option(name: .short, help: "Port or pipe end, e.g. vale0:a or vale0:a<1.") var i: String
    @Option(
        name: .short,
        help:
            "tx, rx, ping, pong, or scribble (a hostile app: random ring indices and slots in its rings and, on a pipe end, its peer's, for --timeout seconds). Other modes exit 2 if the other side wrote invalid values into shared memory (skipped, counted, reported as peer_errors)."
    ) var f: String
    @Option(name: .short, help: "Frames to send/receive (0: no limit; rx/pong then stop on --timeout).") var n: UInt64 = 0
    @Option(name: .short, help: "Frame length in bytes, or MIN:MAX for random lengths.") var l: String = "60"
    @Option(name: .short, help: "Frames per batch.") var b: Int = 32
    @Option(name: .customShort("R"), help: "Rate limit in frames per second (0: none).") var rate: Double = 0
    @Option(name: .short, help: "Source MAC.") var s: String = "02:00:00:00:00:01"
    @Option(name: .short, help: "Destination MAC.") var d: String = "ff:ff:ff:ff:ff:ff"
    @Option(name: .customShort("T"), help: "Progress report interval in ms (0: none).") var reportMs: Int = 1000
    @Option(
        help:
            "rx/pong: stop after this many seconds without traffic; tx/ping: give up after this many seconds without room/replies."
    ) var timeout: Double = 5
    @Flag(help: "Print the final summary as one JSON object on the last line.") var json = false
    @Flag(help: "Fill (tx) or verify (rx) sequence numbers, lengths and payload patterns.") var check = false
    @Option(help: "Seed for random lengths.") var seed: UInt64 = 0x5eed
    @Option(help: "Control socket.") var socket: String?
    @Flag(help: "rx/pong: first send one announce frame from -s so the switch learns this port's MAC.") var announce = false
    @Option(help: "rx: count only frames from this source MAC (others are reported as ignored).") var from: String?
    @Option(help: "tx: stop after this many seconds (0: only -n bounds it).") var seconds: Double = 0
    @Option(name: .short, help: "Pin to this CPU (pkt-gen's -a); unpinned by default.") var a: Int?

    func validate() throws {
        guard ["tx", "rx", "ping", "pong", "scribble"].contains(f) else {
            throw ValidationError("-f must be tx, rx, ping, pong or scribble (got '\(f)')")
        }
        guard b >= 1 && b <= 4096 else { throw ValidationError("-b must be between 1 and 4096") }
        if let a, a < 0 || a >= sysconf(Int32(_SC_NPROCESSORS_CONF)) {
            throw ValidationError("-a \(a): this machine has CPUs 0...\(sysconf(Int32(_SC_NPROCESSORS_CONF)) - 1)")
        }
        _ = try lengths()
    }

    func lengths() throws -> (Int, Int) {
        let parts = l.split(separator: ":").map { Int($0) }
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0 != nil }) else {
            throw ValidationError("-l takes LEN or MIN:MAX (got '\(l)')")
        }
        let lo = parts[0]!, hi = parts.count == 2 ? parts[1]! : parts[0]!
        guard lo >= Frame.headerBytes, hi >= lo, hi <= 65535 else {
            throw ValidationError("frame length must be between \(Frame.headerBytes) and 65535 (got '\(l)')")
        }
        return (lo, hi)
    }

    func run() throws {
        var opts = Options()
        opts.n = n; opts.b = b; opts.rate = rate; opts.timeout = timeout; opts.check = check; opts.seed = seed
        if let from { opts.from = try Names.parseMAC(from) }
        opts.seconds = seconds
        try opts.runMain(self)
    }
}

/// The options as plain values: property-wrapper getters cost too much inside the frame loops.
struct Options {
    /// How many slots ahead of the frame in hand the receive loop prefetches buffers.
    static let prefetchAhead: UInt32 = 4
    var n: UInt64 = 0
    var b = 32
    var rate = 0.0
    var timeout = 5.0
    var check = false
    var seed: UInt64 = 0
    /// rx: only frames from this source MAC count (0: all).
    var from: UInt64 = 0
    /// tx: stop after this long (0: no limit).
    var seconds = 0.0

    func runMain(_ cmd: PktGen) throws {
        let i = cmd.i, f = cmd.f, s = cmd.s, d = cmd.d, json = cmd.json, reportMs = cmd.reportMs, socket = cmd.socket,
            announce = cmd.announce
        if let cpu = cmd.a {
            var one = Int32(clamping: cpu)
            let rc = swale_set_thread_cpus(0, &one, 1)
            if rc < 0 { throw ValidationError("-a \(cpu): cannot pin: \(String(cString: strerror(-rc)))") }
        }
        let port: SwalePort
        do { port = try SwalePort.open(i, socket: socket) } catch {
            throw ValidationError("cannot open \(i): \(error)")
        }
        defer { port.close() }
        let src = try Names.parseMAC(s)
        let dst = try Names.parseMAC(d)
        let (lo, hi) = try cmd.lengths()
        var st = Stats(reportMs: reportMs, mode: f)
        if announce {
            var frame = [UInt8](repeating: 0, count: 60)
            frame.withUnsafeMutableBytes {
                Frame.fill(
                    $0.baseAddress!, len: 60, seq: 0,
                    addresses: Frame.Addresses(dst: 0xffff_ffff_ffff, src: src, ethertype: 0x88b6),
                    stamp: 0, pattern: false)
            }
            _ = frame.withUnsafeBytes { port.send($0) }
        }
        switch f {
        case "tx": transmit(port, src: src, dst: dst, lo: lo, hi: hi, st: &st)
        case "rx": receive(port, st: &st)
        case "ping": ping(port, src: src, dst: dst, lo: lo, st: &st)
        case "scribble": scribble(port, st: &st)
        default: pong(port, st: &st)
        }
        // A receiver times from the first arrival to the last: frames that all came in one read
        // have no span, and no rate (0 in the summary, said in the line) rather than a division by ~0.
        let timed = st.packets > 0 && st.lastNs > st.firstNs
        let secs = timed ? Double(st.lastNs &- st.firstNs) / 1e9 : 0
        var sum = Summary(
            mode: f, packets: st.packets, bytes: st.bytes, seconds: secs, pps: timed ? Double(st.packets) / secs : 0,
            gbps: timed ? Double(st.bytes) * 8 / secs / 1e9 : 0)
        if check && f == "rx" { sum.errors = st.errors; sum.lost = st.lost }
        if f == "rx" && from != 0 { sum.ignored = st.ignored }
        if f == "ping" && st.rttCount > 0 {
            sum.rtt_min_us = st.rttMin / 1000; sum.rtt_max_us = st.rttMax / 1000
            sum.rtt_avg_us = st.rttSum / Double(st.rttCount) / 1000
        }
        print(
            String(
                format: "%@: %llu packets, %llu bytes, %.3f s, %.0f pps, %.3f Gbit/s", f, st.packets, st.bytes, sum.seconds,
                sum.pps, sum.gbps)
                + (f == "ping" && st.rttCount > 0
                    ? String(format: ", rtt min/avg/max %.1f/%.1f/%.1f us", sum.rtt_min_us!, sum.rtt_avg_us!, sum.rtt_max_us!)
                    : "")
                + (st.packets > 0 && !timed ? " (all arrived at once: too few to time)" : "")
                + (check && f == "rx" ? ", \(st.errors) content errors, \(st.lost) lost" : ""))
        if port.peerErrors > 0 { sum.peer_errors = port.peerErrors }
        sum.wake = port.wakeCounters
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        sum.voluntary_switches = usage.ru_nvcsw
        sum.involuntary_switches = usage.ru_nivcsw
        sum.cpu = Int(swale_current_cpu())
        do { try port.checkPeer() } catch { FileHandle.standardError.write("\(f): \(error)\n".data(using: .utf8)!) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(sum), as: UTF8.self))
        }
        if check && f == "rx" && (st.errors > 0) { throw ExitCode(1) }
        if port.peerErrors > 0 && f != "scribble" { throw ExitCode(2) }
    }

    struct Stats {
        var packets: UInt64 = 0
        var bytes: UInt64 = 0
        var firstNs: UInt64 = 0
        var lastNs: UInt64 = 0
        var errors: UInt64 = 0
        var lost: UInt64 = 0
        var ignored: UInt64 = 0
        var rttMin = Double.infinity, rttMax = 0.0, rttSum = 0.0
        var rttCount = 0
        let reportMs: Int
        let mode: String
        var lastReport: UInt64 = 0
        var lastReportPkts: UInt64 = 0

        init(reportMs: Int, mode: String) { self.reportMs = reportMs; self.mode = mode }

        /// Counted frames arrived at `now`: the clock runs from the first to the last of them.
        mutating func arrived(at now: UInt64) {
            if firstNs == 0 { firstNs = now }
            lastNs = now
        }

        mutating func progress(_ now: UInt64) {
            guard reportMs > 0 else { return }
            if lastReport == 0 { lastReport = now; return }
            let dt = now &- lastReport
            if dt >= UInt64(reportMs) * 1_000_000 {
                let pps = Double(packets &- lastReportPkts) / (Double(dt) / 1e9)
                FileHandle.standardError.write(
                    String(format: "%@: %llu packets total, %.0f pps\n", mode, packets, pps).data(using: .utf8)!)
                lastReport = now
                lastReportPkts = packets
            }
        }
    }

    /// A hostile application: writes random head/cur/tail into both rings and random buf_idx, len
    /// and flags into their slots, then syncs, for `timeout` seconds (bounded). On a pipe end it also
    /// scribbles the peer's rings, which share the region (everything the peer reads from it). Half
    /// the values are near-valid (within the ring, within the region) so they reach the deeper
    /// checks. Counts syncs.
    func scribble(_ port: SwalePort, st: inout Stats) {
        var rng = Rng(s: seed | 1)
        st.firstNs = Clock.ns()
        let end = st.firstNs &+ UInt64(timeout * 1e9)
        let limit = n == 0 ? UInt64.max : n
        func pick(_ near: UInt32) -> UInt32 {
            let r = rng.next()
            return r & 1 == 0 ? UInt32(truncatingIfNeeded: r >> 32) : UInt32(truncatingIfNeeded: (r >> 8) % UInt64(near))
        }
        var rings = [port.tx, port.rx]
        if let peer = port.peerRings { rings += [peer.tx, peer.rx] }
        while st.packets < limit {
            let now = Clock.ns()
            if now >= end { break }
            for ring in rings {
                let slots = ring.numSlots
                for _ in 0..<4 {
                    let slot = ring.slot(UInt32(truncatingIfNeeded: rng.next() % UInt64(slots)))
                    slot.pointee.buf_idx = pick(ring.bufLimit &+ 4)
                    slot.pointee.len = UInt16(truncatingIfNeeded: pick(UInt32(port.bufferSize) * 2))
                    slot.pointee.flags = UInt16(truncatingIfNeeded: rng.next())
                }
                ring.ptr.storeHead(pick(slots &+ 2))
                ring.ptr.storeCur(pick(slots &+ 2))
                ring.ptr.storeTail(pick(slots &+ 2))
            }
            port.txSync()
            port.rxSync()
            st.packets &+= 1
            st.lastNs = now
            if st.packets & 63 == 0 { usleep(100) }  // let the switch look at each state
            st.progress(now)
        }
    }

    func transmit(_ port: SwalePort, src: UInt64, dst: UInt64, lo: Int, hi: Int, st: inout Stats) {
        let addresses = Frame.Addresses(dst: dst, src: src)
        var rng = Rng(s: seed | 1)
        let bs = port.bufferSize
        let fixedLen = lo == hi && lo <= bs ? lo : 0
        let limit = n == 0 ? UInt64.max : n
        var seq: UInt64 = 0
        var scratch = [UInt8](repeating: 0, count: 65536)
        var pendingLen: Int? = nil
        st.firstNs = Clock.ns()
        var lastProgress = st.firstNs
        let stopAt = seconds > 0 ? st.firstNs &+ UInt64(seconds * 1e9) : UInt64.max
        var now = st.firstNs
        var batches: UInt32 = 0
        while seq < limit {
            // The clock every 16 batches (every batch under a rate limit): at -b 1 a clock read per
            // frame cost 14% of the sender's time.
            if rate > 0 || batches & 15 == 0 { now = Clock.ns() }
            batches &+= 1
            if now >= stopAt { break }
            var allowed = UInt64(b)
            if rate > 0 {
                let due = UInt64(Double(now &- st.firstNs) / 1e9 * rate) &+ 1
                if due <= seq { usleep(50); continue }
                allowed = min(allowed, due &- seq)
            }
            let win = port.txWindow()
            var space = win.count
            if space == 0 {
                port.txSync()
                if !port.wait(for: .tx, timeoutMs: 100) && Clock.ns() &- lastProgress > UInt64(timeout * 1e9) {
                    FileHandle.standardError.write("tx: no room for \(timeout) s, giving up\n".data(using: .utf8)!)
                    break
                }
                continue
            }
            lastProgress = now
            // The ring view, once per batch (see receive): no class property read per frame.
            let tx = port.tx
            var head = win.head
            var committed = head  // after the last whole frame
            var k: UInt64 = 0
            if fixedLen > 0 && pendingLen == nil {
                // Frames of one length in one slot each (what benchmarks send): a loop of a few
                // instructions a frame; it stops at a bad slot, which the general loop below handles.
                let want = UInt32(truncatingIfNeeded: min(allowed, limit &- seq, UInt64(space)))
                let done = Frame.fillBatch(
                    tx, from: head, count: want, len: fixedLen, seq: seq, addresses: addresses, pattern: check)
                head = RingMath.add(head, done, tx.numSlots)
                committed = head
                space &-= done
                seq &+= UInt64(done)
                k = UInt64(done)
                st.bytes &+= UInt64(done) &* UInt64(fixedLen)
            }
            frames: while k < allowed && seq < limit {
                let len = pendingLen ?? (lo == hi ? lo : lo + Int(rng.next() % UInt64(hi - lo + 1)))
                pendingLen = len  // kept if the frame does not fit now
                let need = UInt32((len + bs - 1) / bs)
                if need > space { break }
                // nextTxBuffer turns slots with a bad buffer (a scribbling peer) into empty fragments.
                // Out of good slots: publish only what precedes this frame (whole frames, and empty
                // fragments of bad slots, which the receiver joins to the next frame).
                if need == 1 {
                    let slot = tx.slot(head)
                    // Fast path: the slot's buffer index checked on the ring view; a bad one goes to the port.
                    guard let buf = tx.buffer(slot) ?? port.nextTxBuffer(&head, remaining: &space) else {
                        committed = head; break
                    }
                    let s = tx.slot(head)
                    Frame.fill(buf, len: len, seq: seq, addresses: addresses, stamp: 0, pattern: check)
                    s.pointee.len = UInt16(len)
                    s.pointee.flags = 0
                    head = tx.next(head)
                    space -= 1
                } else {
                    scratch.withUnsafeMutableBytes {
                        Frame.fill($0.baseAddress!, len: len, seq: seq, addresses: addresses, stamp: 0, pattern: check)
                    }
                    let wrote = scratch.withUnsafeBytes {
                        port.writeFrame(UnsafeRawBufferPointer(rebasing: $0[..<len]), at: &head, remaining: &space)
                    }
                    guard wrote else { committed = head; break frames }
                }
                committed = head
                pendingLen = nil
                st.bytes &+= UInt64(len)
                seq &+= 1
                k &+= 1
            }
            if fixedLen > 0 { pendingLen = nil }  // one length for all: the next batch starts in fillBatch
            port.tx.advance(to: committed)
            port.txSync()
            st.packets &+= k
            st.progress(now)
        }
        // Wait until the other side took everything (bounded by --timeout).
        let deadline = Clock.ns() &+ UInt64(timeout * 1e9)
        while port.txPending() > 0 && Clock.ns() < deadline {
            port.txSync()
            _ = port.wait(for: .tx, timeoutMs: 10)
        }
        st.lastNs = Clock.ns()
    }

    func receive(_ port: SwalePort, st: inout Stats) {
        let limit = n == 0 ? UInt64.max : n
        let countOnly = !check && from == 0
        var expected: UInt64 = 0
        var idleSince = Clock.ns()
        var assembly = [UInt8]()
        assembly.reserveCapacity(65536)
        while st.packets < limit {
            let win = port.rxWindow()
            var avail = win.count
            if avail == 0 {
                if !port.wait(for: .rx, timeoutMs: 50) {
                    if Clock.ns() &- idleSince > UInt64(timeout * 1e9) { break }
                }
                continue
            }
            let now = Clock.ns()
            var head = win.head
            var releaseTo = head
            var partial = false  // inside a multi-slot frame
            // The ring view, once per batch: reading a class's stored property from another module
            // is checked for exclusivity at run time, which per slot would cost more than the slot.
            let rx = port.rx
            // Reading restarts at the release point: a frame left incomplete last time is read anew.
            assembly.removeAll(keepingCapacity: true)
            if countOnly {
                // Whole frames in one slot each, only counted: a loop of a few instructions a
                // frame; it stops at anything else (a fragment, a bad slot), which the loop below reads.
                let want = UInt32(truncatingIfNeeded: min(UInt64(avail), limit &- st.packets))
                let (slots, frames, bytes) = Frame.countBatch(rx, from: head, count: want)
                if slots > 0 {
                    head = RingMath.add(head, slots, rx.numSlots)
                    avail &-= slots
                    releaseTo = head
                    st.packets &+= frames
                    st.bytes &+= bytes
                    if frames > 0 { st.arrived(at: now) }  // an announce alone is skipped, and must not start the clock
                }
            }
            while avail > 0 && st.packets < limit {
                if avail > Options.prefetchAhead { rx.prefetch(RingMath.add(head, Options.prefetchAhead, rx.numSlots)) }
                // One checked read of the slot; an invalid one goes to the port, which maps memory
                // the region gained or counts it (and it is skipped).
                var v = rx.read(head)
                if _slowPath(!v.isValid) { v = port.rxSlot(head) }
                let counted = st.packets
                let more = v.moreFragments
                head = rx.next(head)
                avail -= 1
                if more || partial {
                    if let b = v.bytes { assembly.append(contentsOf: b) }
                    partial = more
                    if more { continue }
                    if !assembly.isEmpty { assembly.withUnsafeBytes { verify($0, &expected, &st) } }
                    assembly.removeAll(keepingCapacity: true)
                } else if let b = v.bytes {
                    verify(b, &expected, &st)
                }
                releaseTo = head
                // The clock runs from the first counted frame to the last: frames not counted (an
                // announce, another source under --from, such as what the kernel sends on a TAP
                // port of the bridge) must not stretch it.
                if st.packets != counted { st.arrived(at: now) }
            }
            if releaseTo == win.head {
                // Only part of a frame so far. If it fills the ring it can never end: dropped (counted).
                // Otherwise its end is still to come: wait, but time out if it never does.
                if !port.dropUnterminatedFrame(win) {
                    if now &- idleSince > UInt64(timeout * 1e9) { break }
                    usleep(100)
                }
                continue
            }
            idleSince = now
            port.rx.advance(to: releaseTo)
            port.rxSync()
            st.progress(now)
        }
    }

    @inline(__always)
    func verify(_ f: UnsafeRawBufferPointer, _ expected: inout UInt64, _ st: inout Stats) {
        if f.count >= 14 && f[12] == 0x88 && f[13] == 0xb6 { return }  // another port's announce
        if from != 0 {
            var src: UInt64 = 0
            if f.count >= 12 { for k in 6..<12 { src = src << 8 | UInt64(f[k]) } }
            if src != from { st.ignored &+= 1; return }
        }
        st.packets &+= 1
        st.bytes &+= UInt64(f.count)
        guard check else { return }
        guard f.count >= Frame.headerBytes else { st.errors &+= 1; return }
        let seq = UInt64(littleEndian: f.loadUnaligned(fromByteOffset: 14, as: UInt64.self))
        let len = Int(UInt16(littleEndian: f.loadUnaligned(fromByteOffset: 22, as: UInt16.self)))
        if seq != expected {
            if seq > expected { st.lost &+= seq - expected } else { st.errors &+= 1 }
        }
        expected = seq &+ 1
        if len != f.count { st.errors &+= 1; return }
        for i in Frame.headerBytes..<f.count where f[i] != UInt8(truncatingIfNeeded: seq &+ UInt64(i)) {
            st.errors &+= 1
            return
        }
    }

    func ping(_ port: SwalePort, src: UInt64, dst: UInt64, lo: Int, st: inout Stats) {
        let addresses = Frame.Addresses(dst: dst, src: src)
        let limit = n == 0 ? 1000 : n
        var seq: UInt64 = 0
        st.firstNs = Clock.ns()
        while seq < limit {
            let burst = min(UInt64(b), limit - seq)
            var sent: UInt64 = 0
            let deadline = Clock.ns() &+ UInt64(timeout * 1e9)
            while port.txSpace() < UInt32(burst) && Clock.ns() < deadline { _ = port.wait(for: .tx, timeoutMs: 10) }
            let win = port.txWindow()
            var head = win.head
            var space = win.count
            while sent < burst, let buf = port.nextTxBuffer(&head, remaining: &space) {
                let slot = port.tx.slot(head)
                Frame.fill(
                    buf, len: min(lo, port.bufferSize), seq: seq &+ sent, addresses: addresses, stamp: Clock.ns(), pattern: false)
                slot.pointee.len = UInt16(min(lo, port.bufferSize))
                slot.pointee.flags = 0
                head = port.tx.next(head)
                space -= 1
                sent += 1
            }
            port.tx.advance(to: head)
            port.txSync()
            var got: UInt64 = 0
            while got < sent && Clock.ns() < deadline {
                if port.rxAvailable() == 0 { _ = port.wait(for: .rx, timeoutMs: 10); continue }
                port.receive { f in
                    guard f.count >= Frame.headerBytes else { return }
                    let stamp = UInt64(littleEndian: f.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
                    let rtt = Double(Clock.ns() &- stamp)
                    st.rttMin = min(st.rttMin, rtt); st.rttMax = max(st.rttMax, rtt); st.rttSum += rtt; st.rttCount += 1
                    st.packets &+= 1
                    st.bytes &+= UInt64(f.count)
                    got += 1
                }
            }
            seq &+= sent
            st.progress(Clock.ns())
        }
        st.lastNs = Clock.ns()
    }

    /// Answers each frame zero-copy: the rx buffer is swapped into a tx slot, MACs swapped in place.
    func pong(_ port: SwalePort, st: inout Stats) {
        let limit = n == 0 ? UInt64.max : n
        var idleSince = Clock.ns()
        while st.packets < limit {
            let rw = port.rxWindow()
            let tw = port.txWindow()
            let avail = rw.count, space = tw.count
            if avail == 0 || space == 0 {
                if avail > 0 { port.txSync() }
                if !port.wait(for: avail == 0 ? .rx : .tx, timeoutMs: 50), Clock.ns() &- idleSince > UInt64(timeout * 1e9) {
                    break
                }
                continue
            }
            let now = Clock.ns()
            idleSince = now
            if st.firstNs == 0 { st.firstNs = now }
            var rh = rw.head
            var th = tw.head
            var k = min(avail, space)
            while k > 0 && st.packets < limit {
                // The rx slot is read once (checked); only those values are used below.
                let v = port.rxSlot(rh)
                if let buf = v.buffer, v.len >= 12 {
                    var tmp = (UInt32(0), UInt16(0))
                    memcpy(&tmp.0, buf, 4); memcpy(&tmp.1, buf + 4, 2)
                    memmove(buf, buf + 6, 6)
                    memcpy(buf + 6, &tmp.0, 4); memcpy(buf + 10, &tmp.1, 2)
                    let rs = port.rx.slot(rh)
                    let ts = port.tx.slot(th)
                    let idx = ts.pointee.buf_idx  // ours to give back; the receiver checks it
                    ts.pointee.buf_idx = v.bufIndex
                    ts.pointee.len = v.len
                    ts.pointee.flags = UInt16(SWALE_NS_BUF_CHANGED) | (v.flags & UInt16(SWALE_NS_MOREFRAG))
                    rs.pointee.buf_idx = idx
                    rs.pointee.flags = UInt16(SWALE_NS_BUF_CHANGED)
                    st.packets &+= 1
                    st.bytes &+= UInt64(v.len)
                    th = port.tx.next(th)
                }
                rh = port.rx.next(rh)
                k -= 1
            }
            port.rx.advance(to: rh)
            port.rxSync()
            port.tx.advance(to: th)
            port.txSync()
            st.lastNs = Clock.ns()
            st.progress(now)
        }
        let deadline = Clock.ns() &+ 1_000_000_000
        while port.txPending() > 0 && Clock.ns() < deadline { port.txSync(); _ = port.wait(for: .tx, timeoutMs: 10) }
    }
}

PktGen.main()
