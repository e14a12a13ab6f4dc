// Bridge rules on application ports, through the client library and the real service: rules set
// before a port exists apply when it is opened, VLAN tags are pushed and popped at the edge, and a
// static entry comes back when its port is reopened.
import Foundation
import SwaleClient
import SwaleProtocol
import XCTest

extension SwitchTests {
    func tagged(_ f: [UInt8], vid: UInt16) -> [UInt8] {
        Array(f[0..<12]) + [0x81, 0x00, UInt8(vid >> 8), UInt8(vid & 0xff)] + Array(f[12...])
    }

    func testVlanRulesOnAppPortsApplyWhenTheyOpen() throws {
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale3"]).0, 0)
        for args in [
            ["bridge", "set", "vale3", "--vlan-filtering", "on"],
            ["vlan", "add", "vale3:acc", "10", "--pvid", "--untagged"], ["vlan", "del", "vale3:acc", "1"],
            ["vlan", "add", "vale3:trk", "10"], ["vlan", "add", "vale3:trk", "20"], ["vlan", "del", "vale3:trk", "1"],
            ["vlan", "add", "vale3:oth", "20", "--pvid", "--untagged"], ["vlan", "del", "vale3:oth", "1"]
        ] {
            let (rc, out, err) = try svc.ctl(args)
            XCTAssertEqual(rc, 0, args.joined(separator: " ") + out + err)
        }
        let acc = try open("vale3:acc"), trk = try open("vale3:trk"), oth = try open("vale3:oth")
        let bc = frame(dst: broadcastMAC, src: mac(1), marker: 1)
        send(acc, bc)
        XCTAssertEqual(drain(trk, expect: 1), [tagged(bc, vid: 10)], "tag pushed toward the trunk")
        XCTAssertEqual(drain(oth), [], "VLAN 20 port: nothing")
        let t20 = frame(dst: broadcastMAC, src: mac(2), marker: 2)
        send(trk, tagged(t20, vid: 20))
        XCTAssertEqual(drain(oth, expect: 1), [t20], "tag popped toward the access port")
        XCTAssertEqual(drain(acc), [])
        send(trk, tagged(frame(dst: broadcastMAC, src: mac(2), marker: 3), vid: 30))
        XCTAssertTrue(try svc.eventually { try self.stats("vale3:trk").ports[0].counters.dropVlan == 1 })
        let fdb = try svc.call(FdbShow(bridge: "vale3"))
        XCTAssertEqual(
            Set(fdb.map { "\($0.mac) \($0.vlan) \($0.port)" }), ["02:00:00:00:00:01 10 acc", "02:00:00:00:00:02 20 trk"])
    }

    func testStaticEntriesHoldAndComeBackWithTheirPort() throws {
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale4"]).0, 0)  // persistent: in the config dump
        var a = try open("vale4:a")
        let b = try open("vale4:b"), c = try open("vale4:c")
        let (rc, out, err) = try svc.ctl(["fdb", "add", "vale4", "02:00:00:00:00:0a", "a"])
        XCTAssertEqual(rc, 0)
        XCTAssertTrue(out.contains("static entry 02:00:00:00:00:0a on vale4:a"), out)
        XCTAssertEqual(err, "", "no warning: filtering is off and the entry has no VLAN")
        // A VLAN entry on a bridge that does not filter VLANs is kept, with a warning that says why it matches nothing.
        let (rc5, _, err5) = try svc.ctl(["fdb", "add", "vale4", "02:00:00:00:00:0b", "b", "--vlan", "5"])
        XCTAssertEqual(rc5, 0)
        XCTAssertTrue(err5.contains("does not filter VLANs"), err5)
        XCTAssertEqual(try svc.ctl(["fdb", "del", "vale4", "02:00:00:00:00:0b", "--vlan", "5"]).0, 0)
        // b claims a's address: refused, counted, the entry stays on a.
        send(b, frame(dst: broadcastMAC, src: mac(0x0a), marker: 1))
        XCTAssertEqual(drain(c), [])
        XCTAssertTrue(try svc.eventually { try self.stats("vale4:b").ports[0].counters.dropStaticMove == 1 })
        // a's port closes (its entries go) and reopens: the static entry is installed again.
        a.close()
        ports.removeAll { $0 === a }
        XCTAssertTrue(try svc.eventually { try self.svc.call(FdbShow(bridge: "vale4")).isEmpty })
        a = try open("vale4:a")
        let fdb = try svc.call(FdbShow(bridge: "vale4"))
        XCTAssertEqual(fdb.map { "\($0.mac) \($0.port) \($0.isStatic)" }, ["02:00:00:00:00:0a a true"])
        let u = frame(dst: mac(0x0a), src: mac(0x0c), marker: 2)
        send(c, u)
        XCTAssertEqual(drain(a, expect: 1), [u], "unicast to the static address: straight to a")
        XCTAssertEqual(drain(b), [])
        let dump = try svc.call(ConfigDump()).text
        XCTAssertTrue(dump.contains("\"mac\": \"02:00:00:00:00:0a\""), dump)
    }
}
