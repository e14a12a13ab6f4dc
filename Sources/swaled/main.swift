// swaled — the Swale switch service. Owns every bridge; serves the control socket.
import ArgumentParser
import Foundation
import Glibc
import Logging
import SwaleControl
import SwaleService

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

    @Option(help: "While busy-polling: yield the core (yield) or spin (spin).")
    var pollMode: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() throws {
        var cfg = ServiceConfigFile()
        if let config { cfg = try ServiceConfigFile.load(path: config) }
        let path = ControlPaths.resolve(socket ?? cfg.socket)
        var opts = ServiceOptions(socketPath: path)
        if let s = slots ?? cfg.slots { opts.slots = s }
        if let b = batch ?? cfg.batch { opts.bridge.batch = max(1, min(b, 4096)) }
        if let p = busyPoll ?? cfg.busyPollMicros { opts.bridge.busyPollMicros = max(0, p) }
        if let m = pollMode ?? cfg.pollMode {
            guard m == "yield" || m == "spin" else { throw ValidationError("--poll-mode must be yield or spin") }
            opts.bridge.yieldWhilePolling = m == "yield"
        }
        if let m = cfg.maxPorts { opts.bridge.maxPorts = max(2, min(m, 4094)) }
        if let f = cfg.fdbCapacity { opts.bridge.fdbCapacity = max(8, f) }

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
        let server = try ControlServer(service: service, path: path, logger: log)
        service.apply(cfg)
        service.startLinkMonitor()
        log.info("swaled \(getpid()) ready")
        server.run { stopSignal != 0 }
        log.info("shutting down")
        service.shutdown()
    }
}

Swaled.main()
