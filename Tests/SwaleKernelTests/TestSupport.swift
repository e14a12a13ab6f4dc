// Helpers for the kernel-adapter tests: root check, unique names, namespaces, processes, a ring
// pair driven from the switch side, frame builders, and the real forwarding engine over kernel
// ports driven on the test thread.
import CSwaleABI
import CSwaleSys
import Foundation
import Glibc
import SwaleDatapath
import SwaleKernel
import SwaleRings
import XCTest

enum K {
    static let ipTool = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/bin/ip"
}

func requireRoot() throws {
    if geteuid() != 0 {
        throw XCTSkip("SwaleKernelTests create veth pairs, TAP devices and network namespaces: they need root")
    }
}

/// "sk" + 4 random hex digits: every interface and namespace of one test starts with it.
func uniquePrefix() -> String {
    let hex = Array("0123456789abcdef")
    var s = "sk"
    for _ in 0..<4 { s.append(hex[Int.random(in: 0..<16)]) }
    return s
}

/// A small random number (for test subnets).
func subnetByte() -> Int { Int.random(in: 10...250) }

@discardableResult
func shell(_ args: [String], allowFailure: Bool = false) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: args[0])
    p.arguments = Array(args.dropFirst())
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let out = String(decoding: data, as: UTF8.self)
    if !allowFailure && p.terminationStatus != 0 {
        throw NSError(
            domain: "run", code: Int(p.terminationStatus),
            userInfo: [NSLocalizedDescriptionKey: "\(args.joined(separator: " ")) failed: \(out)"])
    }
    return (p.terminationStatus, out)
}

@discardableResult
func ip(_ args: String..., allowFailure: Bool = false) throws -> String {
    try shell([K.ipTool] + args, allowFailure: allowFailure).output
}

/// A background process (output to a temp file), stopped by its own PID.
final class BackgroundProcess {
    let process = Process()
    let outPath: String

    init(_ args: [String]) throws {
        outPath = NSTemporaryDirectory() + "swalekernel-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        let fh = FileHandle(forWritingAtPath: outPath)!
        process.executableURL = URL(fileURLWithPath: args[0])
        process.arguments = Array(args.dropFirst())
        process.standardOutput = fh
        process.standardError = fh
        try process.run()
        try? fh.close()
    }

    var isRunning: Bool { process.isRunning }
    var status: Int32 { process.terminationStatus }
    var output: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }

    /// Ends the process if it still runs (SIGTERM, then SIGKILL) and reaps it; keeps the output.
    func stopIfRunning() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            for _ in 0..<50 where process.isRunning { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            for _ in 0..<50 where process.isRunning { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: outPath)
    }
}

/// A port's ring pair in a real MemoryPool: the adapter uses `tx`/`rx` (user side), the test
/// plays the switch with `txK`/`rxK`.
final class RingPair {
    let pool: MemoryPool
    let layout: InterfaceLayout
    let tx: UserRing
    let rx: UserRing
    var txK: KRing
    var rxK: KRing

    init(slots: Int = 1024) throws {
        pool = try MemoryPool(name: "swalekernel-test", initialBlocks: 2 * slots + 64)
        layout = try pool.makeInterface(name: "port", slots: slots)
        tx = UserRing(ring: pool.region.base + layout.txRingOffsets[0], region: pool.region)
        rx = UserRing(ring: pool.region.base + layout.rxRingOffsets[0], region: pool.region)
        txK = KRing(pool.ring(at: layout.txRingOffsets[0]), isTx: true)
        rxK = KRing(pool.ring(at: layout.rxRingOffsets[0]), isTx: false)
    }

    func buffer(_ s: UnsafeMutablePointer<swale_slot>) -> UnsafeMutableRawPointer {
        pool.region.buffer(s.pointee.buf_idx)
    }

    /// Takes every frame the adapter put into the tx ring (switch side), reassembled.
    func takeFrames() -> [RingFrame] {
        let k = txK.pendingTx()
        let frames = readFrames(tx, from: txK.hwcur, slots: k)
        txK.consumeTx(k, available: txK.n - 1)
        return frames
    }

    /// Puts frames into the rx ring (switch side); returns how many fit.
    @discardableResult
    func put(_ frames: [[UInt8]], vnet: Bool = false) -> Int {
        var room = rxK.rxRoom()
        var idx = rxK.hwtail
        var used: UInt32 = 0
        var n = 0
        let bs = pool.bufSize
        for f in frames {
            let need = UInt32((f.count + bs - 1) / bs)
            if need > room { break }
            var w = SlotWriter(
                slots: rxK.ptr.slots, numSlots: rxK.n, bufBase: pool.region.base, bufSize: bs,
                bufLimit: pool.region.blockLimit, at: idx)
            f.withUnsafeBytes { w.write($0.baseAddress!, $0.count) }
            w.finish(firstFlags: vnet ? SlotFlags.vnetHdr : 0)
            idx = RingMath.add(idx, need, rxK.n)
            room -= need
            used += need
            n += 1
        }
        rxK.publishRx(used)
        return n
    }

    /// Frames in the rx ring not yet released by the adapter.
    var rxPending: UInt32 { RingMath.distance(rx.head, rxK.hwtail, rxK.n) }
}

struct RingFrame {
    var bytes: [UInt8] = []
    var slots = 0
    var firstFlags: UInt16 = 0
    var hasVnet: Bool { firstFlags & SlotFlags.vnetHdr != 0 }
    /// The Ethernet frame (without the vnet header).
    var ethernet: ArraySlice<UInt8> { hasVnet ? bytes[12...] : bytes[...] }
    var etherType: UInt16 {
        let e = ethernet
        guard e.count >= 14 else { return 0 }
        return UInt16(e[e.startIndex + 12]) << 8 | UInt16(e[e.startIndex + 13])
    }
    var gsoType: UInt8 { hasVnet ? bytes[1] : 0 }
    var gsoSize: UInt16 { hasVnet ? UInt16(bytes[4]) | UInt16(bytes[5]) << 8 : 0 }
    var csumStart: UInt16 { hasVnet ? UInt16(bytes[6]) | UInt16(bytes[7]) << 8 : 0 }
    var csumOffset: UInt16 { hasVnet ? UInt16(bytes[8]) | UInt16(bytes[9]) << 8 : 0 }
    var hdrLen: UInt16 { hasVnet ? UInt16(bytes[2]) | UInt16(bytes[3]) << 8 : 0 }
}

/// The frames in `slots` slots of a ring from `start` (user-side view), reassembled.
func readFrames(_ ring: UserRing, from start: UInt32, slots k: UInt32) -> [RingFrame] {
    var frames: [RingFrame] = []
    var cur = RingFrame()
    var idx = start
    for _ in 0..<k {
        let s = ring.slot(idx)
        if cur.slots == 0 { cur.firstFlags = s.pointee.flags }
        if let b = ring.buffer(s) { cur.bytes += Array(UnsafeRawBufferPointer(start: b, count: Int(s.pointee.len))) }
        cur.slots += 1
        if s.pointee.flags & SlotFlags.moreFrag == 0 {
            frames.append(cur)
            cur = RingFrame()
        }
        idx = ring.next(idx)
    }
    return frames
}

// MARK: frames

enum Frames {
    static func checksum(_ b: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var i = b.startIndex
        while i + 1 < b.endIndex { sum += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
        if i < b.endIndex { sum += UInt32(b[i]) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func ipv4(_ s: String) -> [UInt8] { s.split(separator: ".").map { UInt8($0)! } }

    /// An ARP reply telling `targetMAC/targetIP` that `senderIP` is at `senderMAC`.
    static func arpReply(senderMAC: [UInt8], senderIP: [UInt8], targetMAC: [UInt8], targetIP: [UInt8]) -> [UInt8] {
        var f = targetMAC + senderMAC + [0x08, 0x06]
        f += [0, 1, 0x08, 0, 6, 4, 0, 2]
        f += senderMAC + senderIP + targetMAC + targetIP
        while f.count < 60 { f.append(0) }
        return f
    }

    /// An ICMP echo reply for an echo request frame.
    static func echoReply(to req: ArraySlice<UInt8>) -> [UInt8]? {
        let r = Array(req)
        guard r.count >= 14 + 20 + 8, r[12] == 8, r[13] == 0, r[14 + 9] == 1 else { return nil }
        let ihl = Int(r[14] & 15) * 4
        guard r[14 + ihl] == 8 else { return nil }
        var f = Array(r[6..<12]) + Array(r[0..<6]) + [0x08, 0x00]
        var ipHdr = Array(r[14..<(14 + ihl)])
        let src = Array(ipHdr[12..<16]), dst = Array(ipHdr[16..<20])
        ipHdr.replaceSubrange(12..<16, with: dst)
        ipHdr.replaceSubrange(16..<20, with: src)
        ipHdr[8] = 64
        ipHdr[10] = 0; ipHdr[11] = 0
        let ipc = checksum(ipHdr[...])
        ipHdr[10] = UInt8(ipc >> 8); ipHdr[11] = UInt8(ipc & 0xFF)
        let totalLen = Int(r[16]) << 8 | Int(r[17])
        var icmp = Array(r[(14 + ihl)..<(14 + totalLen)])
        icmp[0] = 0
        icmp[2] = 0; icmp[3] = 0
        let c = checksum(icmp[...])
        icmp[2] = UInt8(c >> 8); icmp[3] = UInt8(c & 0xFF)
        f += ipHdr + icmp
        return f
    }

    /// A broadcast UDP/IPv4 frame.
    static func udpBroadcast(srcMAC: [UInt8], srcIP: [UInt8], dstIP: [UInt8], payload: Int, seq: UInt16) -> [UInt8] {
        let udpLen = 8 + payload
        let total = 20 + udpLen
        var ipHdr: [UInt8] =
            [
                0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), UInt8(seq >> 8), UInt8(seq & 0xFF), 0x40, 0,
                64, 17, 0, 0
            ] + srcIP + dstIP
        let c = checksum(ipHdr[...])
        ipHdr[10] = UInt8(c >> 8); ipHdr[11] = UInt8(c & 0xFF)
        var f: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + srcMAC + [0x08, 0x00] + ipHdr
        f += [0x30, 0x39, 0x30, 0x39, UInt8(udpLen >> 8), UInt8(udpLen & 0xFF), 0, 0]  // port 12345, no checksum
        f += [UInt8](repeating: 0x5A, count: payload)
        return f
    }
}

// MARK: the real engine over kernel ports

/// A kernel backend seen through a window: every frame it hands to the switch is recorded before
/// the engine forwards it (what the tests assert about GSO, ARP, multi-slot frames).
final class Observed: PortBackend {
    struct Stats {
        var frames = 0
        var multiSlotFrames = 0
        var vnetFrames = 0
        var gsoFrames = 0
        var maxSlots = 0
        var firstGSO: RingFrame?
        var plainARP = 0
        var vlanFrames = 0
    }

    let inner: PortBackend
    var stats = Stats()

    init(_ inner: PortBackend) { self.inner = inner }

    func receive(into tx: UserRing) -> Int {
        let start = tx.head
        let n = inner.receive(into: tx)
        for f in readFrames(tx, from: start, slots: RingMath.distance(start, tx.head, tx.numSlots)) {
            stats.frames += 1
            if f.slots > 1 { stats.multiSlotFrames += 1 }
            stats.maxSlots = max(stats.maxSlots, f.slots)
            if f.etherType == 0x8100 { stats.vlanFrames += 1 }
            if f.hasVnet {
                stats.vnetFrames += 1
                if f.gsoType != 0 {
                    stats.gsoFrames += 1
                    if stats.firstGSO == nil { stats.firstGSO = f }
                }
            } else if f.etherType == 0x0806 {
                stats.plainARP += 1
            }
        }
        return n
    }

    var pollFD: Int32 { inner.pollFD }
    func transmit(from rx: UserRing) -> Int { inner.transmit(from: rx) }
    func transmit(_ frames: borrowing OutFrames) -> (consumed: Int, sent: Int) { inner.transmit(frames) }
    var mtu: Int { inner.mtu }
    func currentMTU() -> Int? { inner.currentMTU() }
    var acceptsVnetHeader: Bool { inner.acceptsVnetHeader }
    var counters: [String: UInt64] { inner.counters }
    func handlePollError() { inner.handlePollError() }
    func close() { inner.close() }
}

/// The forwarding engine the bridge runs, with kernel (or in-memory) ports, its passes run on the
/// test thread: `pass(now:)` in a loop, sleeping in poll() on the backends' fds when idle.
final class EngineRunner {
    let engine: ForwardingEngine
    let ports: [Observed]
    let pools: [MemoryPool]

    init(_ backends: [PortBackend], slots: Int = 1024) throws {
        var c = EngineConfig()
        c.fdbCapacity = 1024
        engine = try ForwardingEngine(config: c)
        ports = backends.map { Observed($0) }
        var pools: [MemoryPool] = []
        for p in ports {
            let pool = try MemoryPool(name: "swalekernel-engine", initialBlocks: 2 * slots + 64)
            let layout = try pool.makeInterface(name: "port", slots: slots)
            guard engine.addPort(pool: pool, layout: layout, kickFD: -1, notifyFD: -1, backend: p) != nil else {
                throw NSError(domain: "engine", code: 1, userInfo: [NSLocalizedDescriptionKey: "engine full"])
            }
            pools.append(pool)
        }
        self.pools = pools
    }

    var stats: [Observed.Stats] { ports.map(\.stats) }

    /// Runs passes until `done()` or the deadline; sleeps in poll() when a pass moved nothing.
    func run(seconds: Double, until done: () -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        var fds = ports.filter { $0.pollFD >= 0 }.map { pollfd(fd: $0.pollFD, events: Int16(POLLIN), revents: 0) }
        while Date() < deadline && !done() {
            if engine.pass(now: ForwardingEngine.now()) == 0 {
                _ = poll(&fds, nfds_t(fds.count), 2)
            }
        }
    }
}

/// Runs passes of one adapter against a closure that sees the frames arriving in its tx ring and
/// may answer; stops when `done()` or at the deadline.
func drive(
    _ adapter: PortBackend, _ rings: RingPair, seconds: Double, until done: () -> Bool,
    onFrame: (RingFrame) -> [[UInt8]]
) {
    let deadline = Date().addingTimeInterval(seconds)
    var pfd = pollfd(fd: adapter.pollFD, events: Int16(POLLIN), revents: 0)
    while Date() < deadline && !done() {
        let n = adapter.receive(into: rings.tx)
        var answers: [[UInt8]] = []
        for f in rings.takeFrames() { answers += onFrame(f) }
        if !answers.isEmpty {
            rings.put(answers)
            _ = adapter.transmit(from: rings.rx)
        }
        if n == 0 { _ = poll(&pfd, 1, 5) }
    }
}
