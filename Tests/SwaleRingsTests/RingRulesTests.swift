// Ring index rules (netmap's nm_*sync_prologue), KRing reset behaviour, and the shared layout.
import CSwaleABI
import CSwaleSys
import SwaleRings
import XCTest

final class RingRulesTests: XCTestCase {
    func testNextPrevAddDistanceWrap() {
        XCTAssertEqual(RingMath.next(7, 8), 0)
        XCTAssertEqual(RingMath.next(3, 8), 4)
        XCTAssertEqual(RingMath.prev(0, 8), 7)
        XCTAssertEqual(RingMath.add(6, 5, 8), 3)
        XCTAssertEqual(RingMath.distance(6, 2, 8), 4)
        XCTAssertEqual(RingMath.distance(2, 6, 8), 4)
        XCTAssertEqual(RingMath.distance(5, 5, 8), 0)
    }

    func testUserIndicesMustLieBetweenHwcurAndHwtail() {
        let n: UInt32 = 8
        // hwcur 2, hwtail 6: head and cur may be 2...6, cur not before head.
        for h in UInt32(2)...6 {
            XCTAssertTrue(RingMath.validUserIndices(head: h, cur: h, hwcur: 2, hwtail: 6, n: n), "head \(h)")
        }
        XCTAssertFalse(RingMath.validUserIndices(head: 7, cur: 7, hwcur: 2, hwtail: 6, n: n), "past tail")
        XCTAssertFalse(RingMath.validUserIndices(head: 1, cur: 1, hwcur: 2, hwtail: 6, n: n), "moved backwards")
        XCTAssertFalse(RingMath.validUserIndices(head: 4, cur: 3, hwcur: 2, hwtail: 6, n: n), "cur before head")
        XCTAssertFalse(RingMath.validUserIndices(head: 8, cur: 8, hwcur: 2, hwtail: 6, n: n), "out of ring")
        XCTAssertFalse(RingMath.validUserIndices(head: .max, cur: 2, hwcur: 2, hwtail: 6, n: n), "garbage")
        // Wrapped: hwcur 6, hwtail 2 (span 6,7,0,1,2).
        XCTAssertTrue(RingMath.validUserIndices(head: 0, cur: 1, hwcur: 6, hwtail: 2, n: n))
        XCTAssertFalse(RingMath.validUserIndices(head: 3, cur: 3, hwcur: 6, hwtail: 2, n: n))
        XCTAssertFalse(RingMath.validUserIndices(head: 5, cur: 5, hwcur: 6, hwtail: 2, n: n))
    }

    func testLayoutMatchesNetmap() {
        XCTAssertEqual(MemoryLayout<swale_slot>.size, 16)
        XCTAssertEqual(MemoryLayout<swale_slot>.offset(of: \swale_slot.len), 4)
        XCTAssertEqual(MemoryLayout<swale_slot>.offset(of: \swale_slot.flags), 6)
        XCTAssertEqual(MemoryLayout<swale_slot>.offset(of: \swale_slot.ptr), 8)
        XCTAssertEqual(MemoryLayout<swale_ring>.offset(of: \swale_ring.num_slots), 8)
        XCTAssertEqual(MemoryLayout<swale_ring>.offset(of: \swale_ring.nr_buf_size), 12)
        XCTAssertEqual(MemoryLayout<swale_ring>.offset(of: \swale_ring.head), 20)
        XCTAssertEqual(MemoryLayout<swale_ring>.offset(of: \swale_ring.cur), 24)
        XCTAssertEqual(MemoryLayout<swale_ring>.offset(of: \swale_ring.tail), 28)
        XCTAssertEqual(MemoryLayout<swale_ring>.offset(of: \swale_ring.sem), 128)
        XCTAssertEqual(MemoryLayout<swale_ring>.size, 256)
        XCTAssertEqual(MemoryLayout<swale_if>.offset(of: \swale_if.ni_tx_rings), 24)
        XCTAssertEqual(MemoryLayout<swale_if>.size, 56)
        XCTAssertEqual(SWALE_NS_MOREFRAG, 0x20)
    }

    /// A pool with one interface; the test drives both the user side and the kernel side.
    func makeRings(slots: Int = 8) throws -> (MemoryPool, InterfaceLayout) {
        let pool = try MemoryPool(name: "ring-test", initialBlocks: 64)
        return (pool, try pool.makeInterface(name: "t", slots: slots))
    }

    func testTxSubmitConsumeAndHostileHead() throws {
        let (pool, l) = try makeRings()
        let user = UserRing(ring: pool.region.base + l.txRingOffsets[0], region: pool.region)
        var k = KRing(pool.ring(at: l.txRingOffsets[0]), isTx: true)
        XCTAssertEqual(user.space(), 7, "one slot always stays empty")
        user.advance(to: 3)
        XCTAssertEqual(k.pendingTx(), 3)
        k.consumeTx(3, available: 7)
        XCTAssertEqual(user.space(), 7)
        XCTAssertEqual(user.ptr.loadTail(), 2, "tail = hwcur - 1")
        // Hostile: head beyond tail.
        user.advance(to: 3 + 7 + 1 - 8)  // == 3: nothing pending
        XCTAssertEqual(k.pendingTx(), 0)
        user.ptr.storeHead(100)
        XCTAssertEqual(k.pendingTx(), 0)
        XCTAssertEqual(k.resets, 1)
        XCTAssertEqual(user.ptr.loadHead(), 3, "reset puts head back to hwcur")
        XCTAssertEqual(user.ptr.loadCur(), 3)
        // cur behind head is also a reset.
        user.ptr.storeHead(5); user.ptr.storeCur(4)
        XCTAssertEqual(k.pendingTx(), 0)
        XCTAssertEqual(k.resets, 2)
    }

    func testRxPublishReleaseAndHostileRelease() throws {
        let (pool, l) = try makeRings()
        let user = UserRing(ring: pool.region.base + l.rxRingOffsets[0], region: pool.region)
        var k = KRing(pool.ring(at: l.rxRingOffsets[0]), isTx: false)
        XCTAssertEqual(k.rxRoom(), 7)
        k.publishRx(5)
        XCTAssertEqual(user.space(), 5)
        XCTAssertEqual(k.rxRoom(), 2)
        user.advance(to: 4)  // release 4
        XCTAssertEqual(k.rxRoom(), 6)
        user.advance(to: 6)  // release beyond what was published: hostile
        XCTAssertEqual(k.rxRoom(), 6, "room unchanged after the reset")
        XCTAssertEqual(k.resets, 1)
        XCTAssertEqual(user.ptr.loadHead(), 4)
    }

    func testBufferAccessIsBounded() throws {
        let (pool, l) = try makeRings()
        let user = UserRing(ring: pool.region.base + l.txRingOffsets[0], region: pool.region)
        let s = user.slot(0)
        XCTAssertNotNil(user.buffer(s))
        s.pointee.buf_idx = 1
        XCTAssertNil(user.buffer(s), "reserved index")
        s.pointee.buf_idx = pool.region.blockLimit
        XCTAssertNil(user.buffer(s), "outside the region")
        s.pointee.buf_idx = .max
        XCTAssertNil(user.buffer(s))
    }
}
