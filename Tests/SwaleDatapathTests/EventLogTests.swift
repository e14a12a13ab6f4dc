// The event ring: sequence numbers, wrapping, what a late reader missed; what the table records.
import SwaleDatapath
import XCTest

final class EventLogTests: XCTestCase {
    func testRingKeepsTheLastEventsAndCountsWhatWasMissed() {
        let log = EventLog(capacity: 4)
        XCTAssertEqual(log.events(after: 0).events.count, 0)
        for i in 1...6 { log.record(.learned, port: UInt16(i), time: 0) }
        let r = log.events(after: 0)
        XCTAssertEqual(r.events.map(\.seq), [3, 4, 5, 6])
        XCTAssertEqual(r.missed, 2)
        XCTAssertEqual(log.events(after: 4).events.map(\.port), [5, 6])
        XCTAssertEqual(log.events(after: 4).missed, 0)
        XCTAssertEqual(log.events(after: 6).events.count, 0)
        XCTAssertEqual(log.events(after: 2, max: 1).events.map(\.seq), [3])
    }

    func testTableRecordsLearnMoveExpireEvict() throws {
        let t = try LearningTable(capacity: 4, agingSeconds: 10)  // one bucket of 8
        t.learn(0x0200_0000_0001, port: 1, now: 1)
        t.learn(0x0200_0000_0001, port: 1, now: 2)  // refresh: nothing
        t.learn(0x0200_0000_0001, port: 2, now: 3)  // moved
        t.expire(now: 100)
        for i in 2...10 as ClosedRange<UInt64> { t.learn(0x0200_0000_0000 | i, port: 3, now: 200 + UInt32(i)) }
        let kinds = t.events.events(after: 0).events.map(\.kind)
        XCTAssertEqual(Array(kinds.prefix(3)), [.learned, .moved, .expired])
        XCTAssertEqual(kinds.filter { $0 == .learned }.count, 10)
        XCTAssertEqual(kinds.last, .learned)
        XCTAssertEqual(kinds.filter { $0 == .evicted }.count, 1, "the 9th address in a bucket of 8")
    }
}
