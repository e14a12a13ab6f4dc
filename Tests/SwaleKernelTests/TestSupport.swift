// Helpers for the kernel-adapter tests: root check, unique names, namespaces, processes, a ring
// pair driven from the switch side, frame builders and a two-port mini switch.
import CSwaleABI
import CSwaleSys
import Foundation
import Glibc
import SwaleKernel
import SwaleDatapath
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
        throw NSError(domain: "run", code: Int(p.terminationStatus),
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
        var frames: [RingFrame] = []
        var cur = RingFrame()
        var idx = txK.hwcur
        for _ in 0..<k {
            let s = txK.slot(idx)
            let b = buffer(s)
            if cur.slots == 0 { cur.firstFlags = s.pointee.flags }
            cur.bytes += Array(UnsafeRawBufferPointer(start: b, count: Int(s.pointee.len)))
            cur.slots += 1
            if s.pointee.flags & UInt16(SWALE_NS_MOREFRAG) == 0 {
                frames.append(cur)
                cur = RingFrame()
            }
            idx = RingMath.next(idx, txK.n)
        }
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
            var off = 0
            var first = true
            while off < f.count {
                let s = rxK.slot(idx)
                let l = min(bs, f.count - off)
                f.withUnsafeBytes { _ = memcpy(buffer(s), $0.baseAddress! + off, l) }
                s.pointee.len = UInt16(l)
                off += l
                s.pointee.flags = (off < f.count ? UInt16(SWALE_NS_MOREFRAG) : 0) | (first && vnet ? UInt16(SWALE_NS_VNET_HDR) : 0)
                first = false
                idx = RingMath.next(idx, rxK.n)
            }
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
    var hasVnet: Bool { firstFlags & UInt16(SWALE_NS_VNET_HDR) != 0 }
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
        var ipHdr: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), UInt8(seq >> 8), UInt8(seq & 0xFF), 0x40, 0,
                              64, 17, 0, 0] + srcIP + dstIP
        let c = checksum(ipHdr[...])
        ipHdr[10] = UInt8(c >> 8); ipHdr[11] = UInt8(c & 0xFF)
        var f: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + srcMAC + [0x08, 0x00] + ipHdr
        f += [0x30, 0x39, 0x30, 0x39, UInt8(udpLen >> 8), UInt8(udpLen & 0xFF), 0, 0]  // port 12345, no checksum
        f += [UInt8](repeating: 0x5A, count: payload)
        return f
    }
}

// MARK: a two-port mini switch

/// Forwards frames between two ports the way the bridge does (whole frames, flags kept, a frame
/// that does not fit the destination ring is dropped) and records what it saw.
final class MiniSwitch {
    struct Stats {
        var frames = 0
        var multiSlotFrames = 0
        var vnetFrames = 0
        var gsoFrames = 0
        var maxSlots = 0
        var drops = 0
        var firstGSO: RingFrame?
        var plainARP = 0
        var vlanFrames = 0
    }

    let ports: [(adapter: PortAdapter, rings: RingPair)]
    var stats = [Stats(), Stats()]

    init(_ a: PortAdapter, _ ra: RingPair, _ b: PortAdapter, _ rb: RingPair) {
        ports = [(a, ra), (b, rb)]
    }

    /// One pass: receive on both, forward both ways, transmit on both. Returns frames forwarded.
    func pass() -> Int {
        for p in ports { _ = p.adapter.receive(into: p.rings.tx) }
        let n = forward(0, 1) + forward(1, 0)
        for p in ports { _ = p.adapter.transmit(from: p.rings.rx) }
        return n
    }

    private func forward(_ from: Int, _ to: Int) -> Int {
        let src = ports[from].rings, dst = ports[to].rings
        let k = src.txK.pendingTx()
        if k == 0 { return 0 }
        var room = dst.rxK.rxRoom()
        var si = src.txK.hwcur
        var di = dst.rxK.hwtail
        var published: UInt32 = 0
        var frames = 0
        var left = k
        while left > 0 {
            // Measure the frame.
            var n: UInt32 = 1
            var j = si
            while src.txK.slot(j).pointee.flags & UInt16(SWALE_NS_MOREFRAG) != 0 && n < left {
                j = RingMath.next(j, src.txK.n); n += 1
            }
            let first = src.txK.slot(si)
            var st = stats[from]
            let ethOff = first.pointee.flags & UInt16(SWALE_NS_VNET_HDR) != 0 ? 12 : 0
            let fb = src.buffer(first)
            if Int(first.pointee.len) >= ethOff + 14 && fb.load(fromByteOffset: ethOff + 12, as: UInt8.self) == 0x81
                && fb.load(fromByteOffset: ethOff + 13, as: UInt8.self) == 0x00 {
                st.vlanFrames += 1
            }
            st.frames += 1
            if n > 1 { st.multiSlotFrames += 1 }
            st.maxSlots = max(st.maxSlots, Int(n))
            if first.pointee.flags & UInt16(SWALE_NS_VNET_HDR) != 0 {
                st.vnetFrames += 1
                let b = src.buffer(first)
                if b.load(fromByteOffset: 1, as: UInt8.self) != 0 {
                    st.gsoFrames += 1
                    if st.firstGSO == nil {
                        var f = RingFrame()
                        f.firstFlags = first.pointee.flags
                        f.bytes = Array(UnsafeRawBufferPointer(start: b, count: Int(first.pointee.len)))
                        f.slots = Int(n)
                        st.firstGSO = f
                    }
                }
            } else {
                let b = src.buffer(first)
                if b.load(fromByteOffset: 12, as: UInt8.self) == 0x08 && b.load(fromByteOffset: 13, as: UInt8.self) == 0x06 {
                    st.plainARP += 1
                }
            }
            if n <= room {
                for _ in 0..<n {
                    let s = src.txK.slot(si), d = dst.rxK.slot(di)
                    memcpy(dst.buffer(d), src.buffer(s), Int(s.pointee.len))
                    d.pointee.len = s.pointee.len
                    d.pointee.flags = s.pointee.flags
                    si = RingMath.next(si, src.txK.n)
                    di = RingMath.next(di, dst.rxK.n)
                }
                room -= n
                published += n
                frames += 1
            } else {
                st.drops += 1
                si = RingMath.add(si, n, src.txK.n)
            }
            stats[from] = st
            left -= n
        }
        src.txK.consumeTx(k, available: src.txK.n - 1)
        dst.rxK.publishRx(published)
        return frames
    }

    /// Runs passes until `done()` or the deadline; sleeps in poll() when idle.
    func run(seconds: Double, until done: () -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        var fds = ports.map { pollfd(fd: $0.adapter.pollFD, events: Int16(POLLIN), revents: 0) }
        while Date() < deadline && !done() {
            if pass() == 0 {
                _ = poll(&fds, nfds_t(fds.count), 2)
            }
        }
    }
}

/// Runs passes of one adapter against a closure that sees the frames arriving in its tx ring and
/// may answer; stops when `done()` or at the deadline.
func drive(_ adapter: PortAdapter, _ rings: RingPair, seconds: Double, until done: () -> Bool,
           onFrame: (RingFrame) -> [[UInt8]]) {
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
