// swaled — the Swale switch service. Owns every bridge; serves the control socket.
import ArgumentParser
import Foundation
import Glibc
import Logging
import SwaleConfig
import SwaleProtocol
import SwaleService
import SwaleSwitch

nonisolated(unsafe) var stopSignal: sig_atomic_t = 0

struct Swaled: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "swaled", abstract: "The Swale virtual switch service.")

    @Option(help: "Control socket path (default: $SWALE_SOCKET or /run/swale/swaled.sock).")
    var socket: String?

    @Option(help: "Declarative configuration (JSON): bridges and their ports.")
    var config: String?

    @Option(help: "Slots per ring for new ports.")
    var slots: Int?

    @Option(help: "Frames per forwarding batch.")
    var batch: Int?

    @Option(help: "Microseconds a bridge keeps polling after its last frame before it sleeps.")
    var busyPoll: Int?

    @Option(
        help:
            "Microseconds an application's frame may wait for room at another application's full ring before it is dropped (0, the default: dropped at once, as on netmap's VALE)."
    )
    var flowControl: Int?

    @Option(help: "While busy-polling: yield the core (yield) or spin (spin).")
    var pollMode: String?

    @Option(
        help:
            "Nice value of each bridge's forwarding thread while the bridge has kernel ports, -20...19 (default -10: ahead of ordinary programs, as the kernel's own forwarding is; a bridge of application ports only keeps the priority swaled has)."
    )
    var forwardingNice: Int?

    @Option(
        help:
            "CPUs the bridges' forwarding threads may run on, as taskset -c writes them (\"1\", \"2-3\", \"0,4-7\"); default: wherever the scheduler puts them.",
        transform: { try CPUList.parse($0) }
    )
    var forwardingCpus: [Int]?

    @Flag(
        help:
            "Copy frames for kernel ports into their rings before sending (no direct transmit from the source's slots; for comparison)."
    )
    var copyToKernelPorts = false

    @Flag(
        help:
            "No kernel fast path: frames between kernel ports all cross the switch's rings (the config key \"fastpath\": false does the same)."
    )
    var noFastpath = false

    @Option(help: "Group of the control socket (name or number); its members may use Swale.")
    var socketGroup: String?

    @Option(help: "Serve Prometheus metrics at http://ADDRESS:PORT/metrics (IPv4; say 127.0.0.1:9477). Off by default.")
    var metrics: String?

    @Flag(help: "Check the --config file and exit (0 if valid; otherwise the error with file and line).")
    var checkConfig = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        if let slots, !SwaleConfig.slotRange.contains(slots) {
            throw ValidationError("--slots must be within \(SwaleConfig.slotRange)")
        }
        if let batch, !SwaleConfig.batchRange.contains(batch) {
            throw ValidationError("--batch must be within \(SwaleConfig.batchRange)")
        }
        if let busyPoll, !SwaleConfig.busyPollRange.contains(busyPoll) {
            throw ValidationError("--busy-poll must be within \(SwaleConfig.busyPollRange)")
        }
        if let flowControl, !SwaleConfig.flowControlRange.contains(flowControl) {
            throw ValidationError("--flow-control must be within \(SwaleConfig.flowControlRange)")
        }
        if let forwardingNice, !SwaleConfig.niceRange.contains(forwardingNice) {
            throw ValidationError("--forwarding-nice must be within \(SwaleConfig.niceRange)")
        }
        if let pollMode, pollMode != "yield" && pollMode != "spin" { throw ValidationError("--poll-mode must be yield or spin") }
        if checkConfig && config == nil { throw ValidationError("--check-config needs --config FILE") }
    }

    func run() throws {
        var cfg = SwaleConfig()
        if let config {
            do { cfg = try SwaleConfig.load(path: config) } catch {
                FileHandle.standardError.write(Data("swaled: \(error)\n".utf8))
                throw ExitCode(2)
            }
            if checkConfig {
                print(
                    "\(config): valid (\(cfg.bridges.count) bridge(s), \(cfg.bridges.reduce(0) { $0 + $1.ports.count }) port(s))")
                return
            }
        }
        let path = ControlPaths.resolve(socket ?? cfg.socket)
        var opts = ServiceOptions(socketPath: path)
        opts.take(cfg)
        if let s = slots { opts.slots = s }
        if let b = batch { opts.bridge.batch = b }
        if let p = busyPoll { opts.bridge.busyPollMicros = p }
        if let f = flowControl { opts.bridge.flowControlMicros = f }
        if let m = pollMode { opts.bridge.yieldWhilePolling = m == "yield" }
        if let n = forwardingNice { opts.bridge.forwardingNice = n }
        if let c = forwardingCpus { opts.bridge.forwardingCPUs = c }
        if let cpus = opts.bridge.forwardingCPUs, let allowed = Bridge.cpus(ofThread: 0) {
            // Outside swaled's cpuset the kernel would drop a CPU from the thread's set without a
            // word; outside a taskset/CPUAffinity= mask the thread would escape the mask it was given.
            // Refuse both now.
            let outside = cpus.filter { !allowed.contains($0) }
            if !outside.isEmpty {
                let whereSet =
                    forwardingCpus != nil
                    ? "--forwarding-cpus" : "\(config ?? "config"):\(cfg.lines["forwardingCPUs"] ?? 0): forwardingCPUs"
                FileHandle.standardError.write(
                    Data(
                        "swaled: \(whereSet): \(outside.count == 1 ? "CPU \(outside[0]) is" : "CPUs \(CPUList.render(outside)) are") not among the CPUs swaled may run on (\(CPUList.render(allowed)))\n"
                            .utf8))
                throw ExitCode(2)
            }
        }
        if copyToKernelPorts { opts.bridge.directTransmit = false }
        if noFastpath { opts.fastpath = false }
        if let g = socketGroup { opts.socketGroup = g }
        if let m = metrics {
            guard SwaleConfig.isMetricsAddress(m) else {
                throw ValidationError("--metrics must be IPV4:PORT, like 127.0.0.1:9477")
            }
            opts.metrics = m
        }
        var gid: gid_t?
        if let g = opts.socketGroup {
            guard let id = Swaled.lookupGroup(g) else {
                let whereSet =
                    socketGroup != nil ? "--socket-group" : "\(config ?? "config"):\(cfg.lines["socketGroup"] ?? 0): socketGroup"
                FileHandle.standardError.write(Data("swaled: \(whereSet): no group named '\(g)' on this machine\n".utf8))
                throw ExitCode(2)
            }
            gid = id
        }

        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let log = Logger(label: "swaled")
        signal(SIGPIPE, SIG_IGN)
        signal(SIGINT) { _ in stopSignal = 1 }
        signal(SIGTERM) { _ in stopSignal = 1 }

        let service = Service(options: opts, logger: log)
        let server = try ControlServer(service: service, path: path, group: gid, logger: log)
        service.apply(cfg, file: config ?? "(no config)", fromFile: config != nil)
        service.startLinkMonitor()
        var metricsServer: MetricsServer?
        if let m = opts.metrics {
            do {
                metricsServer = try MetricsServer(service: service, address: m, socketGroup: gid, logger: log)
                metricsServer?.serve()
            } catch {
                log.error("metrics not served: \(error)")
            }
        }
        log.info("swaled \(getpid()) ready")
        server.run { stopSignal != 0 }
        log.info("shutting down")
        metricsServer?.stop()
        service.shutdown()
    }

    /// A group name or number → gid.
    static func lookupGroup(_ g: String) -> gid_t? {
        if let n = UInt32(g) { return n }
        guard let gr = getgrnam(g) else { return nil }
        return gr.pointee.gr_gid
    }
}

Swaled.main()
