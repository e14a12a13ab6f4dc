// Tunnel ports and horizon groups in the configuration: accepted, written back the same way
// (config dump), and every mistake refused with its file and line.
import SwaleConfig
import XCTest

final class TunnelConfigTests: XCTestCase {
    let good = """
        {
          "bridges": [
            { "name": "vale0",
              "portRules": [ { "port": "vx2", "horizon": 1 }, { "port": "gn3", "horizon": 1 } ],
              "ports": [
                { "kind": "vxlan", "name": "vx2", "vni": 42, "remotes": ["192.168.1.2", "192.168.1.3"], "local": "192.168.1.1",
                  "dstPort": 4790, "mtu": 1400 },
                { "kind": "vxlan", "name": "vx6", "vni": 16777215, "group": "ff05::42", "dev": "eth1" },
                { "kind": "geneve", "name": "gn3", "vni": 7, "remotes": ["fd00::3"], "mac": "02:00:00:00:00:33" }
            ] }
          ]
        }
        """

    func testTunnelPortsAndHorizonRoundTrip() throws {
        let c = try SwaleConfig.parse(good)
        let ports = c.bridges[0].ports
        XCTAssertEqual(ports.map(\.kind), [.vxlan, .vxlan, .geneve])
        XCTAssertEqual(ports[0].tunnel?.remotes, ["192.168.1.2", "192.168.1.3"])
        XCTAssertEqual(ports[0].tunnel?.dstPort, 4790)
        XCTAssertEqual(ports[0].mtu, 1400)
        XCTAssertEqual(ports[1].tunnel?.group, "ff05::42")
        XCTAssertEqual(ports[1].tunnel?.dev, "eth1")
        XCTAssertEqual(ports[2].tunnel?.vni, 7)
        XCTAssertEqual(c.bridges[0].portRules.map(\.horizon), [1, 1])
        let again = try SwaleConfig.parse(c.rendered())
        XCTAssertEqual(again, c)
        XCTAssertEqual(again.rendered(), c.rendered())
        // A tunnel that differs in one field is a different port.
        var other = c
        other.bridges[0].ports[0].tunnel?.remotes.removeLast()
        XCTAssertNotEqual(other, c)
        var h = c
        h.bridges[0].portRules[0].horizon = 2
        XCTAssertNotEqual(h, c)
    }

    func testTunnelMistakesNameTheLine() {
        func cfg(_ port: String) -> String { "{\n\"bridges\": [\n{ \"name\": \"vale0\", \"ports\": [\n\(port)\n] }\n]\n}" }
        assertRefused([
            (cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"remotes\": [\"10.0.0.2\"] }"), 4, ["vxlan port v", "no vni"]),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 0, \"remotes\": [\"10.0.0.2\"] }"), 4,
                ["vni", "out of range"]
            ),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\",\n\"vni\": 16777216, \"remotes\": [\"10.0.0.2\"] }"), 5,
                ["vni", "16777215"]
            ),
            (cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1 }"), 4, ["--remote", "--group"]),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"remotes\": [\"10.0.0.300\"] }"), 4,
                ["10.0.0.300", "not an IPv4"]
            ),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"remotes\": [\"239.1.1.1\"] }"), 4,
                ["not a unicast", "group"]
            ),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"remotes\": [\"10.0.0.2\", \"10.0.0.2\"] }"), 4,
                ["twice"]
            ),
            (cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"remotes\": [\"10.0.0.2\", \"fd00::2\"] }"), 4, ["IPv6"]),
            (
                cfg(
                    "{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"remotes\": [\"10.0.0.2\"], \"group\": \"239.1.1.1\", \"dev\": \"e\" }"
                ),
                4, ["not both"]
            ),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"group\": \"10.1.1.1\", \"dev\": \"e\" }"), 4,
                ["not a multicast"]
            ),
            (cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"group\": \"239.1.1.1\" }"), 4, ["needs --dev"]),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"remotes\": [\"10.0.0.2\"],\n\"dstPort\": 0 }"), 5,
                ["dstPort", "out of range"]
            ),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"remotes\": [\"10.0.0.2\"],\n\"dev\": \"a/b\" }"), 5,
                ["dev"]
            ),
            (
                cfg("{ \"kind\": \"geneve\", \"name\": \"g\", \"vni\": 1, \"remotes\": [\"10.0.0.2\", \"10.0.0.3\"] }"), 4,
                ["one geneve port per remote", "horizon"]
            ),
            (
                cfg("{ \"kind\": \"geneve\", \"name\": \"g\", \"vni\": 1, \"group\": \"239.1.1.1\", \"dev\": \"e\" }"), 4,
                ["Geneve", "multicast"]
            ),
            (
                cfg(
                    "{ \"kind\": \"geneve\", \"name\": \"g\", \"vni\": 1, \"remotes\": [\"10.0.0.2\"], \"local\": \"10.0.0.1\" }"),
                4, ["local"]
            ),
            (cfg("{ \"kind\": \"tap\", \"name\": \"t\",\n\"vni\": 5 }"), 5, ["'vni' is a vxlan/geneve setting"]),
            (
                cfg("{ \"kind\": \"vxlan\", \"name\": \"v\", \"vni\": 1, \"remotes\": [\"10.0.0.2\"],\n\"peer\": \"p\" }"), 5,
                ["veth setting"]
            ),
            (cfg("{ \"kind\": \"gre\", \"name\": \"v\" }"), 4, ["vxlan or geneve", "gre"]),
            (
                "{\n\"bridges\": [\n{ \"name\": \"vale0\", \"portRules\": [\n{ \"port\": \"v\", \"horizon\": 256 }\n] }\n]\n}", 4,
                ["horizon", "out of range"]
            )
        ])
    }
}
