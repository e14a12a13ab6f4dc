/*
 * Results — what successful replies carry (Operations.swift says which operation returns which).
 * The same types are printed by `swalectl --json`, so scripts read exactly what the service sent.
 */
import Foundation

/// What a client needs to map an opened port or pipe end. Descriptors travel beside it, in order:
/// region memfd, own notify doorbell (to poll), kick doorbell (switch port) or the peer's notify doorbell (pipe) (to ring).
public struct OpenInfo: Codable, Sendable {
    public var name: String
    public var kind: String  // "port" or "pipe"
    public var bufSize: Int
    public var regionSize: Int
    public var nifpOffset: Int
    public var txRing: Int
    public var rxRing: Int
    public var slots: Int
    /// Pipe only: the peer's rx ring (our tx feeds it) and the peer's control block.
    public var peerRxRing: Int?
    public var peerCsb: Int?
    public var peerTxRing: Int?
    /// Spare buffers granted (chained from the interface's ni_bufs_head).
    public var extraBuffers: Int?

    public init(name: String, kind: String, bufSize: Int, regionSize: Int, nifpOffset: Int, txRing: Int, rxRing: Int, slots: Int)
    {
        self.name = name
        self.kind = kind
        self.bufSize = bufSize
        self.regionSize = regionSize
        self.nifpOffset = nifpOffset
        self.txRing = txRing
        self.rxRing = rxRing
        self.slots = slots
    }
}

public struct RegionInfo: Codable, Sendable {
    public var name: String
    public var size: Int
    public var bufSize: Int
    public var buffersTotal: Int
    public var buffersFree: Int
    public var refusedFrees: Int
    /// Blocks the layout explains: reserved ones, descriptors, and one buffer per ring slot of every
    /// interface in the region. `buffersTotal - buffersFree - buffersAccounted` must be 0.
    public var buffersAccounted: Int
    public var users: [String]
    public init(
        name: String, size: Int, bufSize: Int, buffersTotal: Int, buffersFree: Int, refusedFrees: Int, buffersAccounted: Int,
        users: [String]
    ) {
        self.name = name; self.size = size; self.bufSize = bufSize; self.buffersTotal = buffersTotal
        self.buffersFree = buffersFree; self.refusedFrees = refusedFrees; self.buffersAccounted = buffersAccounted;
        self.users = users
    }
    public var buffersUnaccounted: Int { buffersTotal - buffersFree - buffersAccounted }
}

public struct PipeInfo: Codable, Sendable {
    public var parent: String
    public var id: String
    public var masterOpen: Bool
    public var slaveOpen: Bool
    public var masterPid: Int?
    public var slavePid: Int?
    public init(parent: String, id: String, masterOpen: Bool, slaveOpen: Bool, masterPid: Int?, slavePid: Int?) {
        self.parent = parent; self.id = id; self.masterOpen = masterOpen; self.slaveOpen = slaveOpen
        self.masterPid = masterPid; self.slavePid = slavePid
    }
}

public struct PortCounters: Codable, Sendable {
    public var rxPackets: UInt64 = 0  // frames the port received from the switch (delivered to it)
    public var rxBytes: UInt64 = 0
    public var txPackets: UInt64 = 0  // frames the port sent into the switch
    public var txBytes: UInt64 = 0
    public var dropRingFull: UInt64 = 0
    public var dropTooShort: UInt64 = 0
    public var dropTooLong: UInt64 = 0
    public var dropBadSlot: UInt64 = 0
    public var ringResets: UInt64 = 0
    public var dropNoRoute: UInt64 = 0
    public var dropReserved: UInt64 = 0
    public var dropBadSource: UInt64 = 0
    public var dropVlan: UInt64 = 0
    public var dropStaticMove: UInt64 = 0
    public var dropMacLimit: UInt64 = 0
    public var dropLocked: UInt64 = 0
    public var dropIsolated: UInt64 = 0
    public var adapter: [String: UInt64]? = nil
    public var dropHorizon: UInt64 = 0
    public init() {}

    /// Frames dropped for any reason (ring full, malformed, refused by a bridge rule).
    public var totalDrops: UInt64 {
        dropRingFull &+ dropTooShort &+ dropTooLong &+ dropBadSlot &+ dropNoRoute &+ dropReserved &+ dropBadSource
            &+ dropVlan &+ dropStaticMove &+ dropMacLimit &+ dropLocked &+ dropIsolated &+ dropHorizon
    }
}

public struct PortInfo: Codable, Sendable {
    public var bridge: String
    public var name: String
    public var index: Int
    public var kind: String  // app, tap, veth, netdev, pipe-parent
    public var ifname: String?
    public var openBy: Int?  // pid of the app holding it
    /// pids of the others holding it: shared opens and adopted descriptors (netmap's non-exclusive use).
    public var sharedBy: [Int]? = nil
    /// Virtio-net header length its holders asked for (netmap's nr_hdr_len; nil: none).
    public var vnetHeader: Int? = nil
    public var created: Bool  // interface created by Swale (deleted with the port)
    public var owner: String  // who opened it (app ports and their pipes); root for kernel ports
    public var counters: PortCounters
    /// A veth port's other end (in its namespace).
    public var peer: String?
    /// The container attachment that made it (swale-cni): container id and CNI network name.
    public var container: String?
    public var network: String?
    /// Kernel ports: the interface's MTU as the switch uses it.
    public var mtu: Int? = nil
    /// Split-horizon group (nil: none).
    public var horizon: Int? = nil
    /// Something the caller should know about the port it just added (a tunnel MTU below others').
    public var warning: String? = nil
    public init(
        bridge: String, name: String, index: Int, kind: String, ifname: String?, openBy: Int?, created: Bool, owner: String,
        counters: PortCounters
    ) {
        self.bridge = bridge; self.name = name; self.index = index; self.kind = kind; self.ifname = ifname
        self.openBy = openBy; self.created = created; self.owner = owner; self.counters = counters
    }
}

public struct BridgeCounters: Codable, Sendable {
    public var flooded: UInt64 = 0
    public var learned: UInt64 = 0
    public var aged: UInt64 = 0
    public var moved: UInt64 = 0
    public var evicted: UInt64 = 0
    public var fdbEntries: Int = 0
    /// MAC entries the bridge's table is sized for.
    public var fdbCapacity: Int = 0
    public var batches: UInt64 = 0
    public var wakeups: UInt64 = 0
    /// Frames forwarded in runs of one flow (the engine's fast path between application ports).
    public var runFrames: UInt64? = nil
    /// Times the forwarding thread, raised for kernel ports, stepped down for an application reader behind.
    public var priorityLends: UInt64? = nil
    public init() {}
}

public struct BridgeInfo: Codable, Sendable {
    public var name: String
    public var ports: Int
    public var agingSeconds: Int
    public var batch: Int
    public var counters: BridgeCounters
    /// Who owns it (user name, or the uid when it has none); root for config and root-made bridges.
    public var owner: String
    /// Users and groups admitted besides the owner and root.
    public var allowUsers: [String]
    public var allowGroups: [String]
    /// Made by the config or `bridge add`: stays when its last port goes. Otherwise (made by an
    /// application's open) it is reaped with its last port.
    public var persistent: Bool
    public var vlanFiltering = false
    /// Reserved groups forwarded, as "0x4008".
    public var groupFwdMask = "0x0000"
    /// The kernel fast path for frames between its kernel ports: "on, N port(s)", "off" (swaled
    /// --no-fastpath or "fastpath": false), "unavailable: why", or "none" (no kernel port yet).
    public var fastpath: String?
    /// The CPUs its forwarding thread may run on ("1", "0-1,3"), when swaled was told to place it
    /// (`forwardingCPUs`, `--forwarding-cpus`); absent otherwise. When the kernel refused the
    /// placement: where it runs instead, and why ("0-7 (not placed on 9: Invalid argument)").
    public var forwardingCPUs: String?
    public init(
        name: String, ports: Int, agingSeconds: Int, batch: Int, counters: BridgeCounters, owner: String,
        allowUsers: [String], allowGroups: [String], persistent: Bool
    ) {
        self.name = name; self.ports = ports; self.agingSeconds = agingSeconds; self.batch = batch; self.counters = counters
        self.owner = owner; self.allowUsers = allowUsers; self.allowGroups = allowGroups; self.persistent = persistent
    }
}

/// `hello`: the protocol version spoken, and the caller as the service sees it.
public struct HelloInfo: Codable, Sendable {
    public var version: Int
    public var server: String
    public var uid: Int
    public var gid: Int
    /// Root in the service's sense: uid 0 or CAP_NET_ADMIN in its user namespace.
    public var root: Bool
    public init(version: Int, server: String, uid: Int, gid: Int, root: Bool) {
        self.version = version; self.server = server; self.uid = uid; self.gid = gid; self.root = root
    }
}

public struct FlushInfo: Codable, Sendable {
    public var flushed: Int
    public init(flushed: Int) { self.flushed = flushed }
}

public struct FdbEntry: Codable, Sendable {
    public var mac: String
    public var port: String
    public var age: Int
    /// 0 outside VLAN filtering.
    public var vlan: Int
    public var isStatic: Bool
    enum CodingKeys: String, CodingKey {
        case mac, port, age, vlan
        case isStatic = "static"
    }
    public init(mac: String, port: String, age: Int, vlan: Int = 0, isStatic: Bool = false) {
        self.mac = mac; self.port = port; self.age = age; self.vlan = vlan; self.isStatic = isStatic
    }
}

/// `fdb.add`: the entry as stored, and why it may not match anything yet.
public struct StaticEntryInfo: Codable, Sendable {
    public var mac: String
    public var port: String
    public var vlan: Int
    /// The port is on the bridge now (the entry is in its table); otherwise it waits for it.
    public var attached: Bool
    /// Set when the entry cannot match yet: a VLAN entry while the bridge does not filter VLANs
    /// (frames are then in VLAN 0), or a VLAN-0 entry while it does.
    public var warning: String?
    public init(mac: String, port: String, vlan: Int, attached: Bool, warning: String?) {
        self.mac = mac; self.port = port; self.vlan = vlan; self.attached = attached; self.warning = warning
    }
}

/// A port's VLANs and rules (`vlan show`, `vlan add`, `port set`).
public struct PortRulesInfo: Codable, Sendable {
    public struct Vlan: Codable, Sendable, Equatable {
        public var vid: Int
        public var pvid: Bool
        public var untagged: Bool
        public init(vid: Int, pvid: Bool, untagged: Bool) { self.vid = vid; self.pvid = pvid; self.untagged = untagged }
    }
    public var bridge: String
    public var port: String
    /// A port of that name is on the bridge now (rules wait for it otherwise).
    public var attached: Bool
    public var vlans: [Vlan]
    public var isolated: Bool
    public var locked: Bool
    /// 0: no limit.
    public var maxMacs: Int
    /// Dynamic MAC entries the port has now.
    public var learned: Int
    /// Split-horizon group (nil: none).
    public var horizon: Int? = nil
    public init(
        bridge: String, port: String, attached: Bool, vlans: [Vlan], isolated: Bool, locked: Bool, maxMacs: Int, learned: Int
    ) {
        self.bridge = bridge; self.port = port; self.attached = attached; self.vlans = vlans; self.isolated = isolated
        self.locked = locked; self.maxMacs = maxMacs; self.learned = learned
    }
}

public struct StatusInfo: Codable, Sendable {
    public var pid: Int
    public var uptimeSeconds: Double
    public var socket: String
    public var bridges: [BridgeInfo]
    public var regions: [RegionInfo]
    public var pipes: [PipeInfo]
    public var clients: Int
    public init(
        pid: Int, uptimeSeconds: Double, socket: String, bridges: [BridgeInfo], regions: [RegionInfo], pipes: [PipeInfo],
        clients: Int
    ) {
        self.pid = pid; self.uptimeSeconds = uptimeSeconds; self.socket = socket; self.bridges = bridges
        self.regions = regions; self.pipes = pipes; self.clients = clients
    }
}

public struct StatsInfo: Codable, Sendable {
    public var bridges: [BridgeInfo]
    public var ports: [PortInfo]
    public init(bridges: [BridgeInfo], ports: [PortInfo]) { self.bridges = bridges; self.ports = ports }
}

/// One bridge event (`swalectl events`).
public struct EventInfo: Codable, Sendable {
    public var seq: UInt64
    /// learned, moved, expired, evicted, port-added, port-removed
    public var event: String
    public var port: String
    public var mac: String?
    public var vlan: Int?
    /// Seconds of the bridge's monotonic clock.
    public var time: UInt32
    public init(seq: UInt64, event: String, port: String, mac: String?, vlan: Int?, time: UInt32) {
        self.seq = seq; self.event = event; self.port = port; self.mac = mac; self.vlan = vlan; self.time = time
    }
}

public struct EventsInfo: Codable, Sendable {
    public var bridge: String
    public var events: [EventInfo]
    /// Events after `after` that were overwritten before this read (the log keeps the last 4096).
    public var missed: UInt64
    /// The sequence number to pass as `after` next time.
    public var next: UInt64
    public init(bridge: String, events: [EventInfo], missed: UInt64, next: UInt64) {
        self.bridge = bridge; self.events = events; self.missed = missed; self.next = next
    }
}

/// A mirror: copies of a port's frames on a TAP interface.
public struct MirrorInfo: Codable, Sendable {
    public var port: String
    public var to: String
    public var dir: String
    /// Copies handed to the TAP, and copies lost because the mirror's ring was full.
    public var frames: UInt64
    public var dropped: UInt64
    public init(port: String, to: String, dir: String, frames: UInt64, dropped: UInt64) {
        self.port = port; self.to = to; self.dir = dir; self.frames = frames; self.dropped = dropped
    }
}

/// `metrics`: the Prometheus text exposition format (version 0.0.4).
public struct MetricsText: Codable, Sendable {
    public var text: String
    public init(text: String) { self.text = text }
}

/// `config.dump`: the running configuration in the config file's format.
public struct ConfigText: Codable, Sendable {
    public var text: String
    public init(text: String) { self.text = text }
}

// MARK: rates (`swalectl top`), computed by the client from two `stats` readings

/// One port's rates over an interval.
public struct PortRates: Codable, Sendable {
    public var port: String
    public var kind: String
    public var rxPacketsPerSecond: Double
    public var txPacketsPerSecond: Double
    public var rxBitsPerSecond: Double
    public var txBitsPerSecond: Double
    public var dropsPerSecond: Double
    public var load: Double { rxPacketsPerSecond + txPacketsPerSecond }

    /// Rates between two readings of one port (a counter that went down, a port reopened, counts as 0).
    public init(_ a: PortInfo, _ b: PortInfo, seconds: Double) {
        func rate(_ x: UInt64, _ y: UInt64) -> Double { y >= x ? Double(y - x) / seconds : 0 }
        port = "\(b.bridge):\(b.name)"
        kind = b.kind
        rxPacketsPerSecond = rate(a.counters.rxPackets, b.counters.rxPackets)
        txPacketsPerSecond = rate(a.counters.txPackets, b.counters.txPackets)
        rxBitsPerSecond = 8 * rate(a.counters.rxBytes, b.counters.rxBytes)
        txBitsPerSecond = 8 * rate(a.counters.txBytes, b.counters.txBytes)
        dropsPerSecond = rate(a.counters.totalDrops, b.counters.totalDrops)
    }

    /// Ports present in both readings, busiest first.
    public static func between(_ a: [PortInfo], _ b: [PortInfo], seconds: Double) -> [PortRates] {
        var before: [String: PortInfo] = [:]
        for p in a { before["\(p.bridge):\(p.name)#\(p.index)"] = p }
        return b.compactMap { p in before["\(p.bridge):\(p.name)#\(p.index)"].map { PortRates($0, p, seconds: seconds) } }
            .sorted { $0.load != $1.load ? $0.load > $1.load : $0.port < $1.port }
    }
}

/// What `swalectl top --json` prints per reading.
public struct TopReading: Codable, Sendable {
    public var seconds: Double
    public var ports: [PortRates]
    public init(seconds: Double, ports: [PortRates]) { self.seconds = seconds; self.ports = ports }
}
