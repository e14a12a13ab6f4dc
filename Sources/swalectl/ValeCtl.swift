/*
 * ValeCtl — netmap's vale-ctl short options, for people whose fingers know them:
 *
 *   swalectl                  list every port (as vale-ctl with no arguments)
 *   swalectl -l [BRIDGE:PORT] list ports, or one port        ("vale0:tap0 bridge:0 port:1")
 *   swalectl -n NAME          create a persistent TAP port interface, attached to nothing yet
 *   swalectl -r NAME          remove an interface made with -n (detach it first)
 *   swalectl -a BRIDGE:IF     attach IF (made with -n, or any existing interface); the bridge is
 *                             created if needed, as VALE does
 *   swalectl -d BRIDGE:IF     detach IF; an interface made with -n stays, for -a or -r
 *
 * The socket comes from $SWALE_SOCKET (or the default). Anything else falls through to the
 * subcommands (`swalectl --help`).
 */
import Foundation
import SwaleNames
import SwaleProtocol

enum ValeCtl {
    static let options: Set<String> = ["-n", "-r", "-a", "-d", "-l", "-h"]

    /// nil when the arguments are not vale-ctl style; otherwise the exit code.
    static func runIfShortOptions(_ args: [String]) -> Int32? {
        guard args.isEmpty || options.contains(args[0]) else { return nil }
        do {
            try run(args)
            return 0
        } catch {
            FileHandle.standardError.write(Data("swalectl: \(error)\n".utf8))
            return 1
        }
    }

    static func call<O: ControlOperation>(_ op: O) throws -> O.Result {
        do { return try ControlClient.call(op) } catch let e as ControlError { throw ValidationErrorish(e.message) }
    }

    /// BRIDGE:IF → (bridge, interface), through the one name parser.
    static func bridgeAndInterface(_ text: String, _ option: String) throws -> (String, String) {
        let n: PortName
        do { n = try PortName.parse(text) } catch { throw ValidationErrorish("\(option) \(text): \(error)") }
        guard n.pipe == nil, case .bridgePort(let b, let p) = n.base else {
            throw ValidationErrorish("\(option) takes BRIDGE:IF (for example vale0:tap0), not '\(text)'")
        }
        return (b, p)
    }

    static func run(_ args: [String]) throws {
        let opt = args.first ?? "-l"
        let value = args.count > 1 ? args[1] : nil
        guard args.count <= 2 else { throw ValidationErrorish("\(opt) takes one argument; found \(args.count - 1)") }
        func need() throws -> String {
            guard let value else { throw ValidationErrorish("\(opt) needs an argument") }
            return value
        }
        switch opt {
        case "-n":
            let name = try need()
            _ = try call(IfaceCreate(name: name))
            print("created \(name)")
        case "-r":
            let name = try need()
            _ = try call(IfaceRemove(name: name))
            print("removed \(name)")
        case "-a":
            let (b, i) = try bridgeAndInterface(try need(), opt)
            let bridges = try call(BridgeList())
            if !bridges.contains(where: { $0.name == b }) { _ = try call(BridgeAdd(bridge: b)) }
            let p = try call(PortAttach(bridge: b, ifname: i))
            print("attached \(b):\(i) (\(p.kind))")
        case "-d":
            let (b, i) = try bridgeAndInterface(try need(), opt)
            _ = try call(PortDel(bridge: b, port: i, keep: true))
            print("detached \(b):\(i)")
        case "-l":
            var ports = try call(PortList())
            let bridges = try call(BridgeList()).map(\.name)
            if let value {
                let (b, p) = try bridgeAndInterface(value, opt)
                ports = ports.filter { $0.bridge == b && $0.name == p }
                guard !ports.isEmpty else { throw ValidationErrorish("no port \(value)") }
            }
            for p in ports {
                print(
                    "\(p.bridge):\(p.name) bridge:\(bridges.firstIndex(of: p.bridge) ?? -1) port:\(p.index) \(p.kind)\(p.ifname.map { " " + $0 } ?? "")"
                )
            }
            if value == nil {
                for name in try call(IfaceList()) { print("\(name) (tap, not attached)") }
            }
        default:  // -h
            throw ValidationErrorish(
                "-h (attach with the host stack) has no equivalent: Swale attaches the interface itself (-a BRIDGE:IF)")
        }
    }
}
