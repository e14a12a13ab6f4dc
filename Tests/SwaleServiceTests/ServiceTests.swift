// The service without sockets: owner tags, and the control protocol under 10^6 random and mutated
// requests (kernel ports disabled, so no input can create or touch an interface).
import Foundation
import Logging
import SwaleConfig
import SwaleProtocol
import XCTest

@testable import SwaleService

final class OwnerTagTests: XCTestCase {
    func testRoundTrip() throws {
        var spec = SwaleConfig.Port(kind: .veth, name: "")
        spec.peer = "eth0"; spec.netns = "ctr1"; spec.address = "10.0.0.1/24"; spec.mtu = 9000; spec.mac = "02:00:00:00:00:09"
        let tag = OwnerTag(
            instance: OwnerTag.instance(socketPath: "/run/swale/swaled.sock"), origin: .cli, bridge: "vale0", spec: spec)
        XCTAssertLessThanOrEqual(tag.alias.utf8.count, 255)
        XCTAssertEqual(OwnerTag(alias: tag.alias), tag)
        let loose = OwnerTag(instance: "abc", origin: .config, bridge: nil, spec: SwaleConfig.Port(kind: .tap, name: ""))
        XCTAssertEqual(OwnerTag(alias: loose.alias), loose)
    }

    func testContainerAttachmentsKeepTheirRulesFirst() throws {
        var spec = SwaleConfig.Port(kind: .veth, name: "")
        spec.peer = "eth0"; spec.container = String(repeating: "c", count: 64); spec.network = "podman-net"
        spec.vlan = 10; spec.trunk = [20, 21, 22, 40]; spec.isolated = true; spec.mtu = 1400
        spec.mac = "02:00:00:00:00:09"; spec.netns = "/run/netns/" + String(repeating: "n", count: 200)
        let tag = OwnerTag(instance: OwnerTag.instance(socketPath: "/s"), origin: .cli, bridge: "vale0", spec: spec)
        let (alias, omitted) = tag.encoded
        XCTAssertLessThanOrEqual(alias.utf8.count, 255)
        XCTAssertEqual(omitted, ["netns"], "only the namespace path did not fit")
        XCTAssertTrue(alias.contains(" trunk=20-22,40 "), alias)
        let back = try XCTUnwrap(OwnerTag(alias: alias))
        XCTAssertEqual(back.spec.container, spec.container)
        XCTAssertEqual(back.spec.network, "podman-net")
        XCTAssertEqual(back.spec.vlan, 10)
        XCTAssertEqual(back.spec.trunk, [20, 21, 22, 40])
        XCTAssertEqual(back.spec.isolated, true)
        XCTAssertEqual(back.spec.mac, spec.mac)
        let rules = Service.attachmentRules(back.spec, port: "swc1")
        XCTAssertEqual(rules.pvid, 10)
        XCTAssertEqual(rules.vlans?.map { "\($0.vid)\($0.untagged ? "u" : "t")" }, ["10u", "20t", "21t", "22t", "40t"])
        XCTAssertTrue(rules.isolated)
        var plain = spec
        plain.vlan = nil; plain.trunk = nil; plain.isolated = nil
        XCTAssertTrue(Service.attachmentRules(plain, port: "swc2").isDefault, "no VLANs asked: VLAN 1 like any port")
    }

    func testAttachmentNamesAreChecked() {
        for ok in ["abc", "0d2f-e.x_y", String(repeating: "a", count: 128)] {
            XCTAssertNoThrow(try Service.checkAttachmentField(ok, "container id"), ok)
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "a=b", "ä", String(repeating: "a", count: 129)] {
            XCTAssertThrowsError(try Service.checkAttachmentField(bad, "container id"), bad)
        }
    }

    func testTunnelRoundTripWithinTheAliasLimit() throws {
        var spec = SwaleConfig.Port(kind: .vxlan, name: "")
        var t = SwaleConfig.Tunnel(vni: 16_777_215)
        t.group = "ff05:1234:5678:9abc:def0:1234:5678:9abc"
        t.dev = "underlay_dev_15"
        t.local = "fd00:1234:5678:9abc:def0:1234:5678:9abc"
        t.dstPort = 65535
        spec.tunnel = t
        spec.mtu = 65535
        spec.mac = "02:00:00:00:00:09"
        var tag = OwnerTag(instance: OwnerTag.instance(socketPath: "/x"), origin: .config, bridge: "vale_long_name1", spec: spec)
        tag.horizon = 255
        // Every bounded field fits, even at its longest.
        XCTAssertLessThanOrEqual(tag.alias.utf8.count, 255)
        XCTAssertEqual(OwnerTag(alias: tag.alias), tag)

        // Remotes come last and are left out whole when they do not fit (the kernel's list is read back).
        var vx = SwaleConfig.Port(kind: .vxlan, name: "")
        var u = SwaleConfig.Tunnel(vni: 42)
        u.remotes = (1...40).map { "192.168.100.\($0)" }
        vx.tunnel = u
        let long = OwnerTag(instance: "i", origin: .cli, bridge: "vale0", spec: vx)
        XCTAssertLessThanOrEqual(long.alias.utf8.count, 255)
        XCTAssertEqual(OwnerTag(alias: long.alias)?.spec.tunnel?.vni, 42)
        XCTAssertEqual(OwnerTag(alias: long.alias)?.spec.tunnel?.remotes, [])
        u.remotes = ["10.0.0.2", "10.0.0.3"]
        vx.tunnel = u
        let short = OwnerTag(instance: "i", origin: .cli, bridge: "vale0", spec: vx)
        XCTAssertEqual(OwnerTag(alias: short.alias), short)

        var gn = SwaleConfig.Port(kind: .geneve, name: "")
        var g = SwaleConfig.Tunnel(vni: 7)
        g.remotes = ["fd00::7"]
        gn.tunnel = g
        XCTAssertEqual(OwnerTag(alias: OwnerTag(instance: "i", origin: .cli, bridge: "vale0", spec: gn).alias)?.spec, gn)
        // A tunnel alias without its VNI is damaged: not ours.
        XCTAssertNil(OwnerTag(alias: "swale:i cli vale0 vxlan remotes=10.0.0.2"))
        XCTAssertNil(OwnerTag(alias: "swale:i cli vale0 vxlan vni=0"))
    }

    func testInstancesDiffer() {
        XCTAssertNotEqual(
            OwnerTag.instance(socketPath: "/tmp/a/swaled.sock"), OwnerTag.instance(socketPath: "/tmp/b/swaled.sock"))
    }

    func testLongFieldsAreDroppedNotTruncated() throws {
        var spec = SwaleConfig.Port(kind: .veth, name: "")
        spec.peer = "p"; spec.netns = "/" + String(repeating: "n", count: 300)
        let tag = OwnerTag(instance: "i", origin: .config, bridge: "vale0", spec: spec)
        XCTAssertLessThanOrEqual(tag.alias.utf8.count, 255)
        XCTAssertNil(OwnerTag(alias: tag.alias)?.spec.netns)
        XCTAssertEqual(OwnerTag(alias: tag.alias)?.spec.peer, "p")
    }

    func testForeignOrDamagedAliasesAreNotOurs() {
        for a in [
            nil, "", "uplink to rack 3", "swale:", "swale:x cli", "swale:x bogus vale0 tap", "swale:x cli vale0 attach",
            "swale:x cli br0 tap", "swale:x cli vale0 veth", "swale:x cli vale0 tap junk"
        ] {
            XCTAssertNil(OwnerTag(alias: a), a ?? "nil")
        }
    }
}

final class ControlFuzzTests: XCTestCase {
    func makeService() -> Service {
        var o = ServiceOptions(socketPath: "/nonexistent/fuzz.sock")
        o.kernelPortsEnabled = false
        o.slots = 64
        o.bridge.fdbCapacity = 8
        o.bridge.maxPorts = 4
        o.bridge.busyPollMicros = 0
        o.budgets.clientMaxPorts = 4
        o.budgets.clientMaxPipes = 4
        return Service(options: o, logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// Every input gets a well-formed reply ({"ok": ...}); the service stays consistent.
    /// CI runs 30,000 inputs; `SWALE_FUZZ_ROUNDS=1000000` (Scripts/fuzz.sh) runs the full 10^6.
    func testRandomAndMutatedRequests() throws {
        let svc = makeService()
        let user = Credentials(pid: 1, uid: 1000, gid: 1000, groups: [1000], root: false)
        func session() -> Int {
            guard case .success(let sid) = svc.openSession(user) else { fatalError("session refused") }
            _ = svc.handle(Data(#"{"v":1,"op":"hello","args":{"version":1}}"#.utf8), session: sid)
            return sid
        }
        var sid = session()
        let corpus = [
            #"{"v":1,"op":"status"}"#, #"{"v":1,"op":"bridge.add","args":{"bridge":"vale1"}}"#, #"{"v":1,"op":"bridge.list"}"#,
            #"{"v":1,"op":"open","args":{"name":"vale1:a"}}"#, #"{"v":1,"op":"open","args":{"name":"vale1:a{1"}}"#,
            #"{"v":1,"op":"port.list","args":{"bridge":"vale1"}}"#, #"{"v":1,"op":"stats","args":{"target":"vale1:a"}}"#,
            #"{"v":1,"op":"fdb.show","args":{"bridge":"vale1"}}"#,
            #"{"v":1,"op":"fdb.flush","args":{"bridge":"vale1","port":"a"}}"#,
            #"{"v":1,"op":"bridge.aging","args":{"bridge":"vale1","seconds":30}}"#,
            #"{"v":1,"op":"port.add","args":{"bridge":"vale1","kind":"tap","name":"t0"}}"#,
            #"{"v":1,"op":"port.del","args":{"bridge":"vale1","port":"a"}}"#,
            #"{"v":1,"op":"bridge.del","args":{"bridge":"vale1","force":true}}"#,
            #"{"v":1,"op":"config.dump"}"#, #"{"v":1,"op":"iface.create","args":{"name":"x0"}}"#,
            #"{"v":1,"op":"open","args":{"name":"vale1:b","slots":-5}}"#, #"{"v":1,"op":"hello","args":{"version":1}}"#,
            #"{"v":1,"op":"bridge.set","args":{"bridge":"vale1","allowUsers":["0"]}}"#
        ].map { Array($0.utf8) }
        let noise = Array("{}[]\":,\\0123456789 -.truefalsnul<>{}vale:".utf8) + [0x00, 0xff, 0x80]
        var state: UInt64 = 0x5EED
        func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        var okCount = 0
        let rounds = ProcessInfo.processInfo.environment["SWALE_FUZZ_ROUNDS"].flatMap { Int($0) } ?? 30_000
        for round in 0..<rounds {
            var b = corpus[Int(next() % UInt64(corpus.count))]
            if round % 10 == 0 {
                b = (0..<Int(next() % 64)).map { _ in UInt8(truncatingIfNeeded: next()) }  // pure noise
            } else if round % 3 != 0 {
                for _ in 0..<Int(1 + next() % 3) {
                    let at = Int(next() % UInt64(b.count + 1))
                    switch next() % 3 {
                    case 0 where at < b.count: b[at] = noise[Int(next() % UInt64(noise.count))]
                    case 1 where at < b.count: b.remove(at: at)
                    default: b.insert(noise[Int(next() % UInt64(noise.count))], at: at)
                    }
                }
            }
            let out = svc.handle(Data(b), session: sid)
            out.closeDescriptors()  // duplicates, the caller's to close
            let reply = out.data
            guard let obj = try? JSONSerialization.jsonObject(with: reply) as? [String: Any], let ok = obj["ok"] as? Bool else {
                return XCTFail(
                    "reply is not {\"ok\": ...} for \(String(decoding: b, as: UTF8.self)): \(String(decoding: reply, as: UTF8.self))"
                )
            }
            if ok {
                okCount += 1
            } else {
                if (obj["error"] as? String ?? "").isEmpty { return XCTFail("an error without a message") }
                if ErrorCode(rawValue: obj["code"] as? String ?? "") == nil {
                    return XCTFail("an error without a known code: \(obj)")
                }
            }
            if round % 5000 == 4999 {
                // A client that goes away: everything it held is released.
                svc.closeSession(sid)
                sid = session()
            }
        }
        svc.closeSession(sid)
        XCTAssertGreaterThan(okCount, rounds / 20)
        // Nothing held is left behind: no pipes, no regions, and bridges made by opens are reaped.
        let root = Credentials(pid: 1, uid: 0, gid: 0, groups: [0], root: true)
        guard case .success(let rsid) = svc.openSession(root) else { return XCTFail("root refused") }
        let st = svc.status(for: svc.sessions[rsid]!)
        XCTAssertEqual(st.pipes.count, 0)
        XCTAssertEqual(st.regions.count, 0, "\(st.regions.map(\.name))")
        XCTAssertTrue(svc.bridges.values.allSatisfy { $0.persistent && $0.ports.isEmpty }, "\(svc.bridges.keys.sorted())")
        for b in Array(svc.bridges.values) { try? svc.deleteBridge(b, force: true) }
    }
}

final class SettingsTableTests: XCTestCase {
    /// Every whole-number setting the config file knows has a home in the service's options, and a
    /// value written there reads back; a config dump carries it.
    func testEveryConfigSettingReachesTheService() throws {
        var o = ServiceOptions(socketPath: "/nonexistent/settings.sock")
        for s in SwaleConfig.settings {
            let v = s.range.upperBound == Int(Int32.max) ? s.range.lowerBound : (s.range.lowerBound + s.range.upperBound) / 2
            o[setting: s.key] = v
            XCTAssertEqual(o[setting: s.key], v, s.key)
        }
        XCTAssertNil(o[setting: "noSuchSetting"])
        var cfg = SwaleConfig()
        for s in SwaleConfig.settings { cfg[s.key] = s.range.lowerBound }
        var taken = ServiceOptions(socketPath: "/nonexistent/settings.sock")
        taken.take(cfg)
        for s in SwaleConfig.settings { XCTAssertEqual(taken[setting: s.key], s.range.lowerBound, s.key) }
        // And the file format carries them all.
        XCTAssertEqual(try SwaleConfig.parse(cfg.rendered()), cfg)
    }
}
