// swale-bench — micro-benchmarks that need no service: the learning table at scale.
// (End-to-end throughput is measured with swale-pktgen by Scripts/bench-*.sh.)
import ArgumentParser
import Foundation
import SwaleDatapath

/// Learns `entries` random unicast MACs into a table sized for `entries`, then times `lookups`
/// lookups of random learned MACs; returns lookups per second. `batch` 1 times `lookup(_:now:)`
/// one MAC at a time; a bigger `batch` times the batch `lookup(_:count:now:into:)`.
func lookupRate(entries: Int, lookups: Int, batch: Int = 1) throws -> Double {
    let n = max(entries, 1)
    let t = try LearningTable(capacity: n)
    var rng = SystemRandomNumberGenerator()
    let macs = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
    defer { macs.deallocate() }
    for i in 0..<n {
        let m = rng.next() & 0xFFFF_FFFF_FFFF & ~(1 << 40)  // 48 bits, unicast
        macs[i] = m
        t.learn(m, port: UInt16(truncatingIfNeeded: i & 63), now: 1)
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
    if batch == 1 {
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
    @Flag var json = false

    func run() throws {
        var rates: [Double] = []
        for _ in 0..<runs { rates.append(try lookupRate(entries: entries, lookups: lookups, batch: batch)) }
        rates.sort()
        let mid = rates[rates.count / 2]
        if json {
            print(
                "{\"entries\":\(entries),\"lookups_per_s_min\":\(rates.first!),\"lookups_per_s_median\":\(mid),\"lookups_per_s_max\":\(rates.last!)}"
            )
        } else {
            print(
                String(
                    format: "learning table, %d entries: %.1f / %.1f / %.1f M lookups/s (min/median/max of %d)",
                    entries, rates.first! / 1e6, mid / 1e6, rates.last! / 1e6, runs))
        }
    }
}

Bench.main()
