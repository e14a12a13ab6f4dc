// The forwarding engine alone, on one thread, no service, no scheduler: one application port
// sends the same ring of frames again and again, `pass(now:)` forwards them, the receivers' rings
// are emptied after each pass. What it measures is the engine's cost per frame (validation, rules,
// learning, lookup, copy), free of the 2-core scheduling noise that dominates swale-pktgen runs.
// Lines marked `// rules` use the 802.1Q API (removed when this file is built against an older tree).
import Foundation
import SwaleDatapath
import SwaleRings

/// Frames per second through the engine: `receivers` ports get each frame (unicast to the first,
/// or broadcast to all). `vlans`: "off", "on" (filtering, every port in VLAN 1 untagged: the same
/// frames through the 802.1Q path), "trunk" (receivers take VLAN 1 tagged: a tag pushed per copy).
func engineRate(receivers: Int, frames: Int, length: Int, broadcast: Bool, vlans: String, monitor: Bool = false) throws -> Double
{
    var config = EngineConfig()
    config.fdbCapacity = 1 << 16
    config.batch = 256
    let e = try ForwardingEngine(config: config)
    var tx: [UserRing] = []
    var rx: [UserRing] = []
    for i in 0...receivers {
        let pool = try MemoryPool(name: "swale-bench-\(i)", bufSize: 2048, initialBlocks: 2 * 1024 + 64)
        let layout = try pool.makeInterface(name: "p\(i)", slots: 1024)
        guard e.addPort(pool: pool, layout: layout, kickFD: -1, notifyFD: -1, backend: nil) == i else {
            throw BenchError("port \(i) not added")
        }
        tx.append(UserRing(ring: pool.region.base + layout.txRingOffsets[0], region: pool.region))
        rx.append(UserRing(ring: pool.region.base + layout.rxRingOffsets[0], region: pool.region))
        pools.append(pool)
    }
    if vlans != "off" { e.vlanFiltering = true }  // rules
    if vlans == "trunk" { for i in 1...receivers { e.setVlans(port: i, [(1, false)], pvid: 1) } }  // rules
    if monitor {  // rules
        let pool = try MemoryPool(name: "swale-bench-monitor", bufSize: 2048, initialBlocks: 2 * 1024 + 64)  // rules
        let layout = try pool.makeInterface(name: "m", slots: 1024)  // rules
        _ = e.addMonitor(pool: pool, layout: layout, kickFD: -1, notifyFD: -1, of: 1, rx: true, tx: true)  // rules
        rx.append(UserRing(ring: pool.region.base + layout.rxRingOffsets[0], region: pool.region))  // rules
        pools.append(pool)  // rules
    }  // rules
    let dst: [UInt8] = broadcast ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : [0x02, 0, 0, 0, 0x01, 0x01]
    // The receiver announces itself so that unicast is known.
    put(tx[1], count: 1, frame: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + [0x02, 0, 0, 0, 0x01, 0x01], length: 60)
    _ = e.pass(now: 1)
    for r in rx { drain(r) }
    let src = tx[0]
    let n = src.numSlots
    put(src, count: Int(n - 1), frame: dst + [0x02, 0, 0, 0, 0x00, 0x01], length: length)
    var done = 0
    let start = DispatchTime.now().uptimeNanoseconds
    while done < frames {
        if let w = src.window(), w.count > 0 { src.advance(to: (w.head + w.count) % n) }  // resubmit every free slot
        done += e.pass(now: 1)
        for r in rx.dropFirst() { drain(r) }
    }
    let elapsed = DispatchTime.now().uptimeNanoseconds - start
    pools.removeAll()
    return Double(done) / (Double(elapsed) / 1e9)
}

private var pools: [MemoryPool] = []

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Writes `count` copies of a frame (IPv4 ethertype, zero payload) into the ring's free slots,
/// without submitting them (the benchmark loop submits).
private func put(_ r: UserRing, count: Int, frame header: [UInt8], length: Int) {
    guard let w = r.window() else { return }
    var i = w.head
    for _ in 0..<min(count, Int(w.count)) {
        let s = r.slot(i)
        guard let b = r.buffer(s) else { return }
        memset(b, 0, length)
        header.withUnsafeBytes { memcpy(b, $0.baseAddress!, 12) }
        b.storeBytes(of: UInt16(0x0800).bigEndian, toByteOffset: 12, as: UInt16.self)
        s.pointee.len = UInt16(length)
        s.pointee.flags = 0
        i = r.next(i)
    }
    if count == 1 { r.advance(to: i) }
}

/// Releases every received frame.
private func drain(_ r: UserRing) {
    if let w = r.window(), w.count > 0 { r.advance(to: (w.head + w.count) % r.numSlots) }
}
