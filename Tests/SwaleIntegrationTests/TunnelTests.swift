// Tunnel ports between "hosts": each host is a network namespace with a swaled of its own (its own
// socket), joined to the others by an underlay (a veth pair, or a Linux bridge in a namespace of its
// own); behind each host's vale0 sits a "container" namespace on a veth port. Traffic between the
// containers crosses VXLAN (or Geneve) ports. Every namespace is named with the run's prefix and
// deleted in tearDown; every swaled is ended by its PID first.
import Foundation
import Glibc
import SwaleConfig
import SwaleProtocol
import XCTest

/// One simulated host: a network namespace and the swaled (a ServiceFixture) running in it.
final class TunnelHost {
    let ns: String
    let socket: String
    private(set) var daemon: ServiceFixture?

    init(ns: String, socket: String) {
        self.ns = ns
        self.socket = socket
    }

    func start(_ extraArgs: [String] = []) throws {
        unlink(socket)
        daemon = try ServiceFixture(socket: socket, extraArgs: extraArgs, netns: ns)
    }

    /// SIGTERM to our swaled's PID (interfaces stay, as on any stop); its exit status. The
    /// directory is the test's: kept.
    @discardableResult
    func stop() -> Int32 {
        guard let d = daemon else { return 0 }
        daemon = nil
        return d.stop(keepDirectory: true)
    }

    func ctl(_ args: [String]) throws -> (Int32, String, String) {
        guard let d = daemon else { throw FixtureError("swaled of \(ns) is not running") }
        return try d.ctl(args)
    }

    func call<O: ControlOperation>(_ op: O) throws -> O.Result { try ControlClient.call(op, socket: socket) }
}

final class TunnelTests: XCTestCase {
    let kernel = KernelObjects()
    var prefix: String { kernel.prefix }
    var hosts: [TunnelHost] = []
    var dir = ""

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Scripts/frames.py").path

    override func setUpWithError() throws {
        try requireRoot(
            "tunnel ports: network namespaces, veth, vxlan, a Linux bridge",
            tools: ["ip", "bridge", "ping", "iperf3", "/usr/bin/python3"])
        dir = NSTemporaryDirectory() + "swale-tun-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        // Our swaleds first (a namespace lives while a process is in it), then the namespaces.
        for h in hosts { h.stop() }
        hosts = []
        kernel.cleanup()
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    // MARK: topology

    func run(_ cmd: String) throws {
        let (rc, out) = sh(cmd)
        guard rc == 0 else { throw FixtureError("`\(cmd)` failed (\(rc)): \(out)") }
    }

    /// swalectl on a host, which must succeed; its stdout and stderr.
    @discardableResult
    func ctl(_ h: TunnelHost, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> (String, String) {
        let (rc, out, err) = try h.ctl(args)
        guard rc == 0 else { throw FixtureError("swalectl \(args.joined(separator: " ")) on \(h.ns) failed: \(out)\(err)") }
        return (out, err)
    }

    /// Host i: namespace PREFIXhI, its swaled, bridge vale0.
    func host(_ i: Int) throws -> TunnelHost {
        let ns = kernel.netns("h\(i)")
        let h = TunnelHost(ns: ns, socket: "\(dir)/h\(i).sock")
        hosts.append(h)
        try h.start()
        try ctl(h, ["bridge", "add", "vale0"])
        return h
    }

    /// The underlay address of host i.
    func underlayIP(_ i: Int) -> String { "10.201.0.\(i)" }

    /// Two hosts joined by a veth pair PREFIXuI <-> PREFIXuJ (10.201.0.I/24, 10.201.0.J/24).
    func joinDirectly(_ a: TunnelHost, _ i: Int, _ b: TunnelHost, _ j: Int) throws {
        try run("ip link add \(prefix)u\(i) netns \(a.ns) type veth peer name \(prefix)u\(j) netns \(b.ns)")
        try run("ip -n \(a.ns) addr add \(underlayIP(i))/24 dev \(prefix)u\(i)")
        try run("ip -n \(b.ns) addr add \(underlayIP(j))/24 dev \(prefix)u\(j)")
        try run("ip -n \(a.ns) link set \(prefix)u\(i) up")
        try run("ip -n \(b.ns) link set \(prefix)u\(j) up")
    }

    /// Hosts joined by one Linux bridge in a namespace of its own (the underlay "switch").
    func joinByBridge(_ members: [(TunnelHost, Int)]) throws {
        let ul = kernel.netns("ul")
        try run("ip -n \(ul) link add br0 type bridge stp_state 0")
        try run("ip -n \(ul) link set br0 up")
        for (h, i) in members {
            try run("ip link add \(prefix)u\(i) netns \(h.ns) type veth peer name b\(i) netns \(ul)")
            try run("ip -n \(ul) link set b\(i) master br0")
            try run("ip -n \(ul) link set b\(i) up")
            try run("ip -n \(h.ns) addr add \(underlayIP(i))/24 dev \(prefix)u\(i)")
            try run("ip -n \(h.ns) link set \(prefix)u\(i) up")
        }
    }

    static func containerMAC(_ i: Int) -> String { "02:5b:00:00:00:0\(i)" }
    func overlayIP(_ i: Int) -> String { "10.202.0.\(i)" }

    /// Container i behind host h: namespace PREFIXcI, its eth0 on h's vale0 (port PREFIXpI), MTU `mtu`.
    @discardableResult
    func container(_ h: TunnelHost, _ i: Int, mtu: Int = 1450) throws -> String {
        let ns = kernel.netns("c\(i)")
        try run("ip netns exec \(ns) sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        try ctl(
            h,
            [
                "port", "add", "vale0", "veth", "\(prefix)p\(i)", "--peer", "eth0", "--netns", ns, "--address",
                "\(overlayIP(i))/24",
                "--mac", Self.containerMAC(i), "--mtu", "\(mtu)"
            ])
        return ns
    }

    /// Pings until one reply comes back (ARP across the tunnel first), then 3 more that must all answer.
    func assertPing(from ns: String, to ip: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        var first = false
        for _ in 0..<20 where !first { first = sh("ip netns exec \(ns) ping -c 1 -W 1 \(ip)").0 == 0 }
        XCTAssertTrue(first, "\(what): no reply from \(ip) within 20 tries", file: file, line: line)
        let (rc, out) = sh("ip netns exec \(ns) ping -c 3 -i 0.2 -W 2 \(ip)")
        XCTAssertEqual(rc, 0, "\(what): \(out)", file: file, line: line)
    }

    /// The port's entry in `port list --json`.
    func portInfo(_ h: TunnelHost, _ port: String) throws -> PortInfo {
        let list = try h.call(PortList(bridge: "vale0"))
        guard let p = list.first(where: { $0.name == port }) else {
            throw FixtureError("no port \(port) on \(h.ns): \(list.map(\.name))")
        }
        return p
    }

    // MARK: tests

    func testVxlanCarriesPingAndTCPBetweenTwoHosts() throws {
        let h1 = try host(1), h2 = try host(2)
        try joinDirectly(h1, 1, h2, 2)
        let c1 = try container(h1, 1)
        try container(h2, 2)
        let vx = "\(prefix)vx"
        try ctl(h1, ["port", "add", "vale0", "vxlan", vx, "--vni", "42", "--remote", underlayIP(2)])
        try ctl(h2, ["port", "add", "vale0", "vxlan", vx, "--vni", "42", "--remote", underlayIP(1)])

        // The device as asked: VNI, the IANA port, the flood entry to the remote, the source address.
        let details = sh("ip -n \(h1.ns) -d link show \(vx)").1
        XCTAssertTrue(details.contains("vxlan id 42"), details)
        XCTAssertTrue(details.contains("dstport 4789"), details)
        XCTAssertTrue(details.contains("local \(underlayIP(1))"), details)
        let fdb = sh("bridge -n \(h1.ns) fdb show dev \(vx)").1
        XCTAssertTrue(fdb.contains("00:00:00:00:00:00 dst \(underlayIP(2)) self permanent"), fdb)
        let info = try portInfo(h1, vx)
        XCTAssertEqual(info.kind, "vxlan")
        XCTAssertEqual(info.mtu, 1450)

        assertPing(from: c1, to: overlayIP(2), "container 1 to container 2 over VXLAN")

        let server = try Child("/usr/bin/env", ["ip", "netns", "exec", "\(prefix)c2", "iperf3", "-s", "-1", "-B", overlayIP(2)])
        defer { server.signal(SIGKILL); server.wait(seconds: 5) }
        usleep(300_000)
        let (rc, out) = sh("ip netns exec \(c1) iperf3 -c \(overlayIP(2)) -t 2 -J", seconds: 40)
        XCTAssertEqual(rc, 0, out)
        let obj = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        let end = (obj?["end"] as? [String: Any])?["sum_received"] as? [String: Any]
        let bps = try XCTUnwrap(end?["bits_per_second"] as? Double, out)
        print("iperf3 TCP across VXLAN through two swaleds (debug build): \(bps / 1e9) Gbit/s")
        XCTAssertGreaterThan(bps, 1e6, "TCP moved data across the tunnel")
        let tunnel = try portInfo(h1, vx).counters
        XCTAssertGreaterThan(tunnel.rxPackets, 100, "the tunnel port carried the flow")

        // Deleting the port deletes the device.
        try ctl(h1, ["port", "del", "vale0", vx])
        XCTAssertNotEqual(sh("ip -n \(h1.ns) link show \(vx)").0, 0, "the vxlan device is gone with its port")
    }

    /// The other two ways to reach a remote: a multicast group on the underlay, and IPv6.
    func testVxlanOverAMulticastGroupAndOverIPv6() throws {
        let h1 = try host(1), h2 = try host(2)
        try joinDirectly(h1, 1, h2, 2)
        let c1 = try container(h1, 1, mtu: 1430)
        try container(h2, 2, mtu: 1430)
        let mc = "\(prefix)mc"
        for (h, i) in [(h1, 1), (h2, 2)] {
            try ctl(h, ["port", "add", "vale0", "vxlan", mc, "--vni", "77", "--group", "239.1.1.77", "--dev", "\(prefix)u\(i)"])
        }
        let details = sh("ip -n \(h1.ns) -d link show \(mc)").1
        XCTAssertTrue(details.contains("group 239.1.1.77") && details.contains("dev \(prefix)u1"), details)
        assertPing(from: c1, to: overlayIP(2), "over a multicast group")
        for h in [h1, h2] { try ctl(h, ["port", "del", "vale0", mc]) }

        try run("ip -n \(h1.ns) addr add fd00:201::1/64 dev \(prefix)u1 nodad")
        try run("ip -n \(h2.ns) addr add fd00:201::2/64 dev \(prefix)u2 nodad")
        let v6 = "\(prefix)v6"
        try ctl(h1, ["port", "add", "vale0", "vxlan", v6, "--vni", "78", "--remote", "fd00:201::2"])
        try ctl(h2, ["port", "add", "vale0", "vxlan", v6, "--vni", "78", "--remote", "fd00:201::1"])
        XCTAssertEqual(try portInfo(h1, v6).mtu, 1430, "IPv6 costs 70 bytes")
        XCTAssertTrue(sh("ip -n \(h1.ns) -d link show \(v6)").1.contains("local fd00:201::1"))
        assertPing(from: c1, to: overlayIP(2), "over IPv6")
    }

    func testGeneveCarriesPingOrIsRefusedClearly() throws {
        let h1 = try host(1), h2 = try host(2)
        try joinDirectly(h1, 1, h2, 2)
        let gn = "\(prefix)gn"
        // Does this kernel make geneve devices at all? (Built without CONFIG_GENEVE, it does not.)
        let probe = sh("ip -n \(h1.ns) link add \(prefix)gp type geneve id 1 remote \(underlayIP(2))")
        sh("ip -n \(h1.ns) link del \(prefix)gp 2>/dev/null")
        guard probe.0 == 0 else {
            print(
                "this kernel has no geneve devices (\(probe.1.trimmingCharacters(in: .whitespacesAndNewlines))): checking the refusal"
            )
            let (rc, out, err) = try h1.ctl(["port", "add", "vale0", "geneve", gn, "--vni", "7", "--remote", underlayIP(2)])
            XCTAssertNotEqual(rc, 0)
            XCTAssertTrue(err.contains("cannot make geneve devices"), out + err)
            XCTAssertNotEqual(sh("ip -n \(h1.ns) link show \(gn)").0, 0, "nothing is left behind")
            XCTAssertEqual(try h1.call(PortList(bridge: "vale0")).count, 0)
            return
        }
        let c1 = try container(h1, 1)
        try container(h2, 2)
        try ctl(h1, ["port", "add", "vale0", "geneve", gn, "--vni", "7", "--remote", underlayIP(2)])
        try ctl(h2, ["port", "add", "vale0", "geneve", gn, "--vni", "7", "--remote", underlayIP(1)])
        let details = sh("ip -n \(h1.ns) -d link show \(gn)").1
        XCTAssertTrue(details.contains("geneve id 7"), details)
        XCTAssertTrue(details.contains("dstport 6081"), details)
        XCTAssertEqual(try portInfo(h1, gn).mtu, 1450)
        assertPing(from: c1, to: overlayIP(2), "container 1 to container 2 over Geneve")
    }

    func testGeneveRefusesSeveralRemotesAndGroups() throws {
        let h1 = try host(1)
        let (rc, _, err) = try h1.ctl([
            "port", "add", "vale0", "geneve", "\(prefix)gn", "--vni", "7", "--remote", "10.9.0.2", "--remote", "10.9.0.3"
        ])
        XCTAssertNotEqual(rc, 0)
        XCTAssertTrue(err.contains("one geneve port per remote") && err.contains("--horizon"), err)
        let (rc2, _, err2) = try h1.ctl([
            "port", "add", "vale0", "geneve", "\(prefix)gn", "--vni", "7", "--group", "239.1.1.1", "--dev", "lo"
        ])
        XCTAssertNotEqual(rc2, 0)
        XCTAssertTrue(err2.contains("Geneve has no multicast groups"), err2)
    }

    /// Three hosts joined by one underlay bridge, a container on each, and a VXLAN port from each
    /// host to each other host (one VNI per pair of hosts), in horizon group `horizon` if given.
    func mesh(horizon: Int?) throws -> (hosts: [TunnelHost], containers: [String]) {
        let hs = try (1...3).map { try host($0) }
        try joinByBridge(hs.enumerated().map { ($1, $0 + 1) })
        var cs: [String] = []
        for (k, h) in hs.enumerated() { cs.append(try container(h, k + 1)) }
        for i in 1...3 {
            for j in 1...3 where j != i {
                let vni = 10 * min(i, j) + max(i, j)
                try ctl(
                    hs[i - 1],
                    ["port", "add", "vale0", "vxlan", "\(prefix)v\(j)", "--vni", "\(vni)", "--remote", underlayIP(j)]
                        + (horizon.map { ["--horizon", "\($0)"] } ?? []))
            }
        }
        return (hs, cs)
    }

    /// Starts frames.py captures of frames tagged `tag` in `namespaces` and waits until each is ready.
    func captures(in namespaces: [String], tag: String, max: Int? = nil) throws -> [Child] {
        var list: [Child] = []
        for ns in namespaces {
            list.append(
                try Child(
                    "/bin/sh",
                    [
                        "-c",
                        "exec ip netns exec \(ns) /usr/bin/python3 '\(Self.script)' capture --iface eth0 --seconds 30 --tag \(tag)\(max.map { " --max \($0)" } ?? "") 2>&1"
                    ]
                ))
        }
        for c in list {
            let deadline = Date().addingTimeInterval(15)
            while !c.partialStdout.contains("ready") {
                guard Date() < deadline, c.process.isRunning else {
                    list.forEach {
                        $0.signal(SIGKILL); $0.wait(seconds: 5)
                    }
                    throw FixtureError("capture did not start: \(c.stdout)")
                }
                usleep(10_000)
            }
        }
        return list
    }

    /// One broadcast frame tagged `tag` from container `sender` (1-based).
    func sendBroadcast(_ cs: [String], from sender: Int, tag: String) throws {
        try run(
            "ip netns exec \(cs[sender - 1]) /usr/bin/python3 '\(Self.script)' send --iface eth0 --dst ff:ff:ff:ff:ff:ff --src \(Self.containerMAC(sender)) --tag \(tag)"
        )
    }

    /// How many frames a finished capture kept.
    func captured(_ c: Child, _ what: String) throws -> Int {
        c.wait(seconds: 10)
        return try XCTUnwrap(c.lastJSON?["frames"] as? [[String: Any]], "capture in \(what): \(c.stdout)").count
    }

    /// Each container's count of one broadcast from each sender in turn: 1 in every other
    /// container, 0 in the sender's (a loop would bring more copies within the wait).
    func assertEachBroadcastArrivesOnce(_ cs: [String], round: String, file: StaticString = #filePath, line: UInt = #line) throws
    {
        for sender in 1...cs.count {
            let tag = "\(round)\(sender)"
            let cap = try captures(in: cs, tag: tag)
            defer { for c in cap { c.signal(SIGKILL); c.wait(seconds: 5) } }
            try sendBroadcast(cs, from: sender, tag: tag)
            usleep(800_000)  // time for copies that should not come
            for c in cap { c.signal(SIGTERM) }
            for (k, c) in cap.enumerated() {
                let n = try captured(c, cs[k])
                XCTAssertEqual(
                    n, k + 1 == sender ? 0 : 1, "broadcast from container \(sender) seen \(n) time(s) in container \(k + 1)",
                    file: file, line: line)
            }
        }
    }

    /// Three hosts, a VXLAN port from each to each other (one VNI per pair), all in horizon group 1:
    /// a broadcast from one container reaches each other container exactly once, never its sender.
    func testThreeHostMeshDeliversABroadcastOncePerHost() throws {
        let (hs, cs) = try mesh(horizon: 1)
        let rules = try hs[0].call(VlanShow(bridge: "vale0"))
        XCTAssertEqual(rules.filter { $0.horizon == 1 }.map(\.port).sorted(), ["\(prefix)v2", "\(prefix)v3"])
        try assertEachBroadcastArrivesOnce(cs, round: "bc")
        // Unicast across the mesh, both ways round.
        assertPing(from: cs[0], to: overlayIP(3), "container 1 to container 3")
        assertPing(from: cs[1], to: overlayIP(1), "container 2 to container 1")
    }

    /// The same mesh without horizon groups: one broadcast circles the ring of tunnels for ever (the
    /// capture stops at 20 copies, so the loop is bounded by the test), until `port set --horizon`
    /// on one host's tunnels breaks the ring; with groups everywhere, each host gets it once again.
    func testWithoutHorizonGroupsTheMeshLoopsUntilOneIsSet() throws {
        let (hs, cs) = try mesh(horizon: nil)
        let cap = try captures(in: [cs[1]], tag: "loop", max: 20)
        defer { for c in cap { c.signal(SIGKILL); c.wait(seconds: 5) } }
        try sendBroadcast(cs, from: 1, tag: "loop")
        let deadline = Date().addingTimeInterval(5)
        while cap[0].process.isRunning && Date() < deadline { usleep(5_000) }
        // Break the ring at host 1 at once (the swaleds' ends in tearDown would end it too).
        for j in [2, 3] { try ctl(hs[0], ["port", "set", "vale0:\(prefix)v\(j)", "--horizon", "1"]) }
        cap[0].signal(SIGTERM)
        let n = try captured(cap[0], cs[1])
        XCTAssertEqual(n, 20, "without split horizon one broadcast keeps coming back to container 2")
        let looped = try hs[1].call(Stats(target: "vale0:\(prefix)v3")).ports[0].counters.rxPackets
        XCTAssertGreaterThan(looped, 10, "and keeps crossing host 2 from tunnel to tunnel")

        for (i, h) in hs.enumerated() where i > 0 {
            for j in 1...3 where j != i + 1 { try ctl(h, ["port", "set", "vale0:\(prefix)v\(j)", "--horizon", "1"]) }
        }
        usleep(300_000)  // copies still in flight die out
        try assertEachBroadcastArrivesOnce(cs, round: "after")
    }

    func testTunnelMTUDefaultsRefusalAndWarning() throws {
        let h1 = try host(1), h2 = try host(2)
        try joinDirectly(h1, 1, h2, 2)
        let u1 = "\(prefix)u1"
        // Default: the underlay's MTU (1500) less 50.
        try ctl(h1, ["port", "add", "vale0", "vxlan", "\(prefix)va", "--vni", "1", "--remote", underlayIP(2)])
        XCTAssertEqual(try portInfo(h1, "\(prefix)va").mtu, 1450)
        XCTAssertTrue(sh("ip -n \(h1.ns) link show \(prefix)va").1.contains("mtu 1450"))

        // Too large: refused, naming both numbers; nothing left behind.
        let (rc, _, err) = try h1.ctl([
            "port", "add", "vale0", "vxlan", "\(prefix)vb", "--vni", "2", "--remote", underlayIP(2), "--mtu", "1451"
        ])
        XCTAssertNotEqual(rc, 0)
        XCTAssertTrue(err.contains("MTU 1451") && err.contains("at most 1450") && err.contains(u1), err)
        XCTAssertNotEqual(sh("ip -n \(h1.ns) link show \(prefix)vb").0, 0)

        // --dev decides the underlay; a jumbo underlay gives a jumbo tunnel.
        try run("ip -n \(h1.ns) link set \(u1) mtu 9000")
        try ctl(h1, ["port", "add", "vale0", "vxlan", "\(prefix)vc", "--vni", "3", "--remote", underlayIP(2), "--dev", u1])
        XCTAssertEqual(try portInfo(h1, "\(prefix)vc").mtu, 8950)
        try ctl(h1, ["port", "del", "vale0", "\(prefix)vc"])
        try run("ip -n \(h1.ns) link set \(u1) mtu 1500")

        // Over IPv6 the overhead is 70.
        try run("ip -n \(h1.ns) addr add fd00:201::1/64 dev \(u1) nodad")
        try run("ip -n \(h2.ns) addr add fd00:201::2/64 dev \(prefix)u2 nodad")
        try ctl(h1, ["port", "add", "vale0", "vxlan", "\(prefix)vd", "--vni", "4", "--remote", "fd00:201::2"])
        XCTAssertEqual(try portInfo(h1, "\(prefix)vd").mtu, 1430)
        let (rc6, _, err6) = try h1.ctl([
            "port", "add", "vale0", "vxlan", "\(prefix)ve", "--vni", "5", "--remote", "fd00:201::2", "--mtu", "1450"
        ])
        XCTAssertNotEqual(rc6, 0)
        XCTAssertTrue(err6.contains("at most 1430") && err6.contains("IPv6"), err6)

        // A tunnel narrower than a port already on the bridge: added, with a warning naming that port.
        try container(h1, 1, mtu: 1500)
        let (out, warn) = try ctl(h1, ["port", "add", "vale0", "vxlan", "\(prefix)vf", "--vni", "6", "--remote", underlayIP(2)])
        XCTAssertTrue(out.contains("mtu 1450"), out)
        XCTAssertTrue(warn.contains("warning:") && warn.contains("\(prefix)p1 (1500)") && warn.contains("dropped"), warn)
        // No warning when nothing on the bridge is larger.
        try ctl(h1, ["port", "del", "vale0", "\(prefix)p1"])
        let (_, quiet) = try ctl(h1, ["port", "add", "vale0", "vxlan", "\(prefix)vg", "--vni", "7", "--remote", underlayIP(2)])
        XCTAssertFalse(quiet.contains("warning"), quiet)

        // Bad input, each named.
        for (args, words) in [
            (["--vni", "16777216", "--remote", underlayIP(2)], ["VNI 16777216", "out of range"]),
            (["--remote", underlayIP(2)], ["--vni"]),
            (["--vni", "8"], ["--remote", "--group"]),
            (["--vni", "8", "--remote", "10.201.0.999"], ["not an IPv4 or IPv6 address"]),
            (["--vni", "8", "--remote", underlayIP(2), "--group", "239.1.1.1", "--dev", u1], ["not both"]),
            (["--vni", "8", "--group", "10.1.1.1", "--dev", u1], ["not a multicast address"]),
            (["--vni", "8", "--group", "239.1.1.1", "--dev", "\(prefix)nope"], ["\(prefix)nope", "does not exist"]),
            (["--vni", "8", "--remote", underlayIP(2), "--dstport", "0"], ["port 0", "out of range"]),
            (["--vni", "8", "--remote", "10.77.0.1"], ["cannot reach remote 10.77.0.1"]),
            (["--vni", "8", "--remote", underlayIP(2), "--local", "10.201.0.9"], ["10.201.0.9", "not an address of this host"]),
            (["--vni", "8", "--remote", underlayIP(2), "--horizon", "256"], ["horizon group 256"]),
            (["--vni", "8", "--remote", underlayIP(2), "--peer", "x"], ["--peer is a veth option"])
        ] as [([String], [String])] {
            let (rc, out, err) = try h1.ctl(["port", "add", "vale0", "vxlan", "\(prefix)vz"] + args)
            XCTAssertNotEqual(rc, 0, "accepted \(args)")
            for w in words { XCTAssertTrue(err.contains(w), "\(args): '\(w)' missing in \(out)\(err)") }
            XCTAssertNotEqual(sh("ip -n \(h1.ns) link show \(prefix)vz").0, 0, "\(args) left a device behind")
        }
        let (rcName, _, errName) = try h1.ctl([
            "port", "add", "vale0", "vxlan", "\(prefix)name_too_long", "--vni", "8", "--remote", underlayIP(2)
        ])
        XCTAssertNotEqual(rcName, 0)
        XCTAssertFalse(errName.isEmpty)
    }

    func testRestartReadoptsTheTunnelAndItsHorizonGroup() throws {
        let h1 = try host(1), h2 = try host(2)
        try joinDirectly(h1, 1, h2, 2)
        let c1 = try container(h1, 1)
        try container(h2, 2)
        let vx = "\(prefix)vx"
        try ctl(h1, ["port", "add", "vale0", "vxlan", vx, "--vni", "42", "--remote", underlayIP(2), "--horizon", "5"])
        try ctl(h2, ["port", "add", "vale0", "vxlan", vx, "--vni", "42", "--remote", underlayIP(1)])
        assertPing(from: c1, to: overlayIP(2), "before the restart")
        let ifindex = try portInfo(h1, vx).counters.adapter?["ifindex"]

        // A remote added behind swaled's back (iproute2) is in the kernel's list, which a restart reads.
        try run("bridge -n \(h1.ns) fdb append 00:00:00:00:00:00 dev \(vx) dst 10.201.0.77 self permanent")
        XCTAssertEqual(h1.stop(), 0, "swaled of host 1 stops cleanly")
        XCTAssertEqual(sh("ip -n \(h1.ns) link show \(vx)").0, 0, "the device outlives swaled")
        try h1.start()
        let back = try portInfo(h1, vx)
        XCTAssertEqual(back.kind, "vxlan")
        XCTAssertEqual(back.horizon, 5, "the horizon group came back with the port")
        if let ifindex { XCTAssertEqual(back.counters.adapter?["ifindex"], ifindex, "the same device, not a new one") }
        XCTAssertEqual(try portInfo(h1, "\(prefix)p1").kind, "veth")
        assertPing(from: c1, to: overlayIP(2), "after the restart")
        let dump = try ctl(h1, ["config", "dump"]).0
        XCTAssertTrue(dump.contains("\"remotes\"") && dump.contains(underlayIP(2)) && dump.contains("\"horizon\": 5"), dump)
        XCTAssertTrue(dump.contains("10.201.0.77"), "remotes come from the device's flood entries: \(dump)")

        // port set --horizon moves the group, and a second restart keeps the new one.
        try ctl(h1, ["port", "set", "vale0:\(vx)", "--horizon", "9"])
        h1.stop()
        try h1.start()
        XCTAssertEqual(try portInfo(h1, vx).horizon, 9)
    }

    /// A config file with tunnel ports and a horizon rule: applied at start, and `config dump` gives
    /// back a file that parses to the same configuration.
    func testConfigFileCreatesTunnelsAndDumpsThemBack() throws {
        let ns = kernel.netns("h1")
        // An underlay with nobody behind it (this kernel may have no dummy devices): a veth pair.
        try run("ip -n \(ns) link add \(prefix)u1 type veth peer name \(prefix)ux")
        try run("ip -n \(ns) addr add 10.201.0.1/24 dev \(prefix)u1")
        try run("ip -n \(ns) link set \(prefix)u1 up")
        try run("ip -n \(ns) link set \(prefix)ux up")
        let file = "\(dir)/swale.json"
        let text = """
            {
              "bridges": [
                { "name": "vale0", "portRules": [ { "port": "\(prefix)t2", "horizon": 3 }, { "port": "\(prefix)t3", "horizon": 3 } ],
                  "ports": [
                    { "kind": "vxlan", "name": "\(prefix)t2", "vni": 12, "remotes": ["10.201.0.2"] },
                    { "kind": "vxlan", "name": "\(prefix)t3", "vni": 13, "remotes": ["10.201.0.3", "10.201.0.4"], "dstPort": 4790, "mtu": 1400 },
                    { "kind": "vxlan", "name": "\(prefix)mc", "vni": 14, "group": "239.1.1.14", "dev": "\(prefix)u1" } ] } ]
            }
            """
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let h = TunnelHost(ns: ns, socket: "\(dir)/h1.sock")
        hosts.append(h)
        try h.start(["--config", file])
        let ports = try h.call(PortList(bridge: "vale0"))
        XCTAssertEqual(ports.map(\.kind), ["vxlan", "vxlan", "vxlan"])
        XCTAssertEqual(ports.map(\.horizon), [3, 3, nil])
        XCTAssertEqual(ports.map(\.mtu), [1450, 1400, 1450])
        let t3 = sh("ip -n \(ns) -d link show \(prefix)t3").1
        XCTAssertTrue(t3.contains("vxlan id 13") && t3.contains("dstport 4790"), t3)
        let mc = sh("ip -n \(ns) -d link show \(prefix)mc").1
        XCTAssertTrue(mc.contains("group 239.1.1.14") && mc.contains("dev \(prefix)u1"), mc)
        let fdb = sh("bridge -n \(ns) fdb show dev \(prefix)t3").1
        XCTAssertTrue(fdb.contains("dst 10.201.0.3") && fdb.contains("dst 10.201.0.4"), fdb)

        let dump = try ctl(h, ["config", "dump"]).0
        let mine = try SwaleConfig.parse(text, file: file)
        let back = try SwaleConfig.parse(dump, file: "dump")
        XCTAssertEqual(back.bridges.first?.ports, mine.bridges.first?.ports, dump)
        XCTAssertEqual(back.bridges.first?.portRules, mine.bridges.first?.portRules, dump)
    }
}

/// The horizon rule through the real service on application ports: set with `port set`, floods
/// skip the group, unicast inside it is dropped and shows as `horizon` in stats and metrics.
extension SwitchTests {
    func testHorizonGroupThroughTheServiceShowsInStatsAndMetrics() throws {
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale5"]).0, 0)
        for p in ["t1", "t2"] {
            let (rc, out, err) = try svc.ctl(["port", "set", "vale5:\(p)", "--horizon", "4"])
            XCTAssertEqual(rc, 0, out + err)
            XCTAssertTrue(out.contains("horizon 4"), out)
        }
        let (bad, _, badErr) = try svc.ctl(["port", "set", "vale5:t1", "--horizon", "256"])
        XCTAssertNotEqual(bad, 0)
        XCTAssertTrue(badErr.contains("horizon group 256 out of range"), badErr)
        let t1 = try open("vale5:t1"), t2 = try open("vale5:t2"), local = try open("vale5:l")
        let list = try svc.call(PortList(bridge: "vale5"))
        XCTAssertEqual(list.first { $0.name == "t1" }?.horizon, 4)
        XCTAssertNil(list.first { $0.name == "l" }?.horizon)

        let bc = frame(dst: broadcastMAC, src: mac(0x21), marker: 1)
        send(t1, bc)
        XCTAssertEqual(drain(local, expect: 1), [bc], "the local port gets the flood")
        XCTAssertEqual(drain(t2), [], "the other port of the group does not")
        send(t2, frame(dst: broadcastMAC, src: mac(0x22), marker: 2))  // t2's MAC is learned
        _ = drain(local, expect: 1)
        for k in 0..<5 { send(t1, frame(dst: mac(0x22), src: mac(0x21), marker: UInt8(3 + k))) }
        XCTAssertEqual(drain(t2), [], "unicast inside the group is dropped")
        XCTAssertTrue(try svc.eventually { try self.stats("vale5:t1").ports[0].counters.dropHorizon == 5 })
        let (_, text, _) = try svc.ctl(["stats", "vale5:t1"])
        XCTAssertTrue(text.contains("horizon 5"), text)
        let metrics = try svc.call(MetricsScrape()).text
        XCTAssertTrue(
            metrics.contains(#"swale_port_dropped_frames_total{bridge="vale5",port="t1",kind="app",reason="horizon"} 5"#),
            metrics.split(separator: "\n").filter { $0.contains("horizon") }.joined(separator: "\n"))

        // Group 0 again: forwarding between them resumes.
        XCTAssertEqual(try svc.ctl(["port", "set", "vale5:t2", "--horizon", "0"]).0, 0)
        let u = frame(dst: mac(0x22), src: mac(0x21), marker: 9)
        send(t1, u)
        XCTAssertEqual(drain(t2, expect: 1), [u])
    }
}
