// Prometheus metrics: swaled --metrics serves /metrics over HTTP through the permission table;
// the text passes promtool and its counters equal `swalectl stats` after real traffic.
import Foundation
import Glibc
import SwaleClient
import SwaleProtocol
import XCTest

final class MetricsTests: XCTestCase {
    var svc: ServiceFixture!
    var ports: [SwalePort] = []
    let port = Int.random(in: 20000...60000)
    var url: String { "http://127.0.0.1:\(port)/metrics" }

    override func setUpWithError() throws {
        try requireRoot("metrics: scrapes as another user with setpriv", tools: ["promtool", "setpriv", "/usr/bin/python3"])
        svc = try ServiceFixture(extraArgs: ["--metrics", "127.0.0.1:\(port)"])
    }

    override func tearDown() {
        ports.forEach { $0.close() }
        if let svc { XCTAssertEqual(svc.stop(), 0) }
    }

    /// GET with the system python as `user` (nil: root): (HTTP status, body).
    func scrape(as user: String? = nil, path: String = "/metrics") -> (Int, String) {
        let py = """
            import urllib.request, urllib.error, sys
            try:
                r = urllib.request.urlopen("http://127.0.0.1:\(port)\(path)", timeout=5); print(r.status); sys.stdout.write(r.read().decode())
            except urllib.error.HTTPError as e:
                print(e.code); sys.stdout.write(e.read().decode())
            """
        let prefix = user.map { "setpriv --reuid=\($0) --regid=\($0) --clear-groups " } ?? ""
        let (_, out) = sh("\(prefix)/usr/bin/python3 -c '\(py)'")
        let status = Int(out.prefix { $0 != "\n" }) ?? -1
        return (status, String(out.drop { $0 != "\n" }.dropFirst()))
    }

    func value(_ text: String, _ sample: String) -> UInt64? {
        text.split(separator: "\n").first { $0.hasPrefix(sample + " ") }.flatMap { UInt64($0.split(separator: " ").last!) }
    }

    func testMetricsPassPromtoolAndMatchStats() throws {
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale6"]).0, 0)
        let a = try SwalePort.open("vale6:a", socket: svc.socket), b = try SwalePort.open("vale6:b", socket: svc.socket)
        ports = [a, b]
        var f = [UInt8](repeating: 0, count: 100)
        f[0..<6] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        f[6..<12] = [0x02, 0, 0, 0, 0, 0x61]
        for _ in 0..<500 { XCTAssertTrue(f.withUnsafeBytes { a.send($0) }) }
        XCTAssertTrue(try svc.eventually { try self.svc.call(Stats(target: "vale6:b")).ports[0].counters.rxPackets == 500 })
        // Then b makes itself known and a sends it 300 unicast frames: one flow, forwarded in runs.
        var announce = f
        announce[6..<12] = [0x02, 0, 0, 0, 0, 0x62]
        XCTAssertTrue(announce.withUnsafeBytes { b.send($0) })
        f[0..<6] = [0x02, 0, 0, 0, 0, 0x62]
        XCTAssertTrue(try svc.eventually { try self.svc.call(Stats(target: "vale6:a")).ports[0].counters.rxPackets == 1 })
        for _ in 0..<300 { XCTAssertTrue(f.withUnsafeBytes { a.send($0) }) }
        XCTAssertTrue(try svc.eventually { try self.svc.call(Stats(target: "vale6:b")).ports[0].counters.rxPackets == 800 })
        _ = b.rxAvailable()

        let (status, text) = scrape()
        XCTAssertEqual(status, 200, text)
        let file = NSTemporaryDirectory() + "swale-metrics-\(getpid()).txt"
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (rc, out) = sh("promtool check metrics < \(file)")
        XCTAssertEqual(rc, 0, "promtool: \(out)")

        let stats = try svc.call(Stats(target: "vale6"))
        let ca = try XCTUnwrap(stats.ports.first { $0.name == "a" }).counters
        let cb = try XCTUnwrap(stats.ports.first { $0.name == "b" }).counters
        XCTAssertEqual(value(text, #"swale_port_tx_frames_total{bridge="vale6",port="a",kind="app"}"#), ca.txPackets)
        XCTAssertEqual(value(text, #"swale_port_tx_bytes_total{bridge="vale6",port="a",kind="app"}"#), 80_000)
        XCTAssertEqual(value(text, #"swale_port_rx_frames_total{bridge="vale6",port="b",kind="app"}"#), cb.rxPackets)
        XCTAssertEqual(
            value(text, #"swale_port_dropped_frames_total{bridge="vale6",port="a",kind="app",reason="bad_source"}"#), 0)
        XCTAssertEqual(value(text, #"swale_bridge_fdb_entries{bridge="vale6"}"#), 2)
        XCTAssertEqual(value(text, #"swale_bridge_batch_slots_sum{bridge="vale6"}"#), 801)
        XCTAssertEqual(value(text, #"swale_bridge_run_frames_total{bridge="vale6"}"#), 300, "the unicast flow went in runs")
        XCTAssertEqual(stats.bridges.first?.counters.runFrames, 300)
        XCTAssertEqual(
            value(text, #"swale_bridge_priority_lends_total{bridge="vale6"}"#), 0,
            "application ports only: the thread is never raised, so never steps down (BridgeThreadTests counts the lends)")
        XCTAssertEqual(stats.bridges.first?.counters.priorityLends, 0)
        XCTAssertEqual(
            value(text, #"swale_bridge_batch_slots_bucket{bridge="vale6",le="+Inf"}"#),
            value(text, #"swale_bridge_batch_slots_count{bridge="vale6"}"#))
        XCTAssertNotNil(value(text, #"swale_region_buffers_free{region="swale:vale6:a"}"#))
        // The control socket's `metrics` gives the same families.
        let (crc, ctext, _) = try svc.ctl(["metrics"])
        XCTAssertEqual(crc, 0)
        XCTAssertTrue(ctext.contains("# TYPE swale_port_dropped_frames_total counter"))
    }

    /// The HTTP listener goes through the permission table: a user who may not use swaled gets 403.
    func testScrapersAreWhoTheyAreAndOthersAreRefused() throws {
        let (status, body) = scrape(as: "65534")
        XCTAssertEqual(status, 403, body)
        XCTAssertTrue(body.contains("uid 65534 is not a member"), body)
        XCTAssertEqual(scrape(path: "/").0, 404)
        XCTAssertEqual(scrape().0, 200, "root is served")
    }
}
