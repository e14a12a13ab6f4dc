// The TAP and AF_PACKET adapters against real kernel objects and a real MemoryPool ring pair.
// Topologies live in namespaces the tests create; every interface, namespace and process is
// removed in teardown.
import CSwale
import Foundation
import Glibc
import SwaleKernel
import SwaleMemory
import XCTest

final class AdapterTests: XCTestCase {
    var prefix = ""
    let nl = try! Netlink()

    override func setUpWithError() throws {
        try requireRoot()
        prefix = uniquePrefix()
    }

    func makeNamespace(_ name: String) throws {
        try ip("netns", "add", name)
        addTeardownBlock { _ = try? ip("netns", "del", name, allowFailure: true) }
    }

    func cleanupLink(_ name: String) {
        addTeardownBlock { _ = try? ip("link", "del", name, allowFailure: true) }
    }

    func background(_ args: [String]) throws -> BackgroundProcess {
        let p = try BackgroundProcess(args)
        addTeardownBlock { p.stop() }
        return p
    }

    /// veth `outside` (here, up) <-> `inside` (in namespace ns, up, addressed).
    func vethIntoNamespace(outside: String, inside: String, ns: String, cidr: String) throws {
        cleanupLink(outside)
        try nl.createVeth(name: outside, peer: inside)
        try nl.moveToNamespace(link: inside, nsPath: ns)
        try Netlink.configureInNamespace(nsPath: ns, link: inside, up: true, address: cidr)
        try nl.setUp(outside, true)
    }

    func rxPackets(ns: String, dev: String) throws -> Int {
        let out = try shell([K.ipTool, "netns", "exec", ns, "cat", "/sys/class/net/\(dev)/statistics/rx_packets"]).output
        return Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    // MARK: AF_PACKET: ARP, ICMP and a batch of broadcasts

    func testPacketSocketARPAndPing() throws {
        let ns = prefix + "ns", a = prefix + "a", b = prefix + "b"
        let net = subnetByte()
        try makeNamespace(ns)
        try vethIntoNamespace(outside: a, inside: b, ns: ns, cidr: "10.77.\(net).2/24")
        let bInfo = try XCTUnwrap(Netlink.inNamespace(ns) { nl in try nl.linkInfo(name: b) })

        let adapter = try PacketSocketAdapter.attach(name: a)
        addTeardownBlock { adapter.close() }
        XCTAssertEqual(adapter.vnetSize, 12, "PACKET_VNET_HDR_SZ (Linux 6.2+)")
        XCTAssertTrue(adapter.qdiscBypass)
        XCTAssertTrue(adapter.ignoresOutgoing)
        XCTAssertTrue(adapter.acceptsVnetHeader)
        XCTAssertEqual(adapter.mtu, 1500)
        let rings = try RingPair()

        let fakeMAC: [UInt8] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]
        let fakeIP = Frames.ipv4("10.77.\(net).1")
        let ping = try background([K.ipTool, "netns", "exec", ns, "ping", "-c", "4", "-i", "0.2", "-W", "1", "10.77.\(net).1"])
        var arpRequests = 0, echoRequests = 0, ownEchoes = 0, plainSingleSlot = 0
        drive(adapter, rings, seconds: 8, until: { !ping.isRunning }) { f in
            if f.hasVnet == false && f.slots == 1 { plainSingleSlot += 1 }
            let e = f.ethernet
            if Array(e[e.startIndex + 6 ..< e.startIndex + 12]) == fakeMAC { ownEchoes += 1 }
            if f.etherType == 0x0806 && e.count >= 42 && e[e.startIndex + 21] == 1 && Array(e[e.startIndex + 38 ..< e.startIndex + 42]) == fakeIP {
                arpRequests += 1
                XCTAssertEqual(Array(e[e.startIndex + 6 ..< e.startIndex + 12]), bInfo.mac)
                return [Frames.arpReply(senderMAC: fakeMAC, senderIP: fakeIP, targetMAC: bInfo.mac,
                                        targetIP: Frames.ipv4("10.77.\(net).2"))]
            }
            if f.etherType == 0x0800, let reply = Frames.echoReply(to: e) {
                echoRequests += 1
                return [reply]
            }
            return []
        }
        ping.process.waitUntilExit()
        let out = ping.output
        XCTAssertGreaterThanOrEqual(arpRequests, 1)
        XCTAssertGreaterThanOrEqual(echoRequests, 3)
        XCTAssertEqual(ownEchoes, 0, "PACKET_IGNORE_OUTGOING: our own transmissions must not come back")
        XCTAssertGreaterThan(plainSingleSlot, 0)
        XCTAssertEqual(ping.status, 0, out)
        XCTAssertTrue(out.contains(" 0% packet loss") || out.contains(" 25% packet loss"), out)
        let neigh = try ip("-n", ns, "neigh", "show", "10.77.\(net).1")
        XCTAssertTrue(neigh.contains("02:aa:bb:cc:dd:ee"), neigh)

        // A batch of 200 broadcast frames: one transmit call, one sendmmsg.
        let before = try rxPackets(ns: ns, dev: b)
        let sysBefore = adapter.counters["tx_syscalls"]!
        let batch = (0..<200).map { Frames.udpBroadcast(srcMAC: fakeMAC, srcIP: fakeIP, dstIP: Frames.ipv4("10.77.\(net).255"), payload: 100, seq: UInt16($0)) }
        XCTAssertEqual(rings.put(batch), 200)
        XCTAssertEqual(adapter.transmit(from: rings.rx), 200)
        XCTAssertEqual(rings.rxPending, 0, "all slots released")
        let sysAfter = adapter.counters["tx_syscalls"]!
        XCTAssertEqual(sysAfter - sysBefore, 1, "200 frames in one sendmmsg")
        usleep(100_000)
        let after = try rxPackets(ns: ns, dev: b)
        XCTAssertGreaterThanOrEqual(after - before, 200)

        // Frames the kernel refuses are dropped and counted, the rest still go out.
        let tooBig = [UInt8](repeating: 0xFF, count: 6) + fakeMAC + [0x08, 0x00] + [UInt8](repeating: 0, count: 3000)
        let ok = Frames.udpBroadcast(srcMAC: fakeMAC, srcIP: fakeIP, dstIP: Frames.ipv4("10.77.\(net).255"), payload: 10, seq: 1)
        rings.put([ok, tooBig, ok])
        XCTAssertEqual(adapter.transmit(from: rings.rx), 2)
        XCTAssertEqual(rings.rxPending, 0)
        XCTAssertEqual(adapter.counters["tx_drop_error"], 1)
        print("packet socket counters:", adapter.counters.sorted { $0.key < $1.key })
    }

    // MARK: AF_PACKET <-> AF_PACKET: GSO frames and TCP through the rings

    func testPacketSocketGSOAndTCP() throws {
        let ns1 = prefix + "n1", ns2 = prefix + "n2"
        let a1 = prefix + "a1", b1 = prefix + "b1", a2 = prefix + "a2", b2 = prefix + "b2"
        let net = subnetByte()
        try makeNamespace(ns1)
        try makeNamespace(ns2)
        try vethIntoNamespace(outside: a1, inside: b1, ns: ns1, cidr: "10.78.\(net).1/24")
        try vethIntoNamespace(outside: a2, inside: b2, ns: ns2, cidr: "10.78.\(net).2/24")
        let p1 = try PacketSocketAdapter.attach(name: a1)
        let p2 = try PacketSocketAdapter.attach(name: a2)
        addTeardownBlock { p1.close(); p2.close() }
        let r1 = try RingPair(), r2 = try RingPair()
        let sw = MiniSwitch(p1, r1, p2, r2)

        let ping = try background([K.ipTool, "netns", "exec", ns1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.78.\(net).2"])
        sw.run(seconds: 8) { !ping.isRunning }
        ping.process.waitUntilExit()
        XCTAssertEqual(ping.status, 0, ping.output)
        XCTAssertGreaterThan(sw.stats[0].plainARP, 0, "ARP crosses as plain frames")

        try iperf(sw, client: ns1, server: ns2, serverIP: "10.78.\(net).2", reverse: false, label: "veth->veth")
        let st = sw.stats[0]
        XCTAssertGreaterThan(st.gsoFrames, 0, "TCP from the namespace arrives as GSO frames")
        XCTAssertGreaterThan(st.multiSlotFrames, 0)
        let g = try XCTUnwrap(st.firstGSO)
        XCTAssertTrue(g.hasVnet)
        XCTAssertEqual(g.gsoType & 0x7f, 1, "VIRTIO_NET_HDR_GSO_TCPV4")
        XCTAssertEqual(g.bytes[0] & 1, 1, "NEEDS_CSUM")
        XCTAssertEqual(g.csumStart, 34, "Ethernet + IPv4 header")
        XCTAssertEqual(g.csumOffset, 16, "TCP checksum field")
        XCTAssertGreaterThan(g.gsoSize, 500)
        XCTAssertLessThanOrEqual(g.gsoSize, 1460)
        print("first GSO frame: slots=\(g.slots) gso_size=\(g.gsoSize) hdr_len=\(g.hdrLen) csum=\(g.csumStart)+\(g.csumOffset); max slots/frame \(st.maxSlots)")
        XCTAssertEqual(p1.counters["rx_drop_truncated"], 0)
        XCTAssertGreaterThan(p2.counters["tx_gso_frames"]!, 0, "GSO frames handed to the kernel with their header")
        report("p1", p1.counters)
        report("p2", p2.counters)
    }

    // MARK: AF_PACKET with 802.1Q: the tag the kernel keeps out of band is put back

    func testPacketSocketVLAN() throws {
        let ns1 = prefix + "n1", ns2 = prefix + "n2"
        let a1 = prefix + "a1", b1 = prefix + "b1", a2 = prefix + "a2", b2 = prefix + "b2", v = prefix + "v"
        let net = subnetByte()
        try makeNamespace(ns1)
        try makeNamespace(ns2)
        try vethIntoNamespace(outside: a1, inside: b1, ns: ns1, cidr: "10.81.\(net).1/24")
        try vethIntoNamespace(outside: a2, inside: b2, ns: ns2, cidr: "10.81.\(net).2/24")
        for (ns, dev, host) in [(ns1, b1, 1), (ns2, b2, 2)] {
            try ip("-n", ns, "link", "add", "link", dev, "name", v, "type", "vlan", "id", "5")
            try ip("-n", ns, "addr", "add", "10.82.\(net).\(host)/24", "dev", v)
            try ip("-n", ns, "link", "set", v, "up")
        }
        let p1 = try PacketSocketAdapter.attach(name: a1)
        let p2 = try PacketSocketAdapter.attach(name: a2)
        addTeardownBlock { p1.close(); p2.close() }
        let sw = MiniSwitch(p1, try RingPair(), p2, try RingPair())

        let ping = try background([K.ipTool, "netns", "exec", ns1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.82.\(net).2"])
        sw.run(seconds: 8) { !ping.isRunning }
        ping.process.waitUntilExit()
        XCTAssertEqual(ping.status, 0, ping.output)
        XCTAssertGreaterThan(sw.stats[0].vlanFrames, 0, "802.1Q tag restored into the frame")
        XCTAssertGreaterThan(p1.counters["rx_vlan_tag_restored"]!, 0)

        try iperf(sw, client: ns1, server: ns2, serverIP: "10.82.\(net).2", reverse: false, label: "vlan veth->veth")
        let g = try XCTUnwrap(sw.stats[0].firstGSO)
        XCTAssertEqual(g.bytes[12 + 12], 0x81, "GSO frame carries its VLAN tag")
        XCTAssertEqual(g.csumStart, 38, "csum_start counts Ethernet + 802.1Q + IPv4 header")
        print("vlan GSO frame: slots=\(g.slots) csum_start=\(g.csumStart) kernelCountsVlan=\(p1.kernelCountsVlanInCsumStart)")
    }

    // MARK: TAP <-> AF_PACKET: GSO both ways

    func testTapAdapterGSOAndTCP() throws {
        let ns1 = prefix + "n1", ns2 = prefix + "n2"
        let t = prefix + "t", a2 = prefix + "a2", b2 = prefix + "b2"
        let net = subnetByte()
        try makeNamespace(ns1)
        try makeNamespace(ns2)
        let tapMAC: [UInt8] = [0x02, 0x54, 0x41, 0x50, 0x00, UInt8(net)]
        let tap = try TapAdapter.create(name: t, mtu: 1500, mac: tapMAC, up: true)
        addTeardownBlock { tap.destroy() }
        cleanupLink(t)
        XCTAssertTrue(tap.offloads)
        let info = try XCTUnwrap(nl.linkInfo(name: t))
        XCTAssertEqual(info.kind, "tun")
        XCTAssertEqual(info.mac, tapMAC)
        XCTAssertTrue(info.isUp)
        // The TAP device goes into ns1; the adapter's fd keeps working.
        try nl.moveToNamespace(link: t, nsPath: ns1)
        try Netlink.configureInNamespace(nsPath: ns1, link: t, up: true, address: "10.79.\(net).1/24")
        try vethIntoNamespace(outside: a2, inside: b2, ns: ns2, cidr: "10.79.\(net).2/24")
        let p2 = try PacketSocketAdapter.attach(name: a2)
        addTeardownBlock { p2.close() }
        let rt = try RingPair(), r2 = try RingPair()
        let sw = MiniSwitch(tap, rt, p2, r2)

        let ping = try background([K.ipTool, "netns", "exec", ns1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.79.\(net).2"])
        sw.run(seconds: 8) { !ping.isRunning }
        ping.process.waitUntilExit()
        XCTAssertEqual(ping.status, 0, ping.output)
        XCTAssertGreaterThan(sw.stats[0].plainARP, 0, "ARP from the TAP arrives as a plain frame (empty header removed)")

        try iperf(sw, client: ns1, server: ns2, serverIP: "10.79.\(net).2", reverse: false, label: "tap->veth")
        XCTAssertGreaterThan(sw.stats[0].gsoFrames, 0, "TCP from the TAP arrives as GSO frames")
        XCTAssertGreaterThan(sw.stats[0].multiSlotFrames, 0)
        if let g = sw.stats[0].firstGSO {
            XCTAssertEqual(g.csumStart, 34)
            XCTAssertEqual(g.csumOffset, 16)
            print("tap GSO frame: slots=\(g.slots) gso_size=\(g.gsoSize) hdr_len=\(g.hdrLen)")
        }
        let gsoIntoTapBefore = tap.counters["tx_gso_frames"]!
        try iperf(sw, client: ns1, server: ns2, serverIP: "10.79.\(net).2", reverse: true, label: "veth->tap")
        XCTAssertGreaterThan(sw.stats[1].gsoFrames, 0)
        XCTAssertGreaterThan(tap.counters["tx_gso_frames"]! - gsoIntoTapBefore, 0, "GSO frames written into the TAP")
        XCTAssertEqual(tap.counters["rx_drop_truncated"], 0)
        report("tap", tap.counters)
        report("p2", p2.counters)
        XCTAssertFalse(tap.linkGone)
    }

    func testTapRefusesNonTapName() throws {
        // A veth we create is not a TAP: TUNSETIFF must refuse it, and it must survive untouched.
        let a = prefix + "a", b = prefix + "b"
        cleanupLink(a)
        try nl.createVeth(name: a, peer: b)
        XCTAssertThrowsError(try TapAdapter.create(name: a)) { e in
            XCTAssertTrue("\(e)".contains(a), "\(e)")
        }
        XCTAssertEqual(try nl.linkInfo(name: a)?.kind, "veth")
    }

    func testTapPersistAndDestroy() throws {
        let t = prefix + "p"
        cleanupLink(t)
        let tap = try TapAdapter.create(name: t, persist: true)
        let idx = tap.ifindex
        tap.close()
        XCTAssertTrue(nl.exists(ifindex: idx), "a persistent TAP outlives its fd")
        let again = try TapAdapter.create(name: t, persist: true)
        XCTAssertEqual(again.ifindex, idx, "re-attached to the same device")
        again.destroy()
        XCTAssertFalse(nl.exists(ifindex: idx), "destroy removes it")
    }

    // MARK: helpers

    func iperf(_ sw: MiniSwitch, client: String, server: String, serverIP: String, reverse: Bool, label: String) throws {
        let port = String(Int.random(in: 20000...60000))
        let srv = try background([K.ipTool, "netns", "exec", server, "iperf3", "-s", "-1", "-p", port])
        usleep(300_000)
        var args = [K.ipTool, "netns", "exec", client, "iperf3", "-c", serverIP, "-p", port, "-t", "2", "-J"]
        if reverse { args.append("-R") }
        let cli = try background(args)
        sw.run(seconds: 20) { !cli.isRunning }
        if cli.isRunning { XCTFail("iperf3 \(label) did not finish in 20 s") }
        if cli.isRunning { kill(cli.process.processIdentifier, SIGINT); sw.run(seconds: 2) { !cli.isRunning } }
        cli.stopIfRunning()
        let out = cli.output
        XCTAssertEqual(cli.status, 0, "iperf3 \(label): \(out.suffix(2000))")
        if let data = out.data(using: .utf8),
           let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let end = json["end"] as? [String: Any],
           let recv = end["sum_received"] as? [String: Any],
           let bps = recv["bits_per_second"] as? Double {
            print(String(format: "iperf3 %@: %.2f Gbit/s", label, bps / 1e9))
            XCTAssertGreaterThan(bps, 1e6)
        } else {
            XCTFail("iperf3 \(label) gave no result: \(out.suffix(1000))")
        }
        srv.stop()
    }

    func report(_ name: String, _ c: [String: UInt64]) {
        let rxF = Double(c["rx_frames"] ?? 0), rxS = Double(max(c["rx_syscalls"] ?? 0, 1))
        let txF = Double(c["tx_frames"] ?? 0), txS = Double(max(c["tx_syscalls"] ?? 0, 1))
        print(String(format: "%@: rx %.0f frames (%.0f GSO) / %.0f syscalls; tx %.0f frames (%.0f GSO) / %.0f syscalls = %.2f frames/syscall",
                     name, rxF, Double(c["rx_gso_frames"] ?? 0), rxS, txF, Double(c["tx_gso_frames"] ?? 0), txS, txF / txS))
        print("  \(name) counters:", c.filter { $0.value != 0 }.sorted { $0.key < $1.key })
    }
}
