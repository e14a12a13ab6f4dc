import SwaleDatapath
import XCTest

final class LearningTableTests: XCTestCase {
    private let none = LearningTable.none

    /// Locally administered unicast MAC 02:00:xx:xx:xx:xx.
    private func local(_ i: UInt64) -> UInt64 { 0x0200_0000_0000 | (i & 0xFFFF_FFFF) }

    // MARK: - Basic rules

    func testLearnAndLookup() throws {
        let t = try LearningTable(capacity: 1024, seed: 1)
        t.learn(local(1), port: 3, now: 10)
        t.learn(local(2), port: 0, now: 10)
        XCTAssertEqual(t.lookup(local(1), now: 10), 3)
        XCTAssertEqual(t.lookup(local(2), now: 11), 0)
        XCTAssertEqual(t.count, 2)
        XCTAssertEqual(t.learned, 2)
        XCTAssertEqual(t.moved, 0)
        XCTAssertEqual(t.evicted, 0)
    }

    func testUnknownIsNone() throws {
        let t = try LearningTable(capacity: 1024)
        XCTAssertEqual(LearningTable.none, UInt16.max)
        XCTAssertEqual(t.lookup(local(7), now: 0), none)
        t.learn(local(1), port: 1, now: 0)
        XCTAssertEqual(t.lookup(local(7), now: 0), none)
        XCTAssertEqual(t.lookup(0, now: 0), none)
    }

    func testPortNoneIsIgnored() throws {
        let t = try LearningTable(capacity: 64)
        t.learn(local(1), port: LearningTable.none, now: 0)
        XCTAssertEqual(t.count, 0)
        XCTAssertEqual(t.learned, 0)
    }

    func testAgingHidesOldEntriesAndExpireCountsThem() throws {
        let t = try LearningTable(capacity: 1024)
        XCTAssertEqual(t.agingSeconds, 300)
        t.learn(local(1), port: 1, now: 100)
        t.learn(local(2), port: 2, now: 300)
        XCTAssertEqual(t.lookup(local(1), now: 399), 1)  // age 299
        XCTAssertEqual(t.lookup(local(1), now: 400), none)  // age 300: expired
        XCTAssertEqual(t.lookup(local(1), now: 10_000), none)
        XCTAssertEqual(t.entries(now: 400).map(\.mac), [local(2)])  // expired ones not listed
        XCTAssertEqual(t.count, 2)  // still occupying a slot until swept
        XCTAssertEqual(t.expire(now: 400), 1)
        XCTAssertEqual(t.aged, 1)
        XCTAssertEqual(t.count, 1)
        XCTAssertEqual(t.lookup(local(2), now: 400), 2)
        XCTAssertEqual(t.expire(now: 400), 0)
        XCTAssertEqual(t.expire(now: 600), 1)
        XCTAssertEqual(t.aged, 2)
        XCTAssertEqual(t.count, 0)
    }

    func testAgingSecondsIsSettable() throws {
        let t = try LearningTable(capacity: 64, agingSeconds: 10)
        t.learn(local(1), port: 1, now: 0)
        XCTAssertEqual(t.lookup(local(1), now: 9), 1)
        XCTAssertEqual(t.lookup(local(1), now: 10), none)
        t.agingSeconds = 60
        XCTAssertEqual(t.lookup(local(1), now: 10), 1)
        t.agingSeconds = 0  // hub mode: nothing is ever used
        XCTAssertEqual(t.lookup(local(1), now: 10), none)
        t.agingSeconds = .max
        XCTAssertEqual(t.agingSeconds, UInt32(Int32.max))
        XCTAssertEqual(t.lookup(local(1), now: 1_000_000), 1)
    }

    func testRefreshKeepsEntryAlive() throws {
        let t = try LearningTable(capacity: 1024)
        t.learn(local(1), port: 4, now: 0)
        t.learn(local(1), port: 4, now: 200)
        t.learn(local(1), port: 4, now: 400)
        XCTAssertEqual(t.lookup(local(1), now: 650), 4)  // 250 s after the last refresh
        XCTAssertEqual(t.expire(now: 650), 0)
        XCTAssertEqual(t.lookup(local(1), now: 700), none)
        XCTAssertEqual(t.learned, 1)
        XCTAssertEqual(t.count, 1)
    }

    func testMoveToAnotherPortCountsMoved() throws {
        let t = try LearningTable(capacity: 1024)
        t.learn(local(1), port: 1, now: 5)
        t.learn(local(1), port: 2, now: 6)
        XCTAssertEqual(t.lookup(local(1), now: 6), 2)
        XCTAssertEqual(t.moved, 1)
        XCTAssertEqual(t.learned, 1)
        XCTAssertEqual(t.count, 1)
        t.learn(local(1), port: 2, now: 7)  // refresh, not a move
        XCTAssertEqual(t.moved, 1)
        t.learn(local(1), port: 1, now: 8)
        XCTAssertEqual(t.moved, 2)
        XCTAssertEqual(t.lookup(local(1), now: 8), 1)
    }

    func testRelearnAfterExpiryIsNotAMove() throws {
        let t = try LearningTable(capacity: 1024, agingSeconds: 100)
        t.learn(local(1), port: 1, now: 0)
        t.learn(local(1), port: 2, now: 100)  // old entry had expired: aged + learned
        XCTAssertEqual(t.moved, 0)
        XCTAssertEqual(t.aged, 1)
        XCTAssertEqual(t.learned, 2)
        XCTAssertEqual(t.count, 1)
        XCTAssertEqual(t.lookup(local(1), now: 150), 2)
        t.learn(local(1), port: 2, now: 300)  // same port after expiry
        XCTAssertEqual(t.aged, 2)
        XCTAssertEqual(t.learned, 3)
        XCTAssertEqual(t.lookup(local(1), now: 300), 2)
    }

    func testFlushPortRemovesOnlyThatPortAndKeepsCountExact() throws {
        let t = try LearningTable(capacity: 1024)
        for i in 0..<30 as Range<UInt64> { t.learn(local(i), port: UInt16(i % 3), now: 1) }
        XCTAssertEqual(t.count, 30)
        XCTAssertEqual(t.flush(port: 1), 10)
        XCTAssertEqual(t.count, 20)
        for i in 0..<30 as Range<UInt64> {
            XCTAssertEqual(t.lookup(local(i), now: 1), i % 3 == 1 ? none : UInt16(i % 3))
        }
        XCTAssertEqual(t.flush(port: 1), 0)
        XCTAssertEqual(t.flush(port: 9), 0)
        XCTAssertEqual(t.count, 20)
        XCTAssertEqual(t.entries(now: 1).count, 20)
        XCTAssertEqual(t.flush(), 20)
        XCTAssertEqual(t.count, 0)
        XCTAssertEqual(t.lookup(local(0), now: 1), none)
        // Flushed slots are reusable.
        t.learn(local(0), port: 5, now: 2)
        XCTAssertEqual(t.count, 1)
        XCTAssertEqual(t.lookup(local(0), now: 2), 5)
    }

    func testGroupMacsAreNeverLearned() throws {
        let t = try LearningTable(capacity: 1024)
        let groups: [UInt64] = [
            0xFFFF_FFFF_FFFF,  // broadcast
            0x0100_5E00_00FB,  // IPv4 multicast (mDNS)
            0x3333_0000_0001,  // IPv6 multicast
            0x0180_C200_0000,  // STP
            0x0300_0000_0000  // locally administered group
        ]
        for g in groups {
            XCTAssertTrue(LearningTable.isGroup(g))
            t.learn(g, port: 1, now: 0)
            XCTAssertEqual(t.lookup(g, now: 0), none)
        }
        XCTAssertEqual(t.count, 0)
        XCTAssertEqual(t.learned, 0)
        XCTAssertFalse(LearningTable.isGroup(0x0200_0000_0001))
        XCTAssertFalse(LearningTable.isGroup(0x00_1B21_3C4D_5E))
        XCTAssertFalse(LearningTable.isGroup(0xFEFF_FFFF_FFFF))
    }

    // MARK: - Collisions

    func testTinyTableHasOneBucket() throws {
        let t = try LearningTable(capacity: 4)
        XCTAssertEqual(t.bucketCount, 1)
        XCTAssertEqual(t.slotCount, 8)
        XCTAssertEqual(try LearningTable(capacity: 8).bucketCount, 2)
        XCTAssertEqual(try LearningTable(capacity: 1 << 20).slotCount, 1 << 21)
    }

    func testBucketOverflowEvictsLeastRecentlySeen() throws {
        let t = try LearningTable(capacity: 4)  // one bucket of 8: every MAC collides
        for i in 0..<8 as Range<UInt64> { t.learn(local(i), port: UInt16(i), now: UInt32(10 + i)) }
        XCTAssertEqual(t.count, 8)
        XCTAssertEqual(t.evicted, 0)
        for i in 0..<8 as Range<UInt64> { XCTAssertEqual(t.lookup(local(i), now: 20), UInt16(i)) }

        t.learn(local(8), port: 8, now: 20)  // 9th MAC: evicts local(0), seen at 10
        XCTAssertEqual(t.lookup(local(8), now: 20), 8)
        XCTAssertEqual(t.lookup(local(0), now: 20), none)
        XCTAssertEqual(t.evicted, 1)
        XCTAssertEqual(t.aged, 0)
        XCTAssertEqual(t.count, 8)
        XCTAssertEqual(t.learned, 9)

        t.learn(local(1), port: 1, now: 21)  // refresh local(1): local(2) is now the oldest
        t.learn(local(9), port: 9, now: 22)
        XCTAssertEqual(t.lookup(local(9), now: 22), 9)
        XCTAssertEqual(t.lookup(local(1), now: 22), 1)
        XCTAssertEqual(t.lookup(local(2), now: 22), none)
        XCTAssertEqual(t.evicted, 2)

        // A stream of new MACs always finds the newest ones: no permanent flooding.
        for i in 100..<200 as Range<UInt64> {
            t.learn(local(i), port: 7, now: UInt32(30 + i))
            XCTAssertEqual(t.lookup(local(i), now: UInt32(30 + i)), 7)
        }
        XCTAssertEqual(t.count, 8)
        XCTAssertEqual(t.evicted, 102)
    }

    func testExpiredEntryIsReusedBeforeEviction() throws {
        let t = try LearningTable(capacity: 4, agingSeconds: 100)
        t.learn(local(0), port: 0, now: 0)  // will be expired at t = 120
        for i in 1..<8 as Range<UInt64> { t.learn(local(i), port: UInt16(i), now: UInt32(50 + i)) }
        t.learn(local(8), port: 8, now: 120)
        XCTAssertEqual(t.aged, 1)
        XCTAssertEqual(t.evicted, 0)
        XCTAssertEqual(t.count, 8)
        for i in 1...8 as ClosedRange<UInt64> { XCTAssertEqual(t.lookup(local(i), now: 120), UInt16(i)) }
        XCTAssertEqual(t.lookup(local(0), now: 120), none)
    }

    func testEmptySlotIsUsedBeforeEviction() throws {
        let t = try LearningTable(capacity: 4)
        for i in 0..<8 as Range<UInt64> { t.learn(local(i), port: UInt16(i % 2), now: 1) }
        XCTAssertEqual(t.flush(port: 1), 4)
        for i in 8..<12 as Range<UInt64> { t.learn(local(i), port: 2, now: 2) }
        XCTAssertEqual(t.evicted, 0)
        XCTAssertEqual(t.count, 8)
        for i in stride(from: 0, to: 8, by: 2) { XCTAssertEqual(t.lookup(local(UInt64(i)), now: 2), 0) }
    }

    func testSequentialMacsSpreadEvenly() throws {
        let t = try LearningTable(capacity: 4096, seed: 42)
        for i in 0..<4096 as Range<UInt64> { t.learn(0x5254_0000_0000 | i, port: 1, now: 0) }
        // A well-mixed hash at 50% load: a few buckets overflow (Poisson), never a cluster.
        XCTAssertLessThan(t.evicted, 4096 / 50)
        XCTAssertEqual(t.count + Int(t.evicted), 4096)
        // Strided MACs (the pattern that clustered a bare multiply-shift for unlucky salts).
        for seed in 0..<20 as Range<UInt64> {
            let u = try LearningTable(capacity: 4096, seed: seed)
            for i in 0..<1024 as Range<UInt64> { u.learn(0x5254_0000_0000 | (i &* 7919), port: 1, now: 0) }
            XCTAssertEqual(u.count, 1024, "seed \(seed)")
        }
    }

    func testMillionRandomMacs() throws {
        let n = 1 << 20
        let t = try LearningTable(capacity: n)
        var rng = SystemRandomNumberGenerator()
        var seen = Set<UInt64>(minimumCapacity: n)
        var macs: [UInt64] = []
        macs.reserveCapacity(n)
        while macs.count < n {
            let m = rng.next() & 0xFEFF_FFFF_FFFF  // clear the group bit, keep 48 bits
            if seen.insert(m).inserted { macs.append(m) }
        }
        for (i, m) in macs.enumerated() { t.learn(m, port: UInt16(i & 0xFF), now: 1) }
        var found = 0
        for (i, m) in macs.enumerated() {
            let p = t.lookup(m, now: 2)
            if p != none {
                XCTAssertEqual(p, UInt16(i & 0xFF))
                found += 1
            }
        }
        XCTAssertEqual(UInt64(found) + t.evicted, UInt64(n))
        XCTAssertEqual(t.count, found)
        XCTAssertEqual(t.learned, UInt64(n))
        XCTAssertLessThan(t.evicted, UInt64(n / 50), "more than 2% evicted at 50% load")
        XCTAssertEqual(t.entries(now: 2).count, found)
        XCTAssertEqual(t.expire(now: 2), 0)
        XCTAssertEqual(t.expire(now: 301), found)
        XCTAssertEqual(t.count, 0)
    }

    // MARK: - Control plane

    func testEntriesListing() throws {
        let t = try LearningTable(capacity: 64)
        t.learn(0x0200_0000_0003, port: 3, now: 10)
        t.learn(0x0200_0000_0001, port: 1, now: 20)
        t.learn(0x0200_0000_0002, port: 2, now: 30)
        let e = t.entries(now: 40)
        XCTAssertEqual(e.map(\.mac), [0x0200_0000_0001, 0x0200_0000_0002, 0x0200_0000_0003])
        XCTAssertEqual(e.map(\.port), [1, 2, 3])
        XCTAssertEqual(e.map(\.age), [20, 10, 30])
        XCTAssertEqual(LearningTable.string(0x0200_0000_0001), "02:00:00:00:00:01")
        XCTAssertEqual(LearningTable.string(0xFFFF_FFFF_FFFF), "ff:ff:ff:ff:ff:ff")
    }

    func testIncrementalExpireCoversTheTable() throws {
        let t = try LearningTable(capacity: 1000)
        for i in 0..<1000 as Range<UInt64> { t.learn(local(i), port: 1, now: 0) }
        let live = t.count
        var removed = 0
        var steps = 0
        while steps * 16 < t.bucketCount {
            removed += t.expire(now: 500, buckets: 16)
            steps += 1
        }
        XCTAssertEqual(removed, live)
        XCTAssertEqual(t.count, 0)
        XCTAssertEqual(t.aged, UInt64(live))
        XCTAssertEqual(t.expire(now: 500, buckets: 1 << 30), 0)
    }

    // MARK: - Frames

    func testMacFromFrameByteOrder() throws {
        let frame: [UInt8] = [
            0xAA,  // padding so the frame starts at an odd address
            0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB,  // destination
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // source
            0x08, 0x00
        ]
        frame.withUnsafeBytes { raw in
            let p = raw.baseAddress! + 1
            let dst = LearningTable.mac(fromFrame: p, offset: 0)
            let src = LearningTable.mac(fromFrame: p, offset: 6)
            XCTAssertEqual(dst, 0x0100_5E00_00FB)
            XCTAssertEqual(src, 0x0211_2233_4455)
            XCTAssertTrue(LearningTable.isGroup(dst))
            XCTAssertFalse(LearningTable.isGroup(src))
            XCTAssertEqual(dst >> 48, 0)
        }
    }

    func testBatchLookupMatchesSingleLookups() throws {
        let t = try LearningTable(capacity: 4096, agingSeconds: 100)
        var macs: [UInt64] = []
        for i in 0..<300 as Range<UInt64> {
            let m = local(i &* 7919)
            macs.append(m)
            if i % 3 != 0 { t.learn(m, port: UInt16(i % 50), now: i % 3 == 1 ? 0 : 90) }  // i % 3 == 0 unknown
        }
        macs.append(0xFFFF_FFFF_FFFF)
        var ports = [UInt16](repeating: 0, count: macs.count)
        macs.withUnsafeBufferPointer { m in
            ports.withUnsafeMutableBufferPointer { p in
                t.lookup(m.baseAddress!, count: m.count, now: 120, into: p.baseAddress!)
            }
        }
        for (i, m) in macs.enumerated() { XCTAssertEqual(ports[i], t.lookup(m, now: 120)) }
        XCTAssertEqual(ports.filter { $0 != none }.count, 100)  // only those seen at 90 are alive at 120
    }
}
