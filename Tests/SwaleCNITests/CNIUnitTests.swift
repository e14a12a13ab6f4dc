import Foundation
import XCTest

@testable import SwaleCNI

final class NetConfTests: XCTestCase {
    func parse(_ json: String) throws -> NetConf { try NetConf.parse(Data(json.utf8)) }

    func refusal(_ json: String, file: StaticString = #filePath, line: UInt = #line) -> CNIError? {
        do {
            _ = try parse(json)
            XCTFail("accepted: \(json)", file: file, line: line)
            return nil
        } catch let e as CNIError { return e } catch {
            XCTFail("\(error)", file: file, line: line)
            return nil
        }
    }

    let base = #""cniVersion":"1.0.0","name":"n1","type":"swale-cni","bridge":"vale0""#

    func testFullConfigIsRead() throws {
        let c = try parse(
            #"{\#(base),"mtu":9000,"mac":"02:AA:00:00:00:01","vlan":10,"trunk":[{"id":20},{"minID":30,"maxID":32},21],"isolated":true,"#
                + #""socket":"/run/x.sock","ipam":{"type":"host-local","subnet":"10.0.0.0/24"},"runtimeConfig":{"mac":"02:00:00:00:00:09"},"#
                + #""cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],"somethingElse":1}"#)
        XCTAssertEqual(c.bridge, "vale0")
        XCTAssertEqual(c.mtu, 9000)
        XCTAssertEqual(c.mac, "02:aa:00:00:00:01", "written the canonical way")
        XCTAssertEqual(c.vlan, 10)
        XCTAssertEqual(c.trunk, [20, 21, 30, 31, 32])
        XCTAssertEqual(c.isolated, true)
        XCTAssertEqual(c.socket, "/run/x.sock")
        XCTAssertEqual(c.ipamType, "host-local")
        XCTAssertEqual(c.runtimeMAC, "02:00:00:00:00:09")
        XCTAssertEqual(c.validAttachments?.first?.container, "c1")
        XCTAssertEqual(try parse(#"{\#(base),"trunk":"5,7-8"}"#).trunk, [5, 7, 8])
        XCTAssertEqual(try parse(#"{\#(base),"args":{"cni":{"mac":"02:00:00:00:00:05"}}}"#).runtimeMAC, "02:00:00:00:00:05")
        XCTAssertNil(try parse(#"{\#(base),"ipam":{}}"#).ipam, "an empty ipam section means no IPAM")
    }

    func testBadValuesAreErrorSevenNamingTheKey() {
        let cases: [(String, String)] = [
            (#""cniVersion":"1.0.0","name":"n","type":"t""#, "bridge"),
            (#""cniVersion":"1.0.0","type":"t","bridge":"vale0""#, "name"),
            (#"\#(base),"bridge":"br0""#, "bridge"),
            (#"\#(base),"mtu":67"#, "mtu"),
            (#"\#(base),"mtu":1500.5"#, "mtu"),
            (#"\#(base),"mtu":"1500""#, "mtu"),
            (#"\#(base),"mac":"02:00:00:00:00""#, "mac"),
            (#"\#(base),"mac":"03:00:00:00:00:01""#, "mac"),
            (#"\#(base),"vlan":0"#, "vlan"),
            (#"\#(base),"vlan":true"#, "vlan"),
            (#"\#(base),"trunk":[]"#, "trunk"),
            (#"\#(base),"trunk":[4095]"#, "trunk"),
            (#"\#(base),"trunk":"9-3""#, "trunk"),
            (#"\#(base),"isolated":"yes""#, "isolated"),
            (#"\#(base),"isolated":1"#, "isolated"),
            (#"\#(base),"socket":"relative.sock""#, "socket"),
            (#"\#(base),"ipam":{"type":"../../bin/sh"}"#, "ipam.type"),
            (#"\#(base),"ipam":[]"#, "ipam"),
            (#"\#(base),"runtimeConfig":{"mac":"zz"}"#, "runtimeConfig.mac"),
            (#"\#(base),"cni.dev/valid-attachments":[{"ifname":"eth0"}]"#, "valid-attachments")
        ]
        for (body, key) in cases {
            guard let e = refusal("{\(body)}") else { continue }
            XCTAssertEqual(e.code, CNIError.invalidConfig, body)
            XCTAssertTrue(e.details.contains(key), "\(body): \(e.details)")
        }
    }

    func testVersionsAndDecodeErrors() {
        XCTAssertEqual(refusal(#"{"cniVersion":"0.2.0","name":"n","bridge":"vale0"}"#)?.code, CNIError.incompatibleVersion)
        XCTAssertEqual(refusal(#"{"cniVersion":"2.0.0","name":"n","bridge":"vale0"}"#)?.code, CNIError.incompatibleVersion)
        XCTAssertEqual(refusal("not json")?.code, CNIError.decodeFailure)
        XCTAssertEqual(refusal("[1]")?.code, CNIError.decodeFailure)
        XCTAssertEqual(refusal(#"{"cniVersion":1}"#)?.code, CNIError.invalidConfig)
    }

    func testVersionOrderAndDelegation() {
        XCTAssertTrue(CNIVersion.less("0.3.1", "0.4.0"))
        XCTAssertTrue(CNIVersion.less("0.4.0", "1.0.0"))
        XCTAssertFalse(CNIVersion.less("1.1.0", "1.0.0"))
        XCTAssertFalse(CNIVersion.less("x", "1.0.0"), "unparsable versions compare as not less")
        XCTAssertTrue(CNIVersion.atLeast("1.1.0", "1.1.0"))
        // Debian 12's host-local knows up to 1.0.0: a 1.1.0 network speaks 1.0.0 to it.
        let hostLocal = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
        XCTAssertEqual(CNIVersion.forDelegate("1.1.0", theirs: hostLocal), "1.0.0")
        XCTAssertEqual(CNIVersion.forDelegate("0.4.0", theirs: hostLocal), "0.4.0")
        XCTAssertEqual(CNIVersion.forDelegate("0.3.1", theirs: ["0.3.0", "1.0.0"]), "0.3.0", "never newer than ours")
        XCTAssertNil(CNIVersion.forDelegate("1.0.0", theirs: ["0.1.0", "0.2.0"]), "results older than 0.3.0 read differently")
    }

    func testCNIArgs() throws {
        XCTAssertEqual(
            try CNIEnvironment.parseArgs("IgnoreUnknown=1;MAC=02:00:00:00:00:01;K8S_POD_NAME=a=b"),
            [
                "IgnoreUnknown": "1", "MAC": "02:00:00:00:00:01", "K8S_POD_NAME": "a=b"
            ])
        XCTAssertThrowsError(try CNIEnvironment.parseArgs("MAC")) { XCTAssertEqual(($0 as? CNIError)?.code, 4) }
        XCTAssertThrowsError(try CNIEnvironment.parseArgs("=x")) { XCTAssertEqual(($0 as? CNIError)?.code, 4) }
        XCTAssertThrowsError(try CNIEnvironment([:])) { XCTAssertEqual(($0 as? CNIError)?.code, 4) }
        let env = try CNIEnvironment(["CNI_COMMAND": "ADD", "CNI_PATH": "/a:/b", "CNI_NETNS": ""])
        XCTAssertEqual(env.path, ["/a", "/b"])
        XCTAssertNil(env.netns, "an empty variable is an unset one")
        XCTAssertThrowsError(try env.require(env.netns, "CNI_NETNS")) {
            XCTAssertTrue("\($0)".contains("CNI_NETNS"))
        }
    }
}

final class CNIResultTests: XCTestCase {
    func sample() -> CNIResult {
        var r = CNIResult()
        r.interfaces = [
            .init(name: "swc0", mac: "02:00:00:00:00:01"),
            .init(name: "eth0", mac: "02:00:00:00:00:02", sandbox: "/ns", mtu: 1400)
        ]
        r.ips = [.init(address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 1), .init(address: "fd00::2/64", interface: 1)]
        r.routes = [.init(dst: "0.0.0.0/0")]
        r.dns = ["nameservers": ["10.0.0.53"]]
        return r
    }

    func testEachVersionWritesItsShape() {
        let legacy = sample().json(version: "0.3.1")
        let ips = legacy["ips"] as? [[String: Any]] ?? []
        XCTAssertEqual(ips.map { $0["version"] as? String }, ["4", "6"])
        XCTAssertNil((legacy["interfaces"] as? [[String: Any]])?.last?["mtu"], "mtu is a 1.1.0 field")
        let v1 = sample().json(version: "1.0.0")
        XCTAssertTrue((v1["ips"] as? [[String: Any]] ?? []).allSatisfy { $0["version"] == nil })
        let v11 = sample().json(version: "1.1.0")
        XCTAssertEqual((v11["interfaces"] as? [[String: Any]])?.last?["mtu"] as? Int, 1400)
        XCTAssertEqual(v11["cniVersion"] as? String, "1.1.0")
        XCTAssertNil(CNIResult().json(version: "1.0.0")["ips"], "empty lists are left out")
    }

    func testReadBackEqualsWhatWasWritten() throws {
        for v in CNIVersion.supported {
            let back = try CNIResult.parse(sample().json(version: v), "result")
            var want = sample()
            if CNIVersion.less(v, "1.1.0") { want.interfaces[1].mtu = nil }
            XCTAssertEqual(back, want, v)
        }
        XCTAssertThrowsError(try CNIResult.parse(["ips": [["address": "10.0.0.2"]]], "x")) {
            XCTAssertEqual(($0 as? CNIError)?.code, CNIError.decodeFailure)
        }
        XCTAssertThrowsError(try CNIResult.parse(["routes": [["gw": "10.0.0.1"]]], "x"))
        XCTAssertThrowsError(try CNIResult.parse(["interfaces": [["mac": "x"]]], "x"))
    }

    func testMergeAppendsAfterPrevResult() {
        var prev = CNIResult()
        prev.interfaces = [.init(name: "lo", mac: ""), .init(name: "x0", mac: "02:00:00:00:00:09")]
        prev.ips = [.init(address: "192.168.0.2/24", interface: 1)]
        prev.routes = [.init(dst: "192.168.1.0/24", gw: "192.168.0.1")]
        prev.dns = ["domain": "prev"]
        let m = sample().merged(after: prev)
        XCTAssertEqual(m.interfaces.map(\.name), ["lo", "x0", "swc0", "eth0"])
        XCTAssertEqual(m.ips.map(\.interface), [1, 3, 3], "ours point at our container interface, shifted")
        XCTAssertEqual(m.routes.count, 2)
        XCTAssertEqual(m.dns["nameservers"] as? [String], ["10.0.0.53"], "ours replace prev's when we have any")
        var noDNS = sample()
        noDNS.dns = [:]
        XCTAssertEqual(noDNS.merged(after: prev).dns["domain"] as? String, "prev")
    }

    func testErrorJSON() throws {
        let e = CNIError(7, "invalid network configuration", details: "mtu must be a number")
        let o = try JSONSerialization.jsonObject(with: e.json(cniVersion: "1.0.0")) as? [String: Any]
        XCTAssertEqual(o?["code"] as? Int, 7)
        XCTAssertEqual(o?["msg"] as? String, "invalid network configuration")
        XCTAssertEqual(o?["details"] as? String, "mtu must be a number")
        XCTAssertEqual(o?["cniVersion"] as? String, "1.0.0")
        let bare = try JSONSerialization.jsonObject(with: CNIError(11, "later").json(cniVersion: "1.1.0")) as? [String: Any]
        XCTAssertNil(bare?["details"])
    }

    func testHostNamesAreShortStableAndDistinct() {
        let a = CNIPlugin.hostName(network: "n", container: "c1", ifname: "eth0")
        XCTAssertEqual(a, CNIPlugin.hostName(network: "n", container: "c1", ifname: "eth0"))
        XCTAssertEqual(a.utf8.count, 15)
        XCTAssertTrue(a.hasPrefix("swc"))
        let others = [
            CNIPlugin.hostName(network: "n", container: "c1", ifname: "eth1"),
            CNIPlugin.hostName(network: "n2", container: "c1", ifname: "eth0"),
            CNIPlugin.hostName(network: "n", container: "c2", ifname: "eth0"),
            // The separators keep ("ab","c") and ("a","bc") apart.
            CNIPlugin.hostName(network: "nc", container: "1", ifname: "eth0")
        ]
        XCTAssertEqual(Set(others + [a]).count, 5)
        let many = Set((0..<2000).map { CNIPlugin.hostName(network: "n", container: "ctr\($0)", ifname: "eth0") })
        XCTAssertEqual(many.count, 2000)
    }

    func testPluginRunReportsErrorsAsTheSpecSays() throws {
        let (out, status) = CNIPlugin.run(env: ["CNI_COMMAND": "ADD"], stdin: Data("{".utf8))
        XCTAssertEqual(status, 1)
        let o = try JSONSerialization.jsonObject(with: out) as? [String: Any]
        XCTAssertEqual(o?["code"] as? Int, CNIError.decodeFailure)
        let (v, vs) = CNIPlugin.run(env: ["CNI_COMMAND": "VERSION"], stdin: Data(#"{"cniVersion":"0.4.0"}"#.utf8))
        XCTAssertEqual(vs, 0)
        let vo = try JSONSerialization.jsonObject(with: v) as? [String: Any]
        XCTAssertEqual(vo?["cniVersion"] as? String, "0.4.0")
        let (_, none) = CNIPlugin.run(env: [:], stdin: Data())
        XCTAssertEqual(none, 1)
    }
}
