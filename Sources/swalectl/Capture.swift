// `swalectl capture`: frames of a port (or of every port of a bridge) in pcapng, from monitor
// ports (`vale0:p/r`, `/t`): what tcpdump -r, tshark and Wireshark read. One interface per port
// and direction; frames stamped when read (nanoseconds); the monitors' drops in the statistics.
// Opening the monitors is opening ports: the same permissions (the port's owner, root for kernel
// ports) and budgets.
import ArgumentParser
import Foundation
import SwaleClient
import SwaleNames
import SwaleProtocol

struct CaptureCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture a port's frames (or a bridge's) in pcapng: capture vale0:p1 -w FILE (or -w - | tcpdump -r -).")
    @Option(help: "Control socket (default: $SWALE_SOCKET or /run/swale/swaled.sock).") var socket: String?
    @Argument(help: "BRIDGE:PORT, or BRIDGE for what enters the bridge from every port.") var target: String
    @Option(help: "rx (what the switch sends to the port), tx (what the port sends), or both.") var dir = "both"
    @Option(name: .customShort("c"), help: "Stop after this many frames.") var count: Int?
    @Option(name: .customShort("s"), help: "Bytes kept of each frame.") var snaplen = 65535
    @Option(help: "Stop after this many seconds.") var seconds: Double?
    @Option(name: .customShort("w"), help: "Output file, or - for standard output.") var write: String

    func validate() throws {
        guard ["rx", "tx", "both"].contains(dir) else { throw ValidationError("--dir must be rx, tx or both") }
        guard (1...262_144).contains(snaplen) else { throw ValidationError("-s must be 1...262144") }
        if let count, count < 1 { throw ValidationError("-c must be at least 1") }
        if let seconds, !(seconds > 0) { throw ValidationError("--seconds must be positive") }
    }

    /// The monitors to open: (name to open, interface name, direction).
    func monitors() throws -> [(String, String, PcapngWriter.Direction)] {
        if target.contains(":") {
            let n: PortName
            do { n = try PortName.parse(target) } catch { throw ValidationErrorish("\(error)") }
            guard n.pipe == nil, n.monitor == nil, n.bridge != nil else {
                throw ValidationErrorish("capture takes BRIDGE:PORT or BRIDGE")
            }
            var list: [(String, String, PcapngWriter.Direction)] = []
            if dir != "tx" { list.append((target + "/r", target + " rx", .inbound)) }
            if dir != "rx" { list.append((target + "/t", target + " tx", .outbound)) }
            return list
        }
        // A whole bridge: every frame enters it from some port, once.
        let ports: [PortInfo]
        do { ports = try ControlClient.call(PortList(bridge: target), socket: socket) } catch let e as ControlError {
            throw ValidationErrorish(e.message)
        }
        guard !ports.isEmpty else { throw ValidationErrorish("bridge \(target) has no ports to capture") }
        return ports.map { ("\(target):\($0.name)/t", "\(target):\($0.name)", PcapngWriter.Direction.inbound) }
    }

    func run() throws {
        let wanted = try monitors()
        var opened: [(SwalePort, String, PcapngWriter.Direction)] = []
        defer { opened.forEach { $0.0.close() } }
        for (name, label, direction) in wanted {
            do { opened.append((try SwalePort.open(name, socket: socket), label, direction)) } catch {
                throw ValidationErrorish("\(name): \(error)")
            }
        }
        let out: FileHandle
        if write == "-" {
            out = FileHandle.standardOutput
        } else {
            guard FileManager.default.createFile(atPath: write, contents: nil) else {
                throw ValidationErrorish("cannot create \(write): \(String(cString: strerror(errno)))")
            }
            guard let h = FileHandle(forWritingAtPath: write) else { throw ValidationErrorish("cannot open \(write)") }
            out = h
        }
        var w = PcapngWriter(snaplen: snaplen)
        for (_, label, _) in opened { w.addInterface(name: label) }
        out.write(w.take())
        signal(SIGINT) { _ in captureStop = 1 }
        signal(SIGTERM) { _ in captureStop = 1 }
        signal(SIGPIPE, SIG_IGN)
        let deadline = seconds.map { Date().addingTimeInterval($0) }
        var frames = 0
        var seen = [UInt64](repeating: 0, count: opened.count)
        loop: while captureStop == 0 {
            if let deadline, Date() >= deadline { break }
            var any = false
            for (k, (port, _, direction)) in opened.enumerated() where port.rxAvailable() > 0 {
                any = true
                let left = count.map { $0 - frames } ?? Int.max
                let n = port.receive(max: left) { frame in
                    w.addFrame(interface: k, nanoseconds: nowNanoseconds(), frame: frame, direction: direction)
                }
                frames += n
                seen[k] += UInt64(n)
                if let count, frames >= count { break loop }
            }
            if any {
                out.write(w.take())
            } else {
                _ = opened.first?.0.wait(for: .rx, timeoutMs: opened.count == 1 ? 100 : 5)
            }
        }
        // Statistics: frames captured and copies the monitors lost (their rings were full).
        for (k, (name, _, _)) in wanted.enumerated() {
            let dropped = (try? ControlClient.call(Stats(target: name), socket: socket))?.ports.first?.counters.dropRingFull ?? 0
            w.addStatistics(interface: k, nanoseconds: nowNanoseconds(), received: seen[k], dropped: dropped)
        }
        out.write(w.take())
        if write != "-" { try? out.close() }
        FileHandle.standardError.write(Data("\(frames) frames captured\n".utf8))
    }
}

nonisolated(unsafe) var captureStop: Int32 = 0

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct MirrorCmd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirror", abstract: "Copies of a port's frames on a TAP interface that tcpdump and other tools open (root).",
        subcommands: [Add.self, Del.self, List.self])
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "mirror add BRIDGE:PORT --to IFNAME [--dir rx|tx|both]")
        @OptionGroup var common: Common
        @Argument(help: "BRIDGE:PORT") var port: String
        @Option(help: "The TAP to create.") var to: String
        @Option(help: "rx (what the switch sends to the port), tx (what it sends), or both.") var dir = "both"
        func run() throws {
            try perform(MirrorAdd(port: port, to: to, dir: dir), common) { m in print("mirror of \(m.port) (\(m.dir)) on \(m.to)")
            }
        }
    }
    struct Del: ParsableCommand {
        @OptionGroup var common: Common
        @Argument(help: "The mirror's TAP.") var to: String
        func run() throws { try perform(MirrorDel(to: to), common) { _ in print("mirror on \(to) removed") } }
    }
    struct List: ParsableCommand {
        @OptionGroup var common: Common
        func run() throws {
            try perform(MirrorList(), common) { list in
                print(pad("PORT", 24) + pad("TAP", 16) + pad("DIR", 6) + pad("FRAMES", 12) + "DROPPED")
                for m in list { print(pad(m.port, 24) + pad(m.to, 16) + pad(m.dir, 6) + pad("\(m.frames)", 12) + "\(m.dropped)") }
            }
        }
    }
}
