// swale-bench — micro-benchmarks that need no service: the learning table at scale.
// (End-to-end throughput is measured with swale-pktgen by Scripts/bench-*.sh.)
import ArgumentParser
import Foundation
import SwaleDatapath

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "swale-bench", abstract: "Learning-table micro-benchmark.")
    @Option(help: "MAC addresses learned before measuring.") var entries = 1 << 20
    @Option(help: "Lookups per run.") var lookups = 50_000_000
    @Option(help: "Runs (min/median/max reported).") var runs = 3
    @Flag var json = false

    func run() throws {
        var rates: [Double] = []
        for _ in 0..<runs { rates.append(LearningTable.benchmark(entries: entries, lookups: lookups)) }
        rates.sort()
        let mid = rates[rates.count / 2]
        if json {
            print("{\"entries\":\(entries),\"lookups_per_s_min\":\(rates.first!),\"lookups_per_s_median\":\(mid),\"lookups_per_s_max\":\(rates.last!)}")
        } else {
            print(String(format: "learning table, %d entries: %.1f / %.1f / %.1f M lookups/s (min/median/max of %d)",
                         entries, rates.first! / 1e6, mid / 1e6, rates.last! / 1e6, runs))
        }
    }
}

Bench.main()
