// Bridge rules in the config file: read, written back identically, and every bad value refused
// with its line.
import SwaleConfig
import XCTest

final class BridgeRulesConfigTests: XCTestCase {
    let text = """
        {
          "bridges": [
            { "name": "vale0", "vlanFiltering": true, "groupFwdMask": "0x4008",
              "portRules": [
                { "port": "c1", "vlans": [ { "vid": 10, "untagged": true } ], "pvid": 10 },
                { "port": "trunk", "vlans": [ { "vid": 10 }, { "vid": 20 } ], "isolated": true, "locked": true, "maxMacs": 64 } ],
              "fdb": [ { "mac": "02:00:00:00:00:01", "port": "c1", "vlan": 10 }, { "mac": "02:00:00:00:00:02", "port": "trunk" } ] }
          ]
        }
        """

    func testRulesAreReadAndWrittenBack() throws {
        let c = try SwaleConfig.parse(text)
        let b = c.bridges[0]
        XCTAssertTrue(b.vlanFiltering)
        XCTAssertEqual(b.groupFwdMask, 0x4008)
        XCTAssertEqual(b.portRules.map(\.port), ["c1", "trunk"])
        XCTAssertEqual(b.portRules[0].effectivePvid, 10)
        XCTAssertEqual(
            b.portRules[1].effectiveVlans,
            [SwaleConfig.Vlan(vid: 10, untagged: false), SwaleConfig.Vlan(vid: 20, untagged: false)])
        XCTAssertNil(b.portRules[1].effectivePvid, "vlans without pvid: untagged frames are dropped")
        XCTAssertEqual(b.portRules[1].maxMacs, 64)
        XCTAssertEqual(b.fdb.map(\.vlan), [10, 0])
        let again = try SwaleConfig.parse(c.rendered())
        XCTAssertEqual(again, c)
        XCTAssertTrue(c.rendered().contains("\"groupFwdMask\": \"0x4008\""))
        // A port without rules has the defaults: VLAN 1, PVID, untagged.
        let d = SwaleConfig.PortRules(port: "x")
        XCTAssertEqual(d.effectiveVlans, [SwaleConfig.Vlan(vid: 1, untagged: true)])
        XCTAssertEqual(d.effectivePvid, 1)
        XCTAssertTrue(d.isDefault)
    }

    func testVlanIdRangesRoundTrip() {
        XCTAssertEqual(SwaleConfig.formatVids([5, 3, 4, 10, 4, 12, 11]), "3-5,10-12")
        XCTAssertEqual(SwaleConfig.formatVids([7]), "7")
        XCTAssertEqual(SwaleConfig.formatVids([]), "")
        XCTAssertEqual(SwaleConfig.parseVids("3-5,10-12"), [3, 4, 5, 10, 11, 12])
        XCTAssertEqual(SwaleConfig.parseVids("4094"), [4094])
        for bad in ["", "0", "4095", "5-3", "1,,2", "1-2-3", "a", "-1", "1-"] {
            XCTAssertNil(SwaleConfig.parseVids(bad), bad)
        }
        let all = Array(1...4094)
        XCTAssertEqual(SwaleConfig.parseVids(SwaleConfig.formatVids(all)), all)
    }

    func testGroupForwardMaskFollowsLinuxRules() throws {
        XCTAssertEqual(try SwaleConfig.groupFwdMask("0x4008"), 0x4008)
        XCTAssertEqual(try SwaleConfig.groupFwdMask("16392"), 0x4008)
        XCTAssertEqual(try SwaleConfig.groupFwdMask("0xFFF8"), 0xfff8)
        for bad in ["0x0001", "0x0002", "0x0004", "0x10000", "-1", "lldp", ""] {
            XCTAssertThrowsError(try SwaleConfig.groupFwdMask(bad), bad)
        }
        XCTAssertEqual(SwaleConfig.hex(8), "0x0008")
    }

    func testBadRulesNameTheLine() {
        func cfg(_ extra: String) -> String { "{\n\"bridges\": [\n{ \"name\": \"vale0\",\n\(extra) }\n]\n}" }
        let cases: [(String, Int, [String])] = [
            (cfg("\"vlanFiltering\": \"yes\""), 4, ["vlanFiltering", "true or false"]),
            (cfg("\"groupFwdMask\": \"0x0003\""), 4, ["groupFwdMask", "LACP"]),
            (cfg("\"groupFwdMask\": 70000"), 4, ["groupFwdMask", "out of range"]),
            (cfg("\"portRules\": [ { \"vlans\": [] } ]"), 4, ["no port"]),
            (cfg("\"portRules\": [ { \"port\": \"a:b\" } ]"), 4, ["port"]),
            (cfg("\"portRules\": [ { \"port\": \"p\", \"vlans\": [ { \"vid\": 4095 } ] } ]"), 4, ["vid", "out of range"]),
            (cfg("\"portRules\": [ { \"port\": \"p\", \"vlans\": [ { \"vid\": 5 }, { \"vid\": 5 } ] } ]"), 4, ["listed twice"]),
            (cfg("\"portRules\": [ { \"port\": \"p\", \"vlans\": [ { \"vid\": 5 } ], \"pvid\": 6 } ]"), 4, ["pvid 6"]),
            (cfg("\"portRules\": [ { \"port\": \"p\", \"pvid\": 6 } ]"), 4, ["pvid 6"]),
            (cfg("\"portRules\": [ { \"port\": \"p\", \"maxMacs\": -1 } ]"), 4, ["maxMacs"]),
            (cfg("\"portRules\": [ { \"port\": \"p\" }, { \"port\": \"p\" } ]"), 4, ["rules twice"]),
            (cfg("\"portRules\": [ { \"port\": \"p\", \"colour\": 1 } ]"), 4, ["unknown setting 'colour'"]),
            (cfg("\"fdb\": [ { \"mac\": \"01:00:5e:00:00:01\", \"port\": \"p\" } ]"), 4, ["group"]),
            (cfg("\"fdb\": [ { \"mac\": \"02:00:00:00:00:01\" } ]"), 4, ["mac and a port"]),
            (
                cfg("\"fdb\": [ { \"mac\": \"02:00:00:00:00:01\", \"port\": \"p\", \"vlan\": 5000 } ]"), 4,
                ["vlan", "out of range"]
            ),
            (
                cfg(
                    "\"fdb\": [ { \"mac\": \"02:00:00:00:00:01\", \"port\": \"p\" },\n { \"mac\": \"02:00:00:00:00:01\", \"port\": \"q\" } ]"
                ),
                5, ["listed twice"]
            )
        ]
        assertRefused(cases)
    }
}

final class MetricsConfigTests: XCTestCase {
    func testMetricsAddress() throws {
        let c = try SwaleConfig.parse(#"{ "metrics": "127.0.0.1:9477" }"#)
        XCTAssertEqual(c.metrics, "127.0.0.1:9477")
        XCTAssertEqual(try SwaleConfig.parse(c.rendered()), c)
        for bad in ["localhost:9477", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "[::1]:9477", "127.0.0.1:09477"] {
            XCTAssertThrowsError(try SwaleConfig.parse("{\n\"metrics\": \"\(bad)\"\n}", file: "c.json"), bad) { e in
                XCTAssertTrue("\(e)".contains("c.json:2: metrics must be an IPv4 address and a port"), "\(e)")
            }
        }
    }
}

final class FastpathConfigTests: XCTestCase {
    func testFastpathKey() throws {
        XCTAssertNil(try SwaleConfig.parse("{}").fastpath, "absent: swaled's default (on)")
        for v in [true, false] {
            let c = try SwaleConfig.parse(#"{ "fastpath": \#(v) }"#)
            XCTAssertEqual(c.fastpath, v)
            XCTAssertEqual(try SwaleConfig.parse(c.rendered()), c, "a dump loads back the same")
            XCTAssertTrue(c.rendered().contains("\"fastpath\": \(v)"), c.rendered())
        }
        XCTAssertThrowsError(try SwaleConfig.parse("{\n\"fastpath\": \"no\"\n}", file: "c.json")) { e in
            XCTAssertTrue("\(e)".contains("c.json:2: fastpath must be true or false"), "\(e)")
        }
    }
}
