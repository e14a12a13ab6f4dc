// OutFrames: how frames in an rx ring are described for a kernel adapter, and how `transmitRing`
// releases exactly what the adapter consumed.
import CSwaleABI
import CSwaleSys
import Glibc
import SwaleDatapath
import SwaleRings
import XCTest

final class OutFramesTests: XCTestCase {
    /// The pools stay mapped for the whole test (the rings point into them).
    var keep: [MemoryPool] = []

    /// An rx ring of `slots` slots with the given frames published (each frame: slot lengths, and
    /// whether its first slot carries a vnet header).
    func ring(slots: Int = 16, _ frames: [(lens: [Int], vnet: Bool)]) throws -> (UserRing, KRing, MemoryPool) {
        let pool = try MemoryPool(name: "outframes-test", initialBlocks: 2 * slots + 64)
        keep.append(pool)
        let l = try pool.makeInterface(name: "t", slots: slots)
        let user = UserRing(ring: pool.region.base + l.rxRingOffsets[0], region: pool.region)
        var k = KRing(pool.ring(at: l.rxRingOffsets[0]), isTx: false)
        var idx = k.hwtail
        var used: UInt32 = 0
        for f in frames {
            for (j, len) in f.lens.enumerated() {
                let s = k.slot(idx)
                s.pointee.len = UInt16(len)
                s.pointee.flags =
                    (j < f.lens.count - 1 ? UInt16(SWALE_NS_MOREFRAG) : 0) | (j == 0 && f.vnet ? UInt16(SWALE_NS_VNET_HDR) : 0)
                idx = RingMath.next(idx, k.n)
                used += 1
            }
        }
        k.publishRx(used)
        return (user, k, pool)
    }

    func testGatherDescribesWholeFramesWithTheirSlots() throws {
        let (rx, _, pool) = try ring([
            (lens: [60], vnet: false), (lens: [2048, 2048, 100], vnet: true), (lens: [1514], vnet: false)
        ])
        var out = OutFrames()
        let end = out.gather(from: rx, at: rx.head, tail: rx.ptr.loadTail())
        XCTAssertEqual(out.count, 3)
        XCTAssertEqual(end, 5)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: out.firstSegment, count: 4)), [0, 1, 4, 5])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: out.payload, count: 3)), [60, 2048 * 2 + 100 - 12, 1514])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: out.vnet, count: 3)), [false, true, false])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: out.ringEnd, count: 3)), [1, 4, 5])
        XCTAssertEqual(
            out.segments[2].iov_base, pool.region.buffer(rx.slot(2).pointee.buf_idx), "segments point at the slots' buffers")
        XCTAssertEqual(out.segments[2].iov_len, 2048)
    }

    func testIncompleteFrameIsLeftAndBrokenFramesAreMarked() throws {
        // A frame whose last slot still says MOREFRAG at the tail is not taken (it is not whole yet).
        let (rx, _, _) = try ring([(lens: [60], vnet: false), (lens: [2048, 2048], vnet: false)])
        rx.slot(2).pointee.flags = UInt16(SWALE_NS_MOREFRAG)
        var out = OutFrames()
        XCTAssertEqual(out.gather(from: rx, at: rx.head, tail: rx.ptr.loadTail()), 1)
        XCTAssertEqual(out.count, 1)
        XCTAssertEqual(out.segmentCount, 1, "the incomplete frame's segments are forgotten")

        // Broken: a runt, a bad buffer index, a vnet frame shorter than its header. Each is taken
        // (so it is released) with payload -1, between good frames.
        let (rx2, _, _) = try ring([
            (lens: [10], vnet: false), (lens: [60], vnet: false), (lens: [8], vnet: true), (lens: [60], vnet: false)
        ])
        rx2.slot(1).pointee.buf_idx = 0
        XCTAssertEqual(out.gather(from: rx2, at: rx2.head, tail: rx2.ptr.loadTail()), 4)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: out.payload, count: 4)), [-1, -1, -1, 60])
        XCTAssertEqual(
            Array(UnsafeBufferPointer(start: out.firstSegment, count: 5)), [0, 0, 0, 0, 1], "broken frames carry no segment")
    }

    func testBatchStopsAtCapacityOnAFrameBoundary() throws {
        // 300 one-slot frames: the first batch takes 256, ending exactly after the 256th.
        let (rx, _, _) = try ring(slots: 512, Array(repeating: (lens: [60], vnet: false), count: 300))
        var out = OutFrames()
        XCTAssertEqual(out.gather(from: rx, at: rx.head, tail: rx.ptr.loadTail()), 256)
        XCTAssertEqual(out.count, OutFrames.frameCapacity)
        XCTAssertTrue(out.isFull)
        // Segments run out first for large frames: 62 frames of 33 slots fit in 2048 segments.
        let big = Array(repeating: 64, count: 33)
        let (rx2, _, _) = try ring(slots: 4096, Array(repeating: (lens: big, vnet: false), count: 70))
        XCTAssertEqual(out.gather(from: rx2, at: rx2.head, tail: rx2.ptr.loadTail()), 62 * 33)
        XCTAssertEqual(out.count, 62)
        XCTAssertEqual(out.segmentCount, 62 * 33)
    }

    /// An adapter that takes `accept` frames per call, sending all but the broken ones.
    final class FakeAdapter: PortBackend {
        var accept: Int
        var seen: [Int32] = []
        init(accept: Int) { self.accept = accept }
        var pollFD: Int32 { -1 }
        func receive(into tx: UserRing) -> Int { 0 }
        func transmit(from rx: UserRing) -> Int { var o = OutFrames(); return transmitRing(rx, using: &o) }
        func transmit(_ f: borrowing OutFrames) -> (consumed: Int, sent: Int) {
            let n = min(accept, f.count)
            seen += (0..<n).map { f.payload[$0] }
            return (n, (0..<n).filter { f.payload[$0] >= 0 }.count)
        }
        var mtu: Int { 1500 }
        func currentMTU() -> Int? { nil }
        var acceptsVnetHeader: Bool { true }
        var counters: [String: UInt64] { [:] }
        func close() {}
    }

    func testTransmitRingReleasesExactlyWhatWasConsumed() throws {
        let (rx, k, _) = try ring([
            (lens: [60], vnet: false), (lens: [2048, 100], vnet: false), (lens: [10], vnet: false), (lens: [70], vnet: false)
        ])
        let a = FakeAdapter(accept: 2)
        XCTAssertEqual(a.transmit(from: rx), 2)
        XCTAssertEqual(rx.head, 3, "two frames (three slots) released, the rest stays")
        XCTAssertEqual(k.hwtail, 5)
        a.accept = 10
        XCTAssertEqual(a.transmit(from: rx), 1, "the runt is consumed, not sent")
        XCTAssertEqual(rx.head, 5)
        XCTAssertEqual(a.seen, [60, 2048 + 100, -1, 70])
    }
}
