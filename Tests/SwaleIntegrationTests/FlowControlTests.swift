// Flow control between applications (swaled --flow-control MICROS): a frame for an application
// whose ring is full waits in its sender's ring, for at most that long, instead of being dropped.
import Foundation
import Glibc
import SwaleClient
import SwaleProtocol
import XCTest

final class FlowControlTests: XCTestCase {
    var svc: ServiceFixture!
    var ports: [SwalePort] = []

    override func tearDown() {
        ports.forEach { $0.close() }
        ports = []
        if let svc { XCTAssertEqual(svc.stop(), 0) }
    }

    func start(_ micros: Int?) throws {
        svc = try ServiceFixture(extraArgs: micros.map { ["--flow-control", "\($0)"] } ?? [])
    }

    func open(_ name: String) throws -> SwalePort {
        let p = try SwalePort.open(name, socket: svc.socket, slots: 256)
        ports.append(p)
        return p
    }

    /// What the reading thread got, shared with the test's thread.
    final class Received: @unchecked Sendable {
        let lock = NSLock()
        var numbers: [Int] = []
        var count: Int { lock.withLock { numbers.count } }
    }

    /// b announces itself (learned), then a sends `count` numbered frames to b as fast as its ring
    /// lets it; b reads what arrived every `pauseMs` (or never). Returns the numbers b got (in
    /// order), b's ring-full drops and how long sending took.
    func slowReceiver(count: Int, pauseMs: UInt32, readAtAll: Bool = true) throws -> ([Int], UInt64, Double) {
        let a = try open("vale2:a"), b = try open("vale2:b")
        XCTAssertTrue(frame(dst: broadcastMAC, src: mac(0xb), marker: 0).withUnsafeBytes { b.send($0) })
        XCTAssertTrue(drainOne(a), "a sees b's announcement")
        let got = Received()
        let done = Received()  // one number once the sender is finished
        let reader = Thread {
            guard readAtAll else { return }
            var quietSince = Date()
            while Date().timeIntervalSince(quietSince) < 0.5 || done.count == 0 {
                usleep(pauseMs * 1000)
                let n = b.receive { f in got.lock.withLock { got.numbers.append(Int(f[15]) << 8 | Int(f[16])) } }
                b.rxSync()
                if n > 0 { quietSince = Date() }
                if Date().timeIntervalSince(quietSince) > 20 { break }
            }
            done.lock.withLock { done.numbers.append(2) }
        }
        reader.start()
        let started = Date()
        for i in 0..<count {
            var f = frame(dst: mac(0xb), src: mac(0xa), marker: 1)
            f[15] = UInt8(i >> 8); f[16] = UInt8(i & 0xff)
            XCTAssertTrue(f.withUnsafeBytes { a.send($0, timeoutMs: 5000) }, "frame \(i) found no room for 5 s")
        }
        while a.txPending() > 0 && Date().timeIntervalSince(started) < 20 { a.txSync(); usleep(1000) }
        let sent = Date().timeIntervalSince(started)
        done.lock.withLock { done.numbers.append(1) }
        if readAtAll { while done.count < 2 && Date().timeIntervalSince(started) < 30 { usleep(10_000) } }
        let drops = try svc.call(Stats(target: "vale2:b")).ports.first?.counters.dropRingFull ?? 0
        return (got.lock.withLock { got.numbers }, drops, sent)
    }

    func drainOne(_ p: SwalePort) -> Bool {
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            if p.receive({ _ in }) > 0 { return true }
            _ = p.wait(for: .rx, timeoutMs: 20)
        }
        return false
    }

    func testASlowReceiverGetsEveryFrameInOrder() throws {
        try start(100_000)
        let (got, drops, _) = try slowReceiver(count: 3000, pauseMs: 5)
        XCTAssertEqual(got, Array(0..<3000), "every frame, in order")
        XCTAssertEqual(drops, 0)
    }

    func testWithoutItAFullRingDrops() throws {
        try start(nil)
        let (got, drops, _) = try slowReceiver(count: 3000, pauseMs: 5)
        XCTAssertGreaterThan(drops, 0, "VALE's behaviour: a full ring drops")
        XCTAssertEqual(got.count + Int(drops), 3000, "what was not delivered was counted")
    }

    func testAReceiverThatNeverReadsCostsItsSendersOnlyTheWait() throws {
        try start(2000)
        let (_, drops, seconds) = try slowReceiver(count: 3000, pauseMs: 0, readAtAll: false)
        // 255 fit b's ring; the rest waited at most 2 ms per batch each, then were dropped.
        XCTAssertEqual(drops, 3000 - 255)
        XCTAssertLessThan(seconds, 5, "the sender was held \(seconds) s")
    }
}
