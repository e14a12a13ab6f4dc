// Learning-table rules added for 802.1Q bridging: (VLAN, MAC) keys, static entries, per-port
// counts and limits kept exact through every operation.
import SwaleDatapath
import XCTest

final class LearningTableRulesTests: XCTestCase {
    private let none = LearningTable.none
    private func local(_ i: UInt64) -> UInt64 { 0x0200_0000_0000 | (i & 0xFFFF_FFFF) }

    func testSameMacInTwoVlansIsTwoEntries() throws {
        let t = try LearningTable(capacity: 1024, seed: 3)
        t.learn(local(1), vlan: 10, port: 1, now: 5)
        t.learn(local(1), vlan: 20, port: 2, now: 5)
        XCTAssertEqual(t.lookup(local(1), vlan: 10, now: 5), 1)
        XCTAssertEqual(t.lookup(local(1), vlan: 20, now: 5), 2)
        XCTAssertEqual(t.lookup(local(1), now: 5), none)
        XCTAssertEqual(t.moved, 0)
        XCTAssertEqual(t.entries(now: 5).map(\.vlan), [10, 20])
        XCTAssertEqual(t.entries(now: 5).map(\.mac), [local(1), local(1)])
        // VLAN 4095 bits never spill into the MAC or the valid bit.
        t.learn(0x02ff_ffff_ffff, vlan: 4094, port: 3, now: 5)
        XCTAssertEqual(
            t.entries(now: 5).last, LearningTable.Record(mac: 0x02ff_ffff_ffff, vlan: 4094, port: 3, age: 0, isStatic: false))
    }

    func testStaticEntriesSurviveAFullBucketOfNewcomers() throws {
        let t = try LearningTable(capacity: 4, agingSeconds: 10)  // one bucket of 8
        XCTAssertTrue(t.addStatic(local(1), port: 1, now: 0))
        for i in 100..<200 as Range<UInt64> { t.learn(local(i), port: 2, now: UInt32(i)) }
        XCTAssertEqual(t.lookup(local(1), now: 1000), 1, "never evicted, never aged")
        XCTAssertEqual(t.learn(local(1), port: 2, now: 1000), .staticElsewhere)
        XCTAssertEqual(t.lookup(local(1), now: 1000), 1)
        XCTAssertEqual(t.learn(local(1), port: 1, now: 1000), .learned)
        // Eight static entries fill the bucket: nothing more is learned, nothing static is lost.
        for i in 2...8 as ClosedRange<UInt64> { XCTAssertTrue(t.addStatic(local(i), port: 1, now: 0)) }
        XCTAssertFalse(t.addStatic(local(9), port: 1, now: 0))
        XCTAssertEqual(t.learn(local(50), port: 2, now: 1000), .limitReached)
        XCTAssertEqual(t.entries(now: 5000).filter(\.isStatic).count, 8)
        XCTAssertEqual(t.count, 8)
        XCTAssertEqual(t.flush(), 0, "flush keeps static entries")
        XCTAssertEqual(t.flush(port: 1, includingStatic: true), 8)
        XCTAssertEqual(t.count, 0)
        XCTAssertFalse(t.addStatic(0x0100_5e00_0001, port: 1, now: 0), "no static group entries")
        XCTAssertFalse(t.addStatic(0, port: 1, now: 0))
    }

    func testAStaticEntryReplacesADynamicOne() throws {
        let t = try LearningTable(capacity: 64)
        t.learn(local(1), port: 3, now: 1)
        XCTAssertEqual(t.entryCount(port: 3), 1)
        t.addStatic(local(1), port: 4, now: 1)
        XCTAssertEqual(t.entryCount(port: 3), 0, "the dynamic entry it replaced is off port 3's count")
        XCTAssertEqual(t.entryCount(port: 4), 0, "static entries do not count")
        XCTAssertEqual(t.count, 1)
        XCTAssertEqual(t.staticPort(local(1)), 4)
        XCTAssertTrue(t.removeStatic(local(1)))
        XCTAssertFalse(t.removeStatic(local(1)))
        XCTAssertEqual(t.count, 0)
    }

    /// Counts per port stay equal to what the table holds through learn, move, evict, expire, flush.
    func testPerPortCountsStayExact() throws {
        let t = try LearningTable(capacity: 16, agingSeconds: 50, seed: 9)
        var rng = SystemRandomNumberGenerator()
        for step in 0..<5000 {
            let now = UInt32(step / 10)
            let mac = local(UInt64.random(in: 0..<40, using: &rng))
            let port = UInt16.random(in: 0..<4, using: &rng)
            switch step % 97 {
            case 0: t.expire(now: now, buckets: 1)
            case 1: t.flush(port: port)
            default: t.learn(mac, port: port, now: now)
            }
            if step % 50 == 0 {
                // Count what each port holds, expired-not-swept entries included (entries() hides them).
                t.expire(now: now)
                for p in 0..<4 {
                    XCTAssertEqual(
                        t.entryCount(port: p), t.entries(now: now).filter { $0.port == p }.count, "step \(step) port \(p)")
                }
            }
        }
    }

    func testLimitRefusesNewEntriesAndMovesButNotRefreshes() throws {
        let t = try LearningTable(capacity: 64)
        t.setLimit(port: 1, 2)
        XCTAssertEqual(t.learn(local(1), port: 1, now: 1), .learned)
        XCTAssertEqual(t.learn(local(2), port: 1, now: 1), .learned)
        XCTAssertEqual(t.learn(local(3), port: 1, now: 1), .limitReached)
        XCTAssertEqual(t.learn(local(1), port: 1, now: 2), .learned, "a refresh is not a new entry")
        XCTAssertEqual(t.learn(local(4), port: 2, now: 2), .learned)
        XCTAssertEqual(t.learn(local(4), port: 1, now: 3), .limitReached, "nor may a station move onto a full port")
        XCTAssertEqual(t.lookup(local(4), now: 3), 2)
        XCTAssertEqual(t.learn(local(2), port: 2, now: 3), .learned)  // moves off: room again
        XCTAssertEqual(t.learn(local(4), port: 1, now: 3), .learned)
        XCTAssertEqual(t.entryCount(port: 1), 2)
        t.setLimit(port: 1, 0)
        XCTAssertEqual(t.learn(local(5), port: 1, now: 3), .learned)
    }
}
