// The TAP and AF_PACKET adapters against real kernel objects and a real MemoryPool ring pair.
// Topologies live in namespaces the tests create; every interface, namespace and process is
// removed in teardown.
import CSwaleABI
import CSwaleSys
import Foundation
import Glibc
import SwaleDatapath
import SwaleKernel
import SwaleRings
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
            if Array(e[e.startIndex + 6..<e.startIndex + 12]) == fakeMAC { ownEchoes += 1 }
            if f.etherType == 0x0806 && e.count >= 42 && e[e.startIndex + 21] == 1
                && Array(e[e.startIndex + 38..<e.startIndex + 42]) == fakeIP
            {
                arpRequests += 1
                XCTAssertEqual(Array(e[e.startIndex + 6..<e.startIndex + 12]), bInfo.mac)
                return [
                    Frames.arpReply(
                        senderMAC: fakeMAC, senderIP: fakeIP, targetMAC: bInfo.mac,
                        targetIP: Frames.ipv4("10.77.\(net).2"))
                ]
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
        let batch = (0..<200).map {
            Frames.udpBroadcast(
                srcMAC: fakeMAC, srcIP: fakeIP, dstIP: Frames.ipv4("10.77.\(net).255"), payload: 100, seq: UInt16($0))
        }
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
        addTeardownBlock {
            p1.close(); p2.close()
        }
        let sw = try EngineRunner([p1, p2])

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
        print(
            "first GSO frame: slots=\(g.slots) gso_size=\(g.gsoSize) hdr_len=\(g.hdrLen) csum=\(g.csumStart)+\(g.csumOffset); max slots/frame \(st.maxSlots)"
        )
        XCTAssertEqual(p1.counters["rx_drop_truncated"], 0)
        XCTAssertGreaterThan(p2.counters["tx_gso_frames"]!, 0, "GSO frames handed to the kernel with their header")
        report("p1", p1.counters)
        report("p2", p2.counters)
    }

    // MARK: AF_PACKET with 802.1Q and offload metadata, byte for byte

    /// Two packet-socket adapters on the two ends of one veth pair (no namespace needed: neither
    /// end has an address). Frames sent through one arrive at the other; the receive side of a
    /// veth moves an 802.1Q tag out of band (skb_vlan_untag), so the receiving adapter must put it
    /// back, and a GSO frame's metadata must survive with csum_start counting the tag.
    func testPacketSocketVLANAndOffloadMetadata() throws {
        let x = prefix + "x", y = prefix + "y"
        cleanupLink(x)
        try nl.createVeth(name: x, peer: y)
        try nl.setUp(x, true)
        try nl.setUp(y, true)
        let sender = try PacketSocketAdapter.attach(name: y)
        let receiver = try PacketSocketAdapter.attach(name: x)
        addTeardownBlock {
            sender.close(); receiver.close()
        }
        let rs = try RingPair(), rr = try RingPair()

        let dst: [UInt8] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55], src: [UInt8] = [0x02, 0x66, 0x77, 0x88, 0x99, 0xaa]
        let tag: [UInt8] = [0x81, 0x00, 0x60, 0x05]  // PCP 3, VID 5
        // A tagged ARP-sized frame.
        let small = dst + src + tag + [0x08, 0x06] + [UInt8](repeating: 0x11, count: 46)
        // A tagged TCP/IPv4 GSO frame: 4000 bytes of payload, gso_size 1400, partial checksum.
        let payload = (0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let ipLen = 20 + 20 + payload.count
        var ipHdr: [UInt8] = [
            0x45, 0, UInt8(ipLen >> 8), UInt8(ipLen & 0xFF), 0, 1, 0x40, 0, 64, 6, 0, 0,
            10, 83, 0, 1, 10, 83, 0, 2
        ]
        let c = Frames.checksum(ipHdr[...])
        ipHdr[10] = UInt8(c >> 8); ipHdr[11] = UInt8(c & 0xFF)
        let tcp: [UInt8] = [0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]
        let big = dst + src + tag + [0x08, 0x00] + ipHdr + tcp + payload
        let csumStart = UInt16(14 + 4 + 20)
        let vnet: [UInt8] = [
            VnetHeader.flagNeedsCsum, VnetHeader.gsoTCPv4, UInt8(csumStart + 20), 0, 0x78, 0x05,  // hdr_len, gso_size 1400
            UInt8(csumStart), 0, 16, 0, 0, 0
        ]

        XCTAssertEqual(rs.put([small]), 1)
        XCTAssertEqual(rs.put([vnet + big], vnet: true), 1)
        XCTAssertEqual(sender.transmit(from: rs.rx), 2)
        XCTAssertEqual(sender.counters["tx_gso_frames"], 1)

        var got: [RingFrame] = []
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline && got.filter({ Array($0.ethernet.prefix(12)) == dst + src }).count < 2 {
            _ = receiver.receive(into: rr.tx)
            got += rr.takeFrames()
            usleep(1000)
        }
        let mine = got.filter { Array($0.ethernet.prefix(12)) == dst + src }
        XCTAssertEqual(mine.count, 2, "both frames arrive")
        guard mine.count == 2 else { return }
        XCTAssertFalse(mine[0].hasVnet, "nothing to say: plain frame")
        XCTAssertEqual(Array(mine[0].ethernet), small, "tag restored, bytes identical")
        let g = mine[1]
        XCTAssertTrue(g.hasVnet)
        XCTAssertEqual(g.slots, (12 + big.count + 2047) / 2048)
        XCTAssertEqual(g.gsoType, VnetHeader.gsoTCPv4)
        XCTAssertEqual(g.gsoSize, 1400)
        XCTAssertEqual(g.csumStart, csumStart, "csum_start counts the restored tag")
        XCTAssertEqual(g.csumOffset, 16)
        XCTAssertEqual(Array(g.ethernet), big, "GSO frame identical across \(g.slots) slots")
        XCTAssertEqual(receiver.counters["rx_vlan_tag_restored"], 2)
        XCTAssertEqual(
            receiver.counters["rx_queued_frames"], 1,
            "the GSO frame (larger than a ring frame) was read whole from the socket's queue")
        print(
            "vlan+GSO: slots=\(g.slots) csum_start=\(g.csumStart) hdr_len=\(g.hdrLen) kernelCountsVlan=\(receiver.kernelCountsVlanInCsumStart)"
        )
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
        let sw = try EngineRunner([tap, p2])

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

    // MARK: MTU changes on a kernel port's interface take effect in the switch

    /// The engine re-reads the MTU of its kernel ports once a second: after `ip link set X mtu N`
    /// frames over N are dropped as too long toward that port, the others still pass.
    func testMTUChangeOnAnAttachedInterfaceIsEnforced() throws {
        let ns = prefix + "ns", x = prefix + "x", y = prefix + "y"
        try makeNamespace(ns)
        try vethIntoNamespace(outside: x, inside: y, ns: ns, cidr: "10.76.\(subnetByte()).2/24")
        let ps = try PacketSocketAdapter.attach(name: x)
        addTeardownBlock { ps.close() }
        let mem = try MemoryPort()
        let sw = try EngineRunner([ps, mem])
        func port0() -> PortState? { sw.engine.port(0) }
        sw.run(seconds: 0.2) { false }
        XCTAssertEqual(port0()?.mtu, 1500)

        try ip("link", "set", x, "mtu", "1000")
        sw.run(seconds: 3) { port0()?.mtu == 1000 }
        XCTAssertEqual(port0()?.mtu, 1000, "the new MTU is in force within a second or two")

        // Broadcasts from the in-memory port flood to the veth: IP packets of 1001 and 1000 bytes.
        let src: [UInt8] = [0x02, 0, 0, 0, 0, 0x31]
        func udp(ipBytes: Int) -> [UInt8] {
            Frames.udpBroadcast(srcMAC: src, srcIP: [10, 76, 0, 1], dstIP: [10, 76, 0, 255], payload: ipBytes - 28, seq: 1)
        }
        let before = try rxPackets(ns: ns, dev: y)
        mem.inject(udp(ipBytes: 1001))
        mem.inject(udp(ipBytes: 1000))
        sw.run(seconds: 3) { (port0()?.stats.dropTooLong ?? 0) + (port0()?.stats.rxPackets ?? 0) >= 2 }
        XCTAssertEqual(port0()?.stats.dropTooLong, 1, "1001 bytes over an MTU of 1000")
        XCTAssertEqual(port0()?.stats.rxPackets, 1, "1000 bytes pass")
        var after = before
        for _ in 0..<50 where after == before {
            usleep(20_000)
            after = try rxPackets(ns: ns, dev: y)
        }
        XCTAssertGreaterThanOrEqual(after - before, 1, "the peer received it")

        // Back to 1500: the larger packet passes again.
        try ip("link", "set", x, "mtu", "1500")
        sw.run(seconds: 3) { port0()?.mtu == 1500 }
        mem.inject(udp(ipBytes: 1001))
        sw.run(seconds: 3) { (port0()?.stats.rxPackets ?? 0) >= 2 }
        XCTAssertEqual(port0()?.stats.rxPackets, 2)
        XCTAssertEqual(port0()?.stats.dropTooLong, 1)

        // A TAP reads its MTU the same way.
        let t = prefix + "t"
        cleanupLink(t)
        let tap = try TapAdapter.create(name: t)
        addTeardownBlock { tap.close() }
        XCTAssertEqual(tap.currentMTU(), 1500)
        try ip("link", "set", t, "mtu", "1300")
        XCTAssertEqual(tap.currentMTU(), 1300)
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

    func testLinkRemovalIsNoticed() throws {
        let t = prefix + "g", x = prefix + "x", y = prefix + "y"
        cleanupLink(t)
        cleanupLink(x)
        let tap = try TapAdapter.create(name: t)
        addTeardownBlock { tap.close() }
        try nl.createVeth(name: x, peer: y)
        try nl.setUp(x, true)
        try nl.setUp(y, true)
        let ps = try PacketSocketAdapter.attach(name: x)
        addTeardownBlock { ps.close() }
        let watcher = try LinkWatcher()
        let rt = try RingPair(), rp = try RingPair()
        let frame = Frames.udpBroadcast(
            srcMAC: [2, 0, 0, 0, 0, 1], srcIP: [10, 0, 0, 1], dstIP: [10, 0, 0, 255], payload: 20, seq: 1)

        try ip("link", "del", t)
        try ip("link", "del", x)

        XCTAssertEqual(tap.receive(into: rt.tx), 0)
        XCTAssertTrue(tap.linkGone, "read on a deleted TAP fails with EBADFD")
        rt.put([frame, frame])
        XCTAssertEqual(tap.transmit(from: rt.rx), 0)
        XCTAssertEqual(rt.rxPending, 0, "frames for a vanished TAP are released, not stuck")
        XCTAssertEqual(tap.counters["tx_drop_link_down"], 2)

        var pfd = pollfd(fd: ps.pollFD, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&pfd, 1, 100), 1)
        XCTAssertNotEqual(Int32(pfd.revents) & Int32(POLLERR), 0, "the packet socket reports the loss")
        XCTAssertEqual(ps.takeError(), ENETDOWN)
        rp.put([frame])
        XCTAssertEqual(ps.transmit(from: rp.rx), 0)
        XCTAssertEqual(rp.rxPending, 0)
        XCTAssertEqual(ps.counters["tx_drop_link_down"], 1)

        var events: [LinkEvent] = []
        var wfd = pollfd(fd: watcher.fd, events: Int16(POLLIN), revents: 0)
        for _ in 0..<20
        where
            !(events.contains(.removed(ifindex: tap.ifindex, name: t)) && events.contains(.removed(ifindex: ps.ifindex, name: x)))
        {
            _ = poll(&wfd, 1, 50)
            events += watcher.drainEvents()
        }
        XCTAssertTrue(events.contains(.removed(ifindex: tap.ifindex, name: t)), "\(events)")
        XCTAssertTrue(events.contains(.removed(ifindex: ps.ifindex, name: x)), "\(events)")
    }

    /// Measurement, not a benchmark: 60-byte frames through sender adapter -> veth -> receiver
    /// adapter for one second, batches of 64. Prints rates and frames per system call.
    func testPacketSocketSmallFrameRate() throws {
        let x = prefix + "x", y = prefix + "y"
        cleanupLink(x)
        try nl.createVeth(name: x, peer: y)
        try nl.setUp(x, true)
        try nl.setUp(y, true)
        let sender = try PacketSocketAdapter.attach(name: y)
        let receiver = try PacketSocketAdapter.attach(name: x, frameSize: 2048, frameCount: 1024)
        addTeardownBlock {
            sender.close(); receiver.close()
        }
        let rs = try RingPair(), rr = try RingPair()
        let frame = Frames.udpBroadcast(
            srcMAC: [2, 0, 0, 0, 0, 1], srcIP: [10, 0, 0, 1], dstIP: [10, 0, 0, 255], payload: 18, seq: 1)
        XCTAssertEqual(frame.count, 60)
        let batch = [[UInt8]](repeating: frame, count: 64)
        // Fill the rx ring once; afterwards only re-publish the same slots (the switch's cost is not measured).
        var sent = 0, received = 0
        let start = Date()
        while Date().timeIntervalSince(start) < 1.0 {
            if rs.rxPending == 0 { rs.put(batch) }
            sent += sender.transmit(from: rs.rx)
            received += receiver.receive(into: rr.tx)
            let k = rr.txK.pendingTx()
            rr.txK.consumeTx(k, available: rr.txK.n - 1)
        }
        let dt = Date().timeIntervalSince(start)
        let sc = sender.counters, rc = receiver.counters
        print(
            String(
                format:
                    "60-byte frames: sent %.0f kpps in %.0f sendmmsg (%.1f frames/syscall); received %.0f kpps, 0 syscalls; kernel ring drops %d",
                Double(sent) / dt / 1000, Double(sc["tx_syscalls"]!), Double(sent) / Double(max(sc["tx_syscalls"]!, 1)),
                Double(received) / dt / 1000, Int(rc["kernel_ring_drops"]!)))
        XCTAssertGreaterThan(received, 1000)
    }

    // MARK: helpers

    func iperf(_ sw: EngineRunner, client: String, server: String, serverIP: String, reverse: Bool, label: String) throws {
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
            let bps = recv["bits_per_second"] as? Double
        {
            print(String(format: "iperf3 %@: %.2f Gbit/s", label, bps / 1e9))
            XCTAssertGreaterThan(bps, 1e6)
        } else {
            XCTFail("iperf3 \(label) gave no result: \(out.suffix(1000))")
        }
        srv.stop()
    }

    func report(_ name: String, _ c: [String: UInt64]) {
        let rxF = Double(c["rx_frames"] ?? 0), rxS = Double(c["rx_syscalls"] ?? 0)
        let txF = Double(c["tx_frames"] ?? 0), txS = Double(max(c["tx_syscalls"] ?? 0, 1))
        print(
            String(
                format:
                    "%@: rx %.0f frames (%.0f GSO) / %.0f syscalls; tx %.0f frames (%.0f GSO) / %.0f syscalls = %.2f frames/syscall",
                name, rxF, Double(c["rx_gso_frames"] ?? 0), rxS, txF, Double(c["tx_gso_frames"] ?? 0), txS, txF / txS))
        print("  \(name) counters:", c.filter { $0.value != 0 }.sorted { $0.key < $1.key })
    }
}
