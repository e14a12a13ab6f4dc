// Monitor ports in the engine: copies of what a port is sent (/r), sends (/t), or both; never
// forwarding, never flooded; a full monitor loses copies (counted), the switched traffic nothing.
import SwaleDatapath
import SwaleRings
import XCTest

final class MonitorTests: XCTestCase {
    typealias F = ForwardingEngineTests

    /// A monitor is an application-style port: the tests read its rx ring.
    typealias Monitor = AppRings

    func testMonitorsGetCopiesOfWhatTheyWatch() throws {
        let (e, p) = try F.makeEngine(3)
        let r1 = try Monitor(), t0 = try Monitor(), rt1 = try Monitor()
        let i1 = e.addMonitor(pool: r1.pool, layout: r1.layout, kickFD: -1, notifyFD: -1, of: 1, rx: true, tx: false)
        let i2 = e.addMonitor(pool: t0.pool, layout: t0.layout, kickFD: -1, notifyFD: -1, of: 0, rx: false, tx: true)
        let i3 = e.addMonitor(pool: rt1.pool, layout: rt1.layout, kickFD: -1, notifyFD: -1, of: 1, rx: true, tx: true)
        XCTAssertNotNil(i1); XCTAssertNotNil(i2); XCTAssertNotNil(i3)
        XCTAssertEqual(e.activeCount, 3, "monitors are not forwarding ports")

        let b = F.frame(to: F.broadcast, from: F.mac(1), seed: 1)
        p[0].inject(b)
        F.run(e)
        XCTAssertEqual(p[1].received.map(\.bytes), [b])
        XCTAssertEqual(p[2].received.map(\.bytes), [b])
        XCTAssertEqual(r1.take(), [b], "what port 1 was sent")
        XCTAssertEqual(t0.take(), [b], "what port 0 sent")
        XCTAssertEqual(rt1.take(), [b])

        let u = F.frame(to: F.mac(1), from: F.mac(2), seed: 2)
        p[1].inject(u)
        F.run(e)
        XCTAssertEqual(p[0].received.map(\.bytes), [u], "known unicast: only port 0, no monitor was flooded")
        XCTAssertEqual(r1.take(), [], "port 1 sent it, /r does not copy that")
        XCTAssertEqual(rt1.take(), [u], "/rt does")
        XCTAssertEqual(t0.take(), [], "port 0 received it, /t does not copy that")
        XCTAssertEqual(p[2].received.count, 1)

        // A monitor's own transmissions go nowhere.
        _ = e.removePort(i1!)
        F.run(e)
        XCTAssertEqual(e.port(1)?.monitors, 1)
        _ = e.removePort(1)  // the watched port goes: its monitors stay and get nothing
        XCTAssertEqual(e.port(i3!)?.monitorOf, -1)
        p[0].inject(F.frame(to: F.broadcast, from: F.mac(1), seed: 3))
        F.run(e)
        XCTAssertEqual(rt1.take(), [])
        XCTAssertEqual(t0.take().count, 1)
    }

    func testAFullMonitorLosesCopiesNotTraffic() throws {
        let (e, p) = try F.makeEngine(2, slots: 1024)
        let small = try Monitor(slots: 64)
        let m = try XCTUnwrap(
            e.addMonitor(pool: small.pool, layout: small.layout, kickFD: -1, notifyFD: -1, of: 1, rx: true, tx: false))
        for i in 0..<200 { p[0].inject(F.frame(to: F.broadcast, from: F.mac(1), seed: i)) }
        for _ in 0..<8 { F.run(e) }
        XCTAssertEqual(p[1].received.count, 200, "the switched traffic loses nothing")
        let copies = small.take().count
        XCTAssertEqual(copies, 63)
        XCTAssertEqual(e.port(m)?.stats.dropRingFull, UInt64(200 - copies))
        XCTAssertEqual(e.port(m)?.stats.rxPackets, UInt64(copies))
    }

    func testAtMostEightMonitorsPerPort() throws {
        let (e, _) = try F.makeEngine(2)
        var keep: [Monitor] = []
        for k in 0..<9 {
            let mon = try Monitor(slots: 64)
            keep.append(mon)
            let i = e.addMonitor(pool: mon.pool, layout: mon.layout, kickFD: -1, notifyFD: -1, of: 0, rx: true, tx: true)
            XCTAssertEqual(i != nil, k < ForwardingEngine.maxMonitors, "monitor \(k)")
        }
        XCTAssertNil(
            e.addMonitor(pool: keep[0].pool, layout: keep[0].layout, kickFD: -1, notifyFD: -1, of: 9, rx: true, tx: false))
    }
}
