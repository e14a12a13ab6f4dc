/*
 * Metrics — the service's counters in the Prometheus text exposition format (version 0.0.4), for
 * the `metrics` operation and the HTTP listener (MetricsServer.swift), which goes through that same
 * operation, so a scraper sees exactly what `swalectl stats` would show the same user: bridges that
 * admit it, their ports, and memory regions it owns (all of them for root).
 *
 * Names carry the `swale_` prefix and base units (bytes, frames); counters end in `_total`; bridge,
 * port, kind and drop reason are labels. Values come from the same readings as `stats` (each
 * bridge's thread answers between two passes: a scrape never stops forwarding for longer than one
 * mailbox visit per bridge).
 */
import Foundation
import SwaleDatapath
import SwaleProtocol

/// Builds one exposition: every family's samples grouped under one HELP and TYPE (the format wants
/// a family's lines together, whatever order they were added in).
struct MetricsWriter {
    private var order: [String] = []
    private var families: [String: (type: String, help: String, lines: [String])] = [:]

    var text: String {
        order.map { f in
            let x = families[f]!
            return "# HELP \(f) \(x.help)\n# TYPE \(f) \(x.type)\n" + x.lines.joined()
        }.joined()
    }

    mutating func sample(_ name: String, _ type: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
        var family = name
        if type == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] where family.hasSuffix(suffix) {
                family = String(family.dropLast(suffix.count))
            }
        }
        if families[family] == nil {
            order.append(family)
            families[family] = (type, help, [])
        }
        let l = labels.map { "\($0.0)=\"\(MetricsWriter.escape($0.1))\"" }.joined(separator: ",")
        let v = value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
        families[family]!.lines.append((labels.isEmpty ? name : "\(name){\(l)}") + " " + v + "\n")
    }

    mutating func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ v: UInt64) {
        sample(name, "counter", help, labels, Double(v))
    }

    mutating func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ v: Int) {
        sample(name, "gauge", help, labels, Double(v))
    }

    /// Label values: backslash, double quote and newline escaped, as the format requires.
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

extension Service {
    /// The exposition for a session (called under the service lock, like `stats`).
    func metricsText(for s: Session) -> String {
        var w = MetricsWriter()
        let visible = visibleBridges(s)
        w.gauge(
            "swale_sessions", "Control connections open (the caller's own unless root).", [],
            s.root ? sessions.count : sessions.values.filter { $0.uid == s.uid }.count)
        w.gauge("swale_bridges", "Bridges the caller may use.", [], visible.count)
        for b in visible {
            let name = b.bridge.name
            let t = b.bridge.tableStats()
            let l = [("bridge", name)]
            w.gauge("swale_bridge_ports", "Ports attached to the bridge.", l, b.ports.count)
            w.gauge("swale_bridge_fdb_entries", "MAC table entries in use.", l, t.entries)
            w.gauge("swale_bridge_fdb_capacity", "MAC table entries the table is sized for.", l, t.capacity)
            w.counter("swale_bridge_fdb_learned_total", "MAC addresses learned (new entries).", l, t.learned)
            w.counter("swale_bridge_fdb_moved_total", "MAC addresses seen on another port than their entry's.", l, t.moved)
            w.counter("swale_bridge_fdb_expired_total", "MAC entries aged out.", l, t.aged)
            w.counter("swale_bridge_fdb_evicted_total", "Live MAC entries evicted from a full bucket.", l, t.evicted)
            w.counter(
                "swale_bridge_flooded_frames_total", "Frames flooded (broadcast, multicast, unknown unicast).", l, t.flooded)
            w.counter("swale_bridge_wakeups_total", "Times the forwarding thread went to sleep and woke.", l, t.wakeups)
            w.counter(
                "swale_bridge_run_frames_total", "Frames forwarded in runs of one flow between application ports.", l,
                t.runFrames)
            w.counter(
                "swale_bridge_priority_lends_total",
                "Times the forwarding thread, raised while the bridge has kernel ports, stepped down for an application reader behind.",
                l, t.priorityLends)
            var cumulative: UInt64 = 0
            for (k, n) in t.batchSizes.enumerated() {
                cumulative &+= n
                let le = k == t.batchSizes.count - 1 ? "+Inf" : String(1 << k)
                w.sample(
                    "swale_bridge_batch_slots_bucket", "histogram", "Slots taken from a port's tx ring per forwarding batch.",
                    l + [("le", le)], Double(cumulative))
            }
            w.sample("swale_bridge_batch_slots_sum", "histogram", "", l, Double(t.batchSlots))
            w.sample("swale_bridge_batch_slots_count", "histogram", "", l, Double(t.batches))
        }
        for p in allPorts(visible) {
            let info = portInfo(p)
            let c = info.counters
            let l = [("bridge", p.bridge), ("port", p.name), ("kind", p.kind.rawValue)]
            w.counter("swale_port_rx_frames_total", "Frames the switch delivered to the port.", l, c.rxPackets)
            w.counter("swale_port_rx_bytes_total", "Bytes the switch delivered to the port.", l, c.rxBytes)
            w.counter("swale_port_tx_frames_total", "Frames the port sent into the switch.", l, c.txPackets)
            w.counter("swale_port_tx_bytes_total", "Bytes the port sent into the switch.", l, c.txBytes)
            let reasons: [(String, UInt64)] = [
                ("ring_full", c.dropRingFull), ("too_short", c.dropTooShort), ("too_long", c.dropTooLong),
                ("bad_slot", c.dropBadSlot), ("hairpin", c.dropNoRoute), ("reserved_group", c.dropReserved),
                ("bad_source", c.dropBadSource), ("vlan", c.dropVlan), ("static_move", c.dropStaticMove),
                ("mac_limit", c.dropMacLimit), ("locked", c.dropLocked), ("isolated", c.dropIsolated),
                ("horizon", c.dropHorizon)
            ]
            for (reason, n) in reasons {
                w.counter("swale_port_dropped_frames_total", "Frames dropped, by reason.", l + [("reason", reason)], n)
            }
            w.counter("swale_port_ring_resets_total", "Rings reset because their indices were out of range.", l, c.ringResets)
            let adapter = c.adapter ?? [:]
            if let on = adapter["fastpath"] {
                // The kernel fast path's part (already in the rx/tx totals above).
                w.gauge("swale_port_fastpath", "1 while the port's frames may take the kernel fast path.", l, Int(on))
                for d in ["rx", "tx"] {
                    w.counter(
                        "swale_port_fastpath_frames_total", "Frames the kernel fast path moved for the port (part of rx/tx).",
                        l + [("direction", d)], adapter["fastpath_\(d)_packets"] ?? 0)
                    w.counter(
                        "swale_port_fastpath_bytes_total", "Bytes the kernel fast path moved for the port (part of rx/tx).",
                        l + [("direction", d)], adapter["fastpath_\(d)_bytes"] ?? 0)
                }
            }
            for (k, v) in adapter.sorted(by: { $0.key < $1.key }) where !k.hasPrefix("fastpath") {
                w.counter(
                    "swale_port_adapter_events_total", "Kernel adapter counters (calls, frames, truncations, drops).",
                    l + [("counter", k)], v)
            }
        }
        for p in allPorts(visible) where s.root || p.owner == s.uid {
            let l = [("region", p.pool.name)]
            w.gauge("swale_region_bytes", "Shared memory mapped for a port's region.", l, p.pool.region.mappedSize)
            w.gauge("swale_region_buffers", "Buffers in a region.", l, p.pool.allocator.total)
            w.gauge("swale_region_buffers_free", "Free buffers in a region.", l, p.pool.allocator.freeCount)
        }
        return w.text
    }
}
