// The forwarding engine driven synchronously (pass(now:) on the test thread) over in-memory ports:
// learning, flooding, unicast, drops by reason, multi-slot frames, virtio-net header passing.
import SwaleDatapath
import SwaleRings
import XCTest

final class ForwardingEngineTests: XCTestCase {
    static func mac(_ last: UInt8) -> [UInt8] { [0x02, 0, 0, 0, 0, last] }
    static let broadcast: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]

    /// An Ethernet frame of `length` bytes (header included), payload bytes numbered from `seed`.
    static func frame(to dst: [UInt8], from src: [UInt8], length: Int = 60, seed: Int = 0) -> [UInt8] {
        var f = dst + src + [0x88, 0xb5]
        for i in 0..<max(0, length - 14) { f.append(UInt8(truncatingIfNeeded: i &* 7 &+ seed)) }
        return f
    }

    static func makeEngine(
        _ n: Int, config: EngineConfig = EngineConfig(), slots: Int = 256,
        configure: (Int, MemoryPort) -> Void = { _, _ in }
    ) throws -> (ForwardingEngine, [MemoryPort]) {
        var c = config
        c.fdbCapacity = 64
        let e = try ForwardingEngine(config: c)
        var ports: [MemoryPort] = []
        for i in 0..<n {
            let p = try MemoryPort(slots: slots)
            configure(i, p)
            let idx = e.addPort(pool: p.pool, layout: p.layout, kickFD: -1, notifyFD: -1, backend: p)
            XCTAssertEqual(idx, i)
            ports.append(p)
        }
        return (e, ports)
    }

    /// A few passes (bounded): enough to receive, forward and transmit everything injected.
    @discardableResult
    static func run(_ e: ForwardingEngine, now: UInt32 = 1) -> Int {
        var moved = 0
        for _ in 0..<4 { moved += e.pass(now: now) }
        return moved
    }

    func makeEngine(
        _ n: Int, config: EngineConfig = EngineConfig(), slots: Int = 256,
        configure: (Int, MemoryPort) -> Void = { _, _ in }
    ) throws -> (ForwardingEngine, [MemoryPort]) {
        try Self.makeEngine(n, config: config, slots: slots, configure: configure)
    }

    @discardableResult
    func run(_ e: ForwardingEngine, now: UInt32 = 1) -> Int { Self.run(e, now: now) }

    func testBroadcastFloodsThenUnicastGoesOnlyToTheLearnedPort() throws {
        let (e, p) = try makeEngine(3)
        let b = Self.frame(to: Self.broadcast, from: Self.mac(1), seed: 1)
        p[0].inject(b)
        run(e)
        XCTAssertEqual(p[0].received, [], "no hairpin for a flood")
        XCTAssertEqual(p[1].received.map(\.bytes), [b])
        XCTAssertEqual(p[2].received.map(\.bytes), [b])
        XCTAssertEqual(e.flooded, 1)
        XCTAssertEqual(e.table.lookup(0x0200_0000_0001, now: 1), 0, "source learned on port 0")

        let reply = Self.frame(to: Self.mac(1), from: Self.mac(2), seed: 2)
        p[1].inject(reply)
        run(e)
        XCTAssertEqual(p[0].received.map(\.bytes), [reply], "known unicast goes to its port")
        XCTAssertEqual(p[2].received.count, 1, "and nowhere else")
        let again = Self.frame(to: Self.mac(2), from: Self.mac(1), seed: 3)
        p[0].inject(again)
        run(e)
        XCTAssertEqual(p[1].received.map(\.bytes).last, again)
        XCTAssertEqual(p[2].received.count, 1)
        XCTAssertEqual(e.flooded, 1)
        XCTAssertEqual(e.port(0)?.stats.txPackets, 2)
        XCTAssertEqual(e.port(1)?.stats.rxPackets, 2)
    }

    func testUnknownUnicastAndMulticastFlood() throws {
        let (e, p) = try makeEngine(3)
        p[0].inject(Self.frame(to: Self.mac(9), from: Self.mac(1)))
        p[0].inject(Self.frame(to: [0x01, 0x00, 0x5e, 0, 0, 1], from: Self.mac(1)))
        run(e)
        XCTAssertEqual(p[1].received.count, 2)
        XCTAssertEqual(p[2].received.count, 2)
        XCTAssertEqual(e.flooded, 2)
        XCTAssertEqual(e.table.count, 1, "only the unicast source is learned")
    }

    func testDropsAreCountedByReason() throws {
        var c = EngineConfig()
        c.maxFrame = 3000
        let (e, p) = try makeEngine(2, config: c)
        // Too short, too long (over the frame limit), and no route (destination is the source port).
        p[0].inject(Array(Self.frame(to: Self.mac(2), from: Self.mac(1)).prefix(10)))
        p[0].inject(Self.frame(to: Self.mac(2), from: Self.mac(1), length: 4000))
        p[0].inject(Self.frame(to: Self.mac(1), from: Self.mac(1)))
        run(e)
        let s0 = try XCTUnwrap(e.port(0)?.stats)
        XCTAssertEqual(s0.dropTooShort, 1)
        XCTAssertEqual(s0.dropTooLong, 1)
        XCTAssertEqual(s0.dropNoRoute, 1)
        XCTAssertEqual(p[1].received.count, 0)

        // Over the destination's MTU.
        p[1].mtu = 500
        run(e, now: 2)  // the housekeeping of a new second re-reads the MTU
        XCTAssertEqual(e.port(1)?.mtu, 500)
        p[0].inject(Self.frame(to: Self.mac(2), from: Self.mac(1), length: 14 + 501))
        p[0].inject(Self.frame(to: Self.mac(2), from: Self.mac(1), length: 14 + 500))
        run(e, now: 2)
        XCTAssertEqual(e.port(1)?.stats.dropTooLong, 1)
        XCTAssertEqual(p[1].received.map(\.bytes.count), [514], "a frame of exactly the MTU passes")
    }

    func testRingFullAndBadSlotDropsAtTheDestination() throws {
        let (e, p) = try makeEngine(2, slots: 64)
        p[1].acceptLimit = 0  // the "kernel" takes nothing: frames queue in port 1's rx ring
        for k in 0..<100 { p[0].inject(Self.frame(to: Self.broadcast, from: Self.mac(1), seed: k)) }
        run(e)
        let full = try XCTUnwrap(e.port(1)?.stats.dropRingFull)
        XCTAssertEqual(full, 100 - 63, "a ring of 64 slots holds 63 frames")
        p[1].acceptLimit = nil
        run(e)
        XCTAssertEqual(p[1].received.count, 63, "the queued frames go out once the kernel takes them")

        // A destination ring whose next slot names a reserved buffer: dropped, counted, ring reset.
        p[1].acceptLimit = 0
        let tail = e.port(1)!.rx.hwtail
        p[1].rx.slot(tail).pointee.buf_idx = 1
        p[0].inject(Self.frame(to: Self.broadcast, from: Self.mac(1)))
        run(e)
        XCTAssertEqual(e.port(1)?.stats.dropBadSlot, 1)
        XCTAssertEqual(e.port(1)?.rx.resets, 1)
    }

    func testMultiSlotFramesArriveWholeDirectAndCopied() throws {
        for direct in [true, false] {
            var c = EngineConfig()
            c.directTransmit = direct
            let (e, p) = try makeEngine(2, config: c) { _, port in port.mtu = 9000 }
            let jumbo = Self.frame(to: Self.mac(2), from: Self.mac(1), length: 9000, seed: 5)
            let small = Self.frame(to: Self.mac(2), from: Self.mac(1), length: 2048, seed: 6)
            p[0].inject(jumbo)
            p[0].inject(small)
            run(e)
            XCTAssertEqual(p[1].received.map(\.bytes), [jumbo, small], "direct transmit \(direct)")
            XCTAssertEqual(e.port(1)?.stats.rxBytes, UInt64(9000 + 2048))
        }
    }

    /// A TCP/IPv4 frame with a virtio-net header asking for GSO (gso_size 1000) and a partial checksum.
    static func gsoFrame(payload: Int) -> [UInt8] {
        let ipLen = 20 + 20 + payload
        var f = mac(2) + mac(1) + [0x08, 0x00]
        f += [0x45, 0, UInt8(ipLen >> 8), UInt8(ipLen & 0xff), 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        f += [0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]
        f += (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
        let hdr: [UInt8] = [VnetHeader.flagNeedsCsum, VnetHeader.gsoTCPv4, 54, 0, 0xe8, 0x03, 34, 0, 16, 0, 0, 0]
        return hdr + f
    }

    func testVnetHeaderPassesToPortsThatTakeItAndIsFinishedForOthers() throws {
        let (e, p) = try makeEngine(3) { i, port in port.acceptsVnetHeader = i != 2 }
        let g = Self.gsoFrame(payload: 3500)
        p[0].inject(g, vnet: true)
        run(e)
        XCTAssertEqual(p[1].received, [MemoryPort.Frame(g, vnet: true)], "header and frame unchanged across 3 slots")
        let segs = p[2].received
        XCTAssertEqual(segs.count, 4, "3500 bytes in gso_size 1000 pieces")
        XCTAssertTrue(segs.allSatisfy { !$0.vnet && $0.bytes.count <= 14 + 20 + 20 + 1000 })
        XCTAssertEqual(segs.map { $0.bytes.count - 54 }.reduce(0, +), 3500)
        XCTAssertEqual(e.port(2)?.stats.rxPackets, 4)
    }
}
