/*
 * Fastpath — the forwarding engine's side of the kernel fast path (the eBPF programs and maps are
 * in Sources/CSwaleFastpath, their loader in SwaleKernel/Fastpath.swift).
 *
 * The engine stays the source of truth: the kernel's fdb map is a mirror of the part of the
 * learning table that lives on kernel ports with the fast path attached, and its port map says
 * which of those ports may use it now. Everything here runs on the forwarding thread, and only on
 * events, never per frame:
 *
 *   - after each pass and after each mailbox command (Bridge.perform), the addresses the table
 *     noted as changed (learned, moved, aged, evicted, flushed, static added or removed:
 *     LearningTable.takeChanges) are written to or deleted from the fdb map (`syncFastpath`), so a
 *     move, an `fdb flush` or a port removal changes the path for the next frame; if more changed
 *     than the table's list holds, the mirror is rebuilt from the whole table;
 *   - a port is on the fast path (SWALE_FP_PORT_ON) while it is an active kernel port with no
 *     monitor or mirror watching it, not isolated, not locked, in no split-horizon group, on a
 *     bridge that does not filter VLANs: rules the BPF program does not implement keep its frames
 *     in the rings (`refreshFastpathPorts`, called whenever one of those changes);
 *   - once a second, before the table ages a slice, the `seen_ns` the program stamps on the
 *     sources it forwarded is read back, and a source that moved frames since the last look is
 *     refreshed in the table (`LearningTable.touch`), so fast-pathed stations do not age out;
 *   - a port's fast-path counters (per-CPU in the kernel, summed here) are added to its PortStats
 *     when read (`portStatsWithFastpath`) and folded into them when the port leaves the fast path.
 */
import SwaleRings

/// Frames and bytes the kernel fast path took from a port (tx, as the switch counts) and gave it (rx).
public struct FastpathCounters: Sendable, Equatable {
    public var txPackets: UInt64 = 0, txBytes: UInt64 = 0, rxPackets: UInt64 = 0, rxBytes: UInt64 = 0
    public init(txPackets: UInt64 = 0, txBytes: UInt64 = 0, rxPackets: UInt64 = 0, rxBytes: UInt64 = 0) {
        self.txPackets = txPackets; self.txBytes = txBytes; self.rxPackets = rxPackets; self.rxBytes = rxBytes
    }
}

/// The kernel maps of a bridge's fast path (SwaleKernel.KernelFastpath). Failures are the
/// implementation's to log: the mirror keeps going (a missing entry only means the slow path).
public protocol FastpathMaps: AnyObject {
    func setEntry(address: UInt64, ifindex: Int32)
    func removeEntry(address: UInt64)
    func removeAllEntries()
    /// The entry's last fast-path use (ns, monotonic; 0: never), nil when absent.
    func lastSeen(address: UInt64) -> UInt64?
    func setPort(ifindex: Int32, slot: Int, flags: UInt32)
    func removePort(ifindex: Int32)
    func counters(slot: Int) -> FastpathCounters
    func resetCounters(slot: Int)
}

/// One address mirrored into the kernel: where, and the last `seen_ns` read back.
struct FastpathMirror {
    var ifindex: Int32
    var seen: UInt64
}

extension ForwardingEngine {
    public static let fastpathOn: UInt32 = 1  // SWALE_FP_PORT_ON
    public static let fastpathPeer: UInt32 = 2  // SWALE_FP_PORT_PEER
    public static let fastpathHost: UInt32 = 4  // SWALE_FP_PORT_HOST

    /// Installs (or with nil removes) the fast path's maps; the table starts noting its changes.
    public func setFastpath(_ maps: FastpathMaps?) {
        if maps == nil, let old = fastpath {
            for i in 0..<portCount where fpIfindex[i] != 0 { detachFastpath(port: i) }
            old.removeAllEntries()
        }
        fastpath = maps
        fpMirrored.removeAll()
        table.trackChanges = maps != nil
        table.takeChanges { _, _ in }
    }

    /// Puts kernel port `i` (host end `ifindex`) on the fast path. `peer`: a veth whose peer is in
    /// another namespace (frames go to it with bpf_redirect_peer); `hostStack`: a TAP (frames for it
    /// go up the host stack). Its entries are mirrored now.
    public func attachFastpath(port i: Int, ifindex: Int32, peer: Bool, hostStack: Bool = false) {
        guard let maps = fastpath, i >= 0, i < portCount, ports[i].active, ifindex > 0 else { return }
        fpIfindex[i] = ifindex
        fpPeer[i] = (peer ? ForwardingEngine.fastpathPeer : 0) | (hostStack ? ForwardingEngine.fastpathHost : 0)
        fpFlags[i] = UInt32.max  // unknown: written below
        maps.resetCounters(slot: i)
        refreshFastpathPorts()
        rebuildFastpathMirror(now: tableClock)
    }

    /// Takes port `i` off the fast path (its counters are folded into its stats).
    public func detachFastpath(port i: Int) {
        guard i >= 0, i < fpIfindex.count, fpIfindex[i] != 0 else { return }
        let ifindex = fpIfindex[i]
        fpIfindex[i] = 0
        fpFlags[i] = 0
        guard let maps = fastpath else { return }
        maps.removePort(ifindex: ifindex)
        let c = maps.counters(slot: i)
        ports[i].stats.txPackets &+= c.txPackets; ports[i].stats.txBytes &+= c.txBytes
        ports[i].stats.rxPackets &+= c.rxPackets; ports[i].stats.rxBytes &+= c.rxBytes
        maps.resetCounters(slot: i)
        for (a, m) in fpMirrored where m.ifindex == ifindex {
            maps.removeEntry(address: a)
            fpMirrored[a] = nil
        }
    }

    /// Whether port `i` is on the fast path now.
    public func fastpathActive(port i: Int) -> Bool {
        fastpath != nil && i >= 0 && i < fpIfindex.count && fpIfindex[i] != 0 && fpFlags[i] & ForwardingEngine.fastpathOn != 0
    }

    /// Port `i`'s counters with what the fast path moved for it added.
    public func portStatsWithFastpath(_ i: Int) -> PortStats? {
        guard var s = port(i)?.stats else { return nil }
        if let maps = fastpath, fpIfindex[i] != 0 {
            let c = maps.counters(slot: i)
            s.txPackets &+= c.txPackets; s.txBytes &+= c.txBytes
            s.rxPackets &+= c.rxPackets; s.rxBytes &+= c.rxBytes
        }
        return s
    }

    /// The fast path's own counters of port `i` (nil: the port is not attached to it).
    public func fastpathCounters(port i: Int) -> FastpathCounters? {
        guard let maps = fastpath, i >= 0, i < fpIfindex.count, fpIfindex[i] != 0 else { return nil }
        return maps.counters(slot: i)
    }

    /// The table's time between passes: that of the last pass (the caller's clock), else the monotonic one.
    var tableClock: UInt32 { lastPassNow != 0 ? lastPassNow : ForwardingEngine.now() }

    func fastpathEligible(_ i: Int) -> Bool {
        let p = ports[i]
        return p.active && !p.isMonitor && p.monitors == 0 && !p.isolated && !p.locked && p.horizon == 0 && !vlanFiltering
    }

    /// Writes each fast-path port's flags where they changed (a rule, a monitor, VLAN filtering).
    public func refreshFastpathPorts() {
        guard let maps = fastpath else { return }
        for i in 0..<portCount where fpIfindex[i] != 0 {
            let flags = fastpathEligible(i) ? ForwardingEngine.fastpathOn | fpPeer[i] : 0
            if flags != fpFlags[i] {
                maps.setPort(ifindex: fpIfindex[i], slot: i, flags: flags)
                fpFlags[i] = flags
            }
        }
    }

    /// Mirrors the table's noted changes into the kernel (after a pass or a command).
    @inline(__always)
    public func syncFastpath() {
        if fastpath != nil && (table.changeCount != 0 || table.changesOverflowed) { syncFastpathChanges() }
    }

    @inline(never)
    func syncFastpathChanges() {
        guard let maps = fastpath else { return }
        let now = tableClock
        var rebuild = false
        table.takeChanges { list, overflowed in
            if overflowed { rebuild = true; return }
            for a in list { mirror(address: a, maps: maps, now: now) }
        }
        if rebuild { rebuildFastpathMirror(now: now) }
    }

    /// Where the table has `a` now, in the kernel: written, moved or deleted.
    private func mirror(address a: UInt64, maps: FastpathMaps, now: UInt32) {
        var ifindex: Int32 = 0
        if a &>> 48 == 0 {  // the program knows no VLANs: VLAN 0 only
            let p = Int(table.lookup(address: a, now: now))
            if p < fpIfindex.count { ifindex = fpIfindex[p] }
        }
        if ifindex != 0 {
            if fpMirrored[a]?.ifindex != ifindex {
                maps.setEntry(address: a, ifindex: ifindex)
                fpMirrored[a] = FastpathMirror(ifindex: ifindex, seen: 0)
            }
        } else if fpMirrored[a] != nil {
            maps.removeEntry(address: a)
            fpMirrored[a] = nil
        }
    }

    /// Mirrors the whole table again (many changes at once, a port attached).
    func rebuildFastpathMirror(now: UInt32) {
        guard let maps = fastpath else { return }
        table.takeChanges { _, _ in }
        var live: [UInt64: Int32] = [:]
        for r in table.entries(now: now) where r.vlan == 0 && Int(r.port) < fpIfindex.count && fpIfindex[Int(r.port)] != 0 {
            live[r.mac] = fpIfindex[Int(r.port)]
        }
        for (a, m) in fpMirrored where live[a] != m.ifindex {
            maps.removeEntry(address: a)
            fpMirrored[a] = nil
        }
        for (a, ifindex) in live where fpMirrored[a] == nil {
            maps.setEntry(address: a, ifindex: ifindex)
            fpMirrored[a] = FastpathMirror(ifindex: ifindex, seen: 0)
        }
    }

    /// Sources the fast path forwarded since the last look are refreshed in the table (housekeeping,
    /// before aging).
    func refreshFastpathSources(now: UInt32) {
        guard let maps = fastpath, !fpMirrored.isEmpty else { return }
        for (a, m) in fpMirrored {
            guard let seen = maps.lastSeen(address: a), seen != m.seen else { continue }
            fpMirrored[a]?.seen = seen
            table.touch(address: a, now: now)
        }
    }
}
