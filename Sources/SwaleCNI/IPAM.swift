/*
 * IPAM — delegating addresses to the IPAM plugin the config names (host-local, static, dhcp...).
 *
 * The plugin is found in CNI_PATH (first match wins, as runtimes search), run with our environment
 * (CNI_COMMAND and, for GC's releases, the attachment's identity replaced) and the network
 * configuration on stdin. An IPAM plugin older than the config's version (Debian 12's host-local
 * knows up to 1.0.0) is spoken to in the newest version it knows whose results read the same; its
 * VERSION answer says which. Its error result is passed on as ours.
 */
import Foundation

public struct IPAMPlugin {
    public let type: String
    public let executable: String
    let env: CNIEnvironment
    let conf: NetConf

    /// Finds the plugin; the spec's "plugin not found" is an I/O error (5) naming where it looked.
    public init(conf: NetConf, env: CNIEnvironment) throws {
        guard let type = conf.ipamType else {
            throw CNIError(CNIError.invalidConfig, "invalid network configuration", details: "no ipam.type")
        }
        self.type = type
        self.env = env
        self.conf = conf
        guard let exe = env.path.map({ "\($0)/\(type)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else {
            throw CNIError(
                CNIError.ioFailure, "IPAM plugin \(type) not found",
                details: "looked in CNI_PATH: \(env.path.isEmpty ? "(empty)" : env.path.joined(separator: ":"))")
        }
        executable = exe
    }

    /// The versions the plugin says it supports.
    public func versions() throws -> [String] {
        let out = try run("VERSION", stdin: JSON.encode(["cniVersion": conf.cniVersion]), overrides: [:])
        let o = try JSON.object(out, "\(type)'s VERSION answer")
        return o["supportedVersions"] as? [String] ?? []
    }

    /// Runs `command` with the network configuration (in a version the plugin knows); the result's bytes.
    @discardableResult
    public func call(_ command: String, overrides: [String: String] = [:]) throws -> Data {
        var config = conf.raw
        if let v = CNIVersion.forDelegate(conf.cniVersion, theirs: try versions()) {
            config["cniVersion"] = v
        } else {
            throw CNIError(
                CNIError.incompatibleVersion, "IPAM plugin \(type) speaks no version compatible with \(conf.cniVersion)")
        }
        return try run(command, stdin: JSON.encode(config), overrides: overrides)
    }

    /// ADD: the addresses, routes and DNS the plugin chose.
    public func add() throws -> CNIResult {
        let out = try call("ADD")
        return try CNIResult.parse(try JSON.object(out, "\(type)'s result"), "\(type)'s result")
    }

    /// Whether the plugin implements a 1.1.0 verb (STATUS, GC).
    public func knows(_ version: String) -> Bool { (try? versions())?.contains(version) ?? false }

    func run(_ command: String, stdin: Data, overrides: [String: String]) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        var e = env.all
        e["CNI_COMMAND"] = command
        for (k, v) in overrides { e[k] = v }
        p.environment = e
        let input = Pipe(), output = Pipe(), errors = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = errors
        do { try p.run() } catch {
            throw CNIError(CNIError.ioFailure, "cannot run IPAM plugin \(executable)", details: "\(error)")
        }
        input.fileHandleForWriting.write(stdin)
        try? input.fileHandleForWriting.close()
        // Small answers; stderr is drained alongside so a chatty plugin cannot block on it.
        let stderrText = Drain(errors.fileHandleForReading)
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let errData = stderrText.wait()
        guard p.terminationStatus == 0 else {
            // The plugin's own error result, if it printed one.
            if let o = try? JSON.object(out, "error"), let code = NetConf.int(o["code"] as Any), let msg = o["msg"] as? String {
                throw CNIError(code, "\(type): \(msg)", details: o["details"] as? String ?? "")
            }
            let why = String(decoding: errData + out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw CNIError(
                CNIError.ioFailure, "IPAM plugin \(type) \(command) failed (exit \(p.terminationStatus))", details: why)
        }
        return out
    }
}

/// Reads a pipe to its end on another thread (so neither pipe of a child can fill and block it).
final class Drain: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        DispatchQueue.global().async {
            self.data = handle.readDataToEndOfFile()
            self.done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}
