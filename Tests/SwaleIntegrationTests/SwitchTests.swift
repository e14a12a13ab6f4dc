// The learning switch end to end: app ports opened through the client library on a private swaled.
import CSwaleABI
import CSwaleSys
import Foundation
import Glibc
import SwaleClient
import SwaleConfig
import SwaleProtocol
import XCTest

/// Builds Ethernet frames with a marker byte after the header.
func frame(dst: UInt64, src: UInt64, marker: UInt8, length: Int = 64) -> [UInt8] {
    var f = [UInt8](repeating: 0, count: length)
    for k in 0..<6 { f[k] = UInt8(truncatingIfNeeded: dst >> (40 - 8 * UInt64(k))) }
    for k in 0..<6 { f[6 + k] = UInt8(truncatingIfNeeded: src >> (40 - 8 * UInt64(k))) }
    f[12] = 0x88; f[13] = 0xb5
    f[14] = marker
    for i in 15..<length { f[i] = UInt8(truncatingIfNeeded: i &* 7 &+ Int(marker)) }
    return f
}

let broadcastMAC: UInt64 = 0xffff_ffff_ffff
func mac(_ n: UInt64) -> UInt64 { 0x0200_0000_0000 | n }

final class SwitchTests: XCTestCase {
    var svc: ServiceFixture!
    var ports: [SwalePort] = []

    override func setUpWithError() throws { svc = try ServiceFixture() }
    override func tearDown() {
        ports.forEach { $0.close() }
        ports = []
        if let svc { XCTAssertEqual(svc.stop(), 0) }
    }

    func open(_ name: String) throws -> SwalePort {
        let p = try SwalePort.open(name, socket: svc.socket)
        ports.append(p)
        return p
    }

    func send(_ p: SwalePort, _ f: [UInt8]) {
        XCTAssertTrue(f.withUnsafeBytes { p.send($0) })
    }

    /// Frames received within `ms` (stops early once `expect` frames arrived).
    func drain(_ p: SwalePort, expect: Int = .max, ms: Int32 = 300) -> [[UInt8]] {
        var got: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(Double(ms) / 1000)
        while got.count < expect && Date() < deadline {
            if p.rxAvailable() == 0 { _ = p.wait(for: .rx, timeoutMs: 20); continue }
            p.receive { got.append(Array($0)) }
        }
        return got
    }

    func stats(_ target: String) throws -> StatsInfo {
        let r = Stats(target: target)
        return try svc.call(r)
    }

    func testAnAdoptedDescriptorJoinsThePortUntilItsLastHolderCloses() throws {
        let a = try SwalePort.open("vale1:a", socket: svc.socket)
        let b = try open("vale1:b")
        // A process given a's wake-up descriptor (here: the same one) joins a's open.
        let adopted = try SwalePort.adopt(descriptor: a.fileDescriptor, socket: svc.socket)
        ports.append(adopted)
        XCTAssertEqual(adopted.name, "vale1:a")
        var listed = try svc.call(PortList(bridge: "vale1")).first { $0.name == "a" }
        XCTAssertEqual(listed?.openBy, Int(getpid()))
        XCTAssertEqual(listed?.sharedBy, [Int(getpid())])
        // The opener goes; the adopter keeps the port, its rings and its place in the switch.
        a.close()
        let f = frame(dst: broadcastMAC, src: mac(0xa), marker: 7)
        send(adopted, f)
        XCTAssertEqual(drain(b, expect: 1), [f])
        let back = frame(dst: mac(0xa), src: mac(0xb), marker: 8)
        send(b, back)
        XCTAssertEqual(drain(adopted, expect: 1), [back], "learned on the adopted port, delivered to it")
        listed = try svc.call(PortList(bridge: "vale1")).first { $0.name == "a" }
        XCTAssertEqual(listed?.openBy, Int(getpid()), "the adopter is named as the holder")
        // An exclusive open of a held port, and a shared one (the opener did not share): refused.
        XCTAssertThrowsError(try SwalePort.open("vale1:a", socket: svc.socket))
        XCTAssertThrowsError(try SwalePort.open("vale1:a", socket: svc.socket, share: true))
        adopted.close()
        XCTAssertTrue(try svc.eventually { try svc.call(PortList(bridge: "vale1")).allSatisfy { $0.name != "a" } })
        // Pipe ends too: the master adopted, the opener closed, frames still reach the slave.
        let m = try SwalePort.open("vale1:q{1", socket: svc.socket)
        let s = try open("vale1:q}1")
        let m2 = try SwalePort.adopt(descriptor: m.fileDescriptor, socket: svc.socket)
        ports.append(m2)
        m.close()
        send(m2, f)
        XCTAssertEqual(drain(s, expect: 1), [f])
        XCTAssertEqual(try svc.status().pipes.first?.masterOpen, true, "held by the adopter")
        XCTAssertThrowsError(try SwalePort.open("vale1:q{1", socket: svc.socket), "the adopter holds the master end")
    }

    /// Sleeps in `wait(for: .rx)` on each of `waiters` while `sender` sends one frame 0.3 s later;
    /// every waiter must be woken by it (not by its timeout).
    func assertWoken(_ waiters: [SwalePort], by sender: SwalePort, _ what: String) {
        let f = frame(dst: broadcastMAC, src: mac(0xc), marker: 9)
        let t = Thread {
            usleep(300_000); _ = f.withUnsafeBytes { sender.send($0) }
        }
        t.start()
        let group = DispatchGroup()
        for (i, w) in waiters.enumerated() {
            DispatchQueue.global().async(group: group) {
                let start = Date()
                let woke = w.wait(for: .rx, timeoutMs: 3000)
                let took = Date().timeIntervalSince(start)
                XCTAssertTrue(woke && took < 2, "\(what): waiter \(i) woke \(woke) after \(took) s")
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 10), .success)
    }

    func testEveryHolderOfASharedPortIsWokenEvenAfterTheOthersGo() throws {
        let a = try SwalePort.open("vale1:s", socket: svc.socket, share: true)
        // One holder that sleeps the membarrier way says so; the switch may then skip its fence.
        XCTAssertEqual(a.controlBlock.pointee.app_membarrier, UInt16(SWALE_SLEEPS_MEMBARRIER))
        let b = try SwalePort.open("vale1:s", socket: svc.socket, share: true)
        // A second holder: the service cannot know how each sleeps, the switch fences from now on,
        // and b's library does not overwrite that.
        XCTAssertEqual(a.controlBlock.pointee.app_membarrier, UInt16(SWALE_SLEEPERS_SEVERAL))
        let c = try open("vale1:c")
        // b's line, given to another holder (adopted), then b goes: the adopter keeps the line.
        let heir = try SwalePort.adopt(descriptor: b.fileDescriptor, socket: svc.socket)
        ports.append(heir)
        // Two holders asleep at once on one control block: neither lowers the other's flag.
        assertWoken([a, b], by: c, "two shared holders")
        _ = a.receive { _ in }; a.rxSync()
        b.close()
        assertWoken([heir], by: c, "the adopter of a closed shared open's line")
        _ = heir.receive { _ in }; heir.rxSync()
        a.close()
        assertWoken([heir], by: c, "the last holder")
        heir.close()
        // The next holder of the port starts afresh: the service clears the word, its library says 1.
        XCTAssertTrue(
            try svc.eventually {
                (try? SwalePort.open("vale1:s", socket: self.svc.socket)).map { p in
                    defer { p.close() }
                    return p.controlBlock.pointee.app_membarrier == UInt16(SWALE_SLEEPS_MEMBARRIER)
                } ?? false
            })
    }

    // netmap's learning-bridge test.
    func testBroadcastReachesOthersThenUnicastReachesOnlyItsPort() throws {
        let p0 = try open("vale1:p0"), p1 = try open("vale1:p1"), p2 = try open("vale1:p2")
        let bc = frame(dst: broadcastMAC, src: mac(2), marker: 1)
        send(p2, bc)
        XCTAssertEqual(drain(p0, expect: 1), [bc])
        XCTAssertEqual(drain(p1, expect: 1), [bc])
        XCTAssertEqual(drain(p2), [], "never sent back to the source")
        let uc = frame(dst: mac(2), src: mac(0), marker: 2)
        send(p0, uc)
        XCTAssertEqual(drain(p2, expect: 1), [uc])
        XCTAssertEqual(drain(p1), [], "known unicast goes only to its port")
        XCTAssertEqual(drain(p0), [])
        let fdb = try svc.call(FdbShow(bridge: "vale1"))
        XCTAssertEqual(Set(fdb.map { "\($0.mac)=\($0.port)" }), ["02:00:00:00:00:02=p2", "02:00:00:00:00:00=p0"])
    }

    func testUnknownUnicastAndMulticastFlood() throws {
        let p0 = try open("vale1:p0"), p1 = try open("vale1:p1"), p2 = try open("vale1:p2")
        let unknown = frame(dst: mac(0x99), src: mac(0), marker: 3)
        send(p0, unknown)
        XCTAssertEqual(drain(p1, expect: 1), [unknown])
        XCTAssertEqual(drain(p2, expect: 1), [unknown])
        let mc = frame(dst: 0x0100_5e00_0001, src: mac(1), marker: 4)
        send(p1, mc)
        XCTAssertEqual(drain(p0, expect: 1), [mc])
        XCTAssertEqual(drain(p2, expect: 1), [mc])
        XCTAssertEqual(drain(p1), [])
        // A multicast source address is refused (a bridge drops it: bad source), never learned.
        send(p2, frame(dst: broadcastMAC, src: 0x0100_5e00_0002, marker: 5))
        XCTAssertTrue(try svc.eventually { try self.stats("vale1:p2").ports[0].counters.dropBadSource == 1 })
        XCTAssertEqual(drain(p0), [])
        XCTAssertEqual(drain(p1), [])
        let fdb = try svc.call(FdbShow(bridge: "vale1"))
        XCTAssertFalse(fdb.contains { $0.mac == "01:00:5e:00:00:02" })
        XCTAssertEqual(try stats("vale1").bridges[0].counters.flooded, 2)
    }

    func testNoHairpin() throws {
        let p0 = try open("vale1:p0"), p1 = try open("vale1:p1")
        send(p0, frame(dst: broadcastMAC, src: mac(0), marker: 1))
        _ = drain(p1, expect: 1)
        // p0 sends to its own (learned) MAC: nobody gets it, counted.
        send(p0, frame(dst: mac(0), src: mac(0), marker: 2))
        XCTAssertEqual(drain(p0), [])
        XCTAssertEqual(drain(p1), [])
        XCTAssertEqual(try stats("vale1:p0").ports[0].counters.dropNoRoute, 1)
    }

    func testAgingMakesEntriesExpire() throws {
        let p0 = try open("vale1:p0"), p1 = try open("vale1:p1"), p2 = try open("vale1:p2")
        // Two seconds: ages are whole seconds, so with one an entry learned just before a second
        // ticks over could read as expired a millisecond later.
        let r = BridgeAging(bridge: "vale1", seconds: 2)
        _ = try svc.call(r)
        send(p2, frame(dst: broadcastMAC, src: mac(2), marker: 1))
        _ = drain(p0, expect: 1); _ = drain(p1, expect: 1)
        send(p0, frame(dst: mac(2), src: mac(0), marker: 2))
        XCTAssertEqual(drain(p1).count, 0, "learned: not flooded")
        _ = drain(p2, expect: 1)
        sleep(4)
        send(p0, frame(dst: mac(2), src: mac(0), marker: 3))
        XCTAssertEqual(drain(p1, expect: 1).count, 1, "aged out: flooded again")
        // The sweep that frees expired slots runs in slices; it gets there within a few seconds.
        XCTAssertTrue(try svc.eventually(15) { try stats("vale1").bridges[0].counters.aged >= 1 })
    }

    func testMacMovesToNewPort() throws {
        let p0 = try open("vale1:p0"), p1 = try open("vale1:p1"), p2 = try open("vale1:p2")
        send(p2, frame(dst: broadcastMAC, src: mac(7), marker: 1))
        _ = drain(p0, expect: 1); _ = drain(p1, expect: 1)
        send(p1, frame(dst: broadcastMAC, src: mac(7), marker: 2))  // the host moved to p1
        _ = drain(p0, expect: 1); _ = drain(p2, expect: 1)
        let uc = frame(dst: mac(7), src: mac(0), marker: 3)
        send(p0, uc)
        XCTAssertEqual(drain(p1, expect: 1), [uc])
        XCTAssertEqual(drain(p2), [])
        XCTAssertEqual(try stats("vale1").bridges[0].counters.moved, 1)
    }

    func testRemovingAPortFlushesItsEntries() throws {
        let p0 = try open("vale1:p0"), p1 = try open("vale1:p1"), p2 = try open("vale1:p2")
        send(p2, frame(dst: broadcastMAC, src: mac(2), marker: 1))
        send(p1, frame(dst: broadcastMAC, src: mac(1), marker: 1))
        _ = drain(p0, expect: 2)
        func fdb() throws -> [FdbEntry] { try svc.call(FdbShow(bridge: "vale1")) }
        XCTAssertEqual(try fdb().count, 2)
        p2.close()
        XCTAssertTrue(try svc.eventually { try fdb().map(\.port) == ["p1"] })
        // swalectl fdb flush for one port.
        let (rc, _, err) = try svc.ctl(["fdb", "flush", "vale1", "p1"])
        XCTAssertEqual(rc, 0, err)
        XCTAssertEqual(try fdb().count, 0)
    }

    func testSlowReceiverDropsAreCountedOthersGetEverything() throws {
        let p0 = try open("vale1:p0"), slow = try open("vale1:slow"), fast = try open("vale1:fast")
        _ = slow
        let total = 5000
        var got = 0
        var sent = 0
        while sent < total {
            for _ in 0..<100 { send(p0, frame(dst: broadcastMAC, src: mac(0), marker: UInt8(sent & 0xff))); sent += 1 }
            got += drain(fast, expect: sent - got, ms: 2000).count
        }
        XCTAssertEqual(got, total, "the fast receiver got everything")
        let s = try stats("vale1:slow").ports[0].counters
        XCTAssertEqual(s.rxPackets + s.dropRingFull, UInt64(total), "offered = delivered + counted drops")
        XCTAssertGreaterThan(s.dropRingFull, 0)
        XCTAssertEqual(UInt32(s.rxPackets), slow.rxAvailable())
    }

    func testJumboFramesArriveWhole() throws {
        let a = try open("vale1:ja"), b = try open("vale1:jb")
        send(b, frame(dst: broadcastMAC, src: mac(0xb), marker: 0))
        _ = drain(a, expect: 1)
        for len in [2048, 2049, 4000, 9000, 9216] {
            let f = frame(dst: mac(0xb), src: mac(0xa), marker: UInt8(len & 0xff), length: len)
            send(a, f)
            XCTAssertEqual(drain(b, expect: 1), [f], "length \(len)")
        }
        // Over the limit: dropped and counted.
        send(a, frame(dst: mac(0xb), src: mac(0xa), marker: 1, length: 9217))
        XCTAssertEqual(drain(b), [])
        XCTAssertEqual(try stats("vale1:ja").ports[0].counters.dropTooLong, 1)
        // A runt too.
        var runt = frame(dst: mac(0xb), src: mac(0xa), marker: 1, length: 64)
        runt.removeLast(54)
        send(a, runt)
        XCTAssertEqual(drain(b), [])
        XCTAssertEqual(try stats("vale1:ja").ports[0].counters.dropTooShort, 1)
    }

    func testFourAppProcessesWithContentChecks() throws {
        // Receivers announce their MACs so the switch learns them; senders then unicast with checks.
        let n = 50_000  // paced so a debug-built receiver with content checks keeps up
        let rxC = try svc.pktgen([
            "-i", "vale2:c", "-f", "rx", "--check", "--announce", "-s", "02:00:00:00:00:0c", "--timeout", "4"
        ])
        let rxD = try svc.pktgen([
            "-i", "vale2:d", "-f", "rx", "--check", "--announce", "-s", "02:00:00:00:00:0d", "--timeout", "4"
        ])
        XCTAssertTrue(
            try svc.eventually {
                (try? svc.call(FdbShow(bridge: "vale2")).count) == 2
            })
        let txA = try svc.pktgen([
            "-i", "vale2:a", "-f", "tx", "-n", "\(n)", "-l", "60:1514", "--check", "-s", "02:00:00:00:00:0a", "-d",
            "02:00:00:00:00:0c", "-R", "20000"
        ])
        let txB = try svc.pktgen([
            "-i", "vale2:b", "-f", "tx", "-n", "\(n)", "-l", "60:1514", "--check", "-s", "02:00:00:00:00:0b", "-d",
            "02:00:00:00:00:0d", "-R", "20000"
        ])
        for p in [txA, txB] { XCTAssertEqual(p.wait(seconds: 120), 0, p.stderr) }
        // Senders are done and drained: the switch's counters for the receivers are final.
        let drops = try ["vale2:c", "vale2:d"].map { try stats($0).ports[0].counters.dropRingFull }
        for (p, dropped) in zip([rxC, rxD], drops) {
            XCTAssertEqual(p.wait(seconds: 60), 0, p.stderr)
            let r = try XCTUnwrap(p.lastJSON, p.stdout)
            XCTAssertEqual(r["errors"] as? Int, 0, "what arrived is intact and in order")
            // On a loaded 2-core machine a receiver may fall behind: then the switch drops and
            // counts. Offered = delivered + counted drops, exactly.
            XCTAssertEqual((r["packets"] as? Int ?? -1) + Int(dropped), n)
            XCTAssertEqual(r["lost"] as? Int, Int(dropped))
            XCTAssertGreaterThan(r["packets"] as? Int ?? 0, n / 10, "most frames arrive even on a loaded machine")
        }
    }

    func testBridgeCommandsAndErrors() throws {
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale9"]).0, 0)
        let dup = try svc.ctl(["bridge", "add", "vale9"])
        XCTAssertNotEqual(dup.0, 0)
        XCTAssertTrue(dup.2.contains("already exists"), dup.2)
        let bad = try svc.ctl(["bridge", "add", "br0"])
        XCTAssertNotEqual(bad.0, 0)
        XCTAssertTrue(bad.2.contains("br0"), bad.2)
        let p = try open("vale9:x")
        let inUse = try svc.ctl(["bridge", "del", "vale9"])
        XCTAssertNotEqual(inUse.0, 0)
        XCTAssertTrue(inUse.2.contains("port"), inUse.2)
        let (rc, out, _) = try svc.ctl(["port", "list", "vale9", "--json"])
        XCTAssertEqual(rc, 0)
        XCTAssertTrue(out.contains("\"name\" : \"x\""), out)
        XCTAssertEqual(try svc.ctl(["bridge", "del", "vale9", "--force"]).0, 0)
        p.close()
        XCTAssertNotEqual(try svc.ctl(["fdb", "show", "vale404"]).0, 0)
        XCTAssertNotEqual(try svc.ctl(["stats", "vale9:nope"]).0, 0)
        // 64 bridges.
        for i in 0..<64 { XCTAssertEqual(try svc.call(BridgeAdd(bridge: "valeb\(i)")).name, "valeb\(i)") }
        XCTAssertGreaterThanOrEqual(try svc.call(BridgeList()).count, 64)
    }
}
