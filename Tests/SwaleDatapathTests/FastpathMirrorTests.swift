// The forwarding engine's mirror of its learning table into the kernel fast path's maps
// (SwaleDatapath/Fastpath.swift), against an in-memory stand-in for the maps: what is written and
// deleted on learn, move, flush, aging and port removal, which ports are on, how aging reads back
// the program's timestamps, and how the counters are merged. The kernel side is exercised for real
// by SwaleIntegrationTests/FastpathTests.
import SwaleDatapath
import SwaleRings
import XCTest

/// The maps as a program would see them.
final class FakeFastpathMaps: FastpathMaps {
    var fdb: [UInt64: (ifindex: Int32, seen: UInt64)] = [:]
    var ports: [Int32: (slot: Int, flags: UInt32)] = [:]
    var counterSlots: [Int: FastpathCounters] = [:]
    var writes = 0

    func setEntry(address: UInt64, ifindex: Int32) { fdb[address] = (ifindex, 0); writes += 1 }
    func removeEntry(address: UInt64) { fdb[address] = nil; writes += 1 }
    func removeAllEntries() { fdb = [:]; writes += 1 }
    func lastSeen(address: UInt64) -> UInt64? { fdb[address]?.seen }
    func setPort(ifindex: Int32, slot: Int, flags: UInt32) { ports[ifindex] = (slot, flags) }
    func removePort(ifindex: Int32) { ports[ifindex] = nil }
    func counters(slot: Int) -> FastpathCounters { counterSlots[slot] ?? FastpathCounters() }
    func resetCounters(slot: Int) { counterSlots[slot] = nil }

    func port(of mac: [UInt8]) -> Int32? { fdb[FastpathMirrorTests.address(mac)]?.ifindex }
    func isOn(_ ifindex: Int32) -> Bool { (ports[ifindex]?.flags ?? 0) & ForwardingEngine.fastpathOn != 0 }
}

final class FastpathMirrorTests: XCTestCase {
    typealias F = ForwardingEngineTests

    static func address(_ mac: [UInt8]) -> UInt64 { mac.reduce(0) { $0 << 8 | UInt64($1) } }

    /// Ports 0 and 1 are kernel ports on the fast path (ifindex 100, 101; 101's peer elsewhere);
    /// port 2 is not attached to it (an application port, say).
    func makeEngine() throws -> (ForwardingEngine, [MemoryPort], FakeFastpathMaps) {
        let (e, p) = try F.makeEngine(3)
        let maps = FakeFastpathMaps()
        e.setFastpath(maps)
        e.attachFastpath(port: 0, ifindex: 100, peer: false)
        e.attachFastpath(port: 1, ifindex: 101, peer: true)
        return (e, p, maps)
    }

    func testLearnedAddressesOnFastpathPortsAreMirroredAndMovesFollow() throws {
        let (e, p, maps) = try makeEngine()
        XCTAssertTrue(maps.isOn(100) && maps.isOn(101))
        XCTAssertEqual(maps.ports[101]?.flags, ForwardingEngine.fastpathOn | ForwardingEngine.fastpathPeer)
        XCTAssertEqual(maps.ports[100]?.slot, 0)
        XCTAssertNil(maps.ports[0], "port 2 is not attached")

        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1)))
        p[1].inject(F.frame(to: F.mac(1), from: F.mac(2)))
        p[2].inject(F.frame(to: F.mac(1), from: F.mac(3)))
        F.run(e)
        XCTAssertEqual(maps.port(of: F.mac(1)), 100)
        XCTAssertEqual(maps.port(of: F.mac(2)), 101)
        XCTAssertNil(maps.port(of: F.mac(3)), "an address on a port without the fast path is not mirrored")

        // A move to another fast-path port rewrites the entry; a move to port 2 deletes it.
        p[1].inject(F.frame(to: F.mac(2), from: F.mac(1)))
        F.run(e)
        XCTAssertEqual(maps.port(of: F.mac(1)), 101)
        p[2].inject(F.frame(to: F.mac(2), from: F.mac(1)))
        F.run(e)
        XCTAssertNil(maps.port(of: F.mac(1)))

        // Refreshing a known source on the same port writes nothing.
        let writes = maps.writes
        for _ in 0..<10 { p[1].inject(F.frame(to: F.mac(3), from: F.mac(2))) }
        F.run(e)
        XCTAssertEqual(maps.writes, writes, "no map write per frame")
    }

    func testFlushStaticEntriesAndPortRemovalReachTheMaps() throws {
        let (e, p, maps) = try makeEngine()
        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1)))
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(2)))
        F.run(e)
        XCTAssertEqual(maps.fdb.count, 2)
        e.table.flush()
        e.syncFastpath()
        XCTAssertTrue(maps.fdb.isEmpty, "fdb flush empties the mirror")

        XCTAssertTrue(e.table.addStatic(FastpathMirrorTests.address(F.mac(9)), port: 1, now: 1))
        e.syncFastpath()
        XCTAssertEqual(maps.port(of: F.mac(9)), 101, "static entries are mirrored too")
        XCTAssertTrue(e.table.removeStatic(FastpathMirrorTests.address(F.mac(9))))
        e.syncFastpath()
        XCTAssertNil(maps.port(of: F.mac(9)))

        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1)))
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(2)))
        F.run(e)
        maps.counterSlots[1] = FastpathCounters(txPackets: 5, txBytes: 500, rxPackets: 7, rxBytes: 700)
        let before = try XCTUnwrap(e.port(1)?.stats)
        let merged = try XCTUnwrap(e.portStatsWithFastpath(1))
        XCTAssertEqual(merged.txPackets, before.txPackets + 5)
        XCTAssertEqual(merged.rxBytes, before.rxBytes + 700)
        let final = try XCTUnwrap(e.removePort(1))
        XCTAssertEqual(final.txPackets, before.txPackets + 5, "a removed port keeps what the fast path moved")
        XCTAssertEqual(final.rxPackets, before.rxPackets + 7)
        XCTAssertNil(maps.ports[101], "the removed port is off the port map")
        XCTAssertNil(maps.port(of: F.mac(2)), "and its addresses are gone")
        XCTAssertEqual(maps.port(of: F.mac(1)), 100, "the other port's stay")
    }

    func testWatchedIsolatedAndVlanFilteredPortsLeaveTheFastPath() throws {
        let (e, _, maps) = try makeEngine()
        let mon = try MonitorTests.Monitor()
        let m = try XCTUnwrap(
            e.addMonitor(pool: mon.pool, layout: mon.layout, kickFD: -1, notifyFD: -1, of: 0, rx: true, tx: true))
        XCTAssertFalse(maps.isOn(100), "a watched port's frames must cross the switch")
        XCTAssertTrue(maps.isOn(101))
        XCTAssertFalse(e.fastpathActive(port: 0))
        e.removePort(m)
        XCTAssertTrue(maps.isOn(100), "back on once nobody watches")

        e.setPortRules(port: 1, isolated: true, locked: false, maxMacs: 0)
        XCTAssertFalse(maps.isOn(101))
        e.setPortRules(port: 1, isolated: false, locked: false, maxMacs: 0, horizon: 3)
        XCTAssertFalse(maps.isOn(101))
        e.setPortRules(port: 1, isolated: false, locked: true, maxMacs: 0)
        XCTAssertFalse(maps.isOn(101))
        e.setPortRules(port: 1, isolated: false, locked: false, maxMacs: 0)
        XCTAssertTrue(maps.isOn(101))

        e.vlanFiltering = true
        XCTAssertFalse(maps.isOn(100) || maps.isOn(101), "the program knows no VLANs")
        e.vlanFiltering = false
        XCTAssertTrue(maps.isOn(100) && maps.isOn(101))
    }

    func testSourcesTheKernelForwardedDoNotAgeOut() throws {
        let (e, p, maps) = try makeEngine()
        e.table.agingSeconds = 10
        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1)))
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(2)))
        F.run(e, now: 1)
        // mac 1 keeps sending through the kernel (the program stamps seen_ns); mac 2 goes quiet.
        for t in stride(from: UInt32(2), through: 30, by: 1) {
            maps.fdb[FastpathMirrorTests.address(F.mac(1))]?.seen = UInt64(t) * 1_000_000_000
            _ = e.pass(now: t)
        }
        XCTAssertEqual(e.table.lookup(FastpathMirrorTests.address(F.mac(1)), now: 30), 0, "refreshed from the kernel's stamps")
        XCTAssertEqual(e.table.lookup(FastpathMirrorTests.address(F.mac(2)), now: 30), LearningTable.none, "aged out")
        e.table.expire(now: 30)
        e.syncFastpath()
        XCTAssertNotNil(maps.port(of: F.mac(1)))
        XCTAssertNil(maps.port(of: F.mac(2)), "an aged entry leaves the kernel too")
    }

    func testTooManyChangesRebuildTheMirrorFromTheTable() throws {
        let (e, p, maps) = try makeEngine()
        e.setFastpath(nil)
        let big = try ForwardingEngine(
            config: {
                var c = EngineConfig(); c.fdbCapacity = 8192; return c
            }())
        _ = p
        let port = try MemoryPort()
        XCTAssertEqual(big.addPort(pool: port.pool, layout: port.layout, kickFD: -1, notifyFD: -1, backend: port), 0)
        big.setFastpath(maps)
        big.attachFastpath(port: 0, ifindex: 200, peer: false)
        let n = LearningTable.changeCapacity + 500
        let now = ForwardingEngine.now()  // no pass yet: the engine's clock is the monotonic one
        for k in 0..<n { big.table.learn(0x0200_0000_0000 | UInt64(k), port: 0, now: now) }
        XCTAssertTrue(big.table.changesOverflowed)
        big.syncFastpath()
        XCTAssertEqual(maps.fdb.count, n, "every live entry mirrored after an overflow")
        XCTAssertTrue(maps.fdb.values.allSatisfy { $0.ifindex == 200 })
    }
}
