// The application's side of an application-style port (no backend), for engine tests that drive
// the switch on the test thread: its region, interface and the user side of both rings.
import SwaleDatapath
import SwaleRings

struct AppRings {
    let pool: MemoryPool
    let layout: InterfaceLayout
    let tx: UserRing
    let rx: UserRing

    init(slots: Int = 256) throws {
        pool = try MemoryPool(name: "swale-test-app", initialBlocks: 2 * slots + 64)
        layout = try pool.makeInterface(name: "app", slots: slots)
        tx = UserRing(ring: pool.region.base + layout.txRingOffsets[0], region: pool.region)
        rx = UserRing(ring: pool.region.base + layout.rxRingOffsets[0], region: pool.region)
    }

    /// Queues as many of `frames` as there is room for and publishes them; returns how many.
    @discardableResult
    func send(_ frames: [[UInt8]]) -> Int {
        guard let w = tx.window() else { return 0 }
        var i = w.head
        var n = 0
        for f in frames where n < Int(w.count) {
            var wr = SlotWriter(tx, at: i)
            f.withUnsafeBytes { wr.write($0.baseAddress!, $0.count) }
            i = RingMath.add(i, wr.finish(), tx.numSlots)
            n += 1
        }
        tx.advance(to: i)
        return n
    }

    /// Every frame waiting in rx (single-slot frames), released.
    func take() -> [[UInt8]] {
        guard let w = rx.window() else { return [] }
        var out: [[UInt8]] = []
        var i = w.head
        for _ in 0..<w.count {
            if let b = rx.read(i).bytes { out.append(Array(b)) }
            i = rx.next(i)
        }
        rx.advance(to: i)
        return out
    }

    /// Every frame waiting in rx, the slots of multi-slot frames joined, released.
    func takeFrames() -> [[UInt8]] {
        guard let w = rx.window() else { return [] }
        var out: [[UInt8]] = []
        var frame: [UInt8] = []
        var i = w.head
        for _ in 0..<w.count {
            let v = rx.read(i)
            if let b = v.bytes { frame += Array(b) }
            if !v.moreFragments { out.append(frame); frame = [] }
            i = rx.next(i)
        }
        rx.advance(to: i)
        return out
    }
}
