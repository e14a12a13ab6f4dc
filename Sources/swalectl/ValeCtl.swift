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
import SwaleControl
import SwaleNames

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

    static func call<T: Codable>(_ r: Request, _ t: T.Type) throws -> T {
        do { return try ControlClient.call(r, socket: nil, as: T.self) } catch let e as ControlError { throw ValidationErrorish(e.message) }
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
            var r = Request(op: "iface.create"); r.ifname = try need()
            _ = try call(r, PortInfo.self)
            print("created \(r.ifname!)")
        case "-r":
            var r = Request(op: "iface.remove"); r.ifname = try need()
            _ = try call(r, Empty.self)
            print("removed \(r.ifname!)")
        case "-a":
            let (b, i) = try bridgeAndInterface(try need(), opt)
            let bridges = try call(Request(op: "bridge.list"), [BridgeInfo].self)
            if !bridges.contains(where: { $0.name == b }) {
                var r = Request(op: "bridge.add"); r.bridge = b
                _ = try call(r, BridgeInfo.self)
            }
            var r = Request(op: "port.attach"); r.bridge = b; r.ifname = i; r.port = i
            let p = try call(r, PortInfo.self)
            print("attached \(b):\(i) (\(p.kind))")
        case "-d":
            let (b, i) = try bridgeAndInterface(try need(), opt)
            var r = Request(op: "port.del"); r.bridge = b; r.port = i; r.keep = true
            _ = try call(r, Empty.self)
            print("detached \(b):\(i)")
        case "-l":
            var ports = try call(Request(op: "port.list"), [PortInfo].self)
            let bridges = try call(Request(op: "bridge.list"), [BridgeInfo].self).map(\.name)
            if let value {
                let (b, p) = try bridgeAndInterface(value, opt)
                ports = ports.filter { $0.bridge == b && $0.name == p }
                guard !ports.isEmpty else { throw ValidationErrorish("no port \(value)") }
            }
            for p in ports {
                print("\(p.bridge):\(p.name) bridge:\(bridges.firstIndex(of: p.bridge) ?? -1) port:\(p.index) \(p.kind)\(p.ifname.map { " " + $0 } ?? "")")
            }
            if value == nil {
                for name in try call(Request(op: "iface.list"), [String].self) { print("\(name) (tap, not attached)") }
            }
        default:   // -h
            throw ValidationErrorish("-h (attach with the host stack) has no equivalent: Swale attaches the interface itself (-a BRIDGE:IF)")
        }
    }
}
