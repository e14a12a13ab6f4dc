// swalectl capture: pcapng from monitor ports, read back by tcpdump; a capture that cannot keep up
// loses copies (counted in the file's statistics), the switched traffic nothing.
import Foundation
import SwaleClient
import SwaleProtocol
import XCTest

extension SwitchTests {
    /// tcpdump's reading of a pcapng file: one line per frame.
    func tcpdump(_ file: String) -> [String] {
        let (rc, out) = sh("tcpdump -r \(file) -nn -e 2>&1")
        XCTAssertEqual(rc, 0, out)
        return out.split(separator: "\n").map(String.init).filter { $0.contains(" > ") }
    }

    func testCaptureWritesPcapngThatTcpdumpReads() throws {
        try requireRoot("reads captures back with tcpdump", tools: ["tcpdump"])
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale8"]).0, 0)
        let a = try open("vale8:a"), b = try open("vale8:b")
        let file = NSTemporaryDirectory() + "swale-capture-\(getpid()).pcapng"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let cap = try Child(
            try Products.path("swalectl"), ["capture", "vale8:b", "-c", "6", "--seconds", "20", "-w", file], env: svc.env)
        // The capture's monitors exist once b has them: wait until a frame to b shows up in its file.
        var sent = 0
        XCTAssertTrue(
            svc.eventually(10) {
                send(a, frame(dst: broadcastMAC, src: mac(0xa), marker: 0xff, length: 60))
                sent += 1
                return (try? Data(contentsOf: URL(fileURLWithPath: file)).count) ?? 0 > 200
            })
        _ = drain(b)
        for i in 0..<3 {
            send(a, frame(dst: broadcastMAC, src: mac(0xa), marker: UInt8(i), length: 100 + i))
            send(b, frame(dst: mac(0xa), src: mac(0xb), marker: UInt8(10 + i), length: 200 + i))
        }
        XCTAssertEqual(cap.wait(seconds: 30), 0, cap.stderr)
        let lines = tcpdump(file)
        XCTAssertEqual(lines.count, 6, sh("ls -la \(file); tcpdump -r \(file) -nn -e 2>&1").1)
        // In order, with their lengths; the first frames are the probes, then a->b and b->a alternate.
        let tail = Array(lines.suffix(6 - max(0, 6 - lines.count)))
        let toB = tail.filter { $0.contains("02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff") }
        let fromB = tail.filter { $0.contains("02:00:00:00:00:0b > 02:00:00:00:00:0a") }
        XCTAssertGreaterThanOrEqual(toB.count, 1, lines.joined(separator: "\n"))
        XCTAssertTrue(
            fromB.map { $0.contains("length 200") || $0.contains("length 201") || $0.contains("length 202") }.allSatisfy { $0 })
        XCTAssertEqual(fromB.count, 6 - toB.count)

        // -w - into tcpdump -r -: b's transmissions only.
        let piped = try Child(
            "/bin/sh",
            [
                "-c",
                "\(try Products.path("swalectl")) capture vale8:b --dir tx -c 2 --seconds 20 -w - | tcpdump -r - -nn -e 2>/dev/null"
            ],
            env: svc.env)
        XCTAssertTrue(
            svc.eventually(10) {
                send(b, frame(dst: mac(0xa), src: mac(0xb), marker: 0x77, length: 300))
                _ = drain(a, ms: 50)
                return !piped.process.isRunning
            })
        XCTAssertEqual(piped.wait(seconds: 10), 0, piped.stderr)
        let pl = piped.stdout.split(separator: "\n").filter { $0.contains(" > ") }
        XCTAssertEqual(pl.count, 2, piped.stdout)
        XCTAssertTrue(
            pl.allSatisfy { $0.contains("02:00:00:00:00:0b > 02:00:00:00:00:0a") && $0.contains("length 300") }, piped.stdout)
    }
}

extension KernelPortTests {
    /// A veth port captured while its namespace pings another: tcpdump reads requests and replies.
    func testCaptureOfAVethPortWhilePinging() throws {
        try requireRoot("capture of a kernel port", tools: ["tcpdump"])
        let n1 = try vethInNamespace(1, subnet: "10.78.0"), n2 = try vethInNamespace(2, subnet: "10.78.0")
        XCTAssertEqual(sh("ip netns exec \(n1.ns) ping -c 1 -W 2 \(n2.ip)").0, 0, "ARP settled before the capture")
        let file = NSTemporaryDirectory() + "swale-capture-k\(getpid()).pcapng"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let cap = try Child(
            try Products.path("swalectl"), ["capture", "vale0:\(n1.port)", "--seconds", "4", "-w", file], env: svc.env)
        usleep(700_000)
        XCTAssertEqual(sh("ip netns exec \(n1.ns) ping -c 3 -i 0.2 -W 2 \(n2.ip)").0, 0)
        XCTAssertEqual(cap.wait(seconds: 30), 0, cap.stderr)
        let (rc, out) = sh("tcpdump -r \(file) -nn icmp 2>&1")
        XCTAssertEqual(rc, 0, out)
        XCTAssertGreaterThanOrEqual(out.components(separatedBy: "ICMP echo request").count - 1, 3, out)
        XCTAssertGreaterThanOrEqual(out.components(separatedBy: "ICMP echo reply").count - 1, 3, out)
    }
}

extension KernelPortTests {
    /// A mirror TAP: stock tcpdump on it sees a veth port's ping; del removes the TAP.
    func testMirrorToATapThatTcpdumpReads() throws {
        try requireRoot("mirror TAP", tools: ["tcpdump"])
        let n1 = try vethInNamespace(1, subnet: "10.79.0"), n2 = try vethInNamespace(2, subnet: "10.79.0")
        XCTAssertEqual(sh("ip netns exec \(n1.ns) ping -c 1 -W 2 \(n2.ip)").0, 0)
        let tap = "\(prefix)mir"
        let (rc, out, err) = try svc.ctl(["mirror", "add", "vale0:\(n1.port)", "--to", tap])
        XCTAssertEqual(rc, 0, out + err)
        XCTAssertEqual(sh("ip link show \(tap)").0, 0, "the TAP exists")
        let dump = try Child("/usr/bin/env", ["timeout", "8", "tcpdump", "-i", tap, "-nn", "-l", "-c", "6", "icmp"])
        usleep(1_000_000)
        XCTAssertEqual(sh("ip netns exec \(n1.ns) ping -c 3 -i 0.2 -W 2 \(n2.ip)").0, 0)
        dump.wait(seconds: 15)
        XCTAssertEqual(dump.stdout.components(separatedBy: "ICMP echo request").count - 1, 3, dump.stdout + dump.stderr)
        XCTAssertEqual(dump.stdout.components(separatedBy: "ICMP echo reply").count - 1, 3, dump.stdout)
        let list = try svc.call(MirrorList())
        XCTAssertEqual(list.map(\.to), [tap])
        XCTAssertGreaterThanOrEqual(list.first?.frames ?? 0, 6)
        // Refusals: an existing interface, a missing port; then del removes the TAP.
        XCTAssertTrue(try svc.ctl(["mirror", "add", "vale0:\(n1.port)", "--to", tap]).2.contains("exists"))
        XCTAssertTrue(try svc.ctl(["mirror", "add", "vale0:nope", "--to", "\(prefix)m2"]).2.contains("no port 'nope'"))
        XCTAssertEqual(try svc.ctl(["mirror", "del", tap]).0, 0)
        XCTAssertTrue(svc.eventually { sh("ip link show \(tap)").0 != 0 }, "the TAP went with the mirror")
    }
}

extension SwitchTests {
    /// (frames, isb_ifrecv, isb_ifdrop) of interface 0 in a pcapng file.
    func pcapngCounts(_ file: String) throws -> (frames: Int, received: UInt64, dropped: UInt64) {
        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }
        var i = 0, frames = 0
        var received: UInt64 = 0, dropped: UInt64 = 0
        while i + 12 <= b.count {
            let type = u32(i), len = u32(i + 4)
            guard len >= 12, i + len <= b.count else { throw FixtureError("bad block at \(i)") }
            if type == 6 { frames += 1 }
            if type == 5 {
                var o = i + 20
                while o + 4 <= i + len - 4 {
                    let code = u16(o), olen = u16(o + 2)
                    if code == 0 { break }
                    if code == 4 { received = u64(o + 4) }
                    if code == 5 { dropped = u64(o + 4) }
                    o += 4 + (olen + 3) / 4 * 4
                }
            }
            i += len
        }
        return (frames, received, dropped)
    }

    /// A capture that cannot keep up (stopped with SIGSTOP) loses copies, and says how many in the
    /// file; the switched traffic loses nothing.
    func testASlowCaptureLosesCopiesCountedNotTraffic() throws {
        try requireRoot("reads captures back with tcpdump", tools: ["tcpdump"])
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale11"]).0, 0)
        let a = try open("vale11:a"), b = try open("vale11:b")
        let file = NSTemporaryDirectory() + "swale-capture-slow-\(getpid()).pcapng"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let cap = try Child(
            try Products.path("swalectl"), ["capture", "vale11:b", "--dir", "rx", "--seconds", "60", "-w", file], env: svc.env)
        XCTAssertTrue(svc.eventually(10) { FileManager.default.fileExists(atPath: file) }, cap.stderr)
        usleep(200_000)
        kill(cap.pid, SIGSTOP)
        var delivered = 0
        let total = 3000
        var sent = 0
        let deadline = Date().addingTimeInterval(30)
        while (sent < total || delivered < total) && Date() < deadline {
            while sent < total && sent - delivered < 256 {
                XCTAssertTrue(frame(dst: broadcastMAC, src: mac(0x1a), marker: UInt8(sent & 0xff)).withUnsafeBytes { a.send($0) })
                sent += 1
            }
            if b.rxAvailable() == 0 { _ = b.wait(for: .rx, timeoutMs: 20) }
            delivered += b.receive { _ in }
        }
        XCTAssertEqual(delivered, total, "the switched traffic loses nothing")
        kill(cap.pid, SIGCONT)
        usleep(500_000)
        cap.signal(SIGINT)
        XCTAssertEqual(cap.wait(seconds: 20), 0, cap.stderr)
        let c = try pcapngCounts(file)
        XCTAssertEqual(UInt64(c.frames), c.received)
        XCTAssertGreaterThan(c.dropped, 0, "a stopped capture cannot keep up")
        XCTAssertEqual(c.received + c.dropped, UInt64(total), "every copy is either in the file or counted as lost")
        let (rc, out) = sh("tcpdump -r \(file) -nn -e 2>/dev/null | grep -c ' > '")
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(Int(out.trimmingCharacters(in: .whitespacesAndNewlines)), c.frames)
    }
}
