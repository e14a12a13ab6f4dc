// swale-cni run the way container runtimes run it (CNI_* environment, config on stdin, result on
// stdout) against namespaces the test makes, with Debian's host-local IPAM plugin.
import Foundation
import Glibc
import SwaleProtocol
import XCTest

final class CNITests: XCTestCase {
    var svc: ServiceFixture!
    let kernel = KernelObjects()
    var prefix: String { kernel.prefix }
    /// Where Debian's containernetworking-plugins put host-local (Scripts/setup.sh installs them).
    let cniPath = "/usr/lib/cni"
    var ipamDir: String { svc.dir + "/ipam" }
    var network: String { "\(prefix)net" }

    override func setUpWithError() throws {
        try requireRoot("CNI tests: namespaces, veth ports, IPAM", tools: ["ip", "ping"])
        guard FileManager.default.isExecutableFile(atPath: "\(cniPath)/host-local") else {
            throw FixtureError("\(cniPath)/host-local is missing: Scripts/setup.sh installs containernetworking-plugins")
        }
        svc = try ServiceFixture()
    }

    override func tearDown() {
        if let svc { _ = svc.stop() }
        kernel.cleanup()  // the namespaces: each takes its veth pair with it
    }

    /// The network configuration: bridge vale0, host-local in the test's directory.
    func conf(_ version: String = "1.1.0", _ extra: [String: Any] = [:], ipam: [String: Any]? = nil) -> [String: Any] {
        var c: [String: Any] = [
            "cniVersion": version, "name": network, "type": "swale-cni", "bridge": "vale0", "socket": svc.socket,
            "mtu": 1400,
            "ipam": ipam ?? ["type": "host-local", "subnet": "10.91.0.0/24", "dataDir": ipamDir]
        ]
        for (k, v) in extra { c[k] = v }
        return c
    }

    struct Outcome {
        var rc: Int32
        var json: [String: Any]
        var text: String
        var code: Int? { json["code"] as? Int }
    }

    /// One plugin invocation.
    @discardableResult
    func cni(
        _ command: String, _ config: [String: Any], id: String? = nil, netns: String? = nil, ifname: String? = "eth0",
        env extra: [String: String] = [:]
    ) throws -> Outcome {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Products.path("swale-cni"))
        var env = ["CNI_COMMAND": command, "CNI_PATH": cniPath, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        if let id { env["CNI_CONTAINERID"] = id }
        if let netns { env["CNI_NETNS"] = "/var/run/netns/\(netns)" }
        if let ifname { env["CNI_IFNAME"] = ifname }
        for (k, v) in extra { env[k] = v }
        p.environment = env
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: config))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: out, as: UTF8.self)
        let json = (try? JSONSerialization.jsonObject(with: out)) as? [String: Any] ?? [:]
        return Outcome(rc: p.terminationStatus, json: json, text: text)
    }

    func leases() -> Set<String> {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(ipamDir)/\(network)")) ?? []
        return Set(files.filter { $0.first!.isNumber && $0.contains(".") && !$0.hasPrefix("last_reserved") })
    }

    func ports() throws -> [PortInfo] { try svc.call(PortList(bridge: "vale0")) }

    func address(_ r: Outcome) -> String {
        let ips = r.json["ips"] as? [[String: Any]] ?? []
        return (ips.first?["address"] as? String ?? "").split(separator: "/").first.map(String.init) ?? ""
    }

    func ping(_ ns: String, _ ip: String, count: Int = 2) -> Bool {
        sh("ip netns exec \(ns) ping -c \(count) -W 1 -i 0.2 \(ip)").0 == 0
    }

    func testAddPingCheckDelLeavesNothing() throws {
        let nsA = kernel.netns("a"), nsB = kernel.netns("b")
        let a = try cni("ADD", conf(), id: "\(prefix)-ctr-a", netns: nsA)
        XCTAssertEqual(a.rc, 0, a.text)
        let b = try cni("ADD", conf(), id: "\(prefix)-ctr-b", netns: nsB)
        XCTAssertEqual(b.rc, 0, b.text)

        // The spec's result: host end, container end in its sandbox, the address on interface 1.
        XCTAssertEqual(a.json["cniVersion"] as? String, "1.1.0")
        let ifaces = a.json["interfaces"] as? [[String: Any]] ?? []
        XCTAssertEqual(ifaces.count, 2, a.text)
        XCTAssertEqual(ifaces.last?["name"] as? String, "eth0")
        XCTAssertEqual(ifaces.last?["sandbox"] as? String, "/var/run/netns/\(nsA)")
        let hostA = ifaces.first?["name"] as? String ?? ""
        XCTAssertTrue(hostA.hasPrefix("swc") && hostA.utf8.count == 15, hostA)
        let ips = a.json["ips"] as? [[String: Any]] ?? []
        XCTAssertEqual(ips.first?["interface"] as? Int, 1)
        XCTAssertNil(ips.first?["version"], "1.x results carry no IP version")
        let ipA = address(a), ipB = address(b)
        XCTAssertTrue(ipA.hasPrefix("10.91.0.") && ipB.hasPrefix("10.91.0.") && ipA != ipB, "\(ipA) \(ipB)")
        XCTAssertEqual(leases(), [ipA, ipB])

        // Inside the namespace: MTU, address, MAC as reported.
        let link = sh("ip netns exec \(nsA) ip -o link show eth0").1
        XCTAssertTrue(link.contains("mtu 1400") && link.contains("state UP"), link)
        XCTAssertTrue(link.contains(ifaces.last?["mac"] as? String ?? "?"), link)
        XCTAssertTrue(sh("ip netns exec \(nsA) ip -o addr show eth0").1.contains("\(ipA)/24"))
        XCTAssertTrue(ping(nsA, ipB), "the two containers reach each other through the switch")

        // swaled shows whose ports they are, and keeps them out of the configuration.
        let ps = try ports()
        XCTAssertEqual(Set(ps.compactMap(\.container)), ["\(prefix)-ctr-a", "\(prefix)-ctr-b"])
        XCTAssertTrue(ps.allSatisfy { $0.network == network && $0.peer == "eth0" && $0.kind == "veth" })
        let list = try svc.ctl(["port", "list", "vale0"]).1
        XCTAssertTrue(list.contains("\(prefix)-ctr-a"), list)
        XCTAssertFalse(try svc.ctl(["config", "dump"]).1.contains("swc"), "container ports are not configuration")

        // CHECK against the result ADD printed; then with an address gone.
        var checkConf = conf()
        checkConf["prevResult"] = a.json
        let ok = try cni("CHECK", checkConf, id: "\(prefix)-ctr-a", netns: nsA)
        XCTAssertEqual(ok.rc, 0, ok.text)
        XCTAssertEqual(sh("ip netns exec \(nsA) ip addr del \(ipA)/24 dev eth0").0, 0)
        let bad = try cni("CHECK", checkConf, id: "\(prefix)-ctr-a", netns: nsA)
        XCTAssertEqual(bad.rc, 1)
        XCTAssertEqual(bad.code, 101, bad.text)
        XCTAssertTrue((bad.json["details"] as? String ?? "").contains(ipA), bad.text)

        // DEL twice (the second finds nothing and succeeds), and DEL after the namespace is gone.
        for _ in 0..<2 {
            let d = try cni("DEL", conf(), id: "\(prefix)-ctr-a", netns: nsA)
            XCTAssertEqual(d.rc, 0, d.text)
            XCTAssertEqual(d.text, "", "DEL prints nothing")
        }
        XCTAssertEqual(sh("ip netns del \(nsB)").0, 0)
        let d = try cni("DEL", conf(), id: "\(prefix)-ctr-b", netns: nsB)
        XCTAssertEqual(d.rc, 0, d.text)

        XCTAssertTrue(try svc.eventually { try ports().isEmpty }, "ports left")
        XCTAssertEqual(leases(), [], "IPAM leases left")
        XCTAssertFalse(sh("ip -o link show").1.contains(hostA), "host end \(hostA) left")
        XCTAssertTrue(sh("ip netns exec \(nsA) ip -o link show").1.split(separator: "\n").allSatisfy { !$0.contains("eth0") })
    }

    func testVersionsAndErrorsFollowTheSpec() throws {
        let v = try cni("VERSION", ["cniVersion": "1.0.0"])
        XCTAssertEqual(v.rc, 0)
        XCTAssertEqual(v.json["supportedVersions"] as? [String], ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])

        let ns = kernel.netns("e")
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale0"]).0, 0)
        func expect(_ code: Int, _ command: String, _ c: [String: Any], netns: String? = ns, _ detail: String) throws {
            let r = try cni(command, c, id: "\(prefix)-bad", netns: netns)
            XCTAssertEqual(r.rc, 1, "\(detail): \(r.text)")
            XCTAssertEqual(r.code, code, "\(detail): \(r.text)")
            XCTAssertNotNil(r.json["msg"] as? String, r.text)
        }
        var c = conf()
        c["bridge"] = nil
        try expect(7, "ADD", c, "no bridge")
        try expect(7, "ADD", conf("1.1.0", ["mtu": 20]), "mtu 20")
        try expect(7, "ADD", conf("1.1.0", ["mac": "01:00:5e:00:00:01"]), "multicast MAC")
        try expect(7, "ADD", conf("1.1.0", ["vlan": 4095]), "vlan 4095")
        try expect(7, "ADD", conf("1.1.0", ["isolated": 1]), "isolated: 1")
        try expect(7, "ADD", conf("1.1.0", ["trunk": [["minID": 30, "maxID": 20]]]), "descending trunk range")
        try expect(1, "ADD", conf("0.2.0"), "version 0.2.0")
        try expect(1, "CHECK", conf("0.3.1", ["prevResult": [:] as [String: Any]]), "CHECK before 0.4.0")
        try expect(4, "ADD", conf(), netns: nil, "no CNI_NETNS")
        try expect(4, "FROB", conf(), "unknown command")
        try expect(5, "ADD", conf("1.1.0", ipam: ["type": "no-such-ipam"]), "missing IPAM plugin")
        let garbage = try cni("ADD", ["cniVersion": 1], id: "x", netns: ns)
        XCTAssertEqual(garbage.code, 7, garbage.text)
        XCTAssertEqual(try ports().count, 0, "a refused ADD leaves no port")

        // A 0.3.1 result gives each IP its version; host-local is spoken to in the config's version.
        let old = try cni("ADD", conf("0.3.1"), id: "\(prefix)-old", netns: ns)
        XCTAssertEqual(old.rc, 0, old.text)
        XCTAssertEqual(old.json["cniVersion"] as? String, "0.3.1")
        XCTAssertEqual((old.json["ips"] as? [[String: Any]])?.first?["version"] as? String, "4", old.text)
        // An ADD that fails after the port exists (a route the namespace refuses) undoes all of it.
        let failing = try cni(
            "ADD",
            conf(
                "1.1.0",
                ipam: [
                    "type": "host-local", "subnet": "10.92.0.0/24", "dataDir": ipamDir,
                    "routes": [["dst": "10.93.0.0/24", "gw": "10.99.0.1"]]
                ]),
            id: "\(prefix)-undo", netns: ns, ifname: "net1")
        XCTAssertEqual(failing.code, 102, failing.text)
        XCTAssertEqual(try ports().map { $0.container }, ["\(prefix)-old"], "the failed attachment's port is gone")
        XCTAssertEqual(leases().count, 1, "the failed attachment's lease is released: \(leases())")
        XCTAssertEqual(try cni("DEL", conf("0.3.1"), id: "\(prefix)-old", netns: ns).rc, 0)
        XCTAssertEqual(leases(), [])
    }

    func testRequestedMACVlansAndIsolationSurviveARestart() throws {
        XCTAssertEqual(try svc.ctl(["bridge", "add", "vale0"]).0, 0)
        XCTAssertEqual(try svc.ctl(["bridge", "set", "vale0", "--vlan-filtering", "on"]).0, 0)
        let nsA = kernel.netns("a"), nsB = kernel.netns("b"), nsC = kernel.netns("c")
        let macA = "02:5a:00:00:00:0a", macB = "02:5a:00:00:00:0b"
        let a = try cni("ADD", conf("1.0.0", ["vlan": 10, "runtimeConfig": ["mac": macA]]), id: "\(prefix)-a", netns: nsA)
        XCTAssertEqual(a.rc, 0, a.text)
        let b = try cni(
            "ADD", conf("1.0.0", ["vlan": 10]), id: "\(prefix)-b", netns: nsB, env: ["CNI_ARGS": "IgnoreUnknown=1;MAC=\(macB)"])
        XCTAssertEqual(b.rc, 0, b.text)
        let c = try cni("ADD", conf("1.0.0", ["vlan": 20]), id: "\(prefix)-c", netns: nsC)
        XCTAssertEqual(c.rc, 0, c.text)
        XCTAssertTrue(sh("ip netns exec \(nsA) cat /sys/class/net/eth0/address").1.contains(macA))
        XCTAssertTrue(sh("ip netns exec \(nsB) cat /sys/class/net/eth0/address").1.contains(macB))

        func checkRules(_ when: String) throws {
            let rules = try svc.call(VlanShow(bridge: "vale0"))
            let vids = Dictionary(
                uniqueKeysWithValues: rules.map {
                    ($0.port, $0.vlans.map { "\($0.vid)\($0.pvid ? "p" : "")\($0.untagged ? "u" : "")" })
                })
            let names = try ports().reduce(into: [String: String]()) { $0[$1.container ?? "?"] = $1.name }
            XCTAssertEqual(vids[names["\(prefix)-a"] ?? "?"], ["10pu"], "\(when): \(vids)")
            XCTAssertEqual(vids[names["\(prefix)-c"] ?? "?"], ["20pu"], "\(when): \(vids)")
            XCTAssertTrue(ping(nsA, address(b)), "\(when): same VLAN reaches")
            XCTAssertFalse(ping(nsA, address(c), count: 1), "\(when): VLAN 20 is not reached from VLAN 10")
        }
        try checkRules("before the restart")

        // swaled restarts (same socket): the ports come back with their attachment and their rules.
        XCTAssertEqual(svc.stop(keepDirectory: true), 0)
        svc = try ServiceFixture(socket: svc.socket)
        XCTAssertTrue(try svc.eventually { try ports().count == 3 }, "three ports after the restart")
        XCTAssertEqual(Set(try ports().compactMap(\.container)), ["\(prefix)-a", "\(prefix)-b", "\(prefix)-c"])
        XCTAssertEqual(try svc.ctl(["bridge", "set", "vale0", "--vlan-filtering", "on"]).0, 0)
        try checkRules("after the restart")

        // podman's `network reload`: DEL and ADD again with the old address and a new MAC. The
        // gratuitous ARP updates B's entry for A at once (no stale MAC until it times out).
        let ipA = address(a)
        XCTAssertTrue(sh("ip netns exec \(nsB) ip neigh show \(ipA)").1.contains(macA))
        sleep(1)  // past the neighbour entry's locktime, as a real reload would be
        XCTAssertEqual(try cni("DEL", conf("1.0.0", ["vlan": 10]), id: "\(prefix)-a", netns: nsA).rc, 0)
        let newMAC = "02:5a:00:00:01:0a"
        let again = try cni(
            "ADD", conf("1.0.0", ["vlan": 10, "runtimeConfig": ["mac": newMAC]]), id: "\(prefix)-a", netns: nsA,
            env: ["CNI_ARGS": "IgnoreUnknown=1;IP=\(ipA)"])
        XCTAssertEqual(again.rc, 0, again.text)
        XCTAssertEqual(address(again), ipA)
        XCTAssertTrue(
            svc.eventually(2) { sh("ip netns exec \(nsB) ip neigh show \(ipA)").1.contains(newMAC) },
            "B's neighbour entry: \(sh("ip netns exec \(nsB) ip neigh show \(ipA)").1)")
        for (id, ns) in [("a", nsA), ("b", nsB), ("c", nsC)] {
            XCTAssertEqual(try cni("DEL", conf("1.0.0"), id: "\(prefix)-\(id)", netns: ns).rc, 0)
        }
        XCTAssertEqual(
            try svc.call(VlanShow(bridge: "vale0")).filter { $0.port.hasPrefix("swc") }.count, 0, "rules go with the ports")
    }

    func testGCStatusAndDelWithSwaledDown() throws {
        let nsA = kernel.netns("a"), nsB = kernel.netns("b")
        let a = try cni("ADD", conf(), id: "\(prefix)-keep", netns: nsA)
        let b = try cni("ADD", conf(), id: "\(prefix)-stale", netns: nsB)
        XCTAssertEqual(a.rc + b.rc, 0, a.text + b.text)
        XCTAssertEqual(leases().count, 2)

        var gc = conf()
        gc["cni.dev/valid-attachments"] = [["containerID": "\(prefix)-keep", "ifname": "eth0"]]
        let r = try cni("GC", gc, ifname: nil)
        XCTAssertEqual(r.rc, 0, r.text)
        XCTAssertEqual(try ports().compactMap(\.container), ["\(prefix)-keep"])
        XCTAssertEqual(leases(), [address(a)], "the stale attachment's lease is released")
        XCTAssertFalse(sh("ip netns exec \(nsB) ip -o link").1.contains("eth0"), "the stale container end is gone")

        let up = try cni("STATUS", conf(), ifname: nil)
        XCTAssertEqual(up.rc, 0, up.text)
        XCTAssertEqual(try cni("STATUS", conf("1.0.0"), ifname: nil).code, 1, "STATUS is 1.1.0")

        // swaled down: STATUS says the plugin cannot serve ADD; DEL still removes the host end
        // (its owner tag names the container) and releases the address.
        XCTAssertEqual(svc.stop(keepDirectory: true), 0)
        let down = try cni("STATUS", conf(), ifname: nil)
        XCTAssertEqual(down.code, 50, down.text)
        let host = (a.json["interfaces"] as? [[String: Any]])?.first?["name"] as? String ?? "?"
        XCTAssertTrue(sh("ip -o link show \(host)").1.contains(host))
        let d = try cni("DEL", conf(), id: "\(prefix)-keep", netns: nsA)
        XCTAssertEqual(d.rc, 0, d.text)
        XCTAssertNotEqual(sh("ip -o link show \(host)").0, 0, "host end deleted without swaled")
        XCTAssertEqual(leases(), [])
        let add = try cni("ADD", conf(), id: "\(prefix)-late", netns: nsA)
        XCTAssertEqual(add.code, 11, "ADD without swaled: try again later: \(add.text)")
        try? FileManager.default.removeItem(atPath: svc.dir)
    }

    /// swaled dying between creating a pair and tagging it leaves an untagged host end under the
    /// attachment's name; swaled (restarted) does not know it, and DEL still removes it.
    func testDelRemovesAnUntaggedHostEndLeftByACrash() throws {
        let ns = kernel.netns("o")
        let a = try cni("ADD", conf(), id: "\(prefix)-orphan", netns: ns)
        XCTAssertEqual(a.rc, 0, a.text)
        let host = (a.json["interfaces"] as? [[String: Any]])?.first?["name"] as? String ?? "?"
        XCTAssertEqual(svc.stop(keepDirectory: true), 0)
        XCTAssertEqual(sh("ip link set dev \(host) alias ''").0, 0)  // as if never tagged
        svc = try ServiceFixture(socket: svc.socket)
        XCTAssertEqual((try? ports())?.count ?? 0, 0, "an untagged interface is not re-adopted")
        let d = try cni("DEL", conf(), id: "\(prefix)-orphan", netns: ns)
        XCTAssertEqual(d.rc, 0, d.text)
        XCTAssertNotEqual(sh("ip -o link show \(host)").0, 0, "the untagged host end is gone")
        XCTAssertEqual(leases(), [])
    }

    /// Debian's podman with its CNI backend, configured only for this test (CONTAINERS_CONF, its own
    /// storage), runs two busybox containers on a network whose plugin is swale-cni.
    func testPodmanContainersThroughSwaleCNI() throws {
        try requireRoot("podman with the CNI backend", tools: ["podman", "runc", "busybox"])
        let d = svc.dir + "/podman"
        let rootfs = d + "/rootfs", plugins = d + "/plugins", netdir = d + "/net"
        for dir in [rootfs + "/bin", plugins, netdir] + ["proc", "sys", "dev", "etc", "tmp"].map({ rootfs + "/" + $0 }) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        for applet in ["sh", "sleep", "ping", "ip"] {
            try FileManager.default.createSymbolicLink(atPath: rootfs + "/bin/" + applet, withDestinationPath: "busybox")
        }
        try FileManager.default.createSymbolicLink(
            atPath: plugins + "/swale-cni", withDestinationPath: try Products.path("swale-cni"))
        let conflist: [String: Any] = [
            "cniVersion": "1.0.0", "name": network,
            "plugins": [
                [
                    "type": "swale-cni", "bridge": "vale0", "socket": svc.socket,
                    "ipam": ["type": "host-local", "subnet": "10.96.0.0/24", "dataDir": ipamDir]
                ]
            ]
        ]
        try JSONSerialization.data(withJSONObject: conflist).write(to: URL(fileURLWithPath: netdir + "/swale.conflist"))
        let conf =
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"\(plugins)\", \"/usr/lib/cni\"]\nnetwork_config_dir = \"\(netdir)\"\n"
        try conf.write(toFile: d + "/containers.conf", atomically: true, encoding: .utf8)
        let podman = "CONTAINERS_CONF=\(d)/containers.conf podman --root \(d)/root --runroot \(d)/runroot"
        // crun refuses this VM's cgroup layout (runc does not); limits within the machine's hard ones.
        let run = "\(podman) run --runtime runc --network \(network) --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
        let server = "\(prefix)-srv", client = "\(prefix)-cli"
        defer {
            for name in [server, client] { sh("\(podman) rm -f -t 0 \(name) >/dev/null 2>&1", seconds: 30) }
        }
        // -d leaves conmon running with every descriptor podman inherited, and Foundation's Process
        // waits for its children's descriptors to close: the shell closes all but 0-2 first, and
        // sends 1 and 2 to a file.
        let out = d + "/run.out"
        let detached = "\(run) -d --name \(server) --rootfs \(rootfs) /bin/sleep 60 >\(out) 2>&1 </dev/null"
        let closeInherited = "import os, sys; os.closerange(3, 65536); os.execvp('sh', ['sh', '-c', sys.argv[1]])"
        let started = sh("python3 -c \"\(closeInherited)\" '\(detached)'", seconds: 60)
        XCTAssertEqual(started.0, 0, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
        let id = sh("\(podman) inspect \(server) --format '{{.Id}}'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let net = "{{.NetworkSettings.Networks.\(network).IPAddress}} {{.NetworkSettings.Networks.\(network).MacAddress}}"
        let before = sh("\(podman) inspect \(server) --format '\(net)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let ip = String(before.split(separator: " ").first ?? "")
        XCTAssertTrue(ip.hasPrefix("10.96.0."), before)
        XCTAssertEqual(try ports().map { $0.container }, [id], "the server container's port, named by its id")

        let pinged = sh(
            "\(run) --rm --name \(client) --cap-add NET_RAW --rootfs \(rootfs) /bin/ping -c 2 -W 1 \(ip)", seconds: 60)
        XCTAssertEqual(pinged.0, 0, "a second container pings the first through the switch: \(pinged.1)")
        XCTAssertEqual(try ports().count, 1, "the client's port went with it (podman called DEL)")

        // `network reload` deletes and adds the attachment with the old address and MAC.
        XCTAssertEqual(sh("\(podman) network reload \(server)", seconds: 60).0, 0)
        XCTAssertEqual(
            sh("\(podman) inspect \(server) --format '\(net)'").1.trimmingCharacters(in: .whitespacesAndNewlines), before)
        XCTAssertEqual(try ports().map { $0.container }, [id])

        XCTAssertEqual(sh("\(podman) rm -f -t 0 \(server)", seconds: 60).0, 0)
        XCTAssertTrue(try svc.eventually { try ports().isEmpty }, "no port left after podman rm")
        XCTAssertEqual(leases(), [], "no lease left after podman rm")
    }
}
