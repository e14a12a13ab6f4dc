/*
 * Entities — what the service owns: bridges, their ports, pipes, and client sessions.
 *
 * Lifetimes follow netmap: an app port lives while an application holds it open or a pipe hangs
 * off it; a pipe lives while either end is open, and ends with its bridge; a kernel port lives
 * until `port del`; a bridge made by an application's open lives while it has ports. Each port has
 * its own memory region (MemoryPool), so no application can map another port's traffic; pipes live
 * in their parent port's region, which is what makes them zero copy.
 *
 * Owners (uids): a bridge belongs to whoever made it (root for the config's and root's); a port to
 * whoever opened it first (root for kernel ports); a pipe to its parent port's owner.
 */
import Foundation
import SwaleConfig
import SwaleDatapath
import SwaleKernel
import SwaleNames
import SwaleRings
import SwaleSwitch

enum PortKind: String {
    case app, tap, veth, netdev
    /// Tunnel devices (Tunnels.swift).
    case vxlan, geneve
    /// A monitor (`vale0:p1/r`): copies of another port's traffic; kept in `BridgeEntry.monitors`.
    case monitor
}

final class PortEntry {
    let bridge: String
    let name: String
    let kind: PortKind
    /// uid of the user who opened it (0: root or a kernel port).
    let owner: UInt32
    let pool: MemoryPool
    let layout: InterfaceLayout
    /// App → switch: the app rings, the bridge polls.
    let kick: Doorbell
    /// Switch → app: the bridge rings, the app polls.
    let notify: Doorbell
    var index: Int = -1
    /// Session holding it open (app ports).
    var openSession: Int?
    var openPid: Int?
    /// The first holder opened it shared (netmap's default): later shared opens may join.
    var shareable = false
    /// Virtio-net header length its holders set (0 or 12): reset when the last holder goes.
    var vnetHeader = 0
    /// Holders besides the first: shared opens (each with a wake-up line of its own) and adopted
    /// descriptors (the line of the descriptor they were given).
    var sharers: [Sharer] = []
    /// Pipes living in this port's region.
    var pipes = 0
    /// Kernel side.
    var ifname: String?
    var ifindex: Int32?
    var peerName: String?
    var created = false
    /// Its interface's tc ingress carries the bridge's fast path (KernelFastpath.attach).
    var fastpathAttached = false
    /// GRO as found on an attached interface that swaled turned it on for (restored on detach).
    var groFound: Bool?
    /// How to make it again: what `config dump` prints and the owner tag carries (kernel ports).
    var spec: SwaleConfig.Port?
    var origin = PortOrigin.cli
    var adapter: PortBackend?
    /// A monitor or mirror: what it copies.
    var monitor: PortName.Monitor?
    var finalStats = PortStats()
    /// Spare buffers its current holder was given (ExtraBuffers.swift).
    var extraBuffers = 0

    init(
        bridge: String, name: String, kind: PortKind, owner: UInt32, pool: MemoryPool, layout: InterfaceLayout, kick: Doorbell,
        notify: Doorbell
    ) {
        self.bridge = bridge
        self.name = name
        self.kind = kind
        self.owner = owner
        self.pool = pool
        self.layout = layout
        self.kick = kick
        self.notify = notify
    }

    var fullName: String { "\(bridge):\(name)" }

    /// An ephemeral app port goes away when nobody holds it and no pipe needs its region.
    var unused: Bool { (kind == .app || kind == .monitor) && !held && pipes == 0 }
    /// Some application holds it (the first opener, a sharer or an adopter).
    var held: Bool { openSession != nil || !sharers.isEmpty }
    /// The pid to name as its holder.
    var holderPid: Int? { openPid ?? sharers.first?.pid }
}

/// One more holder of a port or pipe end (Holding.shared).
struct Sharer {
    let session: Int
    let pid: Int
    /// The wake-up line it waits on, if not the port's own: a shared open's, or the one an adopted
    /// descriptor came from.
    let bell: Doorbell?
    /// This holder keeps `bell` (closes it when it goes, unless another holder still waits on it,
    /// which then keeps it).
    var ownsBell: Bool
}

final class BridgeEntry {
    let bridge: Bridge
    var ports: [String: PortEntry] = [:]
    /// uid of its owner (0: root, the config).
    let owner: UInt32
    /// Admitted besides the owner and root: these uids, and members of these gids.
    var allowUsers: Set<UInt32> = []
    var allowGroups: Set<UInt32> = []
    /// Made by the config or `bridge add`; otherwise reaped with its last port.
    let persistent: Bool
    /// Bridge rules (BridgeRules.swift): kept by port name, pushed into the engine when a port of
    /// that name is attached.
    var vlanFiltering = false
    var groupFwdMask: UInt16 = 0
    var portRules: [String: SwaleConfig.PortRules] = [:]
    /// The bridge's kernel fast path (KernelFastpath), loaded with its first packet-socket port.
    var fastpath: KernelFastpath?
    /// Open monitor ports (not forwarding ports: not in `ports`), by engine index.
    var monitors: [Int: PortEntry] = [:]
    /// The names each engine index had, from the event sequence number its port was added at
    /// (events name ports that are gone, and an index reused later names the new port).
    var portNames: [Int: [(since: UInt64, name: String)]] = [:]

    func portName(_ index: Int, at seq: UInt64) -> String {
        portNames[index]?.last(where: { $0.since <= seq })?.name ?? "#\(index)"
    }
    /// Mirrors to TAP interfaces (`swalectl mirror`), by interface name: monitors with a TAP backend.
    var mirrors: [String: PortEntry] = [:]
    var staticEntries: [SwaleConfig.StaticEntry] = []
    init(bridge: Bridge, owner: UInt32, persistent: Bool) {
        self.bridge = bridge
        self.owner = owner
        self.persistent = persistent
    }
}

final class PipeEntry {
    let parent: PortEntry
    let id: String
    let master: InterfaceLayout
    let slave: InterfaceLayout
    /// Rung by the slave's library, polled by the master's.
    let masterNotify: Doorbell
    /// Rung by the master's library, polled by the slave's.
    let slaveNotify: Doorbell
    var masterSession: Int?
    var slaveSession: Int?
    var masterPid: Int?
    var slavePid: Int?
    /// Holders of an end besides its opener: processes given its descriptor (Adopt).
    var masterAdopters: [Sharer] = []
    var slaveAdopters: [Sharer] = []
    /// Nobody holds either end.
    var unheld: Bool { masterSession == nil && slaveSession == nil && masterAdopters.isEmpty && slaveAdopters.isEmpty }
    /// Its bridge was deleted: never handed out again; holders keep their mapping until they close.
    var ended = false
    /// Spare buffers each end's holder was given (ExtraBuffers.swift).
    var masterExtra = 0
    var slaveExtra = 0

    init(
        parent: PortEntry, id: String, master: InterfaceLayout, slave: InterfaceLayout, masterNotify: Doorbell,
        slaveNotify: Doorbell
    ) {
        self.parent = parent
        self.id = id
        self.master = master
        self.slave = slave
        self.masterNotify = masterNotify
        self.slaveNotify = slaveNotify
    }

    var key: String { "\(parent.fullName){\(id)" }
}

/// What one client connection holds.
enum Holding {
    case port(PortEntry)
    case pipeEnd(PipeEntry, PipeRole)
    /// A shared open or an adopted descriptor of a port (PortEntry.sharers).
    case sharedPort(PortEntry)
    /// An adopted descriptor of a pipe end (PipeEntry.masterAdopters / slaveAdopters).
    case adoptedPipeEnd(PipeEntry, PipeRole)
}

final class Session {
    let id: Int
    let who: Credentials
    /// The client said hello with a version this service speaks.
    var greeted = false
    var holdings: [Holding] = []
    init(id: Int, who: Credentials) {
        self.id = id
        self.who = who
    }
    var pid: Int { Int(who.pid) }
    var uid: UInt32 { who.uid }
    var gid: UInt32 { who.gid }
    var root: Bool { who.root }
    /// The uid that objects made by this session belong to (0 for root).
    var ownerID: UInt32 { who.root ? 0 : who.uid }
}
