// swale-bench — micro-benchmarks that need no service: the learning table at scale.
// (End-to-end throughput is measured with swale-pktgen by Scripts/bench-*.sh.)
import ArgumentParser
import Foundation
import SwaleDatapath

/// Learns `entries` random unicast MACs into a table sized for `entries`, then times `lookups`
/// lookups of random learned MACs; returns lookups per second. `batch` 1 times `lookup(_:now:)`
/// one MAC at a time; a bigger `batch` times the batch `lookup(_:count:now:into:)`. `vlans` > 0
/// spreads the entries over that many VLANs (1...vlans) and times VLAN-aware lookups
/// (`lookup(_:vlan:now:)`, what a bridge with VLAN filtering does per frame).
func lookupRate(entries: Int, lookups: Int, batch: Int = 1, vlans: Int = 0) throws -> Double {
    let n = max(entries, 1)
    let t = try LearningTable(capacity: n)
    var rng = SystemRandomNumberGenerator()
    let macs = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
    defer { macs.deallocate() }
    for i in 0..<n {
        let m = rng.next() & 0xFFFF_FFFF_FFFF & ~(1 << 40)  // 48 bits, unicast
        let vid = vlans > 0 ? UInt64(1 + i % vlans) : 0
        macs[i] = LearningTable.address(m, vlan: UInt16(vid))  // (VLAN, MAC) as the engine keys it
        t.learn(address: macs[i], port: UInt16(truncatingIfNeeded: i & 63), now: 1)
    }
    // A precomputed random sequence of learned MACs, read sequentially and cycled.
    let batch = max(batch, 1)
    let seqLen = max(min(max(lookups, 1), 1 << 20) / batch, 1) * batch
    let seq = UnsafeMutablePointer<UInt64>.allocate(capacity: seqLen)
    defer { seq.deallocate() }
    for i in 0..<seqLen { seq[i] = macs[Int(rng.next() % UInt64(n))] }
    let ports = UnsafeMutablePointer<UInt16>.allocate(capacity: batch)
    defer { ports.deallocate() }

    var acc: UInt64 = 0
    var done = 0
    let start = DispatchTime.now().uptimeNanoseconds
    var j = 0
    if vlans > 0 {
        while done < lookups {
            acc &+= UInt64(t.lookup(address: seq[j], now: 2))
            j &+= 1
            if j == seqLen { j = 0 }
            done &+= 1
        }
    } else if batch == 1 {
        while done < lookups {
            acc &+= UInt64(t.lookup(seq[j], now: 2))
            j &+= 1
            if j == seqLen { j = 0 }
            done &+= 1
        }
    } else {
        while done < lookups {
            t.lookup(seq + j, count: batch, now: 2, into: ports)
            for i in 0..<batch { acc &+= UInt64(ports[i]) }
            j &+= batch
            if j == seqLen { j = 0 }
            done &+= batch
        }
    }
    let elapsed = DispatchTime.now().uptimeNanoseconds - start
    sink(acc)
    return Double(done) / (Double(max(elapsed, 1)) / 1e9)
}

/// Keeps the lookups' results alive so the optimizer cannot drop them.
@inline(never)
func sink(_ v: UInt64) {
    if v == 0x5eed_5eed_5eed_5eed { print("") }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "swale-bench", abstract: "Learning-table micro-benchmark.")
    @Option(help: "MAC addresses learned before measuring.") var entries = 1 << 20
    @Option(help: "Lookups per run.") var lookups = 50_000_000
    @Option(help: "Lookups per batch call (1: one lookup(_:now:) per MAC).") var batch = 1
    @Option(help: "Runs (min/median/max reported).") var runs = 3
    @Option(
        help:
            "Also time VLAN-aware lookups with the entries spread over this many VLANs, alternating with plain runs, and print the ratio."
    )
    var vlans = 0
    @Flag var json = false
    @Flag(help: "Time the forwarding engine instead (EngineBench.swift): 60- and 1514-byte frames, unicast and broadcast to 3.")
    var engine = false
    @Option(help: "With --engine: VLAN filtering off, on, or trunk (receivers tag VLAN 1).") var engineVlans = "off"
    @Option(help: "With --engine: frames per case.") var frames = 20_000_000
    @Flag(help: "With --engine: a monitor (/rt) on the first receiver, emptied after every pass like the receivers.")
    var engineMonitor = false
    @Option(help: "With --engine: the cases to run (u60, u1514, b60, b1514), comma-separated.") var cases = "u60,u1514,b60,b1514"

    func run() throws {
        if engine { return try runEngine() }
        var rates: [Double] = []
        var vlanRates: [Double] = []
        for _ in 0..<runs {
            rates.append(try lookupRate(entries: entries, lookups: lookups, batch: batch))
            if vlans > 0 { vlanRates.append(try lookupRate(entries: entries, lookups: lookups, vlans: vlans)) }
        }
        report(rates, label: "")
        if vlans > 0 {
            report(vlanRates, label: " in \(vlans) VLANs")
            let ratio = median(vlanRates) / median(rates)
            print(
                json
                    ? "{\"vlan_to_plain_ratio\":\(ratio)}"
                    : String(format: "VLAN-aware / plain lookups (medians, same run): %.3f", ratio))
        }
    }

    func median(_ r: [Double]) -> Double { r.sorted()[r.count / 2] }

    func runEngine() throws {
        print(
            "engine alone, VLAN filtering \(engineVlans)\(engineMonitor ? ", a monitor on receiver 1" : ""): Mpps min / median / max of \(runs)"
        )
        let wanted = Set(cases.split(separator: ",").map(String.init))
        for (len, bcast) in [(60, false), (1514, false), (60, true), (1514, true)]
        where wanted.contains("\(bcast ? "b" : "u")\(len)") {
            var r: [Double] = []
            for _ in 0..<runs {
                r.append(
                    try engineRate(
                        receivers: bcast ? 3 : 1, frames: frames, length: len, broadcast: bcast, vlans: engineVlans,
                        monitor: engineMonitor))
            }
            r.sort()
            print(
                String(
                    format: "  %@ %4d B: %.2f / %.2f / %.2f", bcast ? "broadcast to 3" : "unicast       ", len, r[0] / 1e6,
                    median(r) / 1e6, r[r.count - 1] / 1e6))
        }
    }

    func report(_ r: [Double], label: String) {
        let rates = r.sorted()
        let mid = median(r)
        if json {
            print(
                "{\"entries\":\(entries),\"vlans\":\(label.isEmpty ? 0 : vlans),\"lookups_per_s_min\":\(rates.first!),\"lookups_per_s_median\":\(mid),\"lookups_per_s_max\":\(rates.last!)}"
            )
        } else {
            print(
                String(
                    format: "learning table, %d entries%@: %.1f / %.1f / %.1f M lookups/s (min/median/max of %d)",
                    entries, label, rates.first! / 1e6, mid / 1e6, rates.last! / 1e6, runs))
        }
    }
}

Bench.main()
