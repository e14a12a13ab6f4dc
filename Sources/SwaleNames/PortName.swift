/*
 Swale names: the one grammar for bridges, ports and pipe ends, shared by the service (swaled), the
 CLI (swalectl) and the client library. Everything that accepts a name from a user, a config file or
 a control message goes through `PortName.parse` (or one of the `Names.validate…` functions), so a
 name means the same thing everywhere.

 Grammar (ABNF-ish; WORD = [0-9A-Za-z_], positions are 0-based Character offsets):

     name        = base [ pipe ] / bridge-port monitor
     monitor     = "/r" / "/t" / "/rt" / "/tr"   ; netmap's monitor ports: copies of rx, tx, both
     base        = bridge-port / interface
     bridge-port = bridge ":" port
     bridge      = "vale" *WORD               ; e.g. vale, vale0, vale_lab     (at most 15 bytes)
     port        = 1*WORD                      ; e.g. a, 0, tap_1              (at most 15 bytes)
     pipe        = master / slave
     master      = ( "<" / "{" ) pipe-id       ; "{" is netmap's spelling of "<"
     slave       = ( ">" / "}" ) pipe-id       ; "}" is netmap's spelling of ">"
     pipe-id     = 1*WORD                      ;                                (at most 15 bytes)
     interface   = 1*( WORD / "." / "-" )      ; a Linux interface name, e.g. eth0, eth0.100, br-lan
                                               ; (at most 15 bytes, not "." or "..")

 Rules that the grammar alone does not say:
 - A name whose first four characters are `vale` (case-sensitive, as in netmap) is always a bridge
   port: it must have exactly one ':' and a non-empty PORT. Any other name is an interface name, and
   an interface name never contains ':' (Linux forbids it too). So `vale0` alone, `vale0:`, `eth0:a`
   and `vale0:a:b` are errors, and a kernel interface whose name starts with `vale` cannot be named.
 - The 15-byte limit is Linux's IFNAMSIZ - 1 and applies to each of bridge, port, pipe id and
   interface name separately; the longest name (15 + 1 + 15 + 1 + 15 = 47 bytes) still fits netmap's
   64-byte nr_name.
 - At most one pipe suffix: `vale0:a<1>2` is an error. `{`/`}` are accepted on input; the canonical
   spelling (`description`) always uses `<`/`>`, so `vale0:a{1` and `vale0:a<1` are the same name.
 - Only ASCII is accepted. Whitespace, control characters and non-ASCII characters are errors
   anywhere. (Swift compares Strings by Unicode canonical equivalence, the kernel compares bytes;
   ASCII-only names make the two agree.)
 - Interface names allow only letters, digits, '_', '.' and '-'. That is narrower than Linux (which
   accepts any byte except '/', ':' and whitespace) but covers real names (enp0s3, eth0.100, br-lan,
   wlan0-1) and keeps names safe in shells, JSON and netmap's grammar characters.
 - Monitor suffixes (`/r`, `/t`, `/rt`) end a bridge-port name; `/z` (netmap's zero-copy monitor)
   is refused with a message that says so.
 - netmap's other register suffixes are NOT supported and get an explicit error: ring selection `-N`,
   `*` (hardware + host rings), `^` / `^N` (host rings), flags `/R`, `/T`, `/x`,
   and `@N` / `@option` (memory region / options). They are recognised after a port, a pipe id or
   an interface name. Exception: '-' is a legal character inside an interface name (Linux allows it
   and real names use it), so `eth0-1` is the interface called "eth0-1", while `vale0:a-1` and
   `eth0<p-1` are rejected as ring selection.
 - netmap's `netmap:` prefix is not used (a name that does not start with `vale` is already an
   interface); `netmap:eth0` is an error that says so.

 Differences from netmap's own parser (libnetmap nmreq_header_decode), on purpose: `eth0` is valid
 without a `netmap:` prefix; `-`, `.` are allowed in interface names; pipe ends also have the `<`/`>`
 spellings; every error reports a position.

 Parsing never traps: every input, however long or odd, yields a `PortName` or a `NameError`.
*/

/// Which end of a pipe a name refers to: `X<ID` (or `X{ID`) is the master, `X>ID` (or `X}ID`) the slave.
public enum PipeRole: String, Sendable, Codable {
    case master, slave

    /// The canonical separator character: "<" for master, ">" for slave.
    public var separator: Character { self == .master ? "<" : ">" }
}

/// A parsed, validated name: a port on a bridge or a kernel interface, optionally one end of a pipe
/// living in that port's memory region.
public struct PortName: Sendable, Hashable, CustomStringConvertible {
    public enum Base: Sendable, Hashable {
        /// `BRIDGE:PORT`, e.g. `vale0:a`.
        case bridgePort(bridge: String, port: String)
        /// A kernel interface name, e.g. `eth0`.
        case interface(String)
    }

    public var base: Base
    /// The pipe end, if the name has a pipe suffix (`<ID`, `>ID`, `{ID`, `}ID`).
    public var pipe: (role: PipeRole, id: String)?
    /// A monitor of a bridge port (netmap's `/r`, `/t`, `/rt`): a read-only port that gets a copy
    /// of what the port receives, transmits, or both.
    public var monitor: Monitor?

    public enum Monitor: String, Sendable, Hashable, Codable {
        case rx = "r"
        case tx = "t"
        case both = "rt"
        public init?(suffix: String) {
            switch suffix {
            case "r": self = .rx
            case "t": self = .tx
            case "rt", "tr": self = .both
            default: return nil
            }
        }
        public var copiesRx: Bool { self != .tx }
        public var copiesTx: Bool { self != .rx }
    }

    /// Builds a name from parts without validating them. Prefer `parse` or the throwing initializers,
    /// which guarantee that `description` parses back to the same name.
    public init(base: Base, pipe: (role: PipeRole, id: String)? = nil, monitor: Monitor? = nil) {
        self.base = base
        self.pipe = pipe
        self.monitor = monitor
    }

    /// `BRIDGE:PORT`, optionally with a pipe end; every component is validated.
    public init(bridge: String, port: String, pipe: (role: PipeRole, id: String)? = nil) throws(NameError) {
        try Names.validateBridge(bridge)
        try Names.validatePortComponent(port)
        if let pipe { try Names.validatePipeID(pipe.id) }
        self.init(base: .bridgePort(bridge: bridge, port: port), pipe: pipe)
    }

    /// An interface name, optionally with a pipe end; validated, and it must not start with `vale`
    /// (such a name would parse as a bridge port).
    public init(interface: String, pipe: (role: PipeRole, id: String)? = nil) throws(NameError) {
        try Names.validateInterfaceName(interface)
        if interface.hasPrefix(Names.bridgePrefix) {
            throw NameError(
                message: "a name starting with 'vale' is a bridge port (valeX:PORT), not an interface",
                position: 0, input: interface, subject: "interface name")
        }
        if let pipe { try Names.validatePipeID(pipe.id) }
        self.init(base: .interface(interface), pipe: pipe)
    }

    /// Parses a name according to the grammar at the top of this file.
    public static func parse(_ text: String) throws(NameError) -> PortName {
        try NameParser.parsePortName(text)
    }

    /// Canonical spelling: `BRIDGE:PORT` or `IFNAME`, then `<ID` or `>ID` for a pipe end.
    public var description: String {
        if let monitor { return parentName + "/" + monitor.rawValue }
        guard let pipe else { return parentName }
        return parentName + String(pipe.role.separator) + pipe.id
    }

    /// The name without its pipe suffix: `vale0:a` or `eth0`.
    public var parentName: String {
        switch base {
        case .bridgePort(let bridge, let port): return bridge + ":" + port
        case .interface(let name): return name
        }
    }

    /// The name without its pipe suffix, as a `PortName`.
    public var parent: PortName { PortName(base: base) }

    /// The bridge for a `BRIDGE:PORT` name, nil for an interface.
    public var bridge: String? {
        if case .bridgePort(let bridge, _) = base { return bridge }
        return nil
    }

    /// The port for a `BRIDGE:PORT` name, nil for an interface.
    public var port: String? {
        if case .bridgePort(_, let port) = base { return port }
        return nil
    }

    /// The interface name for an interface base, nil for a bridge port.
    public var interfaceName: String? {
        if case .interface(let name) = base { return name }
        return nil
    }

    /// True when the name refers to a pipe end.
    public var isPipe: Bool { pipe != nil }

    // Tuples are not Hashable, so equality and hashing are written out. The spelling of the pipe
    // separator is not stored, so `{`/`<` and `}`/`>` spellings compare equal.
    public static func == (lhs: PortName, rhs: PortName) -> Bool {
        lhs.base == rhs.base && lhs.pipe?.role == rhs.pipe?.role && lhs.pipe?.id == rhs.pipe?.id && lhs.monitor == rhs.monitor
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(base)
        hasher.combine(monitor)
        if let pipe {
            hasher.combine(true)
            hasher.combine(pipe.role)
            hasher.combine(pipe.id)
        } else {
            hasher.combine(false)
        }
    }
}
