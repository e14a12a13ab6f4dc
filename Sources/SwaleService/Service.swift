/*
 * Service — swaled's state and the handling of every control request.
 *
 * A request is decoded in three steps: the envelope (its operation), the permission table
 * (ControlProtocol.table: member, owner or root), then the operation's own arguments. Object rules
 * follow inside each operation (Access.swift): a bridge admits its owner, root and its access
 * lists; a port and its pipes belong to whoever opened the port. Budgets (Budgets.swift) bound
 * what each user and all users together may hold.
 *
 * One lock serializes the control plane; the forwarding threads never take it. Requests that touch
 * a bridge's forwarding state go through Bridge.perform, which runs them on that bridge's thread
 * between two batches. A reply is encoded after the lock is released, so a large table (fdb show
 * on a million entries) costs its own client time, not everyone's.
 */
import CSwaleSys
import Foundation
import Glibc
import Logging
import SwaleConfig
import SwaleDatapath
import SwaleKernel
import SwaleNames
import SwaleProtocol
import SwaleRings
import SwaleSwitch

public struct ServiceOptions: Sendable {
    public var socketPath: String
    public var slots = 1024
    public var bufSize = Region.defaultBufSize
    public var bridge = BridgeConfig()
    /// Depth of each AF_PACKET rx ring of 2 KiB frames (larger frames wait whole in the socket's
    /// queue, PACKET_COPY_THRESH): 16384 = 32 MiB of kernel memory per port.
    public var packetRingFrames = 16384
    /// Group of the control socket file (name or number); members may use Swale.
    public var socketGroup: String?
    /// Prometheus metrics over HTTP at this IPv4:PORT (MetricsServer); nil: off.
    public var metrics: String?
    public var budgets = Budgets()
    /// Off: no netlink, no TAP, no interface is ever touched (the control-protocol fuzzer runs so).
    public var kernelPortsEnabled = true
    /// The kernel fast path (eBPF) for frames between kernel ports (`--no-fastpath`, "fastpath": false).
    public var fastpath = true
    public init(socketPath: String) { self.socketPath = socketPath }
}

public final class Service: @unchecked Sendable {
    let options: ServiceOptions
    let log: Logger
    let lock = NSLock()
    var bridges: [String: BridgeEntry] = [:]
    var pipes: [String: PipeEntry] = [:]
    var sessions: [Int: Session] = [:]
    var nextSession = 1
    let started = Date()
    var netlinkSocket: Netlink?
    var lastLinkCheck = Date()
    var linksLost = 0
    /// TAPs made with `-n` (vale-ctl) and not attached to any bridge: name → how they were made.
    var looseInterfaces: [String: SwaleConfig.Port] = [:]
    /// Which interfaces are this swaled's (see OwnerTag): derived from the socket path.
    let ownerInstance: String
    /// Request log lines per user and second (root is not limited).
    var logBudget = LogBudget()
    /// Why the fast path could not be loaded, once known (logged once; every bridge then runs without).
    var fastpathFailure: String?

    public init(options: ServiceOptions, logger: Logger) {
        self.options = options
        self.log = logger
        self.ownerInstance = OwnerTag.instance(socketPath: options.socketPath)
    }

    // MARK: sessions

    /// A new connection; nil (with the reason) when a session budget is used up.
    func openSession(_ who: Credentials) -> Result<Int, ControlError> {
        lock.lock(); defer { lock.unlock() }
        if let refusal = sessionRefusal(who) { return .failure(refusal) }
        let id = nextSession
        nextSession += 1
        sessions[id] = Session(id: id, who: who)
        return .success(id)
    }

    /// Releases everything a connection held (it closed, exited or died).
    func closeSession(_ id: Int) {
        lock.lock(); defer { lock.unlock() }
        guard let s = sessions.removeValue(forKey: id) else { return }
        for h in s.holdings.reversed() {
            switch h {
            case .port(let p):
                reclaimExtraBuffers(of: p)
                p.openSession = nil
                p.openPid = nil
                if !p.held { p.shareable = false }
                log.info("released \(p.fullName) (pid \(s.pid))")
                releaseIfUnused(p)
            case .pipeEnd(let pipe, let role):
                reclaimExtraBuffers(of: pipe, role)
                if role == .master {
                    pipe.masterSession = nil; pipe.masterPid = nil
                } else {
                    pipe.slaveSession = nil; pipe.slavePid = nil
                }
                log.info("released \(pipe.key) \(role.rawValue) end (pid \(s.pid))")
                if !pipe.ended && pipe.unheld { destroyPipe(pipe) }
            case .sharedPort(let p):
                releaseSharer(p, session: s)
            case .adoptedPipeEnd(let pipe, let role):
                releaseAdopter(pipe, role, session: s)
            }
        }
    }

    // MARK: dispatch

    /// A reply: its bytes, and descriptors to send with it. The descriptors are the caller's
    /// (duplicates made under the lock, so a port released meanwhile cannot change what they are):
    /// close them once sent.
    struct Outgoing {
        var data: Data
        var fds: [Int32] = []
        func closeDescriptors() { fds.forEach { _ = Glibc.close($0) } }
    }

    /// What a handler produced: a value encoded after the lock is released, and descriptors.
    struct Produced {
        var value: any Encodable
        var fds: [Int32] = []
        init(_ value: any Encodable, fds: [Int32] = []) { self.value = value; self.fds = fds }
    }

    /// Handles one request. `descriptors` came with it; they are closed here on every path.
    func handle(_ data: Data, session sid: Int, descriptors: [Int32] = []) -> Outgoing {
        defer { descriptors.forEach { _ = Glibc.close($0) } }
        let head: EnvelopeHead
        do { head = try JSONDecoder().decode(EnvelopeHead.self, from: data) } catch {
            return failure(
                ControlError(
                    .malformed,
                    "malformed request: expected {\"v\": \(ControlProtocol.version), \"op\": ..., \"args\": {...}}: \(Service.describe(error))"
                ))
        }
        guard let spec = ControlProtocol.spec(head.op) else {
            return failure(ControlError(.unknownOperation, "unknown operation '\(LogText.clean(head.op, max: 40))'"))
        }
        if descriptors.count > spec.descriptors {
            return failure(
                ControlError(
                    .malformed, "\(spec.op) takes \(spec.descriptors) descriptor(s); \(descriptors.count) were sent (closed)"))
        }
        var produced: Produced
        lock.lock()
        do {
            guard let s = sessions[sid] else { throw ControlError(.system, "no session") }
            if !s.greeted && spec.op != Hello.op {
                throw ControlError(
                    .version,
                    "say hello first: {\"v\": \(ControlProtocol.version), \"op\": \"hello\", \"args\": {\"version\": \(ControlProtocol.version)}}"
                )
            }
            if spec.access == .root && !s.root {
                log.notice("refused \(spec.op) from pid \(s.pid) uid \(s.uid): needs root")
                throw ControlError(.permissionDenied, "\(spec.op) needs root")
            }
            produced = try dispatch(spec, data, s)
        } catch let e as ControlError {
            lock.unlock()
            return failure(e)
        } catch let e as NameError {
            lock.unlock()
            return failure(ControlError(.invalidArgument, e.description))
        } catch {
            lock.unlock()
            return failure(ControlError(.system, "\(error)"))
        }
        lock.unlock()
        do {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            return Outgoing(data: try enc.encode(OkReply(result: produced.value)), fds: produced.fds)
        } catch {
            produced.fds.forEach { _ = Glibc.close($0) }
            return failure(ControlError(.system, "encoding the reply: \(error)"))
        }
    }

    struct OkReply: Encodable {
        let ok = true
        let result: any Encodable
        enum CodingKeys: CodingKey { case ok, result }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(ok, forKey: .ok)
            try result.encode(to: c.superEncoder(forKey: .result))
        }
    }

    func failure(_ e: ControlError) -> Outgoing {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Outgoing(
            data: (try? enc.encode(Reply<Empty>(error: e))) ?? Data(#"{"ok":false,"code":"system","error":"?"}"#.utf8))
    }

    /// Decoding errors say where and what, without Swift's type names.
    static func describe(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ c: [CodingKey]) -> String { c.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        switch e {
        case .keyNotFound(let k, let ctx): return "missing '\(path(ctx.codingPath + [k]))'"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx): return "'\(path(ctx.codingPath))' has the wrong type"
        case .dataCorrupted(let ctx): return ctx.codingPath.isEmpty ? "not JSON" : "'\(path(ctx.codingPath))' is not valid"
        @unknown default: return "\(e)"
        }
    }

    /// Decodes the operation's arguments and logs the request (escaped, capped).
    func arguments<O: ControlOperation>(_: O.Type, _ data: Data, _ s: Session, target: (O) -> String?) throws -> O {
        let args: O
        do { args = try JSONDecoder().decode(EnvelopeArgs<O>.self, from: data).args } catch {
            throw ControlError(.malformed, "\(O.op): arguments: \(Service.describe(error))")
        }
        if logBudget.allow(uid: s.uid, now: Date().timeIntervalSince1970, log: log) {
            let t = target(args).map { " " + LogText.clean($0) } ?? ""
            log.info("request \(O.op)\(t) from pid \(s.pid) uid \(s.uid) gid \(s.gid)")
        }
        return args
    }

    func dispatch(_ spec: OperationSpec, _ data: Data, _ s: Session) throws -> Produced {
        switch spec.op {
        case Hello.op:
            let a = try arguments(Hello.self, data, s) { $0.client }
            guard a.version == ControlProtocol.version else {
                throw ControlError(
                    .version, "protocol version \(a.version) is not spoken here (swaled speaks \(ControlProtocol.version))")
            }
            s.greeted = true
            return Produced(
                HelloInfo(
                    version: ControlProtocol.version, server: "swaled \(getpid())", uid: Int(s.uid), gid: Int(s.gid), root: s.root
                ))
        case Status.op:
            _ = try arguments(Status.self, data, s) { _ in nil }
            return Produced(status(for: s))
        case Open.op:
            let a = try arguments(Open.self, data, s) { $0.name }
            if let n = a.extraBuffers, !(0...Service.maxExtraBuffers).contains(n) {
                throw ControlError(.invalidArgument, "extra buffers \(n) out of range (0...\(Service.maxExtraBuffers))")
            }
            var (info, fds) = try open(a.name, session: s, slots: a.slots, share: a.share ?? false)
            if let n = a.extraBuffers, n != 0 { info.extraBuffers = try grantExtraBuffers(n, for: info, session: s) }
            return Produced(info, fds: try fds.map(Service.duplicate))
        case PortHeader.op:
            let a = try arguments(PortHeader.self, data, s) { $0.name }
            return Produced(portInfo(try setHeader(a.name, length: a.length, session: s)))
        case Adopt.op:
            let a = try arguments(Adopt.self, data, s) { "fd \($0.fd)" }
            let (info, fds) = try adopt(fd: a.fd, session: s)
            return Produced(info, fds: try fds.map(Service.duplicate))
        case BridgeAdd.op:
            let a = try arguments(BridgeAdd.self, data, s) { $0.bridge }
            return Produced(bridgeInfo(try addBridgeRequest(a, s)))
        case BridgeDel.op:
            let a = try arguments(BridgeDel.self, data, s) { $0.bridge }
            try deleteBridge(try ownedBridge(a.bridge, s, BridgeDel.op), force: a.force ?? false)
            return Produced(Empty())
        case BridgeList.op:
            _ = try arguments(BridgeList.self, data, s) { _ in nil }
            return Produced(visibleBridges(s).map(bridgeInfo))
        case BridgeAging.op:
            let a = try arguments(BridgeAging.self, data, s) { $0.bridge }
            let b = try ownedBridge(a.bridge, s, BridgeAging.op)
            guard SwaleConfig.agingRange.contains(a.seconds) else {
                throw ControlError(.invalidArgument, "aging time must be between 1 and \(Int32.max) seconds (got \(a.seconds))")
            }
            b.bridge.setAging(UInt32(a.seconds))
            return Produced(bridgeInfo(b))
        case BridgeSet.op:
            let a = try arguments(BridgeSet.self, data, s) { $0.bridge }
            let b = try ownedBridge(a.bridge, s, BridgeSet.op)
            try setBridgeRules(b, vlanFiltering: a.vlanFiltering, groupFwdMask: a.groupFwdMask)
            try setAccess(b, users: a.allowUsers, groups: a.allowGroups)
            return Produced(bridgeInfo(b))
        case PortList.op:
            let a = try arguments(PortList.self, data, s) { $0.bridge }
            return Produced(try portInfos(bridge: a.bridge, s))
        case Stats.op:
            let a = try arguments(Stats.self, data, s) { $0.target }
            return Produced(try stats(a.target, s))
        case FdbShow.op:
            let a = try arguments(FdbShow.self, data, s) { $0.bridge }
            return Produced(try fdbShow(try usableBridge(a.bridge, s, FdbShow.op)))
        case Events.op:
            let a = try arguments(Events.self, data, s) { $0.bridge }
            return Produced(events(try usableBridge(a.bridge, s, Events.op), after: a.after))
        case MetricsScrape.op:
            _ = try arguments(MetricsScrape.self, data, s) { _ in nil }
            return Produced(MetricsText(text: metricsText(for: s)))
        case FdbFlush.op:
            let a = try arguments(FdbFlush.self, data, s) { $0.bridge }
            return Produced(FlushInfo(flushed: try fdbFlush(try ownedBridge(a.bridge, s, FdbFlush.op), port: a.port)))
        case FdbAdd.op:
            let a = try arguments(FdbAdd.self, data, s) { "\($0.bridge) \($0.mac) \($0.port)" }
            return Produced(try fdbAdd(a, s))
        case FdbDel.op:
            let a = try arguments(FdbDel.self, data, s) { "\($0.bridge) \($0.mac)" }
            try fdbDel(a, s)
            return Produced(Empty())
        case VlanAdd.op:
            let a = try arguments(VlanAdd.self, data, s) { "\($0.port) \($0.vid)" }
            return Produced(try vlanAdd(a, s))
        case VlanDel.op:
            let a = try arguments(VlanDel.self, data, s) { "\($0.port) \($0.vid)" }
            return Produced(try vlanDel(a, s))
        case VlanShow.op:
            let a = try arguments(VlanShow.self, data, s) { $0.bridge }
            return Produced(try vlanShow(a.bridge, s))
        case PortSet.op:
            let a = try arguments(PortSet.self, data, s) { $0.port }
            return Produced(try portSet(a, s))
        case PortAdd.op:
            let a = try arguments(PortAdd.self, data, s) { "\($0.bridge) \($0.kind) \($0.name)" }
            return Produced(try addKernelPort(a))
        case PortAttach.op:
            let a = try arguments(PortAttach.self, data, s) { "\($0.bridge) \($0.ifname)" }
            return Produced(portInfo(try attachPort(bridge: try kernelBridge(a.bridge), ifname: a.ifname, origin: .cli)))
        case PortDel.op:
            let a = try arguments(PortDel.self, data, s) { "\($0.bridge):\($0.port)" }
            try deletePort(bridge: a.bridge, port: a.port, keepInterface: a.keep ?? false)
            return Produced(Empty())
        case MirrorAdd.op:
            let a = try arguments(MirrorAdd.self, data, s) { "\($0.port) \($0.to)" }
            return Produced(try addMirror(a))
        case MirrorDel.op:
            let a = try arguments(MirrorDel.self, data, s) { $0.to }
            try deleteMirror(a.to)
            return Produced(Empty())
        case MirrorList.op:
            _ = try arguments(MirrorList.self, data, s) { _ in nil }
            return Produced(mirrorList())
        case IfaceCreate.op:
            let a = try arguments(IfaceCreate.self, data, s) { $0.name }
            return Produced(try createLooseTap(a))
        case IfaceRemove.op:
            let a = try arguments(IfaceRemove.self, data, s) { $0.name }
            try removeLooseInterface(a.name)
            return Produced(Empty())
        case IfaceList.op:
            _ = try arguments(IfaceList.self, data, s) { _ in nil }
            return Produced(looseInterfaces.keys.sorted())
        case ConfigDump.op:
            _ = try arguments(ConfigDump.self, data, s) { _ in nil }
            return Produced(ConfigText(text: runningConfig().rendered()))
        default:
            throw ControlError(.unknownOperation, "operation '\(spec.op)' has no handler")
        }
    }

    static func duplicate(_ fd: Int32) throws -> Int32 {
        let d = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard d >= 0 else { throw ControlError(.system, "dup: \(String(cString: strerror(errno)))") }
        return d
    }

    // MARK: bridges

    func bridgeEntry(_ name: String) throws -> BridgeEntry {
        try Names.validateBridge(name)
        guard let b = bridges[name] else { throw ControlError(.notFound, "no bridge named '\(name)'") }
        return b
    }

    /// A bridge for a kernel port: root's own. On a member's bridge the member could see and send
    /// through the interface, and delete the bridge out from under it.
    func kernelBridge(_ name: String) throws -> BridgeEntry {
        let b = try bridgeEntry(name)
        guard b.owner == 0 else {
            throw ControlError(
                .permissionDenied,
                "bridge \(name) belongs to \(Identity.userName(b.owner)); kernel ports go on root's bridges only")
        }
        return b
    }

    func addBridgeRequest(_ a: BridgeAdd, _ s: Session) throws -> BridgeEntry {
        if let n = a.batch, !SwaleConfig.batchRange.contains(n) {
            throw ControlError(
                .invalidArgument,
                "batch \(n) out of range (\(SwaleConfig.batchRange.lowerBound)...\(SwaleConfig.batchRange.upperBound))")
        }
        let users = try (a.allowUsers ?? []).map(Identity.uid)
        let groups = try (a.allowGroups ?? []).map(Identity.gid)
        let b = try addBridge(a.bridge, batch: a.batch, owner: s, persistent: true)
        b.allowUsers = Set(users)
        b.allowGroups = Set(groups)
        return b
    }

    /// A new bridge (or, with `mustBeNew` false, the existing one). `owner` nil: the service's own
    /// (config, restart), owned by root.
    @discardableResult
    func addBridge(_ name: String, mustBeNew: Bool = true, batch: Int? = nil, owner: Session? = nil, persistent: Bool = true)
        throws -> BridgeEntry
    {
        try Names.validateBridge(name)
        if let b = bridges[name] {
            if mustBeNew { throw ControlError(.exists, "bridge '\(name)' already exists") }
            return b
        }
        if let owner {
            try checkNewBridge(owner)
        } else if bridges.count >= options.budgets.maxBridges {
            throw ControlError(.limit, "too many bridges (max \(options.budgets.maxBridges))")
        }
        var config = options.bridge
        if let batch { config.batch = batch }
        // A member's bridge gets a smaller MAC table: its memory is the service's, not in any region.
        if let owner, !owner.root { config.fdbCapacity = min(config.fdbCapacity, options.budgets.clientFdbCapacity) }
        let b = BridgeEntry(
            bridge: try Bridge(name: name, config: config), owner: owner.map { $0.root ? 0 : $0.uid } ?? 0, persistent: persistent
        )
        b.bridge.start()
        if b.bridge.placementError != 0, let cpus = config.forwardingCPUs {
            log.warning(
                "bridge \(name): forwarding thread not placed on CPUs \(CPUList.render(cpus)) (\(String(cString: strerror(b.bridge.placementError)))); it runs wherever the scheduler puts it"
            )
        }
        bridges[name] = b
        log.info("bridge \(name) created (owner uid \(b.owner)\(persistent ? "" : ", reaped with its last port"))")
        return b
    }

    func deleteBridge(_ b: BridgeEntry, force: Bool) throws {
        let name = b.bridge.name
        if !b.ports.isEmpty && !force {
            throw ControlError(
                .exists,
                "bridge '\(name)' has \(b.ports.count) port(s) attached (\(b.ports.keys.sorted().joined(separator: ", "))); use --force to delete it anyway"
            )
        }
        bridges[name] = nil
        for p in b.mirrors.values { p.adapter?.close() }
        for p in b.ports.values {
            endPipes(of: p)
            if p.held {
                // An application still holds it: detach it from forwarding; memory goes with the session.
                b.bridge.removePort(p.index)
            } else {
                removePortEntry(p, from: b)
            }
        }
        b.bridge.stop()
        b.fastpath?.close()
        log.info("bridge \(name) deleted")
    }

    /// A bridge made by an application's open goes with its last port.
    func reapIfEmpty(_ b: BridgeEntry) {
        guard !b.persistent, b.ports.isEmpty, bridges[b.bridge.name] === b else { return }
        bridges[b.bridge.name] = nil
        b.bridge.stop()
        b.fastpath?.close()
        log.info("bridge \(b.bridge.name) reaped (its last port went)")
    }

    func setAccess(_ b: BridgeEntry, users: [String]?, groups: [String]?) throws {
        let u = try users.map { try $0.map(Identity.uid) }
        let g = try groups.map { try $0.map(Identity.gid) }
        if let u { b.allowUsers = Set(u) }
        if let g { b.allowGroups = Set(g) }
        log.info("bridge \(b.bridge.name): allow users \(b.allowUsers.sorted()) groups \(b.allowGroups.sorted())")
    }

    func bridgeInfo(_ b: BridgeEntry) -> BridgeInfo {
        let t = b.bridge.tableStats()
        var c = BridgeCounters()
        c.flooded = t.flooded; c.learned = t.learned; c.aged = t.aged; c.moved = t.moved; c.evicted = t.evicted
        c.fdbEntries = t.entries; c.batches = t.batches; c.wakeups = t.wakeups; c.fdbCapacity = t.capacity
        c.runFrames = t.runFrames
        c.priorityLends = t.priorityLends
        var info = BridgeInfo(
            name: b.bridge.name, ports: b.ports.count, agingSeconds: Int(b.bridge.agingSeconds), batch: b.bridge.config.batch,
            counters: c, owner: Identity.userName(b.owner), allowUsers: b.allowUsers.sorted().map(Identity.userName),
            allowGroups: b.allowGroups.sorted().map(Identity.groupName), persistent: b.persistent)
        info.vlanFiltering = b.vlanFiltering
        info.groupFwdMask = SwaleConfig.hex(Int(b.groupFwdMask))
        if !options.fastpath || !options.kernelPortsEnabled {
            info.fastpath = "off"
        } else if let fp = b.fastpath {
            info.fastpath = "on, \(fp.attachedCount) port(s)"
        } else if let why = fastpathFailure {
            info.fastpath = "unavailable: \(why)"
        } else {
            info.fastpath = "none"
        }
        if let want = b.bridge.config.forwardingCPUs {
            let now = b.bridge.threadCPUs.map(CPUList.render) ?? "?"
            let err = b.bridge.placementError
            info.forwardingCPUs =
                err == 0 ? now : "\(now) (not placed on \(CPUList.render(want)): \(String(cString: strerror(err))))"
        }
        return info
    }

    // MARK: ports

    /// Creates the region, rings and doorbells of a port and plugs it into the bridge.
    func makePort(
        bridge b: BridgeEntry, name: String, kind: PortKind, slots: Int, owner: UInt32, adapter: PortBackend? = nil,
        mtu: Int? = nil
    ) throws -> PortEntry {
        let s = max(64, min(slots, 16384))
        let pool = try MemoryPool(
            name: "swale:\(b.bridge.name):\(name)", bufSize: options.bufSize,
            initialBlocks: Budgets.portBlocks(slots: s, bufSize: options.bufSize))
        let layout = try pool.makeInterface(name: name, slots: s)
        let kick = try Doorbell()
        let notify = try Doorbell()
        let p = PortEntry(
            bridge: b.bridge.name, name: name, kind: kind, owner: owner, pool: pool, layout: layout, kick: kick, notify: notify)
        guard
            let (idx, since) = b.bridge.addPort(
                pool: pool, layout: layout, kickFD: kick.waitEnd.fd, notifyFD: notify.ringEnd.fd,
                backend: adapter, mtu: mtu)
        else {
            kick.close(); notify.close()
            throw ControlError(.limit, "bridge '\(b.bridge.name)' is full (\(b.bridge.config.maxPorts) ports)")
        }
        p.index = idx
        p.adapter = adapter
        if adapter != nil && b.bridge.priorityError != 0, let nice = b.bridge.config.forwardingNice {
            log.warning(
                "bridge \(b.bridge.name): forwarding thread left at normal priority: nice \(nice) refused (\(String(cString: strerror(b.bridge.priorityError)))); frames may be dropped when busy programs share its core"
            )
        }
        b.ports[name] = p
        b.portNames[idx, default: []].append((since, name))
        if b.portNames[idx]!.count > 64 { b.portNames[idx]!.removeFirst() }
        installRules(b, p)
        return p
    }

    func releaseIfUnused(_ p: PortEntry) {
        if !p.held && p.vnetHeader != 0, let b = bridges[p.bridge], b.ports[p.name] === p {
            // Headers were its holders' choice: the next application gets plain frames.
            _ = b.bridge.perform { $0.engine.setVnetApp(p.index, false) }
            p.vnetHeader = 0
        }
        guard p.unused else { return }
        if p.kind == .monitor {
            if let b = bridges[p.bridge], b.monitors[p.index] === p {
                b.bridge.removePort(p.index)
                b.monitors[p.index] = nil
            }
            p.kick.close(); p.notify.close()
            log.info("monitor \(p.fullName) closed")
            return
        }
        if let b = bridges[p.bridge], b.ports[p.name] === p {
            removePortEntry(p, from: b)
        } else {
            p.kick.close(); p.notify.close()
        }
    }

    func removePortEntry(_ p: PortEntry, from b: BridgeEntry) {
        if let st = b.bridge.removePort(p.index) { p.finalStats = st }
        if let i = p.ifindex, p.fastpathAttached { b.fastpath?.detach(ifindex: i) }
        p.fastpathAttached = false
        restoreGRO(p)
        b.ports[p.name] = nil
        if p.spec?.container != nil {
            // A container attachment's name means that attachment only: its rules go with it.
            b.portRules[p.name] = nil
            b.staticEntries.removeAll { $0.port == p.name }
        }
        p.adapter?.close()
        p.kick.close()
        p.notify.close()
        log.info("port \(p.fullName) removed")
        reapIfEmpty(b)
    }

    // MARK: open (app ports here; pipe ends in Pipes.swift)

    func open(_ text: String, session: Session, slots: Int?, share: Bool = false) throws -> (OpenInfo, [Int32]) {
        let name = try PortName.parse(text)
        if let slots, !SwaleConfig.slotRange.contains(slots) {
            throw ControlError(
                .invalidArgument,
                "slots \(slots) out of range (\(SwaleConfig.slotRange.lowerBound)...\(SwaleConfig.slotRange.upperBound))")
        }
        let slots = slots ?? options.slots
        if let m = name.monitor { return try openMonitor(name, m, session: session, slots: slots) }
        if let (role, id) = name.pipe {
            return try openPipeEnd(parent: name.parent, role: role, id: id, session: session, slots: slots)
        }
        guard case .bridgePort(let bname, let pname) = name.base else {
            throw ControlError(
                .invalidArgument,
                "'\(text)' is an interface name; applications open bridge ports (vale0:NAME) or pipes (NAME<ID, NAME>ID)")
        }
        let (b, isNew) = try bridgeForOpen(bname, session)
        let p: PortEntry
        do {
            if let existing = b.ports[pname] {
                guard existing.kind == .app else {
                    throw ControlError(
                        .permissionDenied,
                        "port \(existing.fullName) is a \(existing.kind.rawValue) port (interface \(existing.ifname ?? "?")); applications cannot open it, only root's pipes on it"
                    )
                }
                try checkOwner(existing, session)
                if let holder = existing.holderPid {
                    if share && existing.shareable { return try joinShared(existing, session: session) }
                    let how = existing.shareable ? "" : ", exclusively"
                    let why = share ? "" : " (this open asked for exclusive use)"
                    throw ControlError(.exists, "port \(existing.fullName) is already open (by pid \(holder)\(how))\(why)")
                }
                p = existing
            } else {
                try checkNewPort(session, slots: slots)
                p = try makePort(bridge: b, name: pname, kind: .app, slots: slots, owner: session.ownerID)
                log.info("app port \(p.fullName) created for pid \(session.pid) uid \(session.uid)")
            }
        } catch {
            if isNew { reapIfEmpty(b) }
            throw error
        }
        p.openSession = session.id
        p.openPid = session.pid
        p.shareable = share
        forgetSleeper(p.pool.csb(p.layout))
        session.holdings.append(.port(p))
        return (portOpenInfo(p), [p.pool.region.fd, p.notify.waitEnd.fd, p.kick.ringEnd.fd])
    }

    /// The bridge an open names: it must admit the caller; a missing one is created for them
    /// (owned by them, reaped with its last port), as VALE creates bridges on first use.
    func bridgeForOpen(_ name: String, _ s: Session) throws -> (BridgeEntry, Bool) {
        try Names.validateBridge(name)
        if let b = bridges[name] {
            try checkAdmits(b, s, "open")
            return (b, false)
        }
        return (try addBridge(name, owner: s, persistent: false), true)
    }

    // MARK: status, stats, fdb

    func allPorts(_ bs: [BridgeEntry]) -> [PortEntry] {
        bs.flatMap { $0.ports.values.sorted { $0.index < $1.index } }
    }

    func status(for s: Session) -> StatusInfo {
        var regions: [RegionInfo] = []
        let visible = visibleBridges(s)
        for p in allPorts(visible) where s.root || p.owner == s.uid {
            let a = p.pool.allocator
            var users = [p.fullName]
            let mine = pipes.values.filter { $0.parent === p }
            users += mine.map { $0.key }.sorted()
            let layouts = [p.layout] + mine.flatMap { [$0.master, $0.slave] }
            let accounted =
                Int(BlockAllocator.reserved)
                + layouts.reduce(0) {
                    $0 + $1.metaBlocks + $1.slotsPerRing * ($1.txRingOffsets.count + $1.rxRingOffsets.count)
                } + p.extraBuffers + mine.reduce(0) { $0 + $1.masterExtra + $1.slaveExtra }
            regions.append(
                RegionInfo(
                    name: p.pool.name, size: p.pool.region.mappedSize, bufSize: p.pool.bufSize,
                    buffersTotal: a.total, buffersFree: a.freeCount, refusedFrees: a.refusedFrees,
                    buffersAccounted: accounted, users: users))
        }
        let pipeInfos = pipes.values.filter { s.root || $0.parent.owner == s.uid }.sorted { $0.key < $1.key }.map {
            PipeInfo(
                parent: $0.parent.fullName, id: $0.id, masterOpen: $0.masterSession != nil || !$0.masterAdopters.isEmpty,
                slaveOpen: $0.slaveSession != nil || !$0.slaveAdopters.isEmpty,
                masterPid: $0.masterPid ?? $0.masterAdopters.first?.pid, slavePid: $0.slavePid ?? $0.slaveAdopters.first?.pid)
        }
        return StatusInfo(
            pid: Int(getpid()), uptimeSeconds: Date().timeIntervalSince(started), socket: options.socketPath,
            bridges: visible.map(bridgeInfo), regions: regions, pipes: pipeInfos,
            clients: s.root ? sessions.count : sessions.values.filter { $0.uid == s.uid }.count)
    }

    func portInfo(_ p: PortEntry) -> PortInfo {
        var c = PortCounters()
        var st = p.finalStats
        var resets: UInt64 = 0
        if let b = bridges[p.bridge], let (s, r) = b.bridge.portStats(p.index) { st = s; resets = r }
        c.rxPackets = st.rxPackets; c.rxBytes = st.rxBytes; c.txPackets = st.txPackets; c.txBytes = st.txBytes
        c.dropRingFull = st.dropRingFull; c.dropTooShort = st.dropTooShort; c.dropTooLong = st.dropTooLong
        c.dropBadSlot = st.dropBadSlot; c.dropNoRoute = st.dropNoRoute; c.ringResets = resets
        c.dropReserved = st.dropReserved; c.dropBadSource = st.dropBadSource; c.dropVlan = st.dropVlan
        c.dropStaticMove = st.dropStaticMove; c.dropMacLimit = st.dropMacLimit; c.dropLocked = st.dropLocked
        c.dropIsolated = st.dropIsolated
        c.dropHorizon = st.dropHorizon
        if p.adapter != nil, let b = bridges[p.bridge] { c.adapter = b.bridge.adapterCounters(p.index) }
        var info = PortInfo(
            bridge: p.bridge, name: p.name, index: p.index, kind: p.kind.rawValue, ifname: p.ifname,
            openBy: p.holderPid, created: p.created, owner: Identity.userName(p.owner), counters: c)
        if !p.sharers.isEmpty { info.sharedBy = p.sharers.map(\.pid) }
        if p.vnetHeader != 0 { info.vnetHeader = p.vnetHeader }
        info.peer = p.peerName
        info.container = p.spec?.container
        info.network = p.spec?.network
        addLinkDetails(&info, p)
        return info
    }

    func portInfos(bridge: String?, _ s: Session) throws -> [PortInfo] {
        if let bridge, !bridge.isEmpty {
            let b = try usableBridge(bridge, s, PortList.op)
            return b.ports.values.sorted { $0.index < $1.index }.map(portInfo)
        }
        return allPorts(visibleBridges(s)).map(portInfo)
    }

    func stats(_ target: String?, _ s: Session) throws -> StatsInfo {
        guard let target, !target.isEmpty else {
            let visible = visibleBridges(s)
            return StatsInfo(bridges: visible.map(bridgeInfo), ports: allPorts(visible).map(portInfo))
        }
        if target.contains(":") {
            let n = try PortName.parse(target)
            guard case .bridgePort(let bn, let pn) = n.base, n.pipe == nil else {
                throw ControlError(.invalidArgument, "stats takes BRIDGE or BRIDGE:PORT")
            }
            let b = try usableBridge(bn, s, Stats.op)
            if let m = n.monitor {
                // A monitor's counters (its drops), for the process that holds it.
                let key = "\(pn)/\(m.rawValue)"
                guard let p = b.monitors.values.first(where: { $0.name == key && $0.openPid == s.pid }) else {
                    throw ControlError(.notFound, "no monitor \(n.description) held by pid \(s.pid)")
                }
                return StatsInfo(bridges: [], ports: [portInfo(p)])
            }
            guard let p = b.ports[pn] else { throw ControlError(.notFound, "no port '\(pn)' on bridge '\(bn)'") }
            return StatsInfo(bridges: [], ports: [portInfo(p)])
        }
        let b = try usableBridge(target, s, Stats.op)
        return StatsInfo(bridges: [bridgeInfo(b)], ports: b.ports.values.sorted { $0.index < $1.index }.map(portInfo))
    }

    /// A bridge's events after a sequence number, ports named as they were then.
    func events(_ b: BridgeEntry, after: UInt64?) -> EventsInfo {
        let r = b.bridge.events(after: after)
        let list = r.events.map { e in
            let isPort = e.kind == .portAdded || e.kind == .portRemoved
            return EventInfo(
                seq: e.seq, event: e.kind.name, port: b.portName(Int(e.port), at: e.seq),
                mac: isPort ? nil : Names.formatMAC(e.mac), vlan: isPort || e.vlan == 0 ? nil : Int(e.vlan), time: e.time)
        }
        return EventsInfo(bridge: b.bridge.name, events: list, missed: r.missed, next: r.last)
    }

    /// The table is copied under the lock; sorting and formatting happen while the reply is
    /// encoded, after the lock is released.
    func fdbShow(_ b: BridgeEntry) throws -> FdbSnapshot {
        var byIndex: [Int: String] = [:]
        for p in b.ports.values { byIndex[p.index] = p.name }
        return FdbSnapshot(entries: b.bridge.fdbEntries(), portNames: byIndex)
    }

    func fdbFlush(_ b: BridgeEntry, port: String?) throws -> Int {
        if let port, !port.isEmpty {
            guard let p = b.ports[port] else { throw ControlError(.notFound, "no port '\(port)' on bridge '\(b.bridge.name)'") }
            return b.bridge.fdbFlush(port: p.index)
        }
        return b.bridge.fdbFlush(port: nil)
    }

    // MARK: shutdown

    /// Stops forwarding. Interfaces are left in place so a restart picks them up again.
    public func shutdown() {
        lock.lock(); defer { lock.unlock() }
        for b in bridges.values {
            b.bridge.stop()
            for p in b.ports.values {
                p.adapter?.close()
                restoreGRO(p)
            }
            b.fastpath?.close()  // its tcx links end with it: nothing stays on the interfaces
        }
    }
}

/// `fdb show`'s reply, formatted when encoded (outside the service lock).
struct FdbSnapshot: Encodable {
    let entries: [LearningTable.Record]
    let portNames: [Int: String]
    func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        for e in entries.sorted(by: { ($0.vlan, $0.mac) < ($1.vlan, $1.mac) }) {
            try c.encode(
                FdbEntry(
                    mac: Names.formatMAC(e.mac), port: portNames[Int(e.port)] ?? "#\(e.port)", age: Int(e.age), vlan: Int(e.vlan),
                    isStatic: e.isStatic))
        }
    }
}
