// Split-horizon groups through the engine over in-memory ports: floods skip ports of the source's
// group, known unicast between them is dropped and counted, other groups and group 0 pass, and the
// rule combines with VLAN filtering.
import SwaleDatapath
import SwaleRings
import XCTest

final class HorizonTests: XCTestCase {
    typealias F = ForwardingEngineTests

    func run(_ e: ForwardingEngine, now: UInt32 = 1) { _ = F.run(e, now: now) }

    /// Ports 0 and 1 are "tunnels" in group 7, port 2 a local port (no group), port 3 in group 9.
    func mesh() throws -> (ForwardingEngine, [MemoryPort]) {
        let (e, p) = try F.makeEngine(4)
        e.setPortRules(port: 0, isolated: false, locked: false, maxMacs: 0, horizon: 7)
        e.setPortRules(port: 1, isolated: false, locked: false, maxMacs: 0, horizon: 7)
        e.setPortRules(port: 3, isolated: false, locked: false, maxMacs: 0, horizon: 9)
        return (e, p)
    }

    func testFloodSkipsPortsOfTheSameGroup() throws {
        let (e, p) = try mesh()
        let b = F.frame(to: F.broadcast, from: F.mac(1), seed: 1)
        p[0].inject(b)
        run(e)
        XCTAssertEqual(p[1].received.count, 0, "same group: no copy back out over another tunnel")
        XCTAssertEqual(p[2].received.map(\.bytes), [b], "a port without a group gets it")
        XCTAssertEqual(p[3].received.map(\.bytes), [b], "another group gets it")
        XCTAssertEqual(e.port(0)?.stats.dropHorizon, 0, "a flood that skips a port is not a drop")
        // From the local port a flood reaches both tunnels (the group limits only its own members).
        let c = F.frame(to: F.broadcast, from: F.mac(3), seed: 2)
        p[2].inject(c)
        run(e)
        XCTAssertEqual(p[0].received.map(\.bytes), [c])
        XCTAssertEqual(p[1].received.map(\.bytes), [c])
    }

    func testKnownUnicastBetweenSameGroupIsDroppedAndCounted() throws {
        let (e, p) = try mesh()
        // Port 1 learns MAC 2, port 3 learns MAC 4, port 2 learns MAC 3.
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(2)))
        p[3].inject(F.frame(to: F.broadcast, from: F.mac(4)))
        p[2].inject(F.frame(to: F.broadcast, from: F.mac(3)))
        run(e)
        p.forEach { $0.received.removeAll() }
        p[0].inject(F.frame(to: F.mac(2), from: F.mac(1), seed: 1))  // to port 1: same group
        p[0].inject(F.frame(to: F.mac(4), from: F.mac(1), seed: 2))  // to port 3: group 9
        p[0].inject(F.frame(to: F.mac(3), from: F.mac(1), seed: 3))  // to port 2: no group
        run(e)
        XCTAssertEqual(p[1].received.count, 0)
        XCTAssertEqual(e.port(0)?.stats.dropHorizon, 1)
        XCTAssertEqual(p[3].received.count, 1, "different groups pass")
        XCTAssertEqual(p[2].received.count, 1, "group 0 passes")
        XCTAssertEqual(e.port(0)?.stats.txPackets, 2, "the refused frame is not counted as taken")
    }

    func testGroupZeroIsNoGroup() throws {
        let (e, p) = try F.makeEngine(3)
        e.setPortRules(port: 0, isolated: false, locked: false, maxMacs: 0, horizon: 0)
        e.setPortRules(port: 1, isolated: false, locked: false, maxMacs: 0, horizon: 0)
        p[1].inject(F.frame(to: F.broadcast, from: F.mac(2)))
        run(e)
        p[0].inject(F.frame(to: F.mac(2), from: F.mac(1)))
        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1)))
        run(e)
        XCTAssertEqual(p[1].received.count, 2)
        XCTAssertEqual(e.port(0)?.stats.dropHorizon, 0)
        // Setting a group and clearing it again restores forwarding between the two.
        e.setPortRules(port: 0, isolated: false, locked: false, maxMacs: 0, horizon: 5)
        e.setPortRules(port: 1, isolated: false, locked: false, maxMacs: 0, horizon: 5)
        p[0].inject(F.frame(to: F.mac(2), from: F.mac(1), seed: 9))
        run(e)
        XCTAssertEqual(p[1].received.count, 2)
        XCTAssertEqual(e.port(0)?.stats.dropHorizon, 1)
        e.setPortRules(port: 1, isolated: false, locked: false, maxMacs: 0, horizon: 0)
        p[0].inject(F.frame(to: F.mac(2), from: F.mac(1), seed: 10))
        run(e)
        XCTAssertEqual(p[1].received.count, 3)
    }

    func testHorizonWithVlanFiltering() throws {
        let (e, p) = try mesh()
        e.vlanFiltering = true
        let b = F.frame(to: F.broadcast, from: F.mac(1), seed: 4)
        p[0].inject(b)
        run(e)
        XCTAssertEqual(p[1].received.count, 0)
        XCTAssertEqual(p[2].received.map(\.bytes), [b])
        XCTAssertEqual(p[3].received.map(\.bytes), [b])
    }

    func testANewPortAtAReusedIndexHasNoGroup() throws {
        let (e, p) = try mesh()
        e.removePort(1)
        let q = try MemoryPort(slots: 256)
        XCTAssertEqual(e.addPort(pool: q.pool, layout: q.layout, kickFD: -1, notifyFD: -1, backend: q), 1)
        XCTAssertEqual(e.port(1)?.horizon, 0)
        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1)))
        run(e)
        XCTAssertEqual(q.received.count, 1)
    }
}
