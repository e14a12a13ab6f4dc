// `swalectl top`: live per-port rates from two readings of the counters an interval apart, sorted
// by load, refreshed like top(1). It asks the `stats` operation, so it shows exactly the bridges
// and ports the caller may see.
import ArgumentParser
import Foundation
import SwaleProtocol

func human(_ v: Double, _ unit: String) -> String {
    switch v {
    case 1e9...: return String(format: "%.2fG%@", v / 1e9, unit)
    case 1e6...: return String(format: "%.2fM%@", v / 1e6, unit)
    case 1e3...: return String(format: "%.1fk%@", v / 1e3, unit)
    default: return String(format: "%.0f%@", v, unit)
    }
}

struct TopCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top", abstract: "Live per-port packets/s, bits/s and drops/s, busiest first (like top).")
    @OptionGroup var common: Common
    @Argument(help: "Only this bridge.") var bridge: String?
    @Option(help: "Seconds between readings.") var interval: Double = 1
    @Flag(help: "One reading (two samples an interval apart), then exit.") var once = false
    @Option(help: "Stop after this many readings.") var count: Int?

    func validate() throws {
        guard interval >= 0.05 && interval <= 3600 else { throw ValidationError("--interval must be 0.05...3600 seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func sample() throws -> (Date, [PortInfo]) {
        do { return (Date(), try ControlClient.call(Stats(target: bridge), socket: common.socket).ports) } catch let e
            as ControlError
        {
            throw ValidationErrorish(e.message)
        }
    }

    func run() throws {
        let readings = once ? 1 : (count ?? Int.max)
        var (t0, before) = try sample()
        for n in 0..<readings {
            Thread.sleep(forTimeInterval: interval)
            let (t1, now) = try sample()
            let dt = t1.timeIntervalSince(t0)
            let rates = PortRates.between(before, now, seconds: dt)
            if common.json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys]
                print(String(decoding: try enc.encode(TopReading(seconds: dt, ports: rates)), as: UTF8.self))
            } else {
                if !once && n > 0 { print("\u{1B}[H\u{1B}[2J", terminator: "") }  // clear, as top does
                print(
                    pad("PORT", 24) + pad("KIND", 8) + pad("RX PKT/S", 11) + pad("TX PKT/S", 11) + pad("RX BIT/S", 11)
                        + pad("TX BIT/S", 11) + "DROPS/S")
                for r in rates {
                    print(
                        pad(r.port, 24) + pad(r.kind, 8) + pad(human(r.rxPacketsPerSecond, ""), 11)
                            + pad(human(r.txPacketsPerSecond, ""), 11) + pad(human(r.rxBitsPerSecond, "b"), 11)
                            + pad(human(r.txBitsPerSecond, "b"), 11) + human(r.dropsPerSecond, ""))
                }
            }
            fflush(stdout)
            (t0, before) = (t1, now)
        }
    }
}

struct MetricsCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "The Prometheus text swaled --metrics serves, for what the caller may see.")
    @OptionGroup var common: Common
    func run() throws {
        try perform(MetricsScrape(), common) { print($0.text, terminator: "") }
    }
}

struct EventsCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract:
            "Stream learn/move/expire/evict and port events as they happen (like bridge monitor); --json: one object per line.")
    @OptionGroup var common: Common
    @Argument(help: "Bridges (default: every bridge the caller may use).") var bridges: [String] = []
    @Option(help: "Stop after this many events.") var count: Int?
    @Option(help: "Stop after this many seconds.") var seconds: Double?
    @Option(help: "Seconds between polls.") var interval: Double = 0.2

    func call<O: ControlOperation>(_ op: O) throws -> O.Result {
        do { return try ControlClient.call(op, socket: common.socket) } catch let e as ControlError {
            throw ValidationErrorish(e.message)
        }
    }

    func run() throws {
        let names = bridges.isEmpty ? try call(BridgeList()).map(\.name) : bridges
        var cursor: [String: UInt64] = [:]
        for b in names { cursor[b] = try call(Events(bridge: b)).next }  // from now on
        let deadline = seconds.map { Date().addingTimeInterval($0) }
        var shown = 0
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        while deadline.map({ Date() < $0 }) ?? true {
            for b in names {
                let r = try call(Events(bridge: b, after: cursor[b]))
                cursor[b] = r.next
                if r.missed > 0 { FileHandle.standardError.write(Data("\(b): \(r.missed) events missed\n".utf8)) }
                for e in r.events {
                    if common.json {
                        struct Line: Encodable {
                            let bridge: String
                            let e: EventInfo
                            func encode(to encoder: Encoder) throws {
                                try e.encode(to: encoder)
                                var c = encoder.container(keyedBy: K.self)
                                try c.encode(bridge, forKey: .bridge)
                            }
                            enum K: CodingKey { case bridge }
                        }
                        print(String(decoding: try enc.encode(Line(bridge: b, e: e)), as: UTF8.self))
                    } else {
                        let what = e.mac.map { "\($0)\(e.vlan.map { " vlan \($0)" } ?? "") on \(e.port)" } ?? e.port
                        print("\(b) \(e.event) \(what)")
                    }
                    shown += 1
                    if let count, shown >= count { return }
                }
            }
            fflush(stdout)
            Thread.sleep(forTimeInterval: interval)
        }
    }
}
