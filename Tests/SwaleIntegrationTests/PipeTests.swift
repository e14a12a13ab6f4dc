// Pipes end to end: real processes exchange frames through swaled-created pipes.
import Foundation
import Glibc
import SwaleClient
import SwaleConfig
import SwaleProtocol
import XCTest

final class PipeTests: XCTestCase {
    var svc: ServiceFixture!

    override func setUpWithError() throws { svc = try ServiceFixture() }
    override func tearDown() { if let svc { XCTAssertEqual(svc.stop(), 0, "swaled exits cleanly on SIGTERM") } }

    func testMillionFramesOfRandomLengthWithContentCheck() throws {
        let n = 1_000_000
        let rx = try svc.pktgen(["-i", "vale0:p1>7", "-f", "rx", "-n", "\(n)", "--check", "--timeout", "20"])
        XCTAssertTrue(try svc.eventually { try svc.status().pipes.contains { $0.slaveOpen } })
        let tx = try svc.pktgen(["-i", "vale0:p1<7", "-f", "tx", "-n", "\(n)", "-l", "60:2048", "-b", "64", "--check"])
        XCTAssertEqual(tx.wait(seconds: 300), 0, tx.stderr)
        XCTAssertEqual(rx.wait(seconds: 60), 0, rx.stderr)
        let r = try XCTUnwrap(rx.lastJSON, rx.stdout)
        XCTAssertEqual(r["packets"] as? Int, n)
        XCTAssertEqual(r["errors"] as? Int, 0)
        XCTAssertEqual(r["lost"] as? Int, 0)
        let t = try XCTUnwrap(tx.lastJSON)
        XCTAssertEqual(r["bytes"] as? Int, t["bytes"] as? Int, "every byte sent arrived")
        // Both ends closed: the pipe, its ephemeral parent and the region are gone.
        XCTAssertTrue(
            try svc.eventually {
                let s = try svc.status(); return s.pipes.isEmpty && s.regions.isEmpty
            })
    }

    func testEitherEndFirstAndBothDirections() throws {
        let slave = try SwalePort.open("vale0:q}3", socket: svc.socket)  // netmap spelling, slave first
        let master = try SwalePort.open("vale0:q{3", socket: svc.socket)
        XCTAssertEqual(master.name, "vale0:q<3")
        for (a, b) in [(master, slave), (slave, master)] {
            var frame = [UInt8](repeating: 0xab, count: 100)
            frame[0] = 1
            XCTAssertTrue(frame.withUnsafeBytes { a.send($0) })
            XCTAssertTrue(b.wait(for: .rx, timeoutMs: 2000))
            var got: [[UInt8]] = []
            b.receive { got.append(Array($0)) }
            XCTAssertEqual(got, [frame])
        }
        let s = try svc.status()
        XCTAssertEqual(s.pipes.count, 1)
        XCTAssertTrue(s.pipes[0].masterOpen && s.pipes[0].slaveOpen)
        master.close()
        XCTAssertTrue(try svc.eventually { try svc.status().pipes.first.map { !$0.masterOpen && $0.slaveOpen } ?? false })
        slave.close()
        XCTAssertTrue(try svc.eventually { try svc.status().pipes.isEmpty })
    }

    func testZeroCopySwapKeepsBufferAccounting() throws {
        let a = try SwalePort.open("vale0:z<1", socket: svc.socket)
        let b = try SwalePort.open("vale0:z>1", socket: svc.socket)
        let before = try XCTUnwrap(svc.status().regions.first)
        // Remember which buffer the frame was written into; the receiver must see the same index.
        let idx = a.tx.slot(a.tx.head).pointee.buf_idx
        var frame = [UInt8](repeating: 7, count: 64)
        XCTAssertTrue(frame.withUnsafeBytes { a.send($0) })
        XCTAssertTrue(b.wait(for: .rx, timeoutMs: 2000))
        XCTAssertEqual(b.rx.slot(b.rx.head).pointee.buf_idx, idx, "the buffer moved, the bytes were not copied")
        b.receive { _ in }
        frame[0] = 0
        a.close(); b.close()
        _ = before
        XCTAssertTrue(try svc.eventually { try svc.status().regions.isEmpty })
    }

    func testEndKilledMidStreamIsReleased() throws {
        let rx = try svc.pktgen(["-i", "vale0:k>1", "-f", "rx", "--timeout", "30"])
        XCTAssertTrue(try svc.eventually { try svc.status().pipes.contains { $0.slaveOpen } })
        let tx = try svc.pktgen(["-i", "vale0:k<1", "-f", "tx", "-n", "0", "-l", "60:1500", "-R", "200000"])
        XCTAssertTrue(try svc.eventually { try svc.status().pipes.first?.masterOpen == true })
        usleep(300_000)
        tx.signal(SIGKILL)
        tx.wait()
        XCTAssertTrue(
            try svc.eventually {
                let p = try svc.status().pipes; return p.count == 1 && !p[0].masterOpen && p[0].slaveOpen
            },
            "the killed master end is released, the slave keeps the pipe")
        // The master end can be opened again and traffic resumes.
        let tx2 = try svc.pktgen(["-i", "vale0:k<1", "-f", "tx", "-n", "1000"])
        XCTAssertEqual(tx2.wait(seconds: 30), 0, tx2.stderr)
        rx.signal(SIGKILL)
        rx.wait()
        XCTAssertTrue(
            try svc.eventually {
                let s = try svc.status(); return s.pipes.isEmpty && s.regions.isEmpty
            },
            "both ends gone: pipe and memory released")
        // The service still serves others.
        let p = try SwalePort.open("vale0:after", socket: svc.socket)
        p.close()
    }

    func testNoFixedCeilingOnPipesPerPort() throws {
        // netmap allows 64 pipes per port; here the parent's region grows instead.
        var ends: [SwalePort] = []
        for i in 0..<100 { ends.append(try SwalePort.open("vale0:many<\(i)", socket: svc.socket, slots: 64)) }
        let st = try svc.status()
        XCTAssertEqual(st.pipes.count, 100)
        let region = try XCTUnwrap(st.regions.first { $0.users.contains("vale0:many") })
        XCTAssertGreaterThan(region.buffersTotal, 100 * 4 * 64, "room for every pipe's rings")
        // The last pipe works end to end, in memory added after the first ends were mapped.
        let slave = try SwalePort.open("vale0:many>99", socket: svc.socket, slots: 64)
        let frame = [UInt8](repeating: 9, count: 80)
        XCTAssertTrue(frame.withUnsafeBytes { ends[99].send($0) })
        XCTAssertTrue(slave.wait(for: .rx, timeoutMs: 2000))
        var got: [[UInt8]] = []
        slave.receive { got.append(Array($0)) }
        XCTAssertEqual(got, [frame])
        slave.close()
        ends.forEach { $0.close() }
        XCTAssertTrue(
            try svc.eventually(10) {
                let s = try svc.status(); return s.pipes.isEmpty && s.regions.isEmpty
            })
    }

    func testBadNamesAndDoubleOpenGetClearErrors() throws {
        for (name, fragment) in [
            ("vale0:", "empty"), ("vale0:a<", "pipe id"), ("vale0:a<1>2", "pipe"), ("", "empty"),
            ("vale-x:a", "vale-x"), ("nosuchif<1", "unknown parent")
        ] {
            XCTAssertThrowsError(try SwalePort.open(name, socket: svc.socket), name) { e in
                XCTAssertTrue("\(e)".contains(fragment), "\(name): \(e)")
            }
        }
        let a = try SwalePort.open("vale0:d<1", socket: svc.socket)
        XCTAssertThrowsError(try SwalePort.open("vale0:d<1", socket: svc.socket)) { e in
            XCTAssertTrue("\(e)".contains("already open"), "\(e)")
        }
        let p = try SwalePort.open("vale0:solo", socket: svc.socket)
        XCTAssertThrowsError(try SwalePort.open("vale0:solo", socket: svc.socket)) { e in
            XCTAssertTrue("\(e)".contains("already open"), "\(e)")
        }
        a.close(); p.close()
        let bad = try svc.pktgen(["-i", "vale0:", "-f", "rx"])
        XCTAssertNotEqual(bad.wait(), 0)
        XCTAssertTrue(bad.stderr.contains("vale0:"), bad.stderr)
    }

    func testGarbageRingIndicesAreResetNotFatal() throws {
        let a = try SwalePort.open("vale0:g<1", socket: svc.socket)
        let b = try SwalePort.open("vale0:g>1", socket: svc.socket)
        // Hostile head: beyond tail and beyond the ring.
        a.tx.ptr.storeHead(a.tx.numSlots + 5)
        a.txSync()
        XCTAssertEqual(b.rxAvailable(), 0)
        XCTAssertGreaterThan(a.peerErrors, 0, "the bad ring was reset and counted")
        // Garbage buffer index in a submitted slot: the reader bounds it and skips the slot.
        let s = a.tx.slot(a.tx.head)
        s.pointee.buf_idx = 0xffff_fff0
        s.pointee.len = 60
        a.tx.advance(to: a.tx.next(a.tx.head))
        a.txSync()
        var frames = 0
        b.receive { _ in frames += 1 }
        XCTAssertEqual(frames, 0, "a slot with an out-of-region buffer is never read")
        a.close(); b.close()
        // The service survived and frees what it can; refused frees are counted, not fatal.
        XCTAssertTrue(try svc.eventually { try svc.status().pipes.isEmpty })
        // And a switch port with garbage in its tx ring: the switch resets it and keeps serving.
        let p = try SwalePort.open("vale0:h", socket: svc.socket)
        p.tx.ptr.storeHead(0xdead_beef)
        p.txSync()
        XCTAssertTrue(
            try svc.eventually {
                let st = try svc.call(Stats(target: "vale0:h"))
                return (st.ports.first?.counters.ringResets ?? 0) > 0
            })
        p.close()
    }
}

final class PingPongTests: XCTestCase {
    func testPingPongOverAPipe() throws {
        let svc = try ServiceFixture()
        defer { XCTAssertEqual(svc.stop(), 0) }
        let pong = try svc.pktgen(["-i", "vale0:pp>1", "-f", "pong", "-n", "500", "--timeout", "10"])
        XCTAssertTrue(try svc.eventually { try svc.status().pipes.contains { $0.slaveOpen } })
        let ping = try svc.pktgen([
            "-i", "vale0:pp<1", "-f", "ping", "-n", "500", "-b", "10", "-l", "64",
            "-s", "02:00:00:00:00:01", "-d", "02:00:00:00:00:02"
        ])
        XCTAssertEqual(ping.wait(seconds: 60), 0, ping.stderr)
        XCTAssertEqual(pong.wait(seconds: 30), 0, pong.stderr)
        let r = try XCTUnwrap(ping.lastJSON, ping.stdout)
        XCTAssertEqual(r["packets"] as? Int, 500, "every ping answered")
        XCTAssertNotNil(r["rtt_avg_us"] as? Double)
        XCTAssertEqual(try XCTUnwrap(pong.lastJSON)["packets"] as? Int, 500)
    }

    func testManyPortsOnOneBridge() throws {
        let svc = try ServiceFixture()
        defer { XCTAssertEqual(svc.stop(), 0) }
        var ports: [SwalePort] = []
        for i in 0..<254 { ports.append(try SwalePort.open("vale0:m\(i)", socket: svc.socket, slots: 64)) }
        XCTAssertEqual(try svc.status().bridges.first?.ports, 254)
        // A broadcast from the first reaches the last.
        var f = [UInt8](repeating: 0xff, count: 60)
        f[6] = 2
        XCTAssertTrue(f.withUnsafeBytes { ports[0].send($0) })
        XCTAssertTrue(ports[253].wait(for: .rx, timeoutMs: 3000))
        ports.forEach { $0.close() }
        // The bridge was made by the first open: it goes with the last port.
        XCTAssertTrue(try svc.eventually(10) { try svc.status().bridges.isEmpty })
    }
}

final class ControlInputTests: XCTestCase {
    func testHostileControlInputGetsErrorsAndTheServiceKeepsServing() throws {
        let svc = try ServiceFixture()
        defer { XCTAssertEqual(svc.stop(), 0) }
        let conn = try ControlConnection.connect(path: svc.socket)
        defer { conn.close() }
        func ask(_ text: String) throws -> String {
            try conn.send(Data(text.utf8))
            let (data, fds) = try XCTUnwrap(try conn.receive())
            fds.forEach { close($0) }
            return String(decoding: data, as: UTF8.self)
        }
        // Before hello, nothing but hello is served.
        XCTAssertTrue(try ask(#"{"v":1,"op":"status"}"#).contains(#""code":"version""#))
        XCTAssertTrue(try ask(#"{"v":1,"op":"hello","args":{"version":99}}"#).contains("version 99 is not spoken here"))
        XCTAssertTrue(try ask(#"{"v":1,"op":"hello","args":{"version":1}}"#).contains(#""ok":true"#))
        XCTAssertTrue(try ask("not json").contains(#""code":"malformed""#))
        XCTAssertTrue(try ask(#"{"v":1,"op":"reboot"}"#).contains(#""code":"unknown-operation""#))
        XCTAssertTrue(try ask(#"{"v":1,"op":"bridge.add","args":{"bridge":"vale0"}}"#).contains("\"ok\":true"))
        // Each operation reads its own fields: a seconds value in someone else's field is not taken.
        XCTAssertTrue(
            try ask(#"{"v":1,"op":"bridge.aging","args":{"bridge":"vale0","mtu":30}}"#).contains("missing 'args.seconds'"))
        XCTAssertTrue(
            try ask(#"{"v":1,"op":"bridge.aging","args":{"bridge":"vale0","seconds":4294967296}}"#).contains("aging time must be")
        )
        // Ring sizes follow the config's rule (64...16384): refused, not silently clamped.
        let tiny = try ask(#"{"v":1,"op":"open","args":{"name":"vale0:p{1","slots":1}}"#)
        XCTAssertTrue(tiny.contains(#""code":"invalid-argument""#) && tiny.contains("slots 1 out of range"), tiny)
        // A request with no end: answered "too-large", the connection dropped, the service fine.
        let big = try ControlConnection.connect(path: svc.socket)
        defer { big.close() }
        let blob = Data(repeating: UInt8(ascii: "a"), count: 2 << 20)
        try? big.send(blob)
        let last = try? big.receive()
        if let (data, _) = last ?? nil { XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("too-large")) }
        XCTAssertNil(try? big.receive() ?? nil, "closed after the reply")
        XCTAssertEqual(try svc.status().bridges.count, 1)
    }
}
