// A hostile pipe peer end to end (issue #10 finding 7): `swale-pktgen -f scribble` writes random
// indices and slots into its own rings and its peer's (they share the region) for a bounded time,
// next to a receiver on the other end, which must finish normally — no signal — having reported
// the peer's errors (exit status 2, "peer misbehaved" on stderr, peer_errors in its summary).
// And issue #11: opens that fail leave no descriptor behind.
import Foundation
import Glibc
import SwaleClient
import XCTest

final class ScribblingPeerTests: XCTestCase {
    var svc: ServiceFixture!

    override func setUpWithError() throws { svc = try ServiceFixture() }
    override func tearDown() { if let svc { XCTAssertEqual(svc.stop(), 0, "swaled exits cleanly on SIGTERM") } }

    /// Runs `mode` on `victim` while a scribbler runs on `evil` for 2 s; returns the victim.
    func survive(_ mode: String, victim: String, evil: String, seed: Int) throws -> Child {
        // --timeout 1: the victim stops after a second without traffic once the scribbler is gone.
        let v = try svc.pktgen(["-i", victim, "-f", mode, "--timeout", "1"])
        XCTAssertTrue(try svc.eventually { try svc.status().pipes.contains { $0.masterOpen || $0.slaveOpen } })
        let s = try svc.pktgen(["-i", evil, "-f", "scribble", "--timeout", "2", "--seed", "\(seed)"])
        XCTAssertEqual(s.wait(seconds: 30), 0, s.stderr)
        v.wait(seconds: 30)
        XCTAssertEqual(
            v.process.terminationReason, .exit,
            "\(mode) on \(victim) was killed by signal \(v.process.terminationStatus): \(v.stderr.suffix(2000))")
        return v
    }

    func assertReportedPeerErrors(_ v: Child, _ what: String) {
        XCTAssertEqual(v.process.terminationStatus, 2, "\(what): exit status 2 after peer errors; \(v.stderr.suffix(500))")
        XCTAssertTrue(v.stderr.contains("peer misbehaved"), "\(what): \(v.stderr.suffix(500))")
        let errors = (v.lastJSON?["peer_errors"] as? Int) ?? 0
        XCTAssertGreaterThan(errors, 0, "\(what): \(v.stdout)")
        print("\(what): \(errors) peer errors reported, \(v.lastJSON?["packets"] ?? "?") frames counted")
    }

    func testReceiverOnEitherEndSurvivesAScribblingPeer() throws {
        let rx1 = try survive("rx", victim: "vale0:hs>1", evil: "vale0:hs<1", seed: 11)
        assertReportedPeerErrors(rx1, "rx on the slave end")
        let rx2 = try survive("rx", victim: "vale0:hm<2", evil: "vale0:hm>2", seed: 12)
        assertReportedPeerErrors(rx2, "rx on the master end")
        // Both ends gone: the pipes and their memory are released; the service serves on.
        XCTAssertTrue(
            try svc.eventually(10) {
                let s = try svc.status(); return s.pipes.isEmpty && s.regions.isEmpty
            })
        let p = try SwalePort.open("vale0:after", socket: svc.socket)
        p.close()
    }

    func testPongSurvivesAScribblingPeer() throws {
        // pong also transmits: it swaps scribbled rx buffers into its tx ring and syncs them back.
        let pong = try survive("pong", victim: "vale0:hp>1", evil: "vale0:hp<1", seed: 13)
        assertReportedPeerErrors(pong, "pong")
    }

    func testFailedOpensLeaveNoDescriptors() throws {
        func count() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }
        let before = count()
        do {
            // Malformed names (refused before connecting) and names swaled refuses.
            for name in ["vale0:", "vale0:a<1>2", "nosuchif<1", "vale-x:a"] {
                XCTAssertThrowsError(try SwalePort.open(name, socket: svc.socket), name)
            }
            // A pipe end that is already open.
            let a = try SwalePort.open("vale0:fd<1", socket: svc.socket)
            for _ in 0..<5 { XCTAssertThrowsError(try SwalePort.open("vale0:fd<1", socket: svc.socket)) }
            // No service at that path.
            XCTAssertThrowsError(try SwalePort.open("vale0:x", socket: svc.dir + "/nobody.sock"))
            a.close()
        }
        XCTAssertEqual(count(), before, "every failed open closed what it opened or received")
    }
}
