// The kernel fast path end to end (SwaleKernel/Fastpath.swift, CSwaleFastpath/bpf/fastpath.bpf.c):
// real namespaces, veth pairs and traffic. Frames between two learned kernel ports go through the
// eBPF program (its counters rise) and never reach the packet socket (the adapter's counters stay
// put); moves, flushes and removals change the path for the next frame; floods still cross the
// rings and reach an application port; watched ports leave the fast path; --no-fastpath turns it
// off; nothing stays in the kernel when swaled stops or dies. Every object is named with a per-run
// prefix and deleted in tearDown.
import Foundation
import Glibc
import SwaleClient
import SwaleNames
import SwaleProtocol
import XCTest

final class FastpathTests: XCTestCase {
    var svc: ServiceFixture!
    let kernel = KernelObjects()
    var prefix: String { kernel.prefix }

    override func setUpWithError() throws {
        try requireRoot(
            "fast path tests: network namespaces, veth, eBPF", tools: ["ip", "ping", "iperf3", "python3", "bpftool", "ethtool"])
        svc = try ServiceFixture()
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale0"]).0, 0)
    }

    override func tearDown() {
        if let svc { _ = svc.stop() }
        kernel.cleanup()
    }

    typealias Host = NamespaceHost

    func vethInNamespace(_ i: Int, subnet: String) throws -> Host {
        try svc.vethInNamespace(i, subnet: subnet, kernel: kernel)
    }

    func counters(_ port: String) throws -> PortCounters { try svc.call(Stats(target: "vale0:\(port)")).ports[0].counters }
    func adapter(_ port: String, _ key: String) throws -> UInt64? { try counters(port).adapter?[key] }
    func bridge() throws -> BridgeInfo { try XCTUnwrap(svc.call(Stats(target: "vale0")).bridges.first) }

    /// `n` 18-byte UDP datagrams from `ns` to `ip` (discard port).
    func udpFlood(from ns: String, to ip: String, count n: Int) {
        let py = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(\(n)): s.sendto(bytes(18), ('\(ip)', 9))
            """
        XCTAssertEqual(sh("ip netns exec \(ns) python3 -c \"\(py)\"", seconds: 60).0, 0)
    }

    func iperfTCP(from ns: String, to b: Host, seconds: Int) throws -> Double {
        let server = try Child("/usr/bin/env", ["ip", "netns", "exec", b.ns, "iperf3", "-s", "-1", "-B", b.ip])
        defer { server.signal(SIGKILL); server.wait(seconds: 5) }
        usleep(300_000)
        let (rc, out) = sh("ip netns exec \(ns) iperf3 -c \(b.ip) -t \(seconds) -J", seconds: Double(seconds + 30))
        XCTAssertEqual(rc, 0, out)
        let obj = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        let end = (obj?["end"] as? [String: Any])?["sum_received"] as? [String: Any]
        return end?["bytes"] as? Double ?? 0
    }

    /// Frames an application port received within `seconds` (stops early once `until` holds).
    func collect(_ app: SwalePort, seconds: Double, until: ([[UInt8]]) -> Bool = { _ in false }) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && !until(frames) {
            if app.rxAvailable() == 0 { _ = app.wait(for: .rx, timeoutMs: 50); continue }
            app.receive { frames.append(Array($0)) }
        }
        return frames
    }

    static func macBytes(_ s: String) -> [UInt8] { s.split(separator: ":").map { UInt8($0, radix: 16)! } }

    /// IDs of the eBPF programs named swale_fp_* loaded right now.
    func fastpathPrograms() -> Set<Int> {
        let (rc, out) = sh("bpftool prog show -j")
        guard rc == 0, let list = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]] else { return [] }
        return Set(list.filter { ($0["name"] as? String)?.hasPrefix("swale_fp") == true }.compactMap { $0["id"] as? Int })
    }

    // MARK: tests

    func testFramesAndTCPBetweenTwoNamespacesTakeTheFastPath() throws {
        let a = try vethInNamespace(1, subnet: "10.214.1"), b = try vethInNamespace(2, subnet: "10.214.1")
        let first = sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)")
        XCTAssertEqual(first.0, 0, first.1)
        XCTAssertEqual(try bridge().fastpath, "on, 2 port(s)")
        XCTAssertEqual(try adapter(a.port, "fastpath"), 1)
        let sawA = try XCTUnwrap(adapter(a.port, "rx_frames")), sawB = try XCTUnwrap(adapter(b.port, "rx_frames"))
        let fastA = try XCTUnwrap(adapter(a.port, "fastpath_tx_packets"))
        let txA = try counters(a.port).txPackets

        let n = 20000
        udpFlood(from: a.ns, to: b.ip, count: n)
        let bytes = try iperfTCP(from: a.ns, to: b, seconds: 2)
        XCTAssertGreaterThan(bytes, 1e6, "TCP moved data")

        // The two ports are read one after the other: until neither moves between two reads (a late
        // frame of the namespaces' own would otherwise be counted on one side only).
        var ca = try counters(a.port), cb = try counters(b.port)
        for _ in 0..<25 {
            usleep(200_000)
            let (na, nb) = (try counters(a.port), try counters(b.port))
            if na.adapter == ca.adapter && nb.adapter == cb.adapter { break }
            (ca, cb) = (na, nb)
        }
        let fa = try XCTUnwrap(ca.adapter), fb = try XCTUnwrap(cb.adapter)
        print(
            "fast path: a sent \(fa["fastpath_tx_packets"]! - fastA) frames through the kernel; its packet socket saw \(fa["rx_frames"]! - sawA), b's \(fb["rx_frames"]! - sawB)"
        )
        XCTAssertGreaterThanOrEqual(fa["fastpath_tx_packets"]! - fastA, UInt64(n), "the datagrams took the fast path")
        // What the namespaces' own chatter sends through the switch meanwhile (IPv6 multicast): a few frames.
        XCTAssertLessThan(fa["rx_frames"]! - sawA, 50, "the packet socket saw none of the fast-pathed frames: \(fa)")
        XCTAssertLessThan(fb["rx_frames"]! - sawB, 50, "nor on the other side: \(fb)")
        XCTAssertEqual(fa["fastpath_tx_packets"], fb["fastpath_rx_packets"], "every frame a sent went to b")
        XCTAssertEqual(fb["fastpath_tx_packets"], fa["fastpath_rx_packets"])
        XCTAssertGreaterThanOrEqual(ca.txPackets - txA, UInt64(n), "the port's counters include the fast path")
        XCTAssertGreaterThanOrEqual(cb.rxPackets, fb["fastpath_rx_packets"]!)
        // The same in the metrics: the port is on, and its fast-path frames are a labelled family.
        let metrics = try svc.call(MetricsScrape()).text
        XCTAssertTrue(
            metrics.contains("swale_port_fastpath{bridge=\"vale0\",port=\"\(a.port)\",kind=\"veth\"} 1"), metrics)
        let line = "swale_port_fastpath_frames_total{bridge=\"vale0\",port=\"\(a.port)\",kind=\"veth\",direction=\"tx\"} "
        let exported = metrics.split(separator: "\n").first { $0.hasPrefix(line) }.flatMap { UInt64($0.dropFirst(line.count)) }
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(exported, metrics), fa["fastpath_tx_packets"]!)
    }

    func testATapInTheRootNamespaceTakesTheFastPathBothWays() throws {
        let a = try vethInNamespace(1, subnet: "10.214.10")
        let tap = "\(prefix)t0"
        let (rc, out, err) = try svc.ctl(["port", "add", "vale0", "tap", tap])
        XCTAssertEqual(rc, 0, out + err)
        XCTAssertEqual(sh("ip addr add 10.214.10.254/24 dev \(tap) && ip link set \(tap) up").0, 0)
        XCTAssertEqual(sh("ping -c 2 -i 0.2 -W 2 -I \(tap) \(a.ip)").0, 0)  // both stations learned
        let read = try XCTUnwrap(adapter(tap, "rx_frames"))
        let ping = sh("ping -c 20 -i 0.05 -W 2 -I \(tap) \(a.ip)")
        XCTAssertEqual(ping.0, 0, ping.1)
        let back = sh("ip netns exec \(a.ns) ping -c 20 -i 0.05 -W 2 10.214.10.254")
        XCTAssertEqual(back.0, 0, back.1)
        let t = try XCTUnwrap(counters(tap).adapter)
        XCTAssertGreaterThanOrEqual(t["fastpath_tx_packets"] ?? 0, 40, "host → namespace through the TAP's egress program")
        XCTAssertGreaterThanOrEqual(t["fastpath_rx_packets"] ?? 0, 40, "namespace → host straight up the host stack")
        XCTAssertLessThan(t["rx_frames"]! - read, 10, "swaled read almost none of them from the TAP: \(t)")
    }

    func testAnObjectTheKernelRefusesLeavesEveryPortOnTheSlowPath() throws {
        _ = svc.stop()
        let bogus = NSTemporaryDirectory() + "\(prefix)-bogus.bpf.o"
        try Data("not an ELF object".utf8).write(to: URL(fileURLWithPath: bogus))
        defer { try? FileManager.default.removeItem(atPath: bogus) }
        svc = try ServiceFixture(env: ["SWALE_FASTPATH_OBJECT": bogus])
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale0"]).0, 0)
        let a = try vethInNamespace(1, subnet: "10.214.9"), b = try vethInNamespace(2, subnet: "10.214.9")
        let ping = sh("ip netns exec \(a.ns) ping -c 3 -i 0.2 -W 2 \(b.ip)")
        XCTAssertEqual(ping.0, 0, "the slow path carries everything: \(ping.1)")
        let state = try bridge().fastpath ?? "nil"
        XCTAssertTrue(state.hasPrefix("unavailable: "), state)
        XCTAssertNil(try adapter(a.port, "fastpath"))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(adapter(a.port, "rx_frames")), 3)
        XCTAssertEqual(svc.stop(), 0)
        let said = svc.daemon.stderr.components(separatedBy: "kernel fast path unavailable").count - 1
        XCTAssertEqual(said, 1, "logged once for two ports: \(svc.daemon.stderr)")
        svc = nil
    }

    func testMoveFlushAndRemovalChangeThePathAtOnce() throws {
        let a = try vethInNamespace(1, subnet: "10.214.2"), b = try vethInNamespace(2, subnet: "10.214.2")
        let c = try vethInNamespace(3, subnet: "10.214.2")
        let app = try SwalePort.open("vale0:app", socket: svc.socket)
        defer { app.close() }
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)").0, 0)
        XCTAssertGreaterThan(try adapter(a.port, "fastpath_tx_packets") ?? 0, 0)

        // b's station moves behind c: b's interface goes down, c's takes its MAC and address.
        XCTAssertEqual(sh("ip netns exec \(b.ns) ip link set \(b.peer) down").0, 0)
        let move = sh(
            "ip netns exec \(c.ns) sh -c 'ip link set \(c.peer) down && ip link set \(c.peer) address \(b.mac) && ip addr flush dev \(c.peer) && ip addr add \(b.ip)/24 dev \(c.peer) && ip link set \(c.peer) up'"
        )
        XCTAssertEqual(move.0, 0, move.1)
        let fastC = try adapter(c.port, "fastpath_rx_packets") ?? 0
        let moved = sh("ip netns exec \(c.ns) ping -c 3 -i 0.2 -W 2 \(a.ip)")
        XCTAssertEqual(moved.0, 0, "the replies follow the station at once: \(moved.1)")
        XCTAssertTrue(moved.1.contains(" 0% packet loss"), moved.1)
        XCTAssertGreaterThan(try adapter(c.port, "fastpath_rx_packets") ?? 0, fastC, "to its new port, through the kernel")
        let fdb = try svc.ctl(["fdb", "show", "vale0"]).1
        XCTAssertTrue(fdb.split(separator: "\n").contains { $0.contains(b.mac) && $0.contains(c.port) }, fdb)

        // A flushed table: the next frame from a to that station is unknown unicast, flooded through
        // the rings (so the application port gets a copy).
        // The station may speak first on its own (a neighbour probe of c's kernel between the flush
        // and the ping), and the table then knows it again: that attempt proves nothing, and a
        // fresh flush and ping follow (at most three attempts; on a loaded machine the window widens).
        let dst = FastpathTests.macBytes(b.mac)
        var seen: [[UInt8]] = []
        for _ in 0..<3 where !seen.contains(where: { Array($0.prefix(6)) == dst }) {
            _ = collect(app, seconds: 0.3)
            XCTAssertEqual(try svc.ctl(["fdb", "flush", "vale0"]).0, 0)
            XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 1 -W 2 \(b.ip)").0, 0)
            seen = collect(app, seconds: 3) { $0.contains { Array($0.prefix(6)) == dst } }
        }
        XCTAssertTrue(seen.contains { Array($0.prefix(6)) == dst }, "flooded after the flush")

        // The port removed: a still knows the station's MAC and sends to it; the entry went with the
        // port, so the frame floods (to the application port) instead of going to a port that is gone.
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)").0, 0)  // learned again, fast path
        XCTAssertEqual(try svc.ctl(["port", "del", "vale0", c.port]).0, 0)
        _ = collect(app, seconds: 0.3)
        _ = sh("ip netns exec \(a.ns) ping -c 1 -W 1 \(b.ip)")
        seen = collect(app, seconds: 3) { $0.contains { Array($0.prefix(6)) == dst } }
        XCTAssertTrue(seen.contains { Array($0.prefix(6)) == dst }, "flooded after the port went")
    }

    func testBroadcastAndUnknownUnicastStillFloodThroughTheRings() throws {
        let a = try vethInNamespace(1, subnet: "10.214.3"), b = try vethInNamespace(2, subnet: "10.214.3")
        let app = try SwalePort.open("vale0:app", socket: svc.socket)
        defer { app.close() }
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)").0, 0)
        _ = collect(app, seconds: 0.3)
        let sawA = try XCTUnwrap(adapter(a.port, "rx_frames"))
        let frames = FileManager.default.currentDirectoryPath + "/Scripts/frames.py"
        let script =
            FileManager.default.fileExists(atPath: frames)
            ? frames
            : URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("Scripts/frames.py").path
        let unknown = "02:5a:00:00:00:77"
        for (dst, tag) in [("ff:ff:ff:ff:ff:ff", "bcast"), (unknown, "unknown"), (b.mac, "known")] {
            let r = sh("ip netns exec \(a.ns) python3 \(script) send --iface \(a.peer) --dst \(dst) --src \(a.mac) --tag \(tag)")
            XCTAssertEqual(r.0, 0, r.1)
        }
        let got = collect(app, seconds: 2)
        func has(_ tag: String) -> Bool { got.contains { String(decoding: $0, as: UTF8.self).contains("SWALETEST:\(tag)") } }
        XCTAssertTrue(has("bcast"), "broadcast reaches the application port")
        XCTAssertTrue(has("unknown"), "unknown unicast reaches the application port")
        XCTAssertFalse(has("known"), "a learned unicast goes to its port only")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(adapter(a.port, "rx_frames")) - sawA, 2, "the floods crossed the packet socket")
    }

    func testAWatchedPortLeavesTheFastPathWhileWatched() throws {
        let a = try vethInNamespace(1, subnet: "10.214.4"), b = try vethInNamespace(2, subnet: "10.214.4")
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)").0, 0)
        XCTAssertEqual(try adapter(a.port, "fastpath"), 1)
        let fast = try XCTUnwrap(adapter(a.port, "fastpath_tx_packets"))
        do {
            let mon = try SwalePort.open("vale0:\(a.port)/rt", socket: svc.socket)
            defer { mon.close() }
            XCTAssertEqual(try adapter(a.port, "fastpath"), 0, "watched: off the fast path")
            XCTAssertEqual(try adapter(b.port, "fastpath"), 1, "the other port stays on")
            let (rc, out) = sh("ip netns exec \(a.ns) ping -c 3 -i 0.2 -W 2 \(b.ip)")
            XCTAssertEqual(rc, 0, out)
            let frames = collect(mon, seconds: 2) { f in f.filter { $0.count > 34 && $0[23] == 1 }.count >= 6 }
            let icmp = frames.filter { $0.count > 34 && $0[12] == 0x08 && $0[13] == 0x00 && $0[23] == 1 }
            XCTAssertGreaterThanOrEqual(icmp.filter { $0[34] == 8 }.count, 3, "the monitor sees every request")
            XCTAssertGreaterThanOrEqual(icmp.filter { $0[34] == 0 }.count, 3, "and every reply")
            XCTAssertEqual(try adapter(a.port, "fastpath_tx_packets"), fast, "nothing from a took the fast path")
        }
        XCTAssertTrue(try svc.eventually(5) { try self.adapter(a.port, "fastpath") == 1 }, "back on once the monitor closed")
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)").0, 0)
        XCTAssertGreaterThan(try XCTUnwrap(adapter(a.port, "fastpath_tx_packets")), fast)
    }

    func testFastPathedSourcesDoNotAgeOut() throws {
        let a = try vethInNamespace(1, subnet: "10.214.5"), b = try vethInNamespace(2, subnet: "10.214.5")
        XCTAssertEqual(try svc.ctl(["bridge", "aging", "vale0", "3"]).0, 0)
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)").0, 0)
        let before = try bridge().counters
        // 7 s of pings (beyond two aging times), all through the kernel once learned.
        let p = sh("ip netns exec \(a.ns) ping -c 35 -i 0.2 -W 2 \(b.ip)", seconds: 30)
        XCTAssertEqual(p.0, 0, p.1)
        let after = try bridge().counters
        XCTAssertEqual(after.aged, before.aged, "no entry aged out while its station sent through the fast path")
        XCTAssertEqual(after.learned, before.learned, "nothing had to be learned again")
        let fdb = try svc.ctl(["fdb", "show", "vale0"]).1
        XCTAssertTrue(fdb.contains(a.mac) && fdb.contains(b.mac), fdb)
    }

    func testNoFastpathFlagSendsEverythingThroughTheRings() throws {
        _ = svc.stop()
        svc = try ServiceFixture(extraArgs: ["--no-fastpath"])
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale0"]).0, 0)
        let a = try vethInNamespace(1, subnet: "10.214.6"), b = try vethInNamespace(2, subnet: "10.214.6")
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)").0, 0)
        XCTAssertEqual(try bridge().fastpath, "off")
        XCTAssertNil(try adapter(a.port, "fastpath"))
        let saw = try XCTUnwrap(adapter(a.port, "rx_frames"))
        udpFlood(from: a.ns, to: b.ip, count: 2000)
        let now = try XCTUnwrap(adapter(a.port, "rx_frames")) + (try adapter(a.port, "kernel_ring_drops") ?? 0)
        XCTAssertGreaterThanOrEqual(now - saw, 2000, "every datagram crossed the packet socket")
    }

    func testAttachedVethsGetGROAndTheFastPathAndGetTheirSettingsBack() throws {
        // Two veth pairs the test makes itself, peers in namespaces, GRO off on the host ends.
        var hosts: [(ifname: String, ns: String, ip: String)] = []
        for i in 1...2 {
            let ns = kernel.netns("g\(i)")
            let host = "\(prefix)h\(i)", peer = "\(prefix)q\(i)", ip = "10.214.7.\(i)"
            let r = sh(
                "ip link add \(host) type veth peer name \(peer) netns \(ns) && ethtool -K \(host) gro off && ip link set \(host) up && ip netns exec \(ns) ip addr add \(ip)/24 dev \(peer) && ip netns exec \(ns) ip link set \(peer) up"
            )
            XCTAssertEqual(r.0, 0, r.1)
            let (rc, out, err) = try svc.ctl(["port", "attach", "vale0", host])
            XCTAssertEqual(rc, 0, out + err)
            hosts.append((host, ns, ip))
        }
        for h in hosts {
            XCTAssertTrue(sh("ethtool -k \(h.ifname)").1.contains("generic-receive-offload: on"), "GRO on while attached")
        }
        XCTAssertEqual(sh("ip netns exec \(hosts[0].ns) ping -c 3 -i 0.2 -W 2 \(hosts[1].ip)").0, 0)
        XCTAssertGreaterThan(try adapter(hosts[0].ifname, "fastpath_tx_packets") ?? 0, 0, "attached veths use the fast path")
        for h in hosts {
            XCTAssertEqual(try svc.ctl(["port", "del", "vale0", h.ifname]).0, 0)
            XCTAssertTrue(sh("ethtool -k \(h.ifname)").1.contains("generic-receive-offload: off"), "GRO as found")
        }
        XCTAssertEqual(sh("ip netns exec \(hosts[0].ns) ping -c 1 -W 1 \(hosts[1].ip)").0 == 0, false, "detached: no path")
    }

    func testStoppedOrKilledSwaledLeavesNoProgramBehind() throws {
        let a = try vethInNamespace(1, subnet: "10.214.8"), b = try vethInNamespace(2, subnet: "10.214.8")
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 \(b.ip)").0, 0)
        let loaded = fastpathPrograms()
        XCTAssertGreaterThanOrEqual(loaded.count, 2, "the tc program and the socket filter are loaded")
        // SIGKILL: nothing runs on the way out, the kernel alone cleans up (tcx links, sockets, maps).
        svc.daemon.signal(SIGKILL)
        svc.daemon.wait(seconds: 10)
        XCTAssertTrue(svc.eventually(10) { self.fastpathPrograms().isDisjoint(with: loaded) }, "no program outlives swaled")
        // The interfaces stay (created ports survive a restart); with no program on them, a frame
        // sent into a now goes nowhere: nothing redirects it to b behind the dead switch's back.
        XCTAssertNotEqual(sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 1 \(b.ip)").0, 0, "no stale redirect")
        _ = svc.stop()
        svc = nil
        for p in [a.port, b.port] { sh("ip link del \(p)") }
    }
}
