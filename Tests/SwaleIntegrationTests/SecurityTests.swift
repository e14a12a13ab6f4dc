// The trusted control plane (issue 10), tried as hostile members of the socket group would: two
// unprivileged users and two groups made for each test (prefixed, removed afterwards), a swaled
// whose socket group is the first group, and clients run as those users with setpriv. Each test
// checks that what is refused leaves the kernel and the service unchanged, and that the service's
// descriptors and memory come back after a flood while root is served throughout.
import Foundation
import Glibc
import SwaleClient
import SwaleConfig
import SwaleProtocol
import XCTest

final class SecurityTests: XCTestCase {
    let kernel = KernelObjects()
    var prefix: String { kernel.prefix }
    /// Test users: `a` and `b` in the socket group `g`; `b` also in group `l` (a "lab").
    var userA: String { "\(prefix)a" }
    var userB: String { "\(prefix)b" }
    var group: String { "\(prefix)g" }
    var lab: String { "\(prefix)l" }
    var svc: ServiceFixture!
    var files: [String] = []
    var clients: [Child] = []
    static let limits =
        #"{"clientMaxSessions": 8, "clientMaxPorts": 4, "clientMaxPipes": 4, "clientMaxBridges": 2, "clientMaxMemoryMiB": 240}"#

    override func setUpWithError() throws {
        guard getuid() == 0 else {
            throw XCTSkip("needs root: creates users, groups and interfaces, and runs clients as those users")
        }
        for tool in ["setpriv", "useradd", "groupadd", "/usr/bin/python3", "ip"] where sh("command -v \(tool)").0 != 0 {
            XCTFail("\(tool) is not installed (run Scripts/setup.sh)")
        }
        XCTAssertEqual(sh("groupadd \(group) && groupadd \(lab)").0, 0)
        for (u, extra) in [(userA, ""), (userB, " -G \(lab)")] {
            let (rc, out) = sh("useradd -M -N -g \(group)\(extra) -s /usr/sbin/nologin \(u)")
            XCTAssertEqual(rc, 0, out)
        }
        let cfg = NSTemporaryDirectory() + "\(prefix)-limits.json"
        // The limits, and one bridge whose access list comes from the config.
        let text = SecurityTests.limits.dropLast() + #", "bridges": [{"name": "vale7", "allowGroups": ["\#(lab)"]}]}"#
        try Data(text.utf8).write(to: URL(fileURLWithPath: cfg))
        files.append(cfg)
        svc = try ServiceFixture(extraArgs: ["--socket-group", group, "--config", cfg])
        chmod(svc.dir, 0o755)
    }

    override func tearDown() {
        for c in clients { c.signal(SIGKILL); c.wait(seconds: 5) }
        if let svc, svc.daemon.process.isRunning { XCTAssertEqual(svc.stop(), 0) }
        if getuid() == 0 {
            sh(
                "userdel \(userA) 2>/dev/null; userdel \(userB) 2>/dev/null; groupdel \(lab) 2>/dev/null; groupdel \(group) 2>/dev/null"
            )
            kernel.cleanup()
        }
        for f in files { try? FileManager.default.removeItem(atPath: f) }
    }

    // MARK: helpers

    func asUser(_ user: String) -> String { "setpriv --reuid=\(user) --regid=\(group) --init-groups" }

    /// swalectl as a test user: (exit code, stdout + stderr).
    func ctl(_ user: String, _ args: String) throws -> (Int32, String) {
        sh("SWALE_SOCKET=\(svc.socket) \(asUser(user)) \(try Products.path("swalectl")) \(args)")
    }

    /// Root's swalectl.
    func rootCtl(_ args: String) throws -> (Int32, String) {
        sh("SWALE_SOCKET=\(svc.socket) \(try Products.path("swalectl")) \(args)")
    }

    /// The system's python3: one under root's home (pyenv) is not reachable for the test users.
    static let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"

    static let hostileClient: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent("Scripts/hostile-client.py").path
    }()

    /// Starts Scripts/hostile-client.py as `user`; it prints JSON lines, then holds for `hold` s.
    func hostile(_ user: String, hold: Double, _ args: [String], replyTimeout: Double = 10, stdin: Int32? = nil) throws
        -> Child
    {
        let c = try Child(
            "/usr/bin/setpriv",
            [
                "--reuid=\(user)", "--regid=\(group)", "--init-groups", SecurityTests.python, SecurityTests.hostileClient,
                svc.socket, "\(hold)"
            ] + args, env: ["HOSTILE_TIMEOUT": "\(replyTimeout)"], stdin: stdin)
        clients.append(c)
        return c
    }

    /// The JSON lines a hostile client printed once it printed `count` of them (bounded wait).
    func lines(_ c: Child, _ count: Int, seconds: Double = 20) -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let ls = c.partialStdout.split(separator: "\n")
            if ls.count >= count { break }
            // Exited: wait for its output to be read to the end before looking at it.
            if !c.process.isRunning { c.wait(seconds: 5); break }
            usleep(20_000)
        }
        return c.partialStdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// Opens names as `user`, returns each result and the client holding them for `hold` seconds.
    func open(_ user: String, _ names: [String], hold: Double = 30) throws -> ([[String: Any]], Child) {
        let c = try hostile(user, hold: hold, ["open"] + names)
        let r = lines(c, names.count)
        guard r.count == names.count else {
            c.signal(SIGKILL)
            c.wait()
            throw FixtureError("hostile client printed \(r.count) of \(names.count) results: \(c.stdout) \(c.stderr)")
        }
        return (r, c)
    }

    func bridgeNames(_ out: String) -> [String] {
        guard let data = out.data(using: .utf8), let bs = try? JSONDecoder().decode([BridgeInfo].self, from: data) else {
            return []
        }
        return bs.map(\.name)
    }

    // MARK: 1. authorization

    func testMembersAreRefusedEverythingThatTouchesTheKernelOrOthersObjects() throws {
        XCTAssertEqual(try rootCtl("bridge add vale0").0, 0)
        XCTAssertEqual(try rootCtl("bridge aging vale0 77").0, 0)
        let refused: [(String, String)] = [
            ("port add vale0 tap \(prefix)t", "port.add needs root"),
            (
                "port add vale0 veth \(prefix)v --peer \(prefix)w --netns /proc/1/ns/net --address 10.9.9.1/24",
                "port.add needs root"
            ),
            ("port attach vale0 lo", "port.attach needs root"),
            ("port del vale0 x", "port.del needs root"),
            ("-n \(prefix)n", "iface.create needs root"),
            ("-r \(prefix)n", "iface.remove needs root"),
            ("config dump", "config.dump needs root"),
            ("mirror add vale0:x --to \(prefix)m", "mirror.add needs root"),
            ("mirror del \(prefix)m", "mirror.del needs root"),
            ("mirror list", "mirror.list needs root"),
            ("bridge del vale0 --force", "bridge.del needs root or the owner of bridge vale0"),
            ("bridge aging vale0 5", "bridge.aging needs root or the owner"),
            ("fdb flush vale0", "fdb.flush needs root or the owner"),
            ("bridge set vale0 --allow-user \(userA)", "bridge.set needs root or the owner"),
            ("fdb show vale0", "does not admit"),
            ("stats vale0", "does not admit")
        ]
        for (args, words) in refused {
            let (rc, out) = try ctl(userA, args)
            XCTAssertNotEqual(rc, 0, args)
            XCTAssertTrue(out.contains(words), "\(args): \(out)")
        }
        // Metrics: a member sees the counters of bridges that admit them only.
        let (mrc, metrics) = try ctl(userA, "metrics")
        XCTAssertEqual(mrc, 0, metrics)
        XCTAssertTrue(metrics.contains("swale_bridges 0"), metrics)
        XCTAssertFalse(metrics.contains("bridge=\"vale0\""), metrics)
        // Nothing changed: no interface, root's bridge as it was, still root's.
        XCTAssertNotEqual(sh("ip link show \(prefix)t").0, 0)
        XCTAssertNotEqual(sh("ip link show \(prefix)v").0, 0)
        XCTAssertNotEqual(sh("ip link show \(prefix)n").0, 0)
        let b = try XCTUnwrap(svc.call(BridgeList()).first { $0.name == "vale0" })
        XCTAssertEqual(b.agingSeconds, 77)
        XCTAssertEqual(b.owner, "root")
        // A member lists only what admits them; root sees all.
        XCTAssertEqual(bridgeNames(try ctl(userA, "bridge list --json").1), [])
        XCTAssertEqual(bridgeNames(try rootCtl("bridge list --json").1), ["vale0", "vale7"])
        // Refusals are logged with who asked.
        _ = svc.stop()
        XCTAssertTrue(svc.daemon.stderr.contains("refused port.add from pid"), svc.daemon.stderr.suffix(2000).description)
    }

    /// Root is uid 0 (or swaled's uid) as SO_PEERCRED recorded it at connect. A capability is not:
    /// the process behind a socket can exec a setuid or file-capability program after connecting.
    func testCapabilitiesAloneAreNotRoot() throws {
        let ctlPath = try Products.path("swalectl")
        let withCap = sh(
            "SWALE_SOCKET=\(svc.socket) setpriv --reuid=\(userA) --regid=\(group) --init-groups --inh-caps=+net_admin --ambient-caps=+net_admin \(ctlPath) config dump"
        )
        XCTAssertNotEqual(withCap.0, 0)
        XCTAssertTrue(withCap.1.contains("config.dump needs root"), withCap.1)
        // Every capability inside a user namespace of one's own is no capability here either.
        let probe = sh("\(asUser(userA)) unshare -U -r true")
        guard probe.0 == 0 else {
            return print("unprivileged user namespaces are off here; that half is not checked: \(probe.1)")
        }
        let inOwnNS = sh("SWALE_SOCKET=\(svc.socket) \(asUser(userA)) unshare -U -r \(ctlPath) config dump")
        XCTAssertNotEqual(inOwnNS.0, 0)
        XCTAssertTrue(inOwnNS.1.contains("config.dump needs root"), inOwnNS.1)
    }

    /// Kernel ports go on root's bridges only: on a member's bridge the member would see and send
    /// through the interface, and could delete the bridge out from under it.
    func testKernelPortsGoOnlyOnRootsBridges() throws {
        XCTAssertEqual(try ctl(userA, "bridge add valem").0, 0)
        for args in ["port add valem tap \(prefix)t", "port attach valem lo"] {
            let (rc, out) = try rootCtl(args)
            XCTAssertNotEqual(rc, 0, args)
            XCTAssertTrue(out.contains("belongs to \(userA); kernel ports go on root's bridges only"), "\(args): \(out)")
        }
        XCTAssertNotEqual(sh("ip link show \(prefix)t").0, 0, "nothing created")
    }

    // MARK: 2-3. owners, access lists, squatting

    func testBridgeAccessListsDecideWhoMayOpenPorts() throws {
        XCTAssertEqual(try rootCtl("bridge add vale0").0, 0)
        XCTAssertEqual(try rootCtl("bridge add vale1 --allow-user \(userA)").0, 0)
        let (r1, _) = try open(userA, ["vale0:a", "vale1:a"])
        XCTAssertEqual(r1[0]["code"] as? String, "permission-denied", "\(r1[0])")
        XCTAssertTrue((r1[0]["error"] as? String ?? "").contains("bridge vale0 does not admit"), "\(r1[0])")
        XCTAssertEqual(r1[1]["ok"] as? Bool, true, "\(r1[1])")
        XCTAssertEqual(r1[1]["fds"] as? Int, 3)
        let (r2, _) = try open(userB, ["vale1:b"])
        XCTAssertEqual(r2[0]["code"] as? String, "permission-denied", "\(r2[0])")
        // The lab group is let in; b is in it.
        XCTAssertEqual(try rootCtl("bridge set vale1 --allow-group \(lab)").0, 0)
        let (r3, _) = try open(userB, ["vale1:b"])
        XCTAssertEqual(r3[0]["ok"] as? Bool, true, "\(r3[0])")
        let info = try XCTUnwrap(svc.call(BridgeList()).first { $0.name == "vale1" })
        XCTAssertEqual(info.allowUsers, [userA])
        XCTAssertEqual(info.allowGroups, [lab])
        XCTAssertEqual(info.ports, 2)
        // What a member sees: the bridges that admit them, and of regions only their own.
        XCTAssertEqual(bridgeNames(try ctl(userB, "bridge list --json").1), ["vale1", "vale7"], "vale7 admits the lab group")
        let status = try JSONDecoder().decode(StatusInfo.self, from: Data(try ctl(userB, "status --json").1.utf8))
        XCTAssertEqual(status.regions.map(\.name), ["swale:vale1:b"])
        // A member's own bridge: theirs to manage, not another member's.
        XCTAssertEqual(try ctl(userA, "bridge add vale2").0, 0)
        XCTAssertTrue(try ctl(userB, "bridge del vale2").1.contains("needs root or the owner of bridge vale2 (\(userA))"))
        XCTAssertEqual(try ctl(userA, "bridge aging vale2 30").0, 0)
        XCTAssertEqual(try ctl(userA, "bridge del vale2").0, 0)
    }

    /// VLANs, static entries, port rules and the bridge's forwarding rules are the owner's; a member
    /// the bridge admits may look, not change; a user it does not admit may not even look.
    func testBridgeRulesAreTheOwnersToChange() throws {
        for args in [
            "vlan add vale7:b 10 --pvid", "vlan del vale7:b 1", "fdb add vale7 02:00:00:00:00:01 b",
            "fdb del vale7 02:00:00:00:00:01",
            "port set vale7:b --locked on", "bridge set vale7 --vlan-filtering on", "bridge set vale7 --group-fwd-mask 0x0008"
        ] {
            let (rc, out) = try ctl(userB, args)
            XCTAssertNotEqual(rc, 0, args)
            XCTAssertTrue(out.contains("needs root or the owner of bridge vale7"), "\(args): \(out)")
        }
        XCTAssertEqual(try ctl(userB, "vlan show vale7").0, 0, "admitted: may look")
        XCTAssertTrue(try ctl(userA, "vlan show vale7").1.contains("does not admit"))
        XCTAssertFalse(try ctl(userA, "vlan show").1.contains("vale7"), "nor see it in the list of all")
        // Their own bridge is theirs to shape, with the same checks as root's.
        XCTAssertEqual(try ctl(userA, "bridge add valem --allow-group \(lab)").0, 0)
        XCTAssertEqual(try ctl(userA, "bridge set valem --vlan-filtering on").0, 0)
        XCTAssertEqual(try ctl(userA, "vlan add valem:x 10 --pvid --untagged").0, 0)
        XCTAssertTrue(try ctl(userA, "vlan add valem:x 4095").1.contains("out of range"))
        XCTAssertEqual(try ctl(userA, "fdb add valem 02:00:00:00:00:09 x --vlan 10").0, 0)
        XCTAssertTrue(try ctl(userB, "fdb add valem 02:00:00:00:00:09 y --vlan 10").1.contains("needs root or the owner"))
        let rules = try JSONDecoder().decode([PortRulesInfo].self, from: Data(try ctl(userB, "vlan show valem --json").1.utf8))
        XCTAssertEqual(rules.map(\.port), ["x"])
        XCTAssertEqual(
            rules.first?.vlans,
            [PortRulesInfo.Vlan(vid: 1, pvid: false, untagged: true), PortRulesInfo.Vlan(vid: 10, pvid: true, untagged: true)])
    }

    /// Monitoring a port takes what opening it takes: the bridge admits you and the port is yours.
    func testOnlyTheOwnerOfAPortMayMonitorIt() throws {
        let (r, _) = try open(userB, ["vale7:b", "vale7:b/rt"])
        XCTAssertEqual(r[1]["ok"] as? Bool, true, "\(r[1])")
        let (r2, _) = try open(userB, ["vale7:other", "vale7:b/r"])
        XCTAssertEqual(r2[0]["ok"] as? Bool, true)
        XCTAssertEqual(r2[1]["ok"] as? Bool, true, "several monitors per port, the port held open elsewhere: \(r2[1])")
        let mine = try SwalePort.open("vale7:rootport", socket: svc.socket)
        defer { mine.close() }
        let (r3, _) = try open(userB, ["vale7:rootport/r"])
        XCTAssertEqual(r3[0]["code"] as? String, "permission-denied", "\(r3[0])")
        let (r4, _) = try open(userA, ["vale7:b/r"])
        XCTAssertEqual(r4[0]["code"] as? String, "permission-denied", "vale7 does not admit \(userA): \(r4[0])")
    }

    func testAdoptingADescriptorNeedsTheDescriptorAndThePort() throws {
        // b's own port, its wake-up line named on a second connection: joined (3 descriptors).
        let own = try hostile(userB, hold: 0, ["adopt", "open:vale7:bport"])
        let r0 = lines(own, 1)
        XCTAssertEqual(r0.first?["ok"] as? Bool, true, "\(r0)")
        XCTAssertEqual(r0.first?["fds"] as? Int, 3, "\(r0)")
        // root's port on vale7 (which admits b): b holding its wake-up descriptor still gets nothing.
        let mine = try SwalePort.open("vale7:rootport", socket: svc.socket)
        defer { mine.close() }
        let given = try hostile(userB, hold: 0, ["adopt", "fd:0"], stdin: mine.fileDescriptor)
        let r1 = lines(given, 1)
        XCTAssertEqual(r1.first?["code"] as? String, "permission-denied", "\(r1)")
        XCTAssertTrue((r1.first?["error"] as? String ?? "").contains("belongs to another user"), "\(r1)")
        XCTAssertEqual(r1.first?["fds"] as? Int, 0)
        // Not a socket, not open, a socket that is no wake-up line: named errors, nothing handed out.
        let devnull = Glibc.open("/dev/null", O_RDONLY)
        defer { Glibc.close(devnull) }
        let odd = try hostile(userA, hold: 0, ["adopt", "fd:0", "fd:999", "self", "fd:-1"], stdin: devnull)
        let r2 = lines(odd, 4)
        XCTAssertEqual(r2.count, 4, "\(r2)")
        let want: [(String, String)] = [
            ("invalid-argument", "not a socket"), ("invalid-argument", "No such file"),
            ("not-found", "not the wake-up descriptor"),
            ("invalid-argument", "not a descriptor number")
        ]
        for (r, (code, text)) in zip(r2, want) {
            XCTAssertEqual(r["code"] as? String, code, "\(r)")
            XCTAssertTrue((r["error"] as? String ?? "").contains(text), "\(text) in \(r)")
            XCTAssertEqual(r["fds"] as? Int, 0)
        }
    }

    func testAccessListsFromTheConfigAndBackIntoItsDump() throws {
        let (rb, _) = try open(userB, ["vale7:b"])
        XCTAssertEqual(rb[0]["ok"] as? Bool, true, "b is in the lab group the config admits: \(rb[0])")
        let (ra, _) = try open(userA, ["vale7:a"])
        XCTAssertEqual(ra[0]["code"] as? String, "permission-denied", "\(ra[0])")
        let dump = try SwaleConfig.parse(try svc.call(ConfigDump()).text)
        XCTAssertEqual(dump.bridges.first { $0.name == "vale7" }?.allowGroups, [lab])
        XCTAssertEqual(dump["clientMaxSessions"], 8)
    }

    func testSquattedNamesAndOthersPipesGiveNothing() throws {
        XCTAssertEqual(try rootCtl("bridge add vale3 --allow-group \(group)").0, 0)
        // b takes the pipe before the "victim" port exists: the port is then b's, and so are its pipes.
        let (rb, _) = try open(userB, ["vale3:victim{1"])
        XCTAssertEqual(rb[0]["ok"] as? Bool, true, "\(rb[0])")
        let (ra, _) = try open(userA, ["vale3:victim", "vale3:victim}1", "vale3:victim{2"])
        for r in ra {
            XCTAssertEqual(r["code"] as? String, "permission-denied", "\(r)")
            XCTAssertTrue((r["error"] as? String ?? "").contains("belongs to another user (\(userB))"), "\(r)")
            XCTAssertEqual(r["fds"] as? Int, 0, "no region handed out")
        }
        // And the other way round: a's open port and its pipes are a's.
        let (ra2, _) = try open(userA, ["vale3:mine"])
        XCTAssertEqual(ra2[0]["ok"] as? Bool, true)
        let (rb2, _) = try open(userB, ["vale3:mine{1", "vale3:mine}1", "vale3:mine"])
        for r in rb2 { XCTAssertEqual(r["code"] as? String, "permission-denied", "\(r)") }
        XCTAssertEqual(try svc.status().pipes.map { "\($0.parent){\($0.id)" }, ["vale3:victim{1"])
    }

    // MARK: 4. nothing blocks

    func testAFifoAsNamespaceFailsAtOnceWhileOthersAreServed() throws {
        XCTAssertEqual(try rootCtl("bridge add vale0").0, 0)
        let fifo = NSTemporaryDirectory() + "\(prefix)-fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        files.append(fifo)
        let plain = NSTemporaryDirectory() + "\(prefix)-plain"
        try Data("x".utf8).write(to: URL(fileURLWithPath: plain))
        files.append(plain)
        // A status caller in parallel is served while the FIFO request runs.
        let other = try Child(try Products.path("swalectl"), ["status"], env: svc.env)
        var messages: [String] = []
        for ns in [fifo, plain, NSTemporaryDirectory() + "\(prefix)-missing", "/proc/1/ns/pid"] {
            let t0 = Date()
            let (rc, out) = try rootCtl("port add vale0 veth \(prefix)v --peer \(prefix)w --netns \(ns)")
            XCTAssertLessThan(Date().timeIntervalSince(t0), 1.0, "answered within a second")
            XCTAssertNotEqual(rc, 0)
            messages.append(out.replacingOccurrences(of: ns, with: "NS"))
        }
        XCTAssertEqual(other.wait(seconds: 5), 0, other.stderr)
        // One answer for a FIFO, a plain file, a missing file and another kind of namespace.
        XCTAssertEqual(Set(messages).count, 1, "\(messages)")
        XCTAssertTrue(messages[0].contains("is not a network namespace"), messages[0])
        XCTAssertNotEqual(sh("ip link show \(prefix)v").0, 0, "nothing created")
    }

    // MARK: 5-6. floods

    /// Descriptors of the service once it has served a request (its worker pool made its own).
    func fdBaseline() throws -> (Int, [String]) {
        _ = try svc.status()
        usleep(200_000)
        return (svc.fdCount, svc.fdTable)
    }

    func testDescriptorFloodsLeaveNoDescriptorsBehind() throws {
        let (baseline, table) = try fdBaseline()
        let c = try hostile(userA, hold: 2, ["fds", "2000"])
        let r = try XCTUnwrap(lines(c, 1).first, c.stderr)
        // Linux 6.16+ refuses descriptors on the control socket (SO_PASSRIGHTS off); older kernels
        // deliver them and the service closes them at once.
        let refused = r["refused"] as? String
        XCTAssertTrue(refused != nil || r["sent"] as? Int == 32000, "\(r)")
        if refused != nil { XCTAssertEqual(r["sent"] as? Int, 0, "the first message with descriptors is refused: \(r)") }
        // While the client holds its connection, the service holds none of what it sent.
        XCTAssertLessThanOrEqual(svc.fdCount, baseline + 2, svc.fdTable.joined(separator: "\n"))
        XCTAssertNoThrow(try svc.status(), "root is served")
        c.wait(seconds: 20)
        XCTAssertTrue(
            svc.eventually(5) { self.svc.fdCount <= baseline }, "fds \(svc.fdCount) vs \(baseline): \(svc.fdTable) vs \(table)")
    }

    func testSessionFloodIsCappedPerUserAndRootIsServed() throws {
        let (baseline, table) = try fdBaseline()
        let c = try hostile(userA, hold: 3, ["sessions", "50"])
        let r = try XCTUnwrap(lines(c, 1).first, c.stderr)
        XCTAssertEqual(r["ok"] as? Int, 8, "clientMaxSessions: \(r)")
        XCTAssertEqual(r["refused"] as? Int, 42, "\(r)")
        XCTAssertEqual(r["codes"] as? [String], ["limit"], "\(r)")
        // Another user and root still get in.
        XCTAssertEqual(try ctl(userB, "status").0, 0)
        XCTAssertNoThrow(try svc.status())
        // One thread serves every session: no thread per connection.
        let threads =
            Int(
                (try String(contentsOfFile: "/proc/\(svc.daemon.pid)/status", encoding: .utf8)).split(separator: "\n")
                    .first { $0.hasPrefix("Threads:") }?.split(separator: "\t").last ?? "") ?? 0
        XCTAssertLessThan(threads, 40, "threads: \(threads)")
        c.wait(seconds: 20)
        XCTAssertTrue(
            svc.eventually(5) { self.svc.fdCount <= baseline }, "fds \(svc.fdCount) vs \(baseline): \(svc.fdTable) vs \(table)")
    }

    /// CPU seconds swaled has used (user + system, from /proc/PID/stat).
    func cpuSeconds() -> Double {
        let stat = (try? String(contentsOfFile: "/proc/\(svc.daemon.pid)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        guard fields.count > 13, let u = Double(fields[11]), let k = Double(fields[12]) else { return -1 }
        return (u + k) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Out of descriptors, accept() fails with EMFILE while connections stay pending: the service
    /// pauses accepting instead of spinning on them, and serves again once descriptors are back.
    func testRunningOutOfDescriptorsDoesNotSpin() throws {
        let (baseline, _) = try fdBaseline()
        // Only the soft limit: lowering the hard one could not be undone here.
        let soft = sh("prlimit --pid \(svc.daemon.pid) --nofile --noheadings --output SOFT").1.trimmingCharacters(
            in: .whitespacesAndNewlines)
        XCTAssertEqual(sh("prlimit --pid \(svc.daemon.pid) --nofile=\(baseline + 3):").0, 0)
        let c = try hostile(userA, hold: 2, ["sessions", "8"], replyTimeout: 0.5)
        usleep(500_000)
        let cpu0 = cpuSeconds()
        usleep(1_000_000)
        let used = cpuSeconds() - cpu0
        XCTAssertLessThan(used, 0.3, "swaled used \(used) s of CPU in 1 s while accept() had no descriptors")
        c.wait(seconds: 20)
        XCTAssertEqual(sh("prlimit --pid \(svc.daemon.pid) --nofile=\(soft):").0, 0, "soft limit back to \(soft)")
        XCTAssertTrue(svc.eventually(5) { (try? self.svc.status()) != nil }, "served again")
        _ = svc.stop()
        XCTAssertTrue(svc.daemon.stderr.contains("not accepting for 100 ms"), "the pause is logged")
    }

    func testPortPipeBridgeAndMemoryBudgets() throws {
        XCTAssertEqual(try rootCtl("bridge add vale4 --allow-group \(group)").0, 0)
        // Ports, pipe parents included: clientMaxPorts 4.
        let (r1, c1) = try open(userA, ["vale4:p1", "vale4:p2{1", "vale4:p3", "vale4:p4", "vale4:p5"])
        XCTAssertEqual(r1.prefix(4).map { $0["ok"] as? Bool }, [true, true, true, true], "\(r1)")
        XCTAssertTrue((r1[4]["error"] as? String ?? "").contains("clientMaxPorts"), "\(r1[4])")
        c1.signal(SIGKILL); c1.wait()
        XCTAssertTrue(svc.eventually(5) { (try? self.svc.status().regions.count) == 0 })
        // Shared memory: a 16384-slot port (64 MiB and its reserve) and one pipe of 16384 slots
        // (128 MiB) fit in 240 MiB; a second pipe does not, and is refused before anything is allocated.
        let rss0 = svc.rssKiB
        let (r2, c2) = try open(userA, ["vale4:big@16384", "vale4:big{1@16384", "vale4:big{2@16384"])
        XCTAssertEqual(r2.prefix(2).map { $0["ok"] as? Bool }, [true, true], "\(r2)")
        XCTAssertTrue((r2[2]["error"] as? String ?? "").contains("clientMaxMemoryMiB"), "\(r2[2])")
        // What was let in stays within the budget: the estimate is what the region really grew by.
        let held = try svc.status().regions.reduce(0) { $0 + $1.size }
        XCTAssertLessThanOrEqual(held, 240 << 20, "\(held >> 20) MiB held")
        c2.signal(SIGKILL); c2.wait()
        XCTAssertTrue(svc.eventually(5) { (try? self.svc.status().regions.count) == 0 })
        XCTAssertLessThan(svc.rssKiB - rss0, 16 * 1024, "memory given back")
        // Deleting one's own bridge does not give its held ports back to the budget: they live
        // (memory, descriptors) until their session ends.
        XCTAssertEqual(try ctl(userA, "bridge add valeown").0, 0)
        let (r4, c4) = try open(userA, ["valeown:h1", "valeown:h2", "valeown:h3", "valeown:h4"])
        XCTAssertEqual(r4.map { $0["ok"] as? Bool }, [true, true, true, true], "\(r4)")
        XCTAssertEqual(try ctl(userA, "bridge del valeown --force").0, 0)
        let (r5, _) = try open(userA, ["vale4:after"])
        XCTAssertTrue((r5[0]["error"] as? String ?? "").contains("clientMaxPorts"), "held ports still count: \(r5[0])")
        c4.signal(SIGKILL); c4.wait()
        let (r6, c6) = try open(userA, ["vale4:after"])
        XCTAssertEqual(r6[0]["ok"] as? Bool, true, "given back once the session ended: \(r6[0])")
        c6.signal(SIGKILL); c6.wait()
        XCTAssertTrue(svc.eventually(5) { (try? self.svc.status().regions.count) == 0 })
        // Bridges: clientMaxBridges 2; a bridge an open made goes with its last port.
        let (r3, c3) = try open(userA, ["valex1:a", "valex2:a", "valex3:a"])
        XCTAssertEqual(r3.prefix(2).map { $0["ok"] as? Bool }, [true, true], "\(r3)")
        XCTAssertTrue((r3[2]["error"] as? String ?? "").contains("clientMaxBridges"), "\(r3[2])")
        XCTAssertEqual(try svc.call(BridgeList()).filter { $0.name.hasPrefix("valex") }.map(\.owner), [userA, userA])
        c3.signal(SIGKILL); c3.wait()
        XCTAssertTrue(svc.eventually(5) { (try? self.svc.call(BridgeList()).map(\.name)) == ["vale4", "vale7"] }, "reaped")
    }

    func testOversizedRequestsAreRefusedAndTheirMemoryReturned() throws {
        let rss0 = svc.rssKiB
        let c = try hostile(userA, hold: 0, ["big", "8"])
        let r = try XCTUnwrap(lines(c, 1, seconds: 60).first, c.stderr)
        XCTAssertEqual(r["codes"] as? [String], ["too-large"], "\(r)")
        c.wait(seconds: 30)
        let c2 = try hostile(userB, hold: 0, ["big", "8"])
        _ = lines(c2, 1, seconds: 60)
        c2.wait(seconds: 30)
        XCTAssertNoThrow(try svc.status())
        XCTAssertLessThan(svc.rssKiB - rss0, 8 * 1024, "RSS \(rss0) -> \(svc.rssKiB) KiB")
    }

    // MARK: 8. logs

    func testClientTextCannotForgeLogLines() throws {
        let uidA = try XCTUnwrap(getpwnam(userA)?.pointee.pw_uid)
        let forged = "x\\nrequest port.del vale0:y from pid 1 uid 0 gid 0\\u202e"
        let long = String(repeating: "z", count: 60_000)
        let c = try hostile(userA, hold: 0, ["raw", #"{"v":1,"op":"stats","args":{"target":"\#(forged)"}}"#])
        XCTAssertEqual(lines(c, 1).count, 1, c.stderr)
        c.wait(seconds: 10)
        let c2 = try hostile(userA, hold: 0, ["raw", #"{"v":1,"op":"fdb.show","args":{"bridge":"\#(long)"}}"#])
        XCTAssertEqual(lines(c2, 1).count, 1)
        c2.wait(seconds: 10)
        // A flood of requests: at most 50 lines per user and second, the rest counted in one line.
        let c3 = try hostile(userA, hold: 1.1, ["raw", #"{"v":1,"op":"bridge.list"}"#, "2000"])
        XCTAssertEqual(lines(c3, 1).count, 1)
        c3.wait(seconds: 30)
        usleep(1_100_000)
        XCTAssertEqual(try ctl(userA, "bridge list").0, 0, "the next second: the left-out count is logged")
        _ = svc.stop()
        let log = svc.daemon.stderr
        XCTAssertFalse(log.split(separator: "\n").contains { $0.contains(": request port.del") }, "no forged line")
        XCTAssertTrue(log.contains("x\\x0arequest port.del"), "escaped, still readable")
        XCTAssertFalse(log.contains("\u{202e}"), "no right-to-left override reaches the log")
        XCTAssertTrue(log.contains("\\x202e"), "escaped instead")
        XCTAssertFalse(log.contains(String(repeating: "z", count: 200)), "long fields capped")
        XCTAssertLessThan(log.utf8.count, 200_000)
        let floodLines = log.split(separator: "\n").filter { $0.contains("request bridge.list") && $0.contains("uid \(uidA)") }
            .count
        XCTAssertLessThan(floodLines, 1000, "at most 50 a second: most of the 2000 are not logged one by one")
        XCTAssertTrue(log.contains("more request(s) not logged in one second"), "what was left out is counted")
    }

    // MARK: 9. lifetimes

    func testPipesEndWithTheirBridgeAndAppBridgesAreReaped() throws {
        XCTAssertEqual(try rootCtl("bridge add vale5").0, 0)
        let master = try SwalePort.open("vale5:p{1", socket: svc.socket)
        defer { master.close() }
        XCTAssertEqual(try rootCtl("bridge del vale5 --force").0, 0)
        XCTAssertEqual(try svc.status().pipes.count, 0, "the pipe ended with its bridge")
        // The same names again: a new bridge, port and pipe — not the old pipe on a new region.
        let slave = try SwalePort.open("vale5:p}1", socket: svc.socket)
        defer { slave.close() }
        let pipes = try svc.status().pipes
        XCTAssertEqual(pipes.count, 1)
        XCTAssertEqual(pipes.first?.masterOpen, false, "a new pipe: its master end was never opened")
        // vale5 now exists because of that open: it goes when its last port goes.
        XCTAssertEqual(try svc.call(BridgeList()).first { $0.name == "vale5" }?.persistent, false)
        slave.close()
        XCTAssertTrue(svc.eventually(5) { (try? self.svc.call(BridgeList()).contains { $0.name == "vale5" }) == false })
        // One made with bridge add stays.
        XCTAssertEqual(try rootCtl("bridge add vale6").0, 0)
        try SwalePort.open("vale6:x", socket: svc.socket).close()
        usleep(300_000)
        XCTAssertEqual(try svc.call(BridgeList()).first { $0.name == "vale6" }?.ports, 0)
    }
}
