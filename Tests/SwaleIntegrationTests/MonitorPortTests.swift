// Monitor ports end to end: `vale0:p/r` opened through the client library gets copies of p's
// traffic; a kernel port's monitor sees a namespace's ping; others' ports cannot be monitored.
import Foundation
import SwaleClient
import SwaleProtocol
import XCTest

extension SwitchTests {
    func testMonitorPortsCopyWhatAPortIsSentAndSends() throws {
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale7"]).0, 0)
        let a = try open("vale7:a"), b = try open("vale7:b"), c = try open("vale7:c")
        let rb = try open("vale7:b/r"), tb = try open("vale7:b/t"), both = try open("vale7:b/rt")
        let toB = frame(dst: broadcastMAC, src: mac(0xa), marker: 1)
        send(a, toB)
        XCTAssertEqual(drain(b, expect: 1), [toB])
        XCTAssertEqual(drain(c, expect: 1), [toB])
        XCTAssertEqual(drain(rb, expect: 1), [toB], "b/r: what b was sent")
        XCTAssertEqual(drain(both, expect: 1), [toB])
        XCTAssertEqual(drain(tb), [], "b/t: b sent nothing yet")
        let fromB = frame(dst: mac(0xa), src: mac(0xb), marker: 2)
        send(b, fromB)
        XCTAssertEqual(drain(a, expect: 1), [fromB])
        XCTAssertEqual(drain(tb, expect: 1), [fromB], "b/t: what b sent")
        XCTAssertEqual(drain(both, expect: 1), [fromB])
        XCTAssertEqual(drain(rb), [])
        XCTAssertEqual(drain(c), [], "known unicast: monitors are not ports that floods or lookups reach")
        // Monitors are not the bridge's ports, and what they send goes nowhere.
        let list = try svc.call(PortList(bridge: "vale7"))
        XCTAssertEqual(list.map(\.name).sorted(), ["a", "b", "c"])
        send(rb, frame(dst: broadcastMAC, src: mac(0xee), marker: 3))
        XCTAssertEqual(drain(a), [])
        // Closing a monitor releases it; /z is refused with a reason; an absent port cannot be watched.
        rb.close()
        ports.removeAll { $0 === rb }
        XCTAssertThrowsError(try open("vale7:b/z")) { XCTAssertTrue("\($0)".contains("zero-copy"), "\($0)") }
        XCTAssertThrowsError(try open("vale7:nope/r")) { XCTAssertTrue("\($0)".contains("no port 'nope'"), "\($0)") }
    }
}

extension KernelPortTests {
    /// Root watches a veth port: the monitor sees the namespace's ICMP echo requests and replies.
    func testMonitorOfAVethPortSeesThePing() throws {
        let n1 = try vethInNamespace(1, subnet: "10.77.0"), n2 = try vethInNamespace(2, subnet: "10.77.0")
        let mon = try SwalePort.open("vale0:\(n1.port)/rt", socket: svc.socket)
        defer { mon.close() }
        let (rc, out) = sh("ip netns exec \(n1.ns) ping -c 3 -i 0.2 -W 2 \(n2.ip)")
        XCTAssertEqual(rc, 0, out)
        var frames: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            if mon.rxAvailable() == 0 { _ = mon.wait(for: .rx, timeoutMs: 50); continue }
            mon.receive { frames.append(Array($0)) }
        }
        // IPv4 (0x0800) ICMP (1) echo request (8) and reply (0), each way through the port.
        let icmp = frames.filter { $0.count > 34 && $0[12] == 0x08 && $0[13] == 0x00 && $0[23] == 1 }
        XCTAssertGreaterThanOrEqual(icmp.filter { $0[34] == 8 }.count, 3, "echo requests sent by the namespace")
        XCTAssertGreaterThanOrEqual(icmp.filter { $0[34] == 0 }.count, 3, "echo replies sent to it")
    }
}
