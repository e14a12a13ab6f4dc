// `swalectl top` and `fdb show --stats` against real traffic through app ports.
import Foundation
import SwaleClient
import SwaleProtocol
import XCTest

extension SwitchTests {
    func testTopShowsTheBusyPortsFirstWithTheirRates() throws {
        let tx = try open("vale5:tx"), rx = try open("vale5:rx"), _ = try open("vale5:idle")
        send(rx, frame(dst: broadcastMAC, src: mac(0x52), marker: 1))  // learned: unicast to rx from now on
        _ = drain(tx, expect: 1)
        let top = try Child(
            try Products.path("swalectl"), ["top", "vale5", "--once", "--json", "--interval", "1"], env: svc.env)
        // About 1.5 s of unicast tx -> rx (bounded in frames and time), while top takes its two readings.
        let f = frame(dst: mac(0x52), src: mac(0x51), marker: 2)
        let deadline = Date().addingTimeInterval(1.5)
        var sent = 0
        while Date() < deadline && sent < 2_000_000 {
            if f.withUnsafeBytes({ tx.send($0, timeoutMs: 10) }) { sent += 1 }
            if sent % 64 == 0 && rx.rxAvailable() > 0 { rx.receive { _ in } }
        }
        XCTAssertEqual(top.wait(seconds: 10), 0, top.stderr)
        let reading = try JSONDecoder().decode(TopReading.self, from: Data(top.stdout.utf8))
        XCTAssertEqual(reading.ports.count, 3, top.stdout)
        XCTAssertGreaterThan(reading.seconds, 0.9)
        let busiest = Set(reading.ports.prefix(2).map(\.port))
        XCTAssertEqual(busiest, ["vale5:tx", "vale5:rx"], "busiest first: \(top.stdout)")
        let t = try XCTUnwrap(reading.ports.first { $0.port == "vale5:tx" })
        let r = try XCTUnwrap(reading.ports.first { $0.port == "vale5:rx" })
        XCTAssertGreaterThan(t.txPacketsPerSecond, 100, "sent \(sent) frames")
        XCTAssertGreaterThan(r.rxPacketsPerSecond, 100)
        XCTAssertEqual(t.txBitsPerSecond / t.txPacketsPerSecond, 64 * 8, accuracy: 1, "64-byte frames")
        XCTAssertEqual(reading.ports.last?.port, "vale5:idle")
        XCTAssertEqual(reading.ports.last?.txPacketsPerSecond, 0)

        let (rc, out, _) = try svc.ctl(["fdb", "show", "vale5", "--stats"])
        XCTAssertEqual(rc, 0)
        XCTAssertTrue(out.contains("vale5: 2 entries"), out)
        XCTAssertTrue(out.contains("learned 2"), out)
        let (_, json, _) = try svc.ctl(["fdb", "show", "vale5", "--stats", "--json"])
        let c = try JSONDecoder().decode(BridgeCounters.self, from: Data(json.utf8))
        XCTAssertEqual(c.fdbEntries, 2)
        XCTAssertGreaterThanOrEqual(c.fdbCapacity, 8)
    }
}

extension SwitchTests {
    func testEventsStreamPortsAndLearning() throws {
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale9"]).0, 0)
        let ev = try Child(
            try Products.path("swalectl"), ["events", "vale9", "--json", "--count", "4", "--seconds", "15"], env: svc.env)
        usleep(700_000)  // it takes "now" as its starting point
        var x = try open("vale9:x")
        send(x, frame(dst: broadcastMAC, src: mac(0x91), marker: 1))
        XCTAssertTrue(try svc.eventually { try self.svc.call(FdbShow(bridge: "vale9")).count == 1 })
        x.close()
        ports.removeAll { $0 === x }
        x = try open("vale9:y")
        XCTAssertEqual(ev.wait(seconds: 20), 0, ev.stderr)
        let lines = ev.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        XCTAssertEqual(lines.map { $0["event"] as? String }, ["port-added", "learned", "port-removed", "port-added"], ev.stdout)
        XCTAssertEqual(lines.map { $0["port"] as? String }, ["x", "x", "x", "y"], ev.stdout)
        XCTAssertEqual(lines[1]["mac"] as? String, "02:00:00:00:00:91")
        XCTAssertTrue(lines.allSatisfy { $0["bridge"] as? String == "vale9" })
        let seqs = lines.compactMap { $0["seq"] as? Int }
        XCTAssertEqual(seqs, seqs.sorted())
    }
}
