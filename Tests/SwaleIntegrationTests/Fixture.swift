// Test fixture: a private swaled on a temporary socket, and helpers to run the tools.
import Foundation
import Glibc
import SwaleConfig
import SwaleProtocol
import XCTest

/// A test that could not do what it is for: a failure, never a skip (CI must not stay green).
struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Tests that create namespaces, veth pairs or TAP devices: skipped with a message when not root.
/// As root they must run, so a missing tool is a failure (Scripts/setup.sh installs them).
func requireRoot(_ why: String, tools: [String] = []) throws {
    guard getuid() == 0 else { throw XCTSkip("needs root (\(why)); run as root to include it") }
    for tool in tools where sh("command -v \(tool)").0 != 0 {
        throw FixtureError("\(tool) is not installed (run Scripts/setup.sh)")
    }
}

enum Products {
    /// The folder with the built executables (beside the test bundle).
    static let dir: URL = {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for d in [me, me.deletingLastPathComponent()]
        where FileManager.default.fileExists(atPath: d.appendingPathComponent("swaled").path) {
            return d
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug")
    }()

    static func path(_ name: String) throws -> String {
        let p = dir.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw FixtureError("\(name) is not built at \(p): run `swift build` before `swift test`")
        }
        return p
    }
}

/// A process started by a test, ended by PID only.
final class Child {
    let process = Process()
    let out = Pipe()
    let err = Pipe()
    private var outData = Data()
    private var errData = Data()
    private let group = DispatchGroup()
    private let lock = NSLock()

    /// `stdin`: a descriptor the child gets as its standard input (it is not closed here).
    init(_ exe: String, _ args: [String], env: [String: String] = [:], stdin: Int32? = nil) throws {
        process.executableURL = URL(fileURLWithPath: exe)
        if let stdin { process.standardInput = FileHandle(fileDescriptor: stdin, closeOnDealloc: false) }
        process.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        process.environment = e
        process.standardOutput = out
        process.standardError = err
        try process.run()
        group.enter(); group.enter()
        DispatchQueue.global().async { [self] in
            // In chunks, so a test can read what a running process printed so far (partialStdout).
            while true {
                let d = out.fileHandleForReading.availableData
                if d.isEmpty { break }
                lock.lock(); outData.append(d); lock.unlock()
            }
            group.leave()
        }
        DispatchQueue.global().async { [self] in
            errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave()
        }
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits up to `seconds`; kills (SIGKILL) and fails if it overruns.
    @discardableResult
    func wait(seconds: Double = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        process.waitUntilExit()
        group.wait()
        return process.terminationStatus
    }

    var stdout: String { String(decoding: outData, as: UTF8.self) }
    /// What a running process has printed so far.
    var partialStdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: outData, as: UTF8.self) }
    var stderr: String { String(decoding: errData, as: UTF8.self) }

    /// The last line of stdout parsed as a JSON object.
    var lastJSON: [String: Any]? {
        guard let line = stdout.split(separator: "\n").last,
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else { return nil }
        return obj
    }

    func signal(_ sig: Int32) { if process.isRunning { kill(pid, sig) } }
}

/// A swaled of our own on a unique socket; stopped with SIGTERM at the end of the test.
final class ServiceFixture {
    let socket: String
    let daemon: Child
    let dir: String

    static let ipTool = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/bin/ip"

    /// `socket`: reuse a path (a restart of "the same" swaled: interfaces it created are its own).
    /// `netns`: run it inside that network namespace (`ip netns exec` execs it: the PID is swaled's).
    /// `env`: added to swaled's environment.
    init(socket reuse: String? = nil, extraArgs: [String] = [], netns: String? = nil, env: [String: String] = [:]) throws {
        dir =
            reuse.map { ($0 as NSString).deletingLastPathComponent } ?? NSTemporaryDirectory()
            + "swale-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        socket = reuse ?? dir + "/swaled.sock"
        let swaled = [try Products.path("swaled"), "--socket", socket, "--log-level", "debug"] + extraArgs
        daemon =
            try netns.map { try Child(ServiceFixture.ipTool, ["netns", "exec", $0] + swaled, env: env) }
            ?? Child(swaled[0], Array(swaled.dropFirst()), env: env)
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socket) {
            guard Date() < deadline, daemon.process.isRunning else {
                daemon.signal(SIGKILL)
                daemon.wait()
                throw FixtureError("swaled\(netns.map { " in \($0)" } ?? "") did not start: \(daemon.stderr)")
            }
            usleep(20_000)
        }
    }

    func stop(keepDirectory: Bool = false) -> Int32 {
        daemon.signal(SIGTERM)
        let rc = daemon.wait(seconds: 10)
        if !keepDirectory { try? FileManager.default.removeItem(atPath: dir) }
        return rc
    }

    /// swaled's open descriptors and resident memory (from /proc).
    var fdCount: Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/fd").count) ?? -1 }
    /// The service's descriptors and what they are ("3 -> socket:[1234]"), for failure messages.
    var fdTable: [String] {
        let dir = "/proc/\(daemon.pid)/fd"
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted { Int($0) ?? 0 < Int($1) ?? 0 }
        return fds.map { "\($0) -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\($0)")) ?? "?")" }
    }
    var rssKiB: Int {
        let s = (try? String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8)) ?? ""
        let line = s.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    var env: [String: String] { ["SWALE_SOCKET": socket] }

    func pktgen(_ args: [String]) throws -> Child {
        try Child(try Products.path("swale-pktgen"), args + ["--socket", socket, "-T", "0", "--json"])
    }

    /// Runs swalectl and returns (exit code, stdout, stderr).
    func ctl(_ args: [String]) throws -> (Int32, String, String) {
        let c = try Child(try Products.path("swalectl"), args, env: env)
        let rc = c.wait(seconds: 30)
        return (rc, c.stdout, c.stderr)
    }

    func call<O: ControlOperation>(_ op: O) throws -> O.Result {
        try ControlClient.call(op, socket: socket)
    }

    func status() throws -> StatusInfo { try call(Status()) }

    /// Polls until cond holds or the timeout passes.
    func eventually(_ seconds: Double = 5, _ cond: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try cond() { return true }
            usleep(20_000)
        }
        return try cond()
    }
}

/// Runs a command, returns (status, stdout+stderr). Bounded by `seconds`.
@discardableResult
func sh(_ cmd: String, seconds: Double = 30) -> (Int32, String) {
    let c = try! Child("/bin/sh", ["-c", cmd])
    let rc = c.wait(seconds: seconds)
    return (rc, c.stdout + c.stderr)
}

/// The namespaces and interfaces one test makes: all named with a per-run prefix, and all deleted
/// by `cleanup()` (namespaces, then every root-namespace link with the prefix), however the test went.
final class KernelObjects {
    let prefix = "sw" + String(format: "%04x", UInt16.random(in: 0...0xffff))
    private(set) var namespaces: [String] = []

    /// A new namespace PREFIX+suffix with loopback up.
    func netns(_ suffix: String) -> String {
        let ns = "\(prefix)\(suffix)"
        XCTAssertEqual(sh("ip netns add \(ns)").0, 0)
        namespaces.append(ns)
        sh("ip netns exec \(ns) ip link set lo up")
        return ns
    }

    func cleanup() {
        for ns in namespaces { sh("ip netns del \(ns) 2>/dev/null") }
        namespaces = []
        let (_, out) = sh("ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1")
        for name in out.split(separator: "\n") where name.hasPrefix(prefix) { sh("ip link del \(name) 2>/dev/null") }
    }
}

/// A veth port's far end in a namespace of its own: the port's name, the namespace, the peer's
/// address and MAC, and the peer's name.
typealias NamespaceHost = (port: String, ns: String, ip: String, mac: String, peer: String)

extension ServiceFixture {
    /// Adds veth port PREFIX+v`i` on vale0 whose peer (PREFIX+p`i`) is born in a new namespace of
    /// `kernel`'s, with address SUBNET.`i`/24.
    func vethInNamespace(_ i: Int, subnet: String, kernel: KernelObjects) throws -> NamespaceHost {
        let ns = kernel.netns("n\(i)")
        let port = "\(kernel.prefix)v\(i)", peer = "\(kernel.prefix)p\(i)"
        let ip = "\(subnet).\(i)"
        let (rc, out, err) = try ctl([
            "port", "add", "vale0", "veth", port, "--peer", peer, "--netns", ns, "--address", "\(ip)/24"
        ])
        XCTAssertEqual(rc, 0, out + err)
        let mac = sh("ip netns exec \(ns) cat /sys/class/net/\(peer)/address").1.trimmingCharacters(in: .whitespacesAndNewlines)
        return (port, ns, ip, mac, peer)
    }
}
