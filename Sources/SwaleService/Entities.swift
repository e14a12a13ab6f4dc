/*
 * Entities — what the service owns: bridges, their ports, pipes, and client sessions.
 *
 * Ownership follows netmap: an app port lives while an application holds it open or a pipe hangs
 * off it; a pipe lives while either end is open; a kernel port lives until `port del`. Each port
 * has its own memory region (MemoryPool), so no application can map another port's traffic; pipes
 * live in their parent port's region, which is what makes them zero copy.
 */
import Foundation
import SwaleControl
import SwaleDatapath
import SwaleRings
import SwaleNames
import SwaleSwitch

enum PortKind: String {
    case app, tap, veth, netdev
}

final class PortEntry {
    let bridge: String
    let name: String
    let kind: PortKind
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
    /// Pipes living in this port's region.
    var pipes = 0
    /// Kernel side.
    var ifname: String?
    var ifindex: Int32?
    var peerName: String?
    var created = false
    /// How to make it again: what `config dump` prints and the owner tag carries (kernel ports).
    var spec: SwaleConfig.Port?
    var origin = PortOrigin.cli
    var adapter: PortBackend?
    var finalStats = PortStats()

    init(bridge: String, name: String, kind: PortKind, pool: MemoryPool, layout: InterfaceLayout, kick: Doorbell, notify: Doorbell) {
        self.bridge = bridge
        self.name = name
        self.kind = kind
        self.pool = pool
        self.layout = layout
        self.kick = kick
        self.notify = notify
    }

    var fullName: String { "\(bridge):\(name)" }

    /// An ephemeral app port goes away when nobody holds it and no pipe needs its region.
    var unused: Bool { kind == .app && openSession == nil && pipes == 0 }
}

final class BridgeEntry {
    let bridge: Bridge
    var ports: [String: PortEntry] = [:]
    init(bridge: Bridge) { self.bridge = bridge }
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

    init(parent: PortEntry, id: String, master: InterfaceLayout, slave: InterfaceLayout, masterNotify: Doorbell, slaveNotify: Doorbell) {
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
}

final class Session {
    let id: Int
    let pid: Int
    let uid: Int
    let gid: Int
    var holdings: [Holding] = []
    init(id: Int, pid: Int, uid: Int, gid: Int) {
        self.id = id
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}
