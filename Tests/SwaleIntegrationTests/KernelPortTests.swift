// Kernel ports end to end: real namespaces, veth pairs and TAP devices, real traffic.
// Every object is named with a per-run prefix and deleted in tearDown, even when a test fails.
import Foundation
import Glibc
import SwaleClient
import SwaleConfig
import SwaleNames
import SwaleProtocol
import XCTest

/// With the kernel fast path (the default); KernelPortTestsWithoutFastpath runs every test again
/// without it (`--no-fastpath`): both must give the same results.
class KernelPortTests: XCTestCase {
    /// swaled's arguments for every service these tests start.
    class var serviceArgs: [String] { [] }
    var svc: ServiceFixture!
    let kernel = KernelObjects()
    var prefix: String { kernel.prefix }

    override func setUpWithError() throws {
        try requireRoot("kernel port tests: network namespaces, veth, TAP", tools: ["ip", "ping", "iperf3"])
        svc = try ServiceFixture(extraArgs: Self.serviceArgs)
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale0"]).0, 0)
    }

    override func tearDown() {
        if let svc { _ = svc.stop() }
        kernel.cleanup()
    }

    func netns(_ suffix: String) -> String { kernel.netns(suffix) }

    /// Adds a veth port whose peer sits in a new namespace with an address.
    func vethInNamespace(_ i: Int, subnet: String) throws -> NamespaceHost {
        try svc.vethInNamespace(i, subnet: subnet, kernel: kernel)
    }

    func portCounters(_ port: String) throws -> PortCounters {
        let r = Stats(target: "vale0:\(port)")
        return try svc.call(r).ports[0].counters
    }

    /// iperf3 TCP from namespace `ns` to a server on `b` for `seconds`: bytes and bits/s received.
    func iperfTCP(from ns: String, to b: NamespaceHost, seconds: Int) throws -> (
        bytes: Double, bps: Double
    ) {
        let server = try Child("/usr/bin/env", ["ip", "netns", "exec", b.ns, "iperf3", "-s", "-1", "-B", b.ip])
        defer { server.signal(SIGKILL); server.wait(seconds: 5) }
        usleep(300_000)
        let (rc, out) = sh("ip netns exec \(ns) iperf3 -c \(b.ip) -t \(seconds) -J", seconds: Double(seconds + 30))
        XCTAssertEqual(rc, 0, out)
        let obj = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        let end = (obj?["end"] as? [String: Any])?["sum_received"] as? [String: Any]
        return (end?["bytes"] as? Double ?? 0, try XCTUnwrap(end?["bits_per_second"] as? Double, out))
    }

    func testTwoNamespacesPingBothWaysAndAppearInFdb() throws {
        let a = try vethInNamespace(1, subnet: "10.213.1"), b = try vethInNamespace(2, subnet: "10.213.1")
        let ab = sh("ip netns exec \(a.ns) ping -c 3 -i 0.2 -W 2 \(b.ip)")
        XCTAssertEqual(ab.0, 0, ab.1)
        let ba = sh("ip netns exec \(b.ns) ping -c 3 -i 0.2 -W 2 \(a.ip)")
        XCTAssertEqual(ba.0, 0, ba.1)
        let (_, fdb, _) = try svc.ctl(["fdb", "show", "vale0"])
        XCTAssertTrue(fdb.contains(a.mac) && fdb.contains(b.mac), fdb)
        XCTAssertTrue(fdb.contains(a.port) && fdb.contains(b.port), fdb)
        // swaled turns GRO on for the veth ends it creates (containers' segments arrive merged).
        let k = sh("ethtool -k \(a.port)").1
        XCTAssertTrue(k.contains("generic-receive-offload: on"), k)
    }

    func testIperfTCPWithDefaultOffloads() throws {
        let a = try vethInNamespace(1, subnet: "10.213.2"), b = try vethInNamespace(2, subnet: "10.213.2")
        let offloads = sh("ip netns exec \(a.ns) ethtool -k \(prefix)p1 | grep -E 'tcp-segmentation-offload|tx-checksumming'").1
        let (_, bps) = try iperfTCP(from: a.ns, to: b, seconds: 5)
        print("iperf3 TCP through Swale (debug build), offloads on: \(bps / 1e9) Gbit/s\n\(offloads)")
        XCTAssertGreaterThan(bps, 1e6, "TCP moved data")
        XCTAssertTrue(offloads.contains("tcp-segmentation-offload: on"), offloads)
    }

    /// The path before direct transmit (frames copied into the kernel port's ring, then sent) is
    /// still what carries frames the kernel could not take at once: run TCP and ping through it alone
    /// (without the kernel fast path, which would carry them past the rings).
    func testCopyPathToKernelPortsCarriesTCP() throws {
        _ = svc.stop()
        svc = try ServiceFixture(extraArgs: ["--copy-to-kernel-ports", "--no-fastpath"])
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale0"]).0, 0)
        let a = try vethInNamespace(1, subnet: "10.213.9"), b = try vethInNamespace(2, subnet: "10.213.9")
        let ping = sh("ip netns exec \(a.ns) ping -c 3 -i 0.2 -W 2 \(b.ip)")
        XCTAssertEqual(ping.0, 0, ping.1)
        let (bytes, _) = try iperfTCP(from: a.ns, to: b, seconds: 2)
        XCTAssertGreaterThan(bytes, 1e6, "TCP moved data through the rings")
        let cb = try portCounters(b.port)
        XCTAssertGreaterThan(cb.adapter?["tx_gso_frames"] ?? 0, 0, "GSO frames crossed with their metadata: \(cb)")
    }

    func testUDPFloodCountersAreConsistent() throws {
        let a = try vethInNamespace(1, subnet: "10.213.3"), b = try vethInNamespace(2, subnet: "10.213.3")
        XCTAssertEqual(sh("ip netns exec \(a.ns) ping -c 1 -W 2 \(b.ip)").0, 0)  // learn both MACs
        let n = 20000
        let flood = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(\(n)): s.sendto(bytes(18), ('\(b.ip)', 9))
            """
        XCTAssertEqual(sh("ip netns exec \(a.ns) python3 -c \"\(flood)\"", seconds: 60).0, 0)
        // The two ports are read one after the other: wait until neither moves between two reads, so
        // a late frame of the namespaces' own (IPv6 router solicitation, ...) is not counted on one side only.
        var ca = try portCounters(a.port), cb = try portCounters(b.port)
        for _ in 0..<25 {
            usleep(200_000)
            let (na, nb) = (try portCounters(a.port), try portCounters(b.port))
            if na.txPackets == ca.txPackets && nb.rxPackets == cb.rxPackets && na.rxPackets == ca.rxPackets
                && nb.txPackets == cb.txPackets
            {
                break
            }
            (ca, cb) = (na, nb)
        }
        // What the kernel offered = what entered the switch + what the packet socket's ring dropped
        // before we could read it (counted by the adapter).
        let kernelDrops = ca.adapter?["kernel_ring_drops"] ?? 0
        XCTAssertGreaterThanOrEqual(ca.txPackets + kernelDrops, UInt64(n), "every datagram is accounted for")
        print(
            "UDP flood: \(n) sent, \(ca.txPackets) into the switch, \(kernelDrops) dropped by the kernel ring, \(cb.rxPackets) delivered"
        )
        XCTAssertEqual(
            ca.txPackets, cb.rxPackets + cb.dropRingFull + cb.dropTooLong + ca.dropNoRoute,
            "offered = delivered + counted drops: \(ca) \(cb)")
        XCTAssertEqual(cb.txPackets, ca.rxPackets + ca.dropRingFull + ca.dropTooLong + cb.dropNoRoute)
    }

    func testTapInRootNamespaceTalksToNamespace() throws {
        let a = try vethInNamespace(1, subnet: "10.213.4")
        let tap = "\(prefix)t0"
        let (rc, out, err) = try svc.ctl(["port", "add", "vale0", "tap", tap])
        XCTAssertEqual(rc, 0, out + err)
        XCTAssertEqual(sh("ip addr add 10.213.4.254/24 dev \(tap) && ip link set \(tap) up").0, 0)
        let p = sh("ping -c 3 -i 0.2 -W 2 -I \(tap) \(a.ip)")
        XCTAssertEqual(p.0, 0, p.1)
        let back = sh("ip netns exec \(a.ns) ping -c 2 -i 0.2 -W 2 10.213.4.254")
        XCTAssertEqual(back.0, 0, back.1)
        // port del removes the TAP Swale created.
        XCTAssertEqual(try svc.ctl(["port", "del", "vale0", tap]).0, 0)
        XCTAssertNotEqual(sh("ip link show \(tap)").0, 0, "TAP deleted with its port")
    }

    func testAppPortFramesReachASocketInTheNamespace() throws {
        let a = try vethInNamespace(1, subnet: "10.213.5")
        let listener = try Child(
            "/usr/bin/env",
            [
                "ip", "netns", "exec", a.ns, "python3", "-c",
                """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(('\(a.ip)', 5555)); s.settimeout(10)
                print(s.recv(2048).decode())
                """
            ])
        defer { listener.signal(SIGKILL) }
        usleep(500_000)
        let app = try SwalePort.open("vale0:app", socket: svc.socket)
        defer { app.close() }
        let payload = Array("hello from swale \(prefix)".utf8)
        var f = [UInt8]()
        let dst = try Names.parseMAC(a.mac)
        for k in 0..<6 { f.append(UInt8(truncatingIfNeeded: dst >> (40 - 8 * UInt64(k)))) }
        f += [0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00]
        var ip: [UInt8] = [0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 213, 5, 99]
        ip += a.ip.split(separator: ".").map { UInt8($0)! }
        let total = 20 + 8 + payload.count
        ip[2] = UInt8(total >> 8); ip[3] = UInt8(total & 0xff)
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        let c = ~UInt16(sum)
        ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xff)
        let udp: [UInt8] = [0x30, 0x39, 0x15, 0xb3, UInt8((8 + payload.count) >> 8), UInt8((8 + payload.count) & 0xff), 0, 0]
        f += ip + udp + payload
        while f.count < 60 { f.append(0) }
        XCTAssertTrue(f.withUnsafeBytes { app.send($0) })
        XCTAssertEqual(listener.wait(seconds: 15), 0, listener.stderr)
        XCTAssertEqual(listener.stdout.trimmingCharacters(in: .whitespacesAndNewlines), String(decoding: payload, as: UTF8.self))
    }

    func testDeletingTheNamespaceRemovesItsPort() throws {
        let a = try vethInNamespace(1, subnet: "10.213.6")
        func ports() throws -> [String] { try svc.call(PortList(bridge: "vale0")).map(\.name) }
        XCTAssertEqual(try ports(), [a.port])
        XCTAssertEqual(sh("ip netns del \(a.ns)").0, 0)
        XCTAssertTrue(try svc.eventually(10) { try ports().isEmpty }, "port removed when its interface vanished")
    }

    func testPortDelDeletesCreatedAndKeepsAttached() throws {
        let a = try vethInNamespace(1, subnet: "10.213.7")
        XCTAssertEqual(try svc.ctl(["port", "del", "vale0", a.port]).0, 0)
        XCTAssertNotEqual(sh("ip link show \(a.port)").0, 0, "veth Swale created is deleted")
        // An interface the test made itself: attached, detached, left in place.
        let mine = "\(prefix)x0"
        XCTAssertEqual(sh("ip link add \(mine) type veth peer name \(prefix)x1 && ip link set \(mine) up").0, 0)
        let (rc, out, err) = try svc.ctl(["port", "attach", "vale0", mine])
        XCTAssertEqual(rc, 0, out + err)
        XCTAssertEqual(try svc.ctl(["port", "del", "vale0", mine]).0, 0)
        XCTAssertEqual(sh("ip link show \(mine)").0, 0, "attached interface left as it was")
        XCTAssertFalse(sh("ip link show \(mine)").1.contains("PROMISC"))
    }

    func testBadInputGetsClearErrorsAndLeavesNothing() throws {
        let long = try svc.ctl(["port", "add", "vale0", "tap", "\(prefix)toolongname1"])
        XCTAssertNotEqual(long.0, 0)
        XCTAssertTrue(long.2.lowercased().contains("15") || long.2.contains("long"), long.2)
        let noNs = try svc.ctl([
            "port", "add", "vale0", "veth", "\(prefix)v9", "--peer", "\(prefix)p9", "--netns", "\(prefix)nope"
        ])
        XCTAssertNotEqual(noNs.0, 0)
        XCTAssertTrue(noNs.2.contains("is not a network namespace"), noNs.2)
        XCTAssertNotEqual(sh("ip link show \(prefix)v9").0, 0, "nothing half-created")
        let missing = try svc.ctl(["port", "attach", "vale0", "\(prefix)none"])
        XCTAssertNotEqual(missing.0, 0)
        XCTAssertTrue(missing.2.contains("no interface"), missing.2)
        // Taken: an existing veth cannot become a TAP; an enslaved interface cannot be attached.
        let taken = "\(prefix)y0", br = "\(prefix)br"
        XCTAssertEqual(
            sh(
                "ip link add \(taken) type veth peer name \(prefix)y1 && ip link add \(br) type bridge && ip link set \(taken) master \(br)"
            ).0, 0)
        let tapTaken = try svc.ctl(["port", "add", "vale0", "tap", taken])
        XCTAssertNotEqual(tapTaken.0, 0)
        XCTAssertTrue(tapTaken.2.contains("already exists"), tapTaken.2)
        let enslaved = try svc.ctl(["port", "attach", "vale0", taken])
        XCTAssertNotEqual(enslaved.0, 0)
        XCTAssertTrue(enslaved.2.contains("enslaved"), enslaved.2)
        let badBridge = try svc.ctl(["port", "add", "vale404", "tap", "\(prefix)t1"])
        XCTAssertNotEqual(badBridge.0, 0)
        XCTAssertTrue(badBridge.2.contains("vale404"), badBridge.2)
        XCTAssertEqual(try svc.call(PortList(bridge: "vale0")).count, 0)
    }

    func testRestartWithTheSameConfigPicksUpItsInterfaces() throws {
        _ = svc.stop()
        svc = nil
        let tap = "\(prefix)ct", veth = "\(prefix)cv"
        let cfg = NSTemporaryDirectory() + "\(prefix).json"
        try Data(
            """
            {"bridges": [{"name": "vale0", "ports": [{"kind": "tap", "name": "\(tap)"}, {"kind": "veth", "name": "\(veth)", "peer": "\(prefix)cp"}]}]}
            """.utf8
        ).write(to: URL(fileURLWithPath: cfg))
        defer { try? FileManager.default.removeItem(atPath: cfg) }
        let sock = NSTemporaryDirectory() + "swale-test-\(prefix)/swaled.sock"
        defer { try? FileManager.default.removeItem(atPath: (sock as NSString).deletingLastPathComponent) }
        for round in 0..<2 {
            let s = try ServiceFixture(socket: sock, extraArgs: ["--config", cfg] + Self.serviceArgs)
            let ports = try s.call(PortList(bridge: "vale0"))
            XCTAssertEqual(Set(ports.map(\.name)), [tap, veth], "round \(round)")
            XCTAssertEqual(s.stop(keepDirectory: true), 0)
            if round == 1 { XCTAssertTrue(s.daemon.stderr.contains("re-attached"), s.daemon.stderr) }
            XCTAssertEqual(sh("ip link show \(tap) && ip link show \(veth)").0, 0, "stopping swaled leaves the interfaces")
        }
    }

    func testFramesOverThePortMTUAreDroppedAndCounted() throws {
        let a = try vethInNamespace(1, subnet: "10.213.8")
        let app = try SwalePort.open("vale0:big", socket: svc.socket)
        defer { app.close() }
        var f = [UInt8](repeating: 0x5a, count: 2000)  // MTU 1500: 1986 bytes of payload is too long
        for k in 0..<6 { f[k] = 0xff }
        f[6] = 0x02; f[12] = 0x88; f[13] = 0xb5
        XCTAssertTrue(f.withUnsafeBytes { app.send($0) })
        var ok = [UInt8](repeating: 0x5a, count: 1514)  // exactly the MTU: delivered
        ok.replaceSubrange(0..<14, with: f[0..<14])
        XCTAssertTrue(ok.withUnsafeBytes { app.send($0) })
        XCTAssertTrue(try svc.eventually { try self.portCounters(a.port).dropTooLong == 1 })
        XCTAssertTrue(try svc.eventually { try self.portCounters(a.port).rxPackets >= 1 })
    }
}

/// Every kernel port test again with the fast path off: the switch alone must behave the same.
final class KernelPortTestsWithoutFastpath: KernelPortTests {
    override class var serviceArgs: [String] { ["--no-fastpath"] }
    // Test discovery on Linux lists only methods a class declares itself: each is named again here.
    override func testTwoNamespacesPingBothWaysAndAppearInFdb() throws { try super.testTwoNamespacesPingBothWaysAndAppearInFdb() }
    override func testIperfTCPWithDefaultOffloads() throws { try super.testIperfTCPWithDefaultOffloads() }
    override func testCopyPathToKernelPortsCarriesTCP() throws { try super.testCopyPathToKernelPortsCarriesTCP() }
    override func testUDPFloodCountersAreConsistent() throws { try super.testUDPFloodCountersAreConsistent() }
    override func testTapInRootNamespaceTalksToNamespace() throws { try super.testTapInRootNamespaceTalksToNamespace() }
    override func testAppPortFramesReachASocketInTheNamespace() throws { try super.testAppPortFramesReachASocketInTheNamespace() }
    override func testDeletingTheNamespaceRemovesItsPort() throws { try super.testDeletingTheNamespaceRemovesItsPort() }
    override func testPortDelDeletesCreatedAndKeepsAttached() throws { try super.testPortDelDeletesCreatedAndKeepsAttached() }
    override func testBadInputGetsClearErrorsAndLeavesNothing() throws { try super.testBadInputGetsClearErrorsAndLeavesNothing() }
    override func testRestartWithTheSameConfigPicksUpItsInterfaces() throws {
        try super.testRestartWithTheSameConfigPicksUpItsInterfaces()
    }
    override func testFramesOverThePortMTUAreDroppedAndCounted() throws {
        try super.testFramesOverThePortMTUAreDroppedAndCounted()
    }
}
