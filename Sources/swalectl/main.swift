// swalectl — the Swale command line: bridges, ports, pipes, MAC table and counters.
import ArgumentParser
import Foundation
import SwaleConfig
import SwaleNames
import SwaleProtocol

struct Common: ParsableArguments {
    @Option(help: "Control socket (default: $SWALE_SOCKET or /run/swale/swaled.sock).")
    var socket: String?

    @Flag(help: "Print the service's reply as JSON.")
    var json = false
}

/// Sends a request; prints JSON or lets `human` format the typed result.
func perform<O: ControlOperation>(_ op: O, _ common: Common, human: (O.Result) -> Void) throws {
    try perform(op, common, result: { $0 }, human: human)
}

/// Sends a request and prints (as JSON, or through `human`) the part of the reply `result` picks.
func perform<O: ControlOperation, R: Encodable>(
    _ op: O, _ common: Common, result pick: (O.Result) -> R, human: (R) -> Void
) throws {
    do {
        let result = pick(try ControlClient.call(op, socket: common.socket))
        if common.json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(result), as: UTF8.self))
        } else {
            human(result)
        }
    } catch let e as ControlError {
        throw ValidationErrorish(e.message)
    }
}

/// `--allow-user a,b` or repeated: the names, split at commas.
func names(_ values: [String]) -> [String]? {
    values.isEmpty ? nil : values.flatMap { $0.split(separator: ",").map(String.init) }
}

struct ValidationErrorish: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }

func printPorts(_ ports: [PortInfo]) {
    print(
        pad("PORT", 22) + pad("KIND", 7) + pad("IFNAME", 16) + pad("MTU", 6) + pad("RX PKTS", 12) + pad("TX PKTS", 12)
            + pad("DROPS", 10) + "OPEN BY / CONTAINER")
    for p in ports {
        let c = p.counters
        let drops = c.totalDrops
        print(
            pad("\(p.bridge):\(p.name)", 22) + pad(p.kind, 7) + pad(p.ifname ?? "-", 16) + pad(p.mtu.map(String.init) ?? "-", 6)
                + pad("\(c.rxPackets)", 12) + pad("\(c.txPackets)", 12) + pad("\(drops)", 10) + holder(p)
                + (p.horizon.map { "  horizon \($0)" } ?? ""))
    }
}

/// Who has the port: the app's pid, or the container attachment (network, container id, its interface).
func holder(_ p: PortInfo) -> String {
    if let c = p.container { return "\(p.network ?? "?") \(c) \(p.peer ?? "?")" }
    let others = (p.sharedBy ?? []).map { " +pid \($0)" }.joined()
    return (p.openBy.map { "pid \($0)" } ?? "-") + others
}

func printBridge(_ b: BridgeInfo) {
    let c = b.counters
    let access = (b.allowUsers.map { "user \($0)" } + b.allowGroups.map { "group \($0)" }).joined(separator: ", ")
    print(
        "\(b.name): owner \(b.owner)\(access.isEmpty ? "" : ", allows \(access)")\(b.persistent ? "" : " (goes with its last port)"); \(b.ports) port(s), aging \(b.agingSeconds)s, batch \(b.batch)\(b.vlanFiltering ? ", vlan filtering" : "")\(b.groupFwdMask != "0x0000" ? ", forwards groups \(b.groupFwdMask)" : ""); fdb \(c.fdbEntries) entries; flooded \(c.flooded), learned \(c.learned), moved \(c.moved), aged \(c.aged), evicted \(c.evicted)\(c.runFrames.map { "; forwarded in runs \($0)" } ?? "")\(c.priorityLends.map { $0 > 0 ? "; stepped down for readers \($0)" : "" } ?? "")\(b.fastpath.map { "; fast path \($0)" } ?? "")\(b.forwardingCPUs.map { "; forwarding on CPUs \($0)" } ?? "")"
    )
}

struct Swalectl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swalectl", abstract: "Control the Swale virtual switch.",
        discussion:
            "vale-ctl's short options work too: -n NAME, -r NAME, -a BRIDGE:IF, -d BRIDGE:IF, -l [BRIDGE:PORT]; no arguments lists every port.",
        subcommands: [
            StatusCmd.self, BridgeCmd.self, PortCmd.self, VlanCmd.self, StatsCmd.self, TopCmd.self, MetricsCmd.self,
            CaptureCmd.self, MirrorCmd.self, EventsCmd.self, Fdb.self,
            ConfigCmd.self
        ])
}

struct StatusCmd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Service, regions and pipes.")
    @OptionGroup var common: Common
    func run() throws {
        try perform(Status(), common) { s in
            print("swaled pid \(s.pid), up \(Int(s.uptimeSeconds))s, socket \(s.socket), \(s.clients) client(s)")
            print("bridges: \(s.bridges.count)")
            for b in s.bridges { print("  ", terminator: ""); printBridge(b) }
            print("regions: \(s.regions.count)")
            for r in s.regions {
                print(
                    "  \(r.name): \(r.size) bytes, buffers \(r.buffersFree) free / \(r.buffersTotal) total (\(r.bufSize) B), in rings and descriptors \(r.buffersAccounted), unaccounted \(r.buffersUnaccounted), refused frees \(r.refusedFrees); used by \(r.users.joined(separator: ", "))"
                )
            }
            print("pipes: \(s.pipes.count)")
            for p in s.pipes {
                let m = p.masterOpen ? "open (pid \(p.masterPid ?? 0))" : "closed"
                let sl = p.slaveOpen ? "open (pid \(p.slavePid ?? 0))" : "closed"
                print("  \(p.parent){\(p.id): parent \(p.parent), master \(m), slave \(sl)")
            }
        }
    }
}

struct BridgeCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bridge", abstract: "Create, delete and list bridges.",
        subcommands: [Add.self, Del.self, List.self, Aging.self, Set.self])
    struct Add: ParsableCommand {
        @OptionGroup var common: Common
        @Argument(help: "Bridge name (vale followed by letters, digits, _).") var name: String
        @Option(help: "Frames per forwarding batch for this bridge (default: the service's).") var batch: Int?
        @Option(help: "A user (name or uid) who may open ports on it; repeat or separate with commas.") var allowUser: [String] =
            []
        @Option(help: "A group (name or gid) whose members may open ports on it; repeat or separate with commas.") var allowGroup:
            [String] = []
        func run() throws {
            try perform(
                BridgeAdd(bridge: name, batch: batch, allowUsers: names(allowUser), allowGroups: names(allowGroup)), common
            ) {
                print("bridge \($0.name) added")
            }
        }
    }
    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change who may use a bridge, VLAN filtering, reserved-group forwarding (owner or root).")
        @OptionGroup var common: Common
        @Argument var name: String
        @Option(help: "Users admitted (replaces the list); repeat or separate with commas; '' for none.") var allowUser:
            [String] = []
        @Option(help: "Groups admitted (replaces the list); repeat or separate with commas; '' for none.") var allowGroup:
            [String] = []
        @Option(help: "802.1Q VLAN filtering: on or off.") var vlanFiltering: OnOff?
        @Option(help: "Reserved groups 01:80:C2:00:00:0X forwarded (bit X), as Linux's group_fwd_mask: 0x4008 = 802.1X + LLDP.")
        var groupFwdMask: String?
        func run() throws {
            try perform(
                BridgeSet(
                    bridge: name, allowUsers: names(allowUser), allowGroups: names(allowGroup),
                    vlanFiltering: vlanFiltering?.value, groupFwdMask: try groupMask(groupFwdMask)), common, human: printBridge)
        }
    }
    struct Del: ParsableCommand {
        @OptionGroup var common: Common
        @Argument var name: String
        @Flag(help: "Delete even if ports are attached (they are removed).") var force = false
        func run() throws {
            try perform(BridgeDel(bridge: name, force: force), common) { _ in print("bridge \(name) deleted") }
        }
    }
    struct List: ParsableCommand {
        @OptionGroup var common: Common
        func run() throws {
            try perform(BridgeList(), common) { $0.forEach(printBridge) }
        }
    }
    struct Aging: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set the learning table's aging time.")
        @OptionGroup var common: Common
        @Argument var name: String
        @Argument(help: "Seconds.") var seconds: Int
        func run() throws {
            try perform(BridgeAging(bridge: name, seconds: seconds), common) {
                print("bridge \($0.name): aging \($0.agingSeconds)s")
            }
        }
    }
}

struct PortCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port", abstract: "Kernel and app ports.",
        subcommands: [List.self, Add.self, Attach.self, Del.self, Set.self])
    struct List: ParsableCommand {
        @OptionGroup var common: Common
        @Argument var bridge: String?
        func run() throws {
            try perform(PortList(bridge: bridge), common, human: printPorts)
        }
    }
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Create a TAP, veth or tunnel port: add BRIDGE tap NAME | add BRIDGE veth NAME --peer PEER | add BRIDGE vxlan NAME --vni N --remote IP... | add BRIDGE vxlan NAME --vni N --group MCAST --dev DEV | add BRIDGE geneve NAME --vni N --remote IP.",
            discussion:
                "Tunnel MTU: by default the underlay's (--dev, or the interface routing to the first remote) less 50 bytes (70 over IPv6); a larger --mtu is refused. A Linux geneve device has one remote: for a mesh, add one geneve port per remote with the same --horizon group."
        )
        @OptionGroup var common: Common
        @Argument var bridge: String
        @Argument(help: "tap, veth, vxlan or geneve") var kind: String
        @Argument(help: "Interface name (at most 15 bytes).") var name: String
        @Option(help: "veth: the other end's name.") var peer: String?
        @Option(help: "veth: network namespace for the peer (name under /var/run/netns, or a path).") var netns: String?
        @Option(help: "veth: address (CIDR) for the peer inside its namespace.") var address: String?
        @Option(help: "MTU of the interface (tunnels: at most the underlay's less the encapsulation).") var mtu: Int?
        @Option(help: "MAC address of the interface (veth: of the peer).") var mac: String?
        @Option(help: "vxlan/geneve: network identifier, 1...16777215.") var vni: Int?
        @Option(help: "vxlan/geneve: a remote host's address; vxlan takes several (repeat), geneve one.") var remote: [String] =
            []
        @Option(help: "vxlan: multicast group instead of remotes (needs --dev).") var group: String?
        @Option(help: "vxlan: underlay device.") var dev: String?
        @Option(help: "vxlan: source address (default: the one routing to the first remote).") var local: String?
        @Option(help: "vxlan/geneve: UDP destination port (default 4789 vxlan, 6081 geneve).") var dstport: Int?
        @Option(help: "Split-horizon group 1...255: ports of one group never forward to each other (tunnels of a mesh).")
        var horizon: Int?
        func run() throws {
            var r = PortAdd(bridge: bridge, kind: kind, name: name)
            r.peer = peer; r.netns = netns; r.address = address; r.mtu = mtu; r.mac = mac
            r.vni = vni; r.remotes = remote.isEmpty ? nil : remote; r.group = group; r.dev = dev; r.local = local
            r.dstPort = dstport; r.horizon = horizon
            try perform(r, common) { p in
                print("port \(p.bridge):\(p.name) (\(p.kind)) added\(p.mtu.map { ", mtu \($0)" } ?? "")")
                if let w = p.warning { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
            }
        }
    }
    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Attach an existing interface.")
        @OptionGroup var common: Common
        @Argument var bridge: String
        @Argument var ifname: String
        func run() throws {
            try perform(PortAttach(bridge: bridge, ifname: ifname), common) {
                print("interface \($0.ifname ?? ifname) attached to \($0.bridge)")
            }
        }
    }
    struct Del: ParsableCommand {
        @OptionGroup var common: Common
        @Argument var bridge: String
        @Argument var port: String
        @Flag(help: "Keep an interface Swale created (detach only; vale-ctl -d).") var keep = false
        func run() throws {
            try perform(PortDel(bridge: bridge, port: port, keep: keep), common) { _ in print("port \(bridge):\(port) deleted") }
        }
    }
}

struct StatsCmd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Counters: stats [BRIDGE[:PORT]].")
    @OptionGroup var common: Common
    @Argument var target: String?
    func run() throws {
        try perform(Stats(target: target), common) { s in
            s.bridges.forEach(printBridge)
            for p in s.ports {
                let c = p.counters
                print("\(p.bridge):\(p.name) [\(p.kind)\(p.ifname.map { " " + $0 } ?? "")]")
                print("  rx \(c.rxPackets) pkts \(c.rxBytes) bytes; tx \(c.txPackets) pkts \(c.txBytes) bytes")
                print(
                    "  drops: ring-full \(c.dropRingFull), too-short \(c.dropTooShort), too-long \(c.dropTooLong), bad-slot \(c.dropBadSlot), hairpin \(c.dropNoRoute); ring resets \(c.ringResets)"
                )
                print(
                    "  refused: reserved-group \(c.dropReserved), bad-source \(c.dropBadSource), vlan \(c.dropVlan), static-move \(c.dropStaticMove), mac-limit \(c.dropMacLimit), locked \(c.dropLocked), isolated \(c.dropIsolated), horizon \(c.dropHorizon)"
                )
                if let a = c.adapter, !a.isEmpty {
                    print("  adapter: " + a.keys.sorted().map { "\($0) \(a[$0]!)" }.joined(separator: ", "))
                }
            }
        }
    }
}

struct Fdb: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The MAC learning table.", subcommands: [Show.self, Add.self, Del.self, Flush.self])
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The MAC table of a bridge; --stats: its counters instead (entries, capacity, learned, moved, expired).")
        @OptionGroup var common: Common
        @Argument var bridge: String
        @Flag(help: "The table's counters instead of its entries.") var stats = false
        func run() throws {
            if stats {
                try perform(Stats(target: bridge), common, result: { $0.bridges.first?.counters }) { c in
                    guard let c else { return }
                    print(
                        "\(bridge): \(c.fdbEntries) entries (table sized for \(c.fdbCapacity)); learned \(c.learned), moved \(c.moved), expired \(c.aged), evicted \(c.evicted)"
                    )
                }
                return
            }
            try perform(FdbShow(bridge: bridge), common) { entries in
                print(pad("MAC", 19) + pad("VLAN", 6) + pad("PORT", 16) + "AGE")
                for e in entries {
                    print(
                        pad(e.mac, 19) + pad(e.vlan == 0 ? "-" : "\(e.vlan)", 6) + pad(e.port, 16)
                            + (e.isStatic ? "static" : "\(e.age)s"))
                }
            }
        }
    }
    struct Flush: ParsableCommand {
        @OptionGroup var common: Common
        @Argument var bridge: String
        @Argument var port: String?
        func run() throws {
            try perform(FdbFlush(bridge: bridge, port: port), common) { print("flushed \($0.flushed) entries") }
        }
    }
}

struct ConfigCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "The declarative configuration.",
        subcommands: [Dump.self, Check.self])
    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the running configuration in the config file's format.")
        @OptionGroup var common: Common
        func run() throws {
            try perform(ConfigDump(), common) { print($0.text, terminator: "") }
        }
    }
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a config file without applying it (no service needed).")
        @Argument var file: String
        func run() throws {
            do {
                let c = try SwaleConfig.load(path: file)
                print("\(file): valid (\(c.bridges.count) bridge(s), \(c.bridges.reduce(0) { $0 + $1.ports.count }) port(s))")
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

if let code = ValeCtl.runIfShortOptions(Array(CommandLine.arguments.dropFirst())) { exit(code) }
Swalectl.main()
