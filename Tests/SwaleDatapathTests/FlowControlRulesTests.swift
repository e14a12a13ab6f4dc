// Flow control's rules in the engine, between two application-style ports (no backend) driven on
// the test thread: a frame for a full application ring stays in its sender's ring while the wait
// lasts, goes (dropped, counted) once it is over, and is dropped at once without flow control.
import Foundation
import SwaleDatapath
import SwaleRings
import XCTest

final class FlowControlRulesTests: XCTestCase {
    typealias F = ForwardingEngineTests

    typealias App = AppRings

    func engine(flowControlMicros: Int) throws -> (ForwardingEngine, App, App) {
        var c = EngineConfig()
        c.fdbCapacity = 64
        c.flowControlMicros = flowControlMicros
        let e = try ForwardingEngine(config: c)
        let a = try App(slots: 64), b = try App(slots: 64)
        XCTAssertEqual(e.addPort(pool: a.pool, layout: a.layout, kickFD: -1, notifyFD: -1, backend: nil), 0)
        XCTAssertEqual(e.addPort(pool: b.pool, layout: b.layout, kickFD: -1, notifyFD: -1, backend: nil), 1)
        // b announces itself, so a's frames to it are known unicast.
        b.send([F.frame(to: F.broadcast, from: F.mac(2))])
        F.run(e)
        XCTAssertEqual(a.take().count, 1)
        return (e, a, b)
    }

    static func numbered(_ n: Int, from start: Int = 0) -> [[UInt8]] {
        (start..<start + n).map { F.frame(to: F.mac(2), from: F.mac(1), seed: $0) }
    }

    func testAFrameForAFullApplicationRingWaitsInItsSendersRing() throws {
        let (e, a, b) = try engine(flowControlMicros: 10_000_000)  // no wait runs out in this test
        XCTAssertEqual(a.send(Self.numbered(63)), 63)
        F.run(e)  // all fit: b's ring (64 slots, 63 usable) is full now
        XCTAssertEqual(a.send(Self.numbered(10, from: 63)), 10)
        F.run(e)
        XCTAssertTrue(e.waitingForRoom, "the thread knows a sender waits")
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 0, "nothing dropped while it waits")
        XCTAssertEqual(e.port(0)?.stats.txPackets, 63, "the waiting ten are not taken")
        XCTAssertEqual(a.send(Self.numbered(60, from: 73)), 53, "they hold their slots in a's ring")
        // b reads: the waiting frames go through, in order, and nothing is lost.
        XCTAssertEqual(b.take(), Self.numbered(63))
        F.run(e)
        XCTAssertEqual(b.take(), Self.numbered(63, from: 63))
        F.run(e)
        XCTAssertFalse(e.waitingForRoom)
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 0)
    }

    func testTheWaitIsBoundedThenTheBatchGoesAsWithoutIt() throws {
        let (e, a, b) = try engine(flowControlMicros: 300_000)
        XCTAssertEqual(a.send(Self.numbered(63)), 63)
        F.run(e)  // b's ring is full
        XCTAssertEqual(a.send(Self.numbered(20, from: 63)), 20)
        F.run(e)
        XCTAssertTrue(e.waitingForRoom)
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 0)
        usleep(400_000)  // longer than the wait
        F.run(e)
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 20, "waited out: dropped and counted, as without it")
        XCTAssertEqual(a.send(Self.numbered(63, from: 83)), 63, "the sender's ring is free again")
        XCTAssertEqual(b.take(), Self.numbered(63), "what b got is what fit, in order")
    }

    func testWithoutFlowControlAFullRingDropsAtOnce() throws {
        let (e, a, b) = try engine(flowControlMicros: 0)
        XCTAssertEqual(a.send(Self.numbered(63)), 63)
        F.run(e)
        XCTAssertEqual(a.send(Self.numbered(20, from: 63)), 20)
        F.run(e)
        XCTAssertFalse(e.waitingForRoom)
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 20)
        XCTAssertEqual(b.take().count, 63)
    }
}
