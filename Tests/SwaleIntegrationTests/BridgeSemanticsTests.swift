// Bridge semantics end to end (802.1D/802.1Q): reserved groups, bad sources, isolation, VLANs,
// static entries, locked ports and MAC limits, with real frames. Each host is a namespace behind a
// veth port; Scripts/frames.py sends marked frames from one and captures on all of them. Where this
// kernel's Linux bridge has the feature (group_fwd_mask, isolated, locked; not vlan_filtering), the
// same frames also cross a Linux bridge built beside Swale in the same test, and both must give the
// same result. Every namespace and interface is named with the run's prefix and deleted in tearDown.
import Foundation
import Glibc
import SwaleProtocol
import XCTest

/// A frame as Scripts/frames.py captured it (a stripped 802.1Q tag put back).
private struct CapturedFrame: CustomStringConvertible {
    let dst: String
    let src: String
    let vlan: Int?
    let pcp: Int?
    let ethertype: String
    let len: Int
    var tag: String

    init?(_ o: [String: Any]) {
        guard let dst = o["dst"] as? String, let src = o["src"] as? String, let ethertype = o["ethertype"] as? String,
            let len = o["len"] as? Int, let tag = o["tag"] as? String
        else { return nil }
        self.dst = dst; self.src = src; self.ethertype = ethertype; self.len = len; self.tag = tag
        vlan = o["vlan"] as? Int
        pcp = o["pcp"] as? Int
    }

    var description: String { "\(tag) \(src) > \(dst)\(vlan.map { " vlan \($0)" } ?? "") \(ethertype) \(len) bytes" }
}

/// A frame to send: frames.py's marker, then `tag`.
private struct TestFrame {
    var tag: String
    var dst: String
    var src: String
    var vlan: Int? = nil
    var pcp: Int? = nil
    var ethertype = "0x88b5"
    /// Bytes after the EtherType (frames.py pads to 60 bytes, 64 tagged, at least).
    var payloadLen: Int? = nil
}

/// One host: a namespace whose interface `ifname` reaches the bridge through `port` (a Swale port,
/// or the Linux bridge's end of the veth pair).
private struct NetHost {
    let ns: String
    let ifname: String
    let port: String
    let mac: String
}

private struct Topology {
    let name: String
    let hosts: [String: NetHost]
    func host(_ label: String) -> NetHost { hosts[label]! }
    func port(_ label: String) -> String { hosts[label]!.port }
    func mac(_ label: String) -> String { hosts[label]!.mac }
}

private let broadcast = "ff:ff:ff:ff:ff:ff"

/// With the kernel fast path (the default); BridgeSemanticsTestsWithoutFastpath runs every test
/// again without it: the rules must hold the same either way.
class BridgeSemanticsTests: XCTestCase {
    /// swaled's arguments for the service these tests start.
    class var serviceArgs: [String] { [] }
    var svc: ServiceFixture!
    let kernel = KernelObjects()
    var prefix: String { kernel.prefix }
    var roundNumber = 0

    /// Scripts/frames.py of this checkout (three levels above this file).
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Scripts/frames.py").path

    /// How long after the last frame is sent the captures go on (frames that should not arrive).
    static let settleMicroseconds: useconds_t = 600_000

    override func setUpWithError() throws {
        try requireRoot("bridge semantics: network namespaces, veth, Linux bridge", tools: ["ip", "bridge", "/usr/bin/python3"])
        guard FileManager.default.fileExists(atPath: Self.script) else { throw FixtureError("no \(Self.script)") }
        svc = try ServiceFixture(extraArgs: Self.serviceArgs)
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale0"]).0, 0)
    }

    override func tearDown() {
        if let svc { _ = svc.stop() }
        kernel.cleanup()
    }

    // MARK: topologies

    static func hostMAC(_ label: String) -> String { "02:5a:00:00:00:0\(label)" }

    /// A namespace without IPv6 (no router solicitations or MLD reports while we capture).
    func namespace(_ suffix: String) throws -> String {
        let ns = kernel.netns(suffix)
        let (rc, out) = sh(
            "ip netns exec \(ns) sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        guard rc == 0 else { throw FixtureError("disable IPv6 in \(ns): \(out)") }
        return ns
    }

    /// Swale's vale0 with one veth port per label, each peer in its own namespace.
    private func swaleTopology(_ labels: [String]) throws -> Topology {
        var hosts: [String: NetHost] = [:]
        for l in labels {
            let ns = try namespace("s\(l)")
            let port = "\(prefix)s\(l)", peer = "\(prefix)q\(l)", mac = Self.hostMAC(l)
            let (rc, out, err) = try svc.ctl([
                "port", "add", "vale0", "veth", port, "--peer", peer, "--netns", ns, "--mac", mac
            ])
            guard rc == 0 else { throw FixtureError("port add \(port): \(out)\(err)") }
            hosts[l] = NetHost(ns: ns, ifname: peer, port: port, mac: mac)
        }
        return Topology(name: "Swale", hosts: hosts)
    }

    var linuxBridge: String { "\(prefix)br" }

    /// The same on a Linux bridge: PREFIXbr, no STP, one veth pair per label.
    private func linuxTopology(_ labels: [String]) throws -> Topology {
        let br = linuxBridge
        try run("ip link add \(br) type bridge stp_state 0 && sysctl -qw net.ipv6.conf.\(br).disable_ipv6=1")
        var hosts: [String: NetHost] = [:]
        for l in labels {
            let ns = try namespace("l\(l)")
            let port = "\(prefix)l\(l)", peer = "\(prefix)m\(l)", mac = Self.hostMAC(l)
            try run("ip link add \(port) type veth peer name \(peer) netns \(ns)")
            try run(
                "sysctl -qw net.ipv6.conf.\(port).disable_ipv6=1 && ip link set \(port) master \(br) && ip link set \(port) up")
            try run("ip netns exec \(ns) ip link set \(peer) address \(mac) up")
            hosts[l] = NetHost(ns: ns, ifname: peer, port: port, mac: mac)
        }
        try run("ip link set \(br) up")
        for h in hosts.values {
            let forwarding = svc.eventually(10) {
                (try? String(contentsOfFile: "/sys/class/net/\(h.port)/brport/state", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) == "3"
            }
            guard forwarding else { throw FixtureError("Linux bridge port \(h.port) is not forwarding") }
        }
        return Topology(name: "Linux", hosts: hosts)
    }

    /// Runs a shell command that must succeed.
    func run(_ cmd: String) throws {
        let (rc, out) = sh(cmd)
        guard rc == 0 else { throw FixtureError("`\(cmd)` failed (\(rc)): \(out)") }
    }

    /// swalectl, which must succeed; its stdout.
    @discardableResult
    func ctl(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (rc, out, err) = try svc.ctl(args)
        XCTAssertEqual(rc, 0, "swalectl \(args.joined(separator: " ")): \(out)\(err)", file: file, line: line)
        return out
    }

    // MARK: frames

    /// Captures on every host of `t`, sends `frames` one after the other from `sender`, and returns
    /// what each host received (the frames of this round only; a frame of another round fails).
    private func exchange(
        _ t: Topology, from sender: String, _ frames: [TestFrame], file: StaticString = #filePath, line: UInt = #line
    )
        throws -> [String: [CapturedFrame]]
    {
        roundNumber += 1
        let roundTag = "r\(roundNumber)."
        var captures: [String: Child] = [:]
        defer { for c in captures.values { c.signal(SIGKILL); c.wait(seconds: 5) } }
        for (label, h) in t.hosts {
            // Through sh so that "ready" (stderr) can be read while it runs; exec keeps the PID python's.
            captures[label] = try Child(
                "/bin/sh",
                [
                    "-c",
                    "exec ip netns exec \(h.ns) /usr/bin/python3 '\(Self.script)' capture --iface \(h.ifname) --seconds 60 2>&1"
                ])
        }
        for (label, c) in captures {
            let deadline = Date().addingTimeInterval(15)
            while !c.partialStdout.contains("ready") {
                guard Date() < deadline, c.process.isRunning else {
                    c.signal(SIGKILL)
                    c.wait(seconds: 5)
                    throw FixtureError("\(t.name) capture on \(label) did not start: \(c.stdout)")
                }
                usleep(10_000)
            }
        }
        let h = t.host(sender)
        let sentByTag = Dictionary(frames.map { ($0.tag, $0) }, uniquingKeysWith: { x, _ in x })
        for f in frames {
            var cmd =
                "ip netns exec \(h.ns) /usr/bin/python3 '\(Self.script)' send --iface \(h.ifname) --dst \(f.dst) --src \(f.src) --ethertype \(f.ethertype) --tag \(roundTag)\(f.tag)"
            if let v = f.vlan { cmd += " --vlan \(v)" }
            if let p = f.pcp { cmd += " --pcp \(p)" }
            if let n = f.payloadLen { cmd += " --payload-len \(n)" }
            let (rc, out) = sh(cmd)
            XCTAssertEqual(rc, 0, "send \(f.tag) from \(sender): \(out)", file: file, line: line)
        }
        usleep(Self.settleMicroseconds)
        for c in captures.values { c.signal(SIGTERM) }
        var got: [String: [CapturedFrame]] = [:]
        for (label, c) in captures {
            c.wait(seconds: 10)
            guard let list = c.lastJSON?["frames"] as? [[String: Any]] else {
                throw FixtureError("\(t.name) capture on \(label) printed no result: \(c.stdout)")
            }
            var frames: [CapturedFrame] = []
            for o in list {
                guard var f = CapturedFrame(o) else { throw FixtureError("bad capture line: \(o)") }
                guard f.tag.hasPrefix(roundTag) else {
                    XCTFail("\(t.name): \(label) got a frame of another round: \(f)", file: file, line: line)
                    continue
                }
                f.tag = String(f.tag.dropFirst(roundTag.count))
                // Only the 802.1Q tag may change on the way.
                if let sent = sentByTag[f.tag] {
                    XCTAssertEqual(f.dst, sent.dst, "\(t.name): \(label) got \(f)", file: file, line: line)
                    XCTAssertEqual(f.src, sent.src, "\(t.name): \(label) got \(f)", file: file, line: line)
                    XCTAssertEqual(f.ethertype, sent.ethertype, "\(t.name): \(label) got \(f)", file: file, line: line)
                }
                frames.append(f)
            }
            got[label] = frames
        }
        return got
    }

    /// What each host got, one host after the other: "a=[] b=[x,y@10]" (tags sorted; a tagged
    /// frame as "tag@VID").
    private func seen(_ got: [String: [CapturedFrame]]) -> String {
        render(got.mapValues { $0.map { $0.tag + ($0.vlan.map { "@\($0)" } ?? "") } })
    }

    /// "a=[] b=[x,y]" for every host of `t` (missing ones received nothing).
    private func render(_ tags: [String: [String]], hosts: [String]? = nil) -> String {
        (hosts ?? Array(tags.keys)).sorted().map { "\($0)=[\((tags[$0] ?? []).sorted().joined(separator: ","))]" }
            .joined(separator: " ")
    }

    /// The frames each host got in full: "a=[] b=[x vlan 10 pcp 3 0x88b5 64B]".
    private func detail(_ got: [String: [CapturedFrame]]) -> String {
        got.keys.sorted().map { l in
            let frames = (got[l] ?? []).map { f in
                "\(f.tag)\(f.vlan.map { " vlan \($0) pcp \(f.pcp ?? 0)" } ?? "") \(f.ethertype) \(f.len)B"
            }
            return "\(l)=[\(frames.sorted().joined(separator: ", "))]"
        }.joined(separator: " ")
    }

    /// Sends the same frames through Swale and Linux and checks both against `expect` (labels
    /// missing from it must receive nothing), and that both delivered the same bytes (tags,
    /// priorities, lengths). Returns what Swale delivered.
    @discardableResult
    private func agree(
        _ sw: Topology, _ lx: Topology, from sender: String, _ frames: [TestFrame], expect: [String: [String]],
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> [String: [CapturedFrame]] {
        let want = render(expect, hosts: Array(sw.hosts.keys))
        let s = try exchange(sw, from: sender, frames, file: file, line: line)
        let l = try exchange(lx, from: sender, frames, file: file, line: line)
        XCTAssertEqual(seen(s), want, "Swale", file: file, line: line)
        XCTAssertEqual(seen(l), want, "Linux bridge", file: file, line: line)
        XCTAssertEqual(detail(s), detail(l), "Swale and Linux delivered different frames", file: file, line: line)
        return s
    }

    /// Sends through Swale only and checks what each host got.
    private func expectSwale(
        _ sw: Topology, from sender: String, _ frames: [TestFrame], expect: [String: [String]], file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> [String: [CapturedFrame]] {
        let want = render(expect, hosts: Array(sw.hosts.keys))
        let got = try exchange(sw, from: sender, frames, file: file, line: line)
        XCTAssertEqual(seen(got), want, "Swale", file: file, line: line)
        return got
    }

    // MARK: Swale state

    func counters(_ port: String) throws -> PortCounters {
        try svc.call(Stats(target: "vale0:\(port)")).ports[0].counters
    }

    /// Waits for a counter of `port` to reach `value` and checks it is exactly that.
    func expectCounter(
        _ port: String, _ name: String, _ value: UInt64, _ read: (PortCounters) -> UInt64, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        _ = try svc.eventually(3) { read(try counters(port)) == value }
        let c = try counters(port)
        XCTAssertEqual(read(c), value, "\(name) of \(port): \(c)", file: file, line: line)
    }

    /// `fdb show vale0 --json`: mac, port, age, vlan, static.
    func fdb() throws -> [[String: Any]] {
        let out = try ctl(["fdb", "show", "vale0", "--json"])
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]], out)
    }

    func fdbEntries(_ mac: String) throws -> [[String: Any]] {
        try fdb().filter { ($0["mac"] as? String)?.lowercased() == mac.lowercased() }
    }

    /// The Linux bridge's entries for `mac` that are not its own ("permanent"), as "MAC dev PORT [static]".
    func linuxFdb(_ mac: String) -> [String] {
        sh("bridge fdb show br \(linuxBridge)").1.split(separator: "\n").map(String.init)
            .filter { $0.lowercased().hasPrefix(mac.lowercased()) && !$0.contains("permanent") }
    }

    // MARK: tests

    /// 01:80:C2:00:00:00 is forwarded (no STP runs); :01 (pause), :02 (LACP), :03 (802.1X) and :0E
    /// (LLDP) are not, and are counted against the sender; the group forward mask 0x4008 lets :03
    /// and :0E through; the bits of STP, pause and LACP cannot be set. Linux does the same.
    func testReservedGroupsAreForwardedOnlyWhenTheMaskSaysSo() throws {
        let labels = ["a", "b", "c"]
        let sw = try swaleTopology(labels), lx = try linuxTopology(labels)
        let src = Self.hostMAC("a")
        let frames = [
            TestFrame(tag: "stp", dst: "01:80:c2:00:00:00", src: src),
            TestFrame(tag: "pause", dst: "01:80:c2:00:00:01", src: src, ethertype: "0x8808"),
            TestFrame(tag: "lacp", dst: "01:80:c2:00:00:02", src: src, ethertype: "0x8809"),
            TestFrame(tag: "eapol", dst: "01:80:c2:00:00:03", src: src, ethertype: "0x888e"),
            TestFrame(tag: "lldp", dst: "01:80:c2:00:00:0e", src: src, ethertype: "0x88cc"),
            TestFrame(tag: "plain", dst: "01:80:c2:00:00:10", src: src)
        ]
        try agree(sw, lx, from: "a", frames, expect: ["b": ["plain", "stp"], "c": ["plain", "stp"]])
        try expectCounter(sw.port("a"), "dropReserved", 4) { $0.dropReserved }

        for bad in ["0x0001", "0x0002", "0x0004", "0x4009"] {
            let (rc, out, err) = try svc.ctl(["bridge", "set", "vale0", "--group-fwd-mask", bad])
            XCTAssertNotEqual(rc, 0, "Swale refuses group forward mask \(bad): \(out)")
            XCTAssertFalse(err.isEmpty, "and says why")
            let linux = sh("ip link set \(linuxBridge) type bridge group_fwd_mask \(bad)")
            XCTAssertNotEqual(linux.0, 0, "Linux refuses group_fwd_mask \(bad): \(linux.1)")
        }
        XCTAssertEqual(try svc.call(Stats(target: "vale0")).bridges[0].groupFwdMask, "0x0000", "a refused mask changes nothing")

        try ctl(["bridge", "set", "vale0", "--group-fwd-mask", "0x4008"])
        try run("ip link set \(linuxBridge) type bridge group_fwd_mask 0x4008")
        XCTAssertEqual(try svc.call(Stats(target: "vale0")).bridges[0].groupFwdMask, "0x4008")
        let sysfs = try String(contentsOfFile: "/sys/class/net/\(linuxBridge)/bridge/group_fwd_mask", encoding: .utf8)
        XCTAssertEqual(sysfs.trimmingCharacters(in: .whitespacesAndNewlines), "0x4008")
        let all = ["eapol", "lldp", "plain", "stp"]
        try agree(sw, lx, from: "a", frames, expect: ["b": all, "c": all])
        try expectCounter(sw.port("a"), "dropReserved", 6) { $0.dropReserved }  // pause and LACP again
    }

    /// A source address that is multicast, broadcast or zero is never forwarded nor learned.
    func testBadSourcesAreDroppedAndNeverLearned() throws {
        let labels = ["a", "b", "c"]
        let sw = try swaleTopology(labels), lx = try linuxTopology(labels)
        let bad = ["mcast": "01:00:5e:00:00:01", "bcast": broadcast, "zero": "00:00:00:00:00:00"]
        var frames = bad.keys.sorted().map { TestFrame(tag: $0, dst: broadcast, src: bad[$0]!) }
        frames += bad.keys.sorted().map { TestFrame(tag: "\($0)-unicast", dst: Self.hostMAC("b"), src: bad[$0]!) }
        frames.append(TestFrame(tag: "good", dst: broadcast, src: Self.hostMAC("a")))
        try agree(sw, lx, from: "a", frames, expect: ["b": ["good"], "c": ["good"]])
        try expectCounter(sw.port("a"), "dropBadSource", 6) { $0.dropBadSource }
        let table = try fdb()
        for (name, mac) in bad {
            XCTAssertFalse(
                table.contains { ($0["mac"] as? String)?.lowercased() == mac },
                "Swale learned the \(name) source \(mac): \(table)")
            XCTAssertEqual(linuxFdb(mac), [], "Linux learned \(mac)")
        }
        let good = try fdbEntries(Self.hostMAC("a"))
        XCTAssertEqual(good.map { $0["port"] as? String }, [sw.port("a")], "the good source is learned: \(table)")
    }

    /// Isolated ports (a, b) reach only non-isolated ones (c); c reaches everyone. A known unicast
    /// between two isolated ports is dropped, not flooded, and counted against the sender.
    func testIsolatedPortsReachOnlyNonIsolatedPorts() throws {
        let labels = ["a", "b", "c"]
        let sw = try swaleTopology(labels), lx = try linuxTopology(labels)
        for l in ["a", "b"] {
            try ctl(["port", "set", "vale0:\(sw.port(l))", "--isolated", "on"])
            try run("bridge link set dev \(lx.port(l)) isolated on")
        }
        let mac = Self.hostMAC
        try agree(sw, lx, from: "a", [TestFrame(tag: "a-bc", dst: broadcast, src: mac("a"))], expect: ["c": ["a-bc"]])
        try agree(sw, lx, from: "b", [TestFrame(tag: "b-bc", dst: broadcast, src: mac("b"))], expect: ["c": ["b-bc"]])
        try agree(
            sw, lx, from: "c", [TestFrame(tag: "c-bc", dst: broadcast, src: mac("c"))], expect: ["a": ["c-bc"], "b": ["c-bc"]])
        let before = try counters(sw.port("a")).dropIsolated
        try agree(sw, lx, from: "a", [TestFrame(tag: "a-to-b", dst: mac("b"), src: mac("a"))], expect: [:])
        try expectCounter(sw.port("a"), "dropIsolated", before + 1) { $0.dropIsolated }
        try agree(sw, lx, from: "a", [TestFrame(tag: "a-to-c", dst: mac("c"), src: mac("a"))], expect: ["c": ["a-to-c"]])
        try agree(sw, lx, from: "c", [TestFrame(tag: "c-to-b", dst: mac("b"), src: mac("c"))], expect: ["b": ["c-to-b"]])
        try ctl(["port", "set", "vale0:\(sw.port("b"))", "--isolated", "off"])
        try run("bridge link set dev \(lx.port("b")) isolated off")
        try agree(sw, lx, from: "a", [TestFrame(tag: "a-to-b-2", dst: mac("b"), src: mac("a"))], expect: ["b": ["a-to-b-2"]])
    }

    /// 802.1Q (Swale only: this kernel's Linux bridge has no VLAN filtering). a and d are access
    /// ports of VLAN 10, b of VLAN 20, c a trunk with 10 and 20 tagged.
    func testVlanAccessAndTrunkPorts() throws {
        let sw = try swaleTopology(["a", "b", "c", "d"])
        let (a, b, c, d) = (sw.port("a"), sw.port("b"), sw.port("c"), sw.port("d"))
        let mac = Self.hostMAC
        try ctl(["bridge", "set", "vale0", "--vlan-filtering", "on"])
        for (p, vid) in [(a, 10), (b, 20), (d, 10)] {
            try ctl(["vlan", "add", "vale0:\(p)", "\(vid)", "--pvid", "--untagged"])
            try ctl(["vlan", "del", "vale0:\(p)", "1"])
        }
        try ctl(["vlan", "add", "vale0:\(c)", "10"])
        try ctl(["vlan", "add", "vale0:\(c)", "20"])
        try ctl(["vlan", "del", "vale0:\(c)", "1"])
        let show = try ctl(["vlan", "show", "vale0", "--json"])
        let rules = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(show.utf8)) as? [[String: Any]], show)
        func vlans(_ port: String) -> [String] {
            let r = rules.first { $0["port"] as? String == port }
            return ((r?["vlans"] as? [[String: Any]]) ?? []).map {
                "\($0["vid"] ?? "?")\($0["pvid"] as? Bool == true ? " pvid" : "")\($0["untagged"] as? Bool == true ? " untagged" : "")"
            }
        }
        XCTAssertEqual(vlans(a), ["10 pvid untagged"], show)
        XCTAssertEqual(vlans(b), ["20 pvid untagged"], show)
        XCTAssertEqual(vlans(c), ["10", "20"], show)
        XCTAssertEqual(vlans(d), ["10 pvid untagged"], show)

        // Untagged from an access port: untagged to the other access port of its VLAN, tagged to the trunk.
        var got = try expectSwale(
            sw, from: "a", [TestFrame(tag: "a-bc", dst: broadcast, src: mac("a"))], expect: ["c": ["a-bc@10"], "d": ["a-bc"]])
        XCTAssertEqual(got["c"]?.first?.len, 64, "tag pushed: \(got)")
        XCTAssertEqual(got["d"]?.first?.len, 60, "untouched: \(got)")
        // Tagged on the trunk: untagged to the access port of that VLAN only.
        got = try expectSwale(
            sw, from: "c", [TestFrame(tag: "c-20", dst: broadcast, src: mac("c"), vlan: 20)], expect: ["b": ["c-20"]])
        XCTAssertEqual(got["b"]?.first?.len, 60, "tag popped: \(got)")
        XCTAssertEqual(got["b"]?.first?.ethertype, "0x88b5", "\(got)")
        _ = try expectSwale(
            sw, from: "c", [TestFrame(tag: "c-10", dst: broadcast, src: mac("c"), vlan: 10)],
            expect: ["a": ["c-10"], "d": ["c-10"]])
        // Full-size frames: 1514 bytes untagged are 1518 tagged (the tag is not counted in the MTU).
        got = try expectSwale(
            sw, from: "a", [TestFrame(tag: "a-big", dst: broadcast, src: mac("a"), payloadLen: 1500)],
            expect: ["c": ["a-big@10"], "d": ["a-big"]])
        XCTAssertEqual(got["c"]?.first?.len, 1518, "\(got)")
        XCTAssertEqual(got["d"]?.first?.len, 1514, "\(got)")
        got = try expectSwale(
            sw, from: "c", [TestFrame(tag: "c-big", dst: broadcast, src: mac("c"), vlan: 20, payloadLen: 1500)],
            expect: ["b": ["c-big"]])
        XCTAssertEqual(got["b"]?.first?.len, 1514, "\(got)")
        // A VLAN the trunk is not in, untagged frames on a port without PVID, and the reserved VID
        // 4095: dropped.
        var before = try counters(c).dropVlan
        _ = try expectSwale(
            sw, from: "c",
            [
                TestFrame(tag: "c-30", dst: broadcast, src: mac("c"), vlan: 30),
                TestFrame(tag: "c-untagged", dst: broadcast, src: mac("c")),
                TestFrame(tag: "c-4095", dst: broadcast, src: mac("c"), vlan: 4095)
            ], expect: [:])
        try expectCounter(c, "dropVlan", before + 3) { $0.dropVlan }
        // Access port: a frame tagged with its own VLAN is in it; with another VLAN, dropped; a
        // priority tag (VID 0) puts it in the PVID and keeps the priority.
        before = try counters(a).dropVlan
        got = try expectSwale(
            sw, from: "a",
            [
                TestFrame(tag: "a-10", dst: broadcast, src: mac("a"), vlan: 10),
                TestFrame(tag: "a-20", dst: broadcast, src: mac("a"), vlan: 20),
                TestFrame(tag: "a-prio", dst: broadcast, src: mac("a"), vlan: 0, pcp: 5)
            ], expect: ["c": ["a-10@10", "a-prio@10"], "d": ["a-10", "a-prio"]])
        try expectCounter(a, "dropVlan", before + 1) { $0.dropVlan }
        let prio = got["c"]?.first { $0.tag == "a-prio" }
        XCTAssertEqual(prio?.pcp, 5, "priority kept when the VID is written in: \(got)")
        XCTAssertEqual(prio?.len, 64, "\(got)")
        XCTAssertEqual(got["d"]?.first { $0.tag == "a-prio" }?.len, 60, "priority tag popped: \(got)")

        // The same source in two VLANs: two entries.
        let entries = try fdbEntries(mac("c"))
        XCTAssertEqual(Set(entries.compactMap { $0["vlan"] as? Int }), [10, 20], "\(entries)")
        XCTAssertEqual(entries.count, 2, "\(entries)")
        XCTAssertTrue(entries.allSatisfy { $0["port"] as? String == c }, "\(entries)")

        // Learned per VLAN: d's address is known in VLAN 10 only.
        _ = try expectSwale(
            sw, from: "d", [TestFrame(tag: "d-bc", dst: broadcast, src: mac("d"))], expect: ["a": ["d-bc"], "c": ["d-bc@10"]])
        _ = try expectSwale(sw, from: "a", [TestFrame(tag: "a-to-d", dst: mac("d"), src: mac("a"))], expect: ["d": ["a-to-d"]])
        _ = try expectSwale(
            sw, from: "b", [TestFrame(tag: "b-to-d", dst: mac("d"), src: mac("b"))], expect: ["c": ["b-to-d@20"]])
        _ = try expectSwale(
            sw, from: "c", [TestFrame(tag: "c-to-d", dst: mac("d"), src: mac("c"), vlan: 10)], expect: ["d": ["c-to-d"]])
    }

    /// Without VLAN filtering (the default) tags are not looked at: tagged and priority-tagged
    /// frames reach the other ports as they were sent (tag, priority, length), and addresses are
    /// learned and looked up whatever the tag, as on Linux.
    func testTaggedFramesCrossUnchangedWithoutFiltering() throws {
        let labels = ["a", "b", "c"]
        let sw = try swaleTopology(labels), lx = try linuxTopology(labels)
        let mac = Self.hostMAC
        try agree(
            sw, lx, from: "b", [TestFrame(tag: "b-bc", dst: broadcast, src: mac("b"), vlan: 20)],
            expect: ["a": ["b-bc@20"], "c": ["b-bc@20"]])
        let got = try agree(
            sw, lx, from: "a",
            [
                TestFrame(tag: "bc-10", dst: broadcast, src: mac("a"), vlan: 10, pcp: 3),
                TestFrame(tag: "prio", dst: broadcast, src: mac("a"), vlan: 0, pcp: 5),
                TestFrame(tag: "to-b", dst: mac("b"), src: mac("a"), vlan: 30),
                TestFrame(tag: "to-b-untagged", dst: mac("b"), src: mac("a"))
            ], expect: ["b": ["bc-10@10", "prio@0", "to-b-untagged", "to-b@30"], "c": ["bc-10@10", "prio@0"]])
        let c = got["c"] ?? []
        XCTAssertEqual(c.map { "\($0.tag) \($0.pcp ?? -1) \($0.len)" }.sorted(), ["bc-10 3 64", "prio 5 64"], "\(c)")
        XCTAssertEqual(try fdbEntries(mac("b")).map { $0["vlan"] as? Int }, [0], "learned outside VLANs")
    }

    /// Static entries never move (Swale only: Linux moves a static entry to the port a frame comes
    /// from unless it is "sticky"); a locked port lets through only sources with a static entry on
    /// it (compared with Linux's `locked on`).
    func testStaticEntriesAndLockedPorts() throws {
        let labels = ["a", "b", "c"]
        let sw = try swaleTopology(labels), lx = try linuxTopology(labels)
        let mac = Self.hostMAC
        let pinned = "02:5a:00:00:01:01", unknown = "02:5a:00:00:01:02", allowed = "02:5a:00:00:01:03"
        try ctl(["fdb", "add", "vale0", pinned, sw.port("a")])
        var e = try fdbEntries(pinned)
        XCTAssertEqual(e.count, 1, "\(e)")
        XCTAssertEqual(e.first?["port"] as? String, sw.port("a"))
        XCTAssertEqual(e.first?["static"] as? Bool, true)
        XCTAssertEqual(e.first?["vlan"] as? Int, 0, "outside VLAN filtering")
        _ = try expectSwale(sw, from: "b", [TestFrame(tag: "move", dst: broadcast, src: pinned)], expect: [:])
        try expectCounter(sw.port("b"), "dropStaticMove", 1) { $0.dropStaticMove }
        e = try fdbEntries(pinned)
        XCTAssertEqual(e.map { $0["port"] as? String }, [sw.port("a")], "still on a: \(e)")
        XCTAssertEqual(e.first?["static"] as? Bool, true)
        _ = try expectSwale(
            sw, from: "c", [TestFrame(tag: "to-pinned", dst: pinned, src: mac("c"))], expect: ["a": ["to-pinned"]])

        // Locked b: only sources with a static entry on b.
        try ctl(["port", "set", "vale0:\(sw.port("b"))", "--locked", "on"])
        try run("bridge link set dev \(lx.port("b")) locked on")
        try agree(
            sw, lx, from: "b",
            [TestFrame(tag: "unknown", dst: broadcast, src: unknown), TestFrame(tag: "own", dst: broadcast, src: mac("b"))],
            expect: [:])
        try expectCounter(sw.port("b"), "dropLocked", 2) { $0.dropLocked }
        try ctl(["fdb", "add", "vale0", allowed, sw.port("b")])
        try run("bridge fdb add \(allowed) dev \(lx.port("b")) master static")
        try agree(
            sw, lx, from: "b",
            [TestFrame(tag: "allowed", dst: broadcast, src: allowed), TestFrame(tag: "still", dst: broadcast, src: unknown)],
            expect: ["a": ["allowed"], "c": ["allowed"]])
        try expectCounter(sw.port("b"), "dropLocked", 3) { $0.dropLocked }
        let table = try fdb()
        XCTAssertFalse(
            table.contains { ($0["mac"] as? String)?.lowercased() == unknown }, "a locked port learns nothing: \(table)")
        XCTAssertEqual(linuxFdb(unknown), [])
        try agree(sw, lx, from: "a", [TestFrame(tag: "to-allowed", dst: allowed, src: mac("a"))], expect: ["b": ["to-allowed"]])

        // Deleted, the entry no longer holds the address: it is learned where it shows up.
        try ctl(["port", "set", "vale0:\(sw.port("b"))", "--locked", "off"])
        try ctl(["fdb", "del", "vale0", pinned])
        XCTAssertEqual(try fdbEntries(pinned).count, 0)
        _ = try expectSwale(
            sw, from: "c", [TestFrame(tag: "pinned-free", dst: broadcast, src: pinned)],
            expect: ["a": ["pinned-free"], "b": ["pinned-free"]])
        e = try fdbEntries(pinned)
        XCTAssertEqual(e.map { $0["port"] as? String }, [sw.port("c")], "learned on c: \(e)")
        XCTAssertEqual(e.first?["static"] as? Bool, false)

        // With VLAN filtering a static entry is per VLAN (every port is in VLAN 1 by default).
        try ctl(["bridge", "set", "vale0", "--vlan-filtering", "on"])
        let pinned1 = "02:5a:00:00:01:04"
        try ctl(["fdb", "add", "vale0", pinned1, sw.port("a"), "--vlan", "1"])
        e = try fdbEntries(pinned1)
        XCTAssertEqual(e.first?["vlan"] as? Int, 1, "\(e)")
        _ = try expectSwale(sw, from: "c", [TestFrame(tag: "move-v1", dst: broadcast, src: pinned1)], expect: [:])
        try expectCounter(sw.port("c"), "dropStaticMove", 1) { $0.dropStaticMove }
        e = try fdbEntries(pinned1)
        XCTAssertEqual(e.map { $0["port"] as? String }, [sw.port("a")], "still on a: \(e)")
    }

    /// A port with a MAC limit learns that many sources; frames from further new sources are
    /// dropped (Swale only: Linux's fdb_max_learned stops learning but forwards).
    func testMacLimitDropsFramesFromFurtherSources() throws {
        let sw = try swaleTopology(["a", "b", "c"])
        let a = sw.port("a")
        try ctl(["port", "set", "vale0:\(a)", "--max-macs", "2"])
        let sources = (1...4).map { "02:5a:00:00:02:0\($0)" }
        let frames = sources.enumerated().map { TestFrame(tag: "m\($0.offset + 1)", dst: broadcast, src: $0.element) }
        _ = try expectSwale(sw, from: "a", frames, expect: ["b": ["m1", "m2"], "c": ["m1", "m2"]])
        try expectCounter(a, "dropMacLimit", 2) { $0.dropMacLimit }
        let table = try fdb()
        let learned = table.filter { $0["port"] as? String == a }.compactMap { ($0["mac"] as? String)?.lowercased() }
        XCTAssertEqual(learned.sorted(), Array(sources[0..<2]), "the first two sources: \(table)")
        // A learned source still passes; a new one still does not.
        _ = try expectSwale(
            sw, from: "a",
            [
                TestFrame(tag: "m1-again", dst: broadcast, src: sources[0]),
                TestFrame(tag: "m3-again", dst: broadcast, src: sources[2])
            ],
            expect: ["b": ["m1-again"], "c": ["m1-again"]])
        try expectCounter(a, "dropMacLimit", 3) { $0.dropMacLimit }
        // An address that moves to another port frees its place on a.
        _ = try expectSwale(
            sw, from: "b", [TestFrame(tag: "m1-on-b", dst: broadcast, src: sources[0])],
            expect: ["a": ["m1-on-b"], "c": ["m1-on-b"]])
        XCTAssertEqual(try fdbEntries(sources[0]).map { $0["port"] as? String }, [sw.port("b")])
        _ = try expectSwale(
            sw, from: "a", [TestFrame(tag: "m3-after-move", dst: broadcast, src: sources[2])],
            expect: ["b": ["m3-after-move"], "c": ["m3-after-move"]])
        try expectCounter(a, "dropMacLimit", 3) { $0.dropMacLimit }
        // Flushing the port's entries frees every place.
        try ctl(["fdb", "flush", "vale0", a])
        _ = try expectSwale(
            sw, from: "a",
            [
                TestFrame(tag: "m3-flushed", dst: broadcast, src: sources[2]),
                TestFrame(tag: "m4-flushed", dst: broadcast, src: sources[3])
            ],
            expect: ["b": ["m3-flushed", "m4-flushed"], "c": ["m3-flushed", "m4-flushed"]])
        // No limit: any number are learned.
        try ctl(["port", "set", "vale0:\(a)", "--max-macs", "0"])
        _ = try expectSwale(
            sw, from: "a", [TestFrame(tag: "m2-free", dst: broadcast, src: sources[1])],
            expect: ["b": ["m2-free"], "c": ["m2-free"]])
        XCTAssertEqual(try fdbEntries(sources[1]).map { $0["port"] as? String }, [a])
        let show = try ctl(["vlan", "show", "vale0", "--json"])
        let rules = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(show.utf8)) as? [[String: Any]], show)
        let ra = rules.first { $0["port"] as? String == a }
        XCTAssertEqual(ra?["maxMacs"] as? Int, 0, show)
        XCTAssertEqual(ra?["learned"] as? Int, 3, "m2, m3, m4 learned on a: \(show)")
    }
}

/// Every bridge-semantics test again with the fast path off.
final class BridgeSemanticsTestsWithoutFastpath: BridgeSemanticsTests {
    override class var serviceArgs: [String] { ["--no-fastpath"] }
    // Test discovery on Linux lists only methods a class declares itself: each is named again here.
    override func testReservedGroupsAreForwardedOnlyWhenTheMaskSaysSo() throws {
        try super.testReservedGroupsAreForwardedOnlyWhenTheMaskSaysSo()
    }
    override func testBadSourcesAreDroppedAndNeverLearned() throws { try super.testBadSourcesAreDroppedAndNeverLearned() }
    override func testIsolatedPortsReachOnlyNonIsolatedPorts() throws { try super.testIsolatedPortsReachOnlyNonIsolatedPorts() }
    override func testVlanAccessAndTrunkPorts() throws { try super.testVlanAccessAndTrunkPorts() }
    override func testTaggedFramesCrossUnchangedWithoutFiltering() throws {
        try super.testTaggedFramesCrossUnchangedWithoutFiltering()
    }
    override func testStaticEntriesAndLockedPorts() throws { try super.testStaticEntriesAndLockedPorts() }
    override func testMacLimitDropsFramesFromFurtherSources() throws { try super.testMacLimitDropsFramesFromFurtherSources() }
}
