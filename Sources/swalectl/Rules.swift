// swalectl's bridge-rule commands: VLANs, static MAC entries, port isolation/locking/MAC limits,
// shaped like iproute2's `bridge vlan`, `bridge fdb` and `bridge link set`.
import ArgumentParser
import Foundation
import SwaleConfig
import SwaleProtocol

/// `on` / `off` (also yes/no, true/false, 1/0), as `ip link` and `bridge link` take them.
struct OnOff: ExpressibleByArgument {
    let value: Bool
    init?(argument: String) {
        switch argument.lowercased() {
        case "on", "yes", "true", "1": value = true
        case "off", "no", "false", "0": value = false
        default: return nil
        }
    }
    static var defaultCompletionKind: CompletionKind { .list(["on", "off"]) }
}

func printRules(_ r: PortRulesInfo) {
    let vlans = r.vlans.map { "\($0.vid)\($0.pvid ? " PVID" : "")\($0.untagged ? " untagged" : "")" }
    var flags: [String] = []
    if r.isolated { flags.append("isolated") }
    if r.locked { flags.append("locked") }
    if r.maxMacs > 0 { flags.append("max-macs \(r.maxMacs) (learned \(r.learned))") }
    if let h = r.horizon { flags.append("horizon \(h)") }
    if !r.attached { flags.append("not attached") }
    print(
        pad("\(r.bridge):\(r.port)", 24) + pad(vlans.isEmpty ? "none" : vlans.joined(separator: ", "), 40)
            + flags.joined(separator: ", "))
}

struct VlanCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vlan", abstract: "Port VLANs (used while the bridge's VLAN filtering is on).",
        subcommands: [Add.self, Del.self, Show.self])
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a VLAN to a port (owner or root): vlan add BRIDGE:PORT VID [--pvid] [--untagged].")
        @OptionGroup var common: Common
        @Argument(help: "BRIDGE:PORT") var port: String
        @Argument(help: "VLAN id, 1...4094.") var vid: Int
        @Flag(help: "Untagged frames arriving on the port belong to this VLAN.") var pvid = false
        @Flag(help: "Frames of this VLAN leave the port without a tag.") var untagged = false
        func run() throws {
            try perform(VlanAdd(port: port, vid: vid, pvid: pvid, untagged: untagged), common, human: printRules)
        }
    }
    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a VLAN from a port (owner or root).")
        @OptionGroup var common: Common
        @Argument(help: "BRIDGE:PORT") var port: String
        @Argument var vid: Int
        func run() throws { try perform(VlanDel(port: port, vid: vid), common, human: printRules) }
    }
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "VLANs and rules of every port (of one bridge).")
        @OptionGroup var common: Common
        @Argument var bridge: String?
        func run() throws {
            try perform(VlanShow(bridge: bridge), common) { list in
                print(pad("PORT", 24) + pad("VLANS", 40) + "RULES")
                list.forEach(printRules)
            }
        }
    }
}

extension PortCmd {
    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "A port's rules (owner or root): isolation, locking (only static sources), MAC limit, split-horizon group.")
        @OptionGroup var common: Common
        @Argument(help: "BRIDGE:PORT") var port: String
        @Option(help: "on: reach only non-isolated ports.") var isolated: OnOff?
        @Option(help: "on: only sources with a static entry on this port may send.") var locked: OnOff?
        @Option(help: "Most MAC addresses learned on the port (0: no limit).") var maxMacs: Int?
        @Option(help: "Split-horizon group 1...255 (0: none): ports of one group never forward to each other.")
        var horizon: Int?
        func run() throws {
            var r = PortSet(port: port, isolated: isolated?.value, locked: locked?.value, maxMacs: maxMacs)
            r.horizon = horizon
            try perform(r, common, human: printRules)
        }
    }
}

extension Fdb {
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a static entry (owner or root): never aged, never moved by learning.")
        @OptionGroup var common: Common
        @Argument var bridge: String
        @Argument var mac: String
        @Argument(help: "The port's name on the bridge.") var port: String
        @Option(help: "VLAN of the entry (with VLAN filtering on).") var vlan: Int?
        func run() throws {
            try perform(FdbAdd(bridge: bridge, mac: mac, port: port, vlan: vlan), common) { r in
                print(
                    "static entry \(r.mac)\(r.vlan == 0 ? "" : " vlan \(r.vlan)") on \(bridge):\(r.port)\(r.attached ? "" : " (port not attached yet)")"
                )
                if let w = r.warning { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
            }
        }
    }
    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a static entry (owner or root).")
        @OptionGroup var common: Common
        @Argument var bridge: String
        @Argument var mac: String
        @Option var vlan: Int?
        func run() throws {
            try perform(FdbDel(bridge: bridge, mac: mac, vlan: vlan), common) { _ in print("static entry \(mac) deleted") }
        }
    }
}

/// `--group-fwd-mask 0x4008`: checked here too, so a bad mask is refused before it is sent.
func groupMask(_ text: String?) throws -> Int? {
    guard let text else { return nil }
    do { return Int(try SwaleConfig.groupFwdMask(text)) } catch { throw ValidationErrorish("\(error)") }
}
