/*
 * Operations — every request the control socket understands, one Codable type each, and the one
 * table that says who may send it.
 *
 * A request travels as `{"v": 1, "op": "bridge.add", "args": {...}}` (Envelope, Wire.swift); `args`
 * decodes into the operation's own type, so no operation sees another's fields and an unknown field
 * is ignored, never misread. The reply is `{"ok": true, "result": ...}` or
 * `{"ok": false, "code": "...", "error": "..."}`.
 *
 * `ControlProtocol.table` is the permission table. The service checks the operation's `Access`
 * before it decodes the arguments; object rules (a bridge's access list, who owns a port) are
 * applied inside the operation and are written down in docs/PROTOCOL.md:
 *
 *   member  any user the socket admits (root, swaled's user, the socket group); what they may see
 *           or touch is then limited to bridges that admit them and objects they own
 *   owner   root or the owner of the bridge named in the request
 *   root    uid 0, or CAP_NET_ADMIN in swaled's user namespace
 */

/// Who may send an operation.
public enum Access: String, Codable, Sendable {
    case member, owner, root

    public var phrase: String {
        switch self {
        case .member: return "any member of the socket group"
        case .owner: return "root or the bridge's owner"
        case .root: return "root"
        }
    }
}

/// A request type. `Result` is what a successful reply carries.
public protocol ControlOperation: Codable, Sendable {
    associatedtype Result: Codable & Sendable
    static var op: String { get }
}

extension ControlOperation {
    public static var spec: OperationSpec { ControlProtocol.spec(op)! }
}

public struct OperationSpec: Sendable {
    public let op: String
    public let access: Access
    /// Descriptors the request may carry (SCM_RIGHTS); anything more is refused and closed.
    public let descriptors: Int
    public let summary: String

    init<O: ControlOperation>(_ type: O.Type, _ access: Access, descriptors: Int = 0, _ summary: String) {
        self.op = O.op
        self.access = access
        self.descriptors = descriptors
        self.summary = summary
    }
}

public enum ControlProtocol {
    /// Bumped when a request or reply changes incompatibly; exchanged by `hello` on connect.
    public static let version = 1

    /// The permission table: every operation, who may send it, what it does.
    public static let table: [OperationSpec] = [
        OperationSpec(Hello.self, .member, "first message of a connection: protocol version and who the caller is"),
        OperationSpec(Status.self, .member, "service status; regions and pipes the caller owns, bridges it may use"),
        OperationSpec(Open.self, .member, "open an app port or pipe end on a bridge that admits the caller"),
        OperationSpec(PortHeader.self, .member, "virtio-net headers on an application port the caller holds (0 or 12 bytes)"),
        OperationSpec(
            Adopt.self, .member,
            "join the caller's own open port or pipe end whose wake-up descriptor it was given (netmap descriptor passing)"),
        OperationSpec(BridgeAdd.self, .member, "create a bridge owned by the caller (access lists: owner or root)"),
        OperationSpec(BridgeDel.self, .owner, "delete a bridge"),
        OperationSpec(BridgeList.self, .member, "bridges the caller may use"),
        OperationSpec(BridgeAging.self, .owner, "set the learning table's aging time"),
        OperationSpec(BridgeSet.self, .owner, "change a bridge's access lists, VLAN filtering, reserved-group forwarding"),
        OperationSpec(PortList.self, .member, "ports of bridges the caller may use"),
        OperationSpec(Stats.self, .member, "counters of bridges the caller may use and their ports"),
        OperationSpec(FdbShow.self, .member, "the MAC table of a bridge the caller may use"),
        OperationSpec(
            MetricsScrape.self, .member,
            "Prometheus text: counters of bridges the caller may use, regions it owns (also what swaled --metrics serves)"),
        OperationSpec(
            Events.self, .member, "learn/move/expire and port events of a bridge the caller may use, after a sequence number"),
        OperationSpec(FdbFlush.self, .owner, "flush a bridge's learned MAC entries (or one port's)"),
        OperationSpec(FdbAdd.self, .owner, "add a static MAC entry (never aged, never moved by learning)"),
        OperationSpec(FdbDel.self, .owner, "delete a static MAC entry"),
        OperationSpec(VlanAdd.self, .owner, "add a VLAN to a port (PVID, untagged)"),
        OperationSpec(VlanDel.self, .owner, "remove a VLAN from a port"),
        OperationSpec(VlanShow.self, .member, "the VLANs and rules of the ports of bridges the caller may use"),
        OperationSpec(PortSet.self, .owner, "a port's isolation, locking, MAC limit and split-horizon group"),
        OperationSpec(PortAdd.self, .root, "create a TAP, veth, VXLAN or Geneve port (kernel interfaces, namespaces, addresses)"),
        OperationSpec(PortAttach.self, .root, "attach an existing interface"),
        OperationSpec(PortDel.self, .root, "detach and delete a kernel port"),
        OperationSpec(MirrorAdd.self, .root, "mirror a port's frames to a new TAP interface (for tcpdump and other tools)"),
        OperationSpec(MirrorDel.self, .root, "remove a mirror and its TAP"),
        OperationSpec(MirrorList.self, .root, "mirrors and their TAPs"),
        OperationSpec(IfaceCreate.self, .root, "create a persistent TAP attached to nothing (vale-ctl -n)"),
        OperationSpec(IfaceRemove.self, .root, "delete an interface made with iface.create (vale-ctl -r)"),
        OperationSpec(IfaceList.self, .root, "interfaces made with iface.create and not attached"),
        OperationSpec(ConfigDump.self, .root, "the running configuration")
    ]

    public static func spec(_ op: String) -> OperationSpec? { table.first { $0.op == op } }

    /// The most descriptors any operation accepts: a connection holds no more than this while a
    /// message is incomplete.
    public static let maxDescriptors = table.map(\.descriptors).max() ?? 0
}

// MARK: the operations

public struct Hello: ControlOperation {
    public static let op = "hello"
    public var version: Int
    public var client: String?
    public init(version: Int = ControlProtocol.version, client: String? = nil) { self.version = version; self.client = client }
    public typealias Result = HelloInfo
}

public struct Status: ControlOperation {
    public static let op = "status"
    public init() {}
    public typealias Result = StatusInfo
}

public struct Open: ControlOperation {
    public static let op = "open"
    /// `vale0:app1`, `vale0:app1<7`, `vale0:app1>7`, `tap0<3` (root).
    public var name: String
    /// Slots per ring (64...16384); the service's default when absent.
    public var slots: Int?
    /// Spare buffers for the application (netmap's nr_extra_bufs), chained from the interface's
    /// ni_bufs_head; 0...4096, charged to the caller's memory budget, taken back when it closes.
    public var extraBuffers: Int?
    /// netmap's non-exclusive open: a bridge port already held by openers who all shared it is
    /// joined (same rings, a wake-up line of the caller's own) instead of refused. Without it an open
    /// is exclusive, as netmap's `/x`: refused while anyone holds the port, and it keeps others out.
    public var share: Bool?
    public init(name: String, slots: Int? = nil, extraBuffers: Int? = nil, share: Bool? = nil) {
        self.name = name; self.slots = slots; self.extraBuffers = extraBuffers; self.share = share
    }
    public typealias Result = OpenInfo
}

/// Virtio-net headers on an application port the caller holds (netmap's NETMAP_REQ_PORT_HDR_SET):
/// with `length` 12 every frame the port sends starts with a struct virtio_net_hdr_v1 (GSO and
/// checksum requests the switch honours), and every frame it gets does too (GSO frames from kernel
/// ports whole, a zeroed header in front of plain frames). 0 turns it off.
public struct PortHeader: ControlOperation {
    public static let op = "port.header"
    /// BRIDGE:PORT, open by the caller.
    public var name: String
    public var length: Int
    public init(name: String, length: Int) { self.name = name; self.length = length }
    public typealias Result = PortInfo
}

/// netmap's descriptor passing: a process that was given (SCM_RIGHTS, fork) the wake-up descriptor of
/// an open port or pipe end names it by its number in the caller's own descriptor table, and gets
/// the rest of that open (region, the doorbell to ring, the layout). The service looks at that
/// descriptor itself (/proc/PID/fd/N of the caller), so nothing is sent to it; the port must be the
/// caller's (or the caller root), as for an open by name. The caller becomes one more holder, and the
/// port or pipe end lives until its last holder closes.
public struct Adopt: ControlOperation {
    public static let op = "adopt"
    /// The wake-up descriptor's number in the caller's process.
    public var fd: Int
    public init(fd: Int) { self.fd = fd }
    public typealias Result = OpenInfo
}

public struct BridgeAdd: ControlOperation {
    public static let op = "bridge.add"
    public var bridge: String
    public var batch: Int?
    /// Users (names or uids) and groups (names or gids) whose members may open ports on it.
    public var allowUsers: [String]?
    public var allowGroups: [String]?
    public init(bridge: String, batch: Int? = nil, allowUsers: [String]? = nil, allowGroups: [String]? = nil) {
        self.bridge = bridge; self.batch = batch; self.allowUsers = allowUsers; self.allowGroups = allowGroups
    }
    public typealias Result = BridgeInfo
}

public struct BridgeDel: ControlOperation {
    public static let op = "bridge.del"
    public var bridge: String
    /// Delete even with ports attached: they are removed, pipes on them end.
    public var force: Bool?
    public init(bridge: String, force: Bool? = nil) { self.bridge = bridge; self.force = force }
    public typealias Result = Empty
}

public struct BridgeList: ControlOperation {
    public static let op = "bridge.list"
    public init() {}
    public typealias Result = [BridgeInfo]
}

public struct BridgeAging: ControlOperation {
    public static let op = "bridge.aging"
    public var bridge: String
    public var seconds: Int
    public init(bridge: String, seconds: Int) { self.bridge = bridge; self.seconds = seconds }
    public typealias Result = BridgeInfo
}

public struct BridgeSet: ControlOperation {
    public static let op = "bridge.set"
    public var bridge: String
    /// Replaces the list when present.
    public var allowUsers: [String]?
    public var allowGroups: [String]?
    /// 802.1Q VLAN filtering on or off.
    public var vlanFiltering: Bool?
    /// Which reserved groups 01:80:C2:00:00:0X are forwarded (bit X), as Linux's group_fwd_mask.
    public var groupFwdMask: Int?
    public init(
        bridge: String, allowUsers: [String]? = nil, allowGroups: [String]? = nil, vlanFiltering: Bool? = nil,
        groupFwdMask: Int? = nil
    ) {
        self.bridge = bridge; self.allowUsers = allowUsers; self.allowGroups = allowGroups
        self.vlanFiltering = vlanFiltering; self.groupFwdMask = groupFwdMask
    }
    public typealias Result = BridgeInfo
}

public struct PortList: ControlOperation {
    public static let op = "port.list"
    public var bridge: String?
    public init(bridge: String? = nil) { self.bridge = bridge }
    public typealias Result = [PortInfo]
}

public struct Stats: ControlOperation {
    public static let op = "stats"
    /// BRIDGE, BRIDGE:PORT, or nothing for everything the caller may see.
    public var target: String?
    public init(target: String? = nil) { self.target = target }
    public typealias Result = StatsInfo
}

public struct FdbShow: ControlOperation {
    public static let op = "fdb.show"
    public var bridge: String
    public init(bridge: String) { self.bridge = bridge }
    public typealias Result = [FdbEntry]
}

public struct FdbFlush: ControlOperation {
    public static let op = "fdb.flush"
    public var bridge: String
    public var port: String?
    public init(bridge: String, port: String? = nil) { self.bridge = bridge; self.port = port }
    public typealias Result = FlushInfo
}

public struct PortAdd: ControlOperation {
    public static let op = "port.add"
    public var bridge: String
    /// "tap" or "veth".
    public var kind: String
    /// The interface (and port) name.
    public var name: String
    public var peer: String?
    public var netns: String?
    public var address: String?
    public var mtu: Int?
    public var mac: String?
    /// A container's attachment (swale-cni): the runtime's container id and network name, shown by
    /// `port list`; such a port's rules go with it, and it is not part of the configuration.
    public var container: String?
    public var network: String?
    /// A container attachment's rules: access VLAN (PVID, untagged), tagged VLANs, isolation.
    public var vlan: Int?
    public var trunk: [Int]?
    public var isolated: Bool?
    // Tunnel ports (kind "vxlan" or "geneve"): see SwaleConfig.Tunnel.
    public var vni: Int?
    public var remotes: [String]?
    public var group: String?
    public var dev: String?
    public var local: String?
    public var dstPort: Int?
    /// Split-horizon group of the new port (a port rule, like `port.set`'s).
    public var horizon: Int?
    public init(bridge: String, kind: String, name: String) { self.bridge = bridge; self.kind = kind; self.name = name }
    public typealias Result = PortInfo
}

public struct PortAttach: ControlOperation {
    public static let op = "port.attach"
    public var bridge: String
    public var ifname: String
    public init(bridge: String, ifname: String) { self.bridge = bridge; self.ifname = ifname }
    public typealias Result = PortInfo
}

public struct PortDel: ControlOperation {
    public static let op = "port.del"
    public var bridge: String
    public var port: String
    /// Detach but keep an interface Swale created (vale-ctl -d).
    public var keep: Bool?
    public init(bridge: String, port: String, keep: Bool? = nil) { self.bridge = bridge; self.port = port; self.keep = keep }
    public typealias Result = Empty
}

public struct IfaceCreate: ControlOperation {
    public static let op = "iface.create"
    public var name: String
    public var mtu: Int?
    public var mac: String?
    public init(name: String) { self.name = name }
    public typealias Result = PortInfo
}

public struct IfaceRemove: ControlOperation {
    public static let op = "iface.remove"
    public var name: String
    public init(name: String) { self.name = name }
    public typealias Result = Empty
}

public struct IfaceList: ControlOperation {
    public static let op = "iface.list"
    public init() {}
    public typealias Result = [String]
}

public struct ConfigDump: ControlOperation {
    public static let op = "config.dump"
    public init() {}
    public typealias Result = ConfigText
}

public struct FdbAdd: ControlOperation {
    public static let op = "fdb.add"
    public var bridge: String
    public var mac: String
    /// The port's name on the bridge (it need not be attached yet).
    public var port: String
    /// 0 or absent: the entry for frames outside VLAN filtering.
    public var vlan: Int?
    public init(bridge: String, mac: String, port: String, vlan: Int? = nil) {
        self.bridge = bridge; self.mac = mac; self.port = port; self.vlan = vlan
    }
    public typealias Result = StaticEntryInfo
}

public struct FdbDel: ControlOperation {
    public static let op = "fdb.del"
    public var bridge: String
    public var mac: String
    public var vlan: Int?
    public init(bridge: String, mac: String, vlan: Int? = nil) { self.bridge = bridge; self.mac = mac; self.vlan = vlan }
    public typealias Result = Empty
}

public struct VlanAdd: ControlOperation {
    public static let op = "vlan.add"
    /// BRIDGE:PORT
    public var port: String
    public var vid: Int
    /// Untagged frames arriving on the port go to this VLAN.
    public var pvid: Bool?
    /// Frames of this VLAN leave the port untagged.
    public var untagged: Bool?
    public init(port: String, vid: Int, pvid: Bool? = nil, untagged: Bool? = nil) {
        self.port = port; self.vid = vid; self.pvid = pvid; self.untagged = untagged
    }
    public typealias Result = PortRulesInfo
}

public struct VlanDel: ControlOperation {
    public static let op = "vlan.del"
    public var port: String
    public var vid: Int
    public init(port: String, vid: Int) { self.port = port; self.vid = vid }
    public typealias Result = PortRulesInfo
}

public struct VlanShow: ControlOperation {
    public static let op = "vlan.show"
    public var bridge: String?
    public init(bridge: String? = nil) { self.bridge = bridge }
    public typealias Result = [PortRulesInfo]
}

public struct PortSet: ControlOperation {
    public static let op = "port.set"
    /// BRIDGE:PORT
    public var port: String
    public var isolated: Bool?
    public var locked: Bool?
    /// 0: no limit.
    public var maxMacs: Int?
    /// Split-horizon group, 0...255 (0: none).
    public var horizon: Int?
    public init(port: String, isolated: Bool? = nil, locked: Bool? = nil, maxMacs: Int? = nil) {
        self.port = port; self.isolated = isolated; self.locked = locked; self.maxMacs = maxMacs
    }
    public typealias Result = PortRulesInfo
}

public struct MetricsScrape: ControlOperation {
    public static let op = "metrics"
    public init() {}
    public typealias Result = MetricsText
}

public struct MirrorAdd: ControlOperation {
    public static let op = "mirror.add"
    /// BRIDGE:PORT
    public var port: String
    /// The TAP to create (it must not exist).
    public var to: String
    /// rx, tx or both (default both).
    public var dir: String?
    public init(port: String, to: String, dir: String? = nil) { self.port = port; self.to = to; self.dir = dir }
    public typealias Result = MirrorInfo
}

public struct MirrorDel: ControlOperation {
    public static let op = "mirror.del"
    public var to: String
    public init(to: String) { self.to = to }
    public typealias Result = Empty
}

public struct MirrorList: ControlOperation {
    public static let op = "mirror.list"
    public init() {}
    public typealias Result = [MirrorInfo]
}

public struct Events: ControlOperation {
    public static let op = "events"
    public var bridge: String
    /// The last sequence number seen; absent: none are returned, only where "now" is.
    public var after: UInt64?
    public init(bridge: String, after: UInt64? = nil) { self.bridge = bridge; self.after = after }
    public typealias Result = EventsInfo
}
