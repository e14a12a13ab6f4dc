// The bridge rules frame by frame through the engine over in-memory ports: reserved groups, bad
// sources, static entries, MAC limits, locked and isolated ports, 802.1Q VLANs (access and trunk
// ports, tags pushed/popped/rewritten, also with a virtio-net header and across slots).
import SwaleDatapath
import SwaleRings
import XCTest

final class BridgeRulesTests: XCTestCase {
    typealias F = ForwardingEngineTests

    func engine(_ n: Int, configure: (Int, MemoryPort) -> Void = { _, _ in }) throws -> (ForwardingEngine, [MemoryPort]) {
        try F.makeEngine(n, configure: configure)
    }
    func run(_ e: ForwardingEngine, now: UInt32 = 1) { F.run(e, now: now) }

    /// An 802.1Q-tagged frame: the tag (0x8100, pcp/vid) after the source MAC.
    static func tagged(_ f: [UInt8], vid: UInt16, pcp: UInt8 = 0) -> [UInt8] {
        let tci = UInt16(pcp) << 13 | vid
        return Array(f[0..<12]) + [0x81, 0x00, UInt8(tci >> 8), UInt8(tci & 0xff)] + Array(f[12...])
    }
    static func value(_ m: [UInt8]) -> UInt64 { m.reduce(0) { $0 << 8 | UInt64($1) } }

    // MARK: reserved groups, bad sources

    func testReservedGroupsAreNotForwardedUnlessTheMaskSaysSo() throws {
        let (e, p) = try engine(3)
        let stp = F.frame(to: [0x01, 0x80, 0xc2, 0, 0, 0x00], from: F.mac(1), seed: 1)
        let eapol = F.frame(to: [0x01, 0x80, 0xc2, 0, 0, 0x03], from: F.mac(1), seed: 2)
        let lldp = F.frame(to: [0x01, 0x80, 0xc2, 0, 0, 0x0e], from: F.mac(1), seed: 3)
        let pause = F.frame(to: [0x01, 0x80, 0xc2, 0, 0, 0x01], from: F.mac(1), seed: 4)
        let notReserved = F.frame(to: [0x01, 0x80, 0xc2, 0, 0, 0x10], from: F.mac(1), seed: 5)
        p[0].inject([stp, eapol, lldp, pause, notReserved].map { MemoryPort.Frame($0) })
        run(e)
        XCTAssertEqual(p[1].received.map(\.bytes), [stp, notReserved], "STP forwarded (no STP runs), link-local groups not")
        XCTAssertEqual(e.port(0)?.stats.dropReserved, 3)
        XCTAssertEqual(e.table.lookup(Self.value(F.mac(1)), now: 1), 0, "the sender is still learned")

        e.groupForwardMask = 0x4008
        p[0].inject([eapol, lldp, pause].map { MemoryPort.Frame($0) })
        run(e)
        XCTAssertEqual(p[1].received.map(\.bytes).suffix(2), [eapol, lldp], "802.1X and LLDP now forwarded, pause never")
        XCTAssertEqual(e.port(0)?.stats.dropReserved, 4)
    }

    func testBadSourcesAreDroppedAndNeverLearned() throws {
        let (e, p) = try engine(2)
        for src in [[0x01, 0x00, 0x5e, 0, 0, 1], F.broadcast, [0, 0, 0, 0, 0, 0]] as [[UInt8]] {
            p[0].inject(F.frame(to: F.broadcast, from: src))
            p[0].inject(F.frame(to: F.mac(2), from: src))
        }
        run(e)
        XCTAssertEqual(p[1].received, [])
        XCTAssertEqual(e.port(0)?.stats.dropBadSource, 6)
        XCTAssertEqual(e.table.count, 0)
        XCTAssertEqual(e.port(0)?.stats.txPackets, 0, "refused frames are not counted as taken")
    }

    // MARK: static entries, limits, locked, isolated

    func testStaticEntriesAreNeitherMovedNorAgedNorFlushed() throws {
        let (e, p) = try engine(3)
        let station = Self.value(F.mac(7))
        XCTAssertTrue(e.table.addStatic(station, port: 0, now: 1))
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(7)))  // someone claiming the address on port 1
        run(e)
        XCTAssertEqual(p[0].received, [])
        XCTAssertEqual(p[2].received, [])
        XCTAssertEqual(e.port(1)?.stats.dropStaticMove, 1)
        XCTAssertEqual(e.table.lookup(station, now: 1), 0)
        // Frames to it go to port 0 even after the aging time, an fdb flush and an expire sweep.
        e.table.expire(now: 100_000)
        e.table.flush()
        p[2].inject(F.frame(to: F.mac(7), from: F.mac(3)))
        run(e, now: 100_000)
        XCTAssertEqual(p[0].received.count, 1)
        XCTAssertEqual(p[1].received.count, 0)
        XCTAssertEqual(e.table.entries(now: 100_000).first { $0.mac == station }?.isStatic, true)
        // From its own port it passes (and is not turned into a dynamic entry).
        p[0].inject(F.frame(to: F.mac(3), from: F.mac(7)))
        run(e, now: 100_000)
        XCTAssertEqual(p[2].received.count, 1)
        XCTAssertEqual(e.table.staticPort(station), 0)
        XCTAssertTrue(e.table.removeStatic(station))
        XCTAssertEqual(e.table.lookup(station, now: 100_000), LearningTable.none)
    }

    func testMacLimitRefusesNewSourcesBeyondIt() throws {
        let (e, p) = try engine(2)
        e.setPortRules(port: 0, isolated: false, locked: false, maxMacs: 2)
        for i in 1...4 { p[0].inject(F.frame(to: F.broadcast, from: F.mac(UInt8(i)), seed: i)) }
        run(e)
        XCTAssertEqual(p[1].received.count, 2)
        XCTAssertEqual(e.port(0)?.stats.dropMacLimit, 2)
        XCTAssertEqual(e.table.entryCount(port: 0), 2)
        // A known source keeps sending; once an entry ages out there is room for a new one.
        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1)))
        run(e, now: 2)
        XCTAssertEqual(p[1].received.count, 3)
        e.table.agingSeconds = 10
        e.table.expire(now: 11)  // mac 2 (seen at 1) expires, mac 1 (seen at 2) stays
        p[0].inject(F.frame(to: F.broadcast, from: F.mac(4)))
        run(e, now: 11)
        XCTAssertEqual(p[1].received.count, 4)
        XCTAssertEqual(e.table.entryCount(port: 0), 2)
    }

    func testLockedPortAdmitsOnlyStaticSources() throws {
        let (e, p) = try engine(2)
        e.setPortRules(port: 1, isolated: false, locked: true, maxMacs: 0)
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(5)))
        run(e)
        XCTAssertEqual(p[0].received, [])
        XCTAssertEqual(e.port(1)?.stats.dropLocked, 1)
        XCTAssertEqual(e.table.count, 0, "nothing learned on a locked port")
        e.table.addStatic(Self.value(F.mac(5)), port: 1, now: 1)
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(5)))
        e.table.addStatic(Self.value(F.mac(6)), port: 0, now: 1)
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(6)))  // static, but on another port
        run(e)
        XCTAssertEqual(p[0].received.count, 1)
        XCTAssertEqual(e.port(1)?.stats.dropLocked, 2)
    }

    func testIsolatedPortsReachOnlyNonIsolatedOnes() throws {
        let (e, p) = try engine(3)
        e.setPortRules(port: 0, isolated: true, locked: false, maxMacs: 0)
        e.setPortRules(port: 1, isolated: true, locked: false, maxMacs: 0)
        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1)))
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(2)))
        run(e)
        XCTAssertEqual(p[0].received.count, 0)
        XCTAssertEqual(p[1].received.count, 0)
        XCTAssertEqual(p[2].received.count, 2)
        p[2].inject(F.frame(to: F.broadcast, from: F.mac(3)))
        run(e)
        XCTAssertEqual(p[0].received.count, 1)
        XCTAssertEqual(p[1].received.count, 1)
        p[0].inject(F.frame(to: F.mac(2), from: F.mac(1)))  // known unicast, isolated to isolated
        p[0].inject(F.frame(to: F.mac(3), from: F.mac(1)))
        run(e)
        XCTAssertEqual(p[1].received.count, 1)
        XCTAssertEqual(p[2].received.count, 3)
        XCTAssertEqual(e.port(0)?.stats.dropIsolated, 1)
    }

    // MARK: VLANs

    /// 0: access 10, 1: access 20, 2: trunk 10+20 tagged, 3: access 10.
    func vlanBridge(configure: (Int, MemoryPort) -> Void = { _, _ in }) throws -> (ForwardingEngine, [MemoryPort]) {
        let (e, p) = try engine(4, configure: configure)
        e.vlanFiltering = true
        e.setVlans(port: 0, [(10, true)], pvid: 10)
        e.setVlans(port: 1, [(20, true)], pvid: 20)
        e.setVlans(port: 2, [(10, false), (20, false)], pvid: 0)
        e.setVlans(port: 3, [(10, true)], pvid: 10)
        return (e, p)
    }

    func testAccessAndTrunkPortsTagAndUntagAtTheEdge() throws {
        let (e, p) = try vlanBridge()
        let b = F.frame(to: F.broadcast, from: F.mac(1), seed: 1)
        p[0].inject(b)
        run(e)
        XCTAssertEqual(p[3].received.map(\.bytes), [b], "same access VLAN: as it was")
        XCTAssertEqual(p[2].received.map(\.bytes), [Self.tagged(b, vid: 10)], "trunk: tagged 10")
        XCTAssertEqual(p[1].received, [], "other VLAN: nothing")

        let t20 = Self.tagged(F.frame(to: F.broadcast, from: F.mac(9), seed: 2), vid: 20, pcp: 5)
        p[2].inject(t20)
        run(e)
        XCTAssertEqual(p[1].received.map(\.bytes), [F.frame(to: F.broadcast, from: F.mac(9), seed: 2)], "tag popped")
        XCTAssertEqual(p[0].received.count, 0, "\(p[0].received)")
        XCTAssertEqual(p[3].received.count, 1)

        p[2].inject(Self.tagged(F.frame(to: F.broadcast, from: F.mac(9)), vid: 30))  // not a member
        p[2].inject(F.frame(to: F.broadcast, from: F.mac(9)))  // untagged on a trunk without PVID
        p[0].inject(Self.tagged(F.frame(to: F.broadcast, from: F.mac(1)), vid: 20))  // access port, foreign VLAN
        run(e)
        XCTAssertEqual(e.port(2)?.stats.dropVlan, 2)
        XCTAssertEqual(e.port(0)?.stats.dropVlan, 1)
        XCTAssertEqual(p[1].received.count, 1)
    }

    func testLearningIsPerVlanAndUnicastStaysInItsVlan() throws {
        let (e, p) = try vlanBridge()
        // The same MAC behind the trunk in VLAN 10 and VLAN 20: two entries.
        p[2].inject(Self.tagged(F.frame(to: F.broadcast, from: F.mac(9)), vid: 10))
        p[2].inject(Self.tagged(F.frame(to: F.broadcast, from: F.mac(9)), vid: 20))
        p[3].inject(F.frame(to: F.broadcast, from: F.mac(4)))
        run(e)
        let entries = e.table.entries(now: 1)
        XCTAssertEqual(entries.filter { $0.mac == Self.value(F.mac(9)) }.map(\.vlan), [10, 20])
        XCTAssertEqual(e.table.lookup(Self.value(F.mac(9)), vlan: 10, now: 1), 2)
        XCTAssertEqual(e.table.lookup(Self.value(F.mac(9)), now: 1), LearningTable.none, "nothing in VLAN 0")
        let before = p.map(\.received.count)
        let u = F.frame(to: F.mac(4), from: F.mac(1), seed: 7)
        p[0].inject(u)
        run(e)
        XCTAssertEqual(p[3].received.last?.bytes, u, "known unicast in VLAN 10")
        XCTAssertEqual(p.map(\.received.count), [before[0], before[1], before[2], before[3] + 1])
        // A unicast to a MAC known only in VLAN 10, sent in VLAN 20 (from port 1): flooded in 20 only.
        p[1].inject(F.frame(to: F.mac(4), from: F.mac(2)))
        run(e)
        XCTAssertEqual(p[3].received.count, before[3] + 1)
        XCTAssertEqual(p[2].received.last?.bytes, Self.tagged(F.frame(to: F.mac(4), from: F.mac(2)), vid: 20))
    }

    func testPriorityTagsTakeThePvidAndKeepTheirPriority() throws {
        let (e, p) = try vlanBridge()
        let f = F.frame(to: F.broadcast, from: F.mac(1), seed: 3)
        p[0].inject(Self.tagged(f, vid: 0, pcp: 6))
        run(e)
        XCTAssertEqual(p[2].received.map(\.bytes), [Self.tagged(f, vid: 10, pcp: 6)], "VID written in, priority kept")
        XCTAssertEqual(p[3].received.map(\.bytes), [f], "untagged on the access port")
    }

    func testFilteringOffCarriesTagsUntouchedAndFullSizeTaggedFramesFitTheMtu() throws {
        let (e, p) = try engine(2)
        let t = Self.tagged(F.frame(to: F.broadcast, from: F.mac(1), length: 1514), vid: 77)  // 1518 bytes
        p[0].inject(t)
        run(e)
        XCTAssertEqual(p[1].received.map(\.bytes), [t])
        XCTAssertEqual(e.port(1)?.stats.dropTooLong, 0)
    }

    func testRetaggingAcrossSlotsAndWithAVirtioHeader() throws {
        // Small buffers: a 3000-byte frame spans slots; the trunk gets it tagged, whole.
        let (e, p) = try vlanBridge { _, port in port.mtu = 9000 }
        let jumbo = F.frame(to: F.broadcast, from: F.mac(1), length: 3000, seed: 9)
        p[0].inject(jumbo)
        run(e)
        XCTAssertEqual(p[2].received.map(\.bytes), [Self.tagged(jumbo, vid: 10)])
        XCTAssertEqual(p[3].received.map(\.bytes), [jumbo])

        // A checksum-partial frame with a virtio-net header from the trunk to an access port that
        // takes the header: tag popped, csum_start moved back 4 bytes.
        var ip = F.frame(to: F.mac(1), from: F.mac(8), length: 100, seed: 4)
        ip[12] = 0x08; ip[13] = 0x00
        let hdr: [UInt8] = [VnetHeader.flagNeedsCsum, 0, 0, 0, 0, 0, 38, 0, 16, 0, 0, 0]  // csum_start 38 (tagged)
        p[2].inject(hdr + Self.tagged(ip, vid: 10), vnet: true)
        run(e)
        let got = try XCTUnwrap(p[0].received.last)
        XCTAssertTrue(got.vnet)
        XCTAssertEqual(Array(got.ethernet), ip)
        XCTAssertEqual(got.bytes[6], 34, "csum_start follows the frame")
    }

    func testVlansAreResetForANewPortAndListed() throws {
        let (e, _) = try engine(2)
        XCTAssertEqual(e.vlans(port: 1).pvid, 1)
        XCTAssertEqual(e.vlans(port: 1).vlans.map(\.vid), [1])
        e.setVlans(port: 1, [(5, false), (4094, true), (0, true), (4095, true)], pvid: 4095)
        let v = e.vlans(port: 1)
        XCTAssertEqual(v.vlans.map(\.vid), [5, 4094], "0 and 4095 are not VLANs")
        XCTAssertEqual(v.vlans.map(\.untagged), [false, true])
        XCTAssertEqual(v.pvid, 0)
    }
}
