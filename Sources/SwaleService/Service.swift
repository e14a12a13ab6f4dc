/*
 * Service — swaled's state and the handling of every control request.
 *
 * One lock serializes the control plane (requests from all connections); the forwarding threads
 * never take it. Requests that touch a bridge's forwarding state go through Bridge.perform, which
 * runs them on that bridge's thread between two batches.
 */
import CSwaleSys
import Foundation
import Glibc
import Logging
import SwaleControl
import SwaleKernel
import SwaleDatapath
import SwaleRings
import SwaleNames
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
    /// Per user (uid), across all their connections: ports and pipe ends held open at once.
    public var clientMaxPorts = 1024
    public var clientMaxPipes = 4096
    /// Off: no netlink, no TAP, no interface is ever touched (the control-protocol fuzzer runs so).
    public var kernelPortsEnabled = true
    public init(socketPath: String) { self.socketPath = socketPath }
}

struct ServiceError: Error, CustomStringConvertible {
    let message: String
    init(_ m: String) { message = m }
    var description: String { message }
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
    public static let maxBridges = 1024

    public init(options: ServiceOptions, logger: Logger) {
        self.options = options
        self.log = logger
        self.ownerInstance = OwnerTag.instance(socketPath: options.socketPath)
    }

    // MARK: sessions

    /// Each session is a thread and a socket: bounded, so a client cannot exhaust the service.
    public static let maxSessions = 8192

    func openSession(pid: Int, uid: Int, gid: Int = -1) -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard sessions.count < Service.maxSessions else { return nil }
        let id = nextSession
        nextSession += 1
        sessions[id] = Session(id: id, pid: pid, uid: uid, gid: gid)
        return id
    }

    /// Releases everything a connection held (it closed, exited or died).
    func closeSession(_ id: Int) {
        lock.lock(); defer { lock.unlock() }
        guard let s = sessions.removeValue(forKey: id) else { return }
        for h in s.holdings.reversed() {
            switch h {
            case .port(let p):
                p.openSession = nil
                p.openPid = nil
                log.info("released \(p.fullName) (pid \(s.pid))")
                releaseIfUnused(p)
            case .pipeEnd(let pipe, let role):
                if role == .master { pipe.masterSession = nil; pipe.masterPid = nil } else { pipe.slaveSession = nil; pipe.slavePid = nil }
                log.info("released \(pipe.key) \(role.rawValue) end (pid \(s.pid))")
                if pipe.masterSession == nil && pipe.slaveSession == nil { destroyPipe(pipe) }
            }
        }
    }

    // MARK: dispatch

    /// Handles one request; returns the reply JSON and descriptors to send with it.
    func handle(_ data: Data, session: Int) -> (Data, [Int32]) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        func fail(_ msg: String) -> (Data, [Int32]) {
            ((try? enc.encode(Reply<Empty>(ok: false, error: msg))) ?? Data("{\"ok\":false}".utf8), [])
        }
        let req: Request
        do { req = try JSONDecoder().decode(Request.self, from: data) } catch {
            return fail("malformed request: \(error)")
        }
        lock.lock(); defer { lock.unlock() }
        if let s = sessions[session] {
            log.info("request \(req.op)\(req.name.map { " \($0)" } ?? "")\(req.bridge.map { " \($0)" } ?? "") from pid \(s.pid) uid \(s.uid) gid \(s.gid)")
        }
        do {
            func ok<T: Codable>(_ v: T, _ fds: [Int32] = []) throws -> (Data, [Int32]) { (try enc.encode(Reply(ok: true, result: v)), fds) }
            switch req.op {
            case "status": return try ok(status())
            case "open":
                let (info, fds) = try open(req.name ?? "", session: session, slots: req.slots)
                return try ok(info, fds)
            case "bridge.add":
                if let n = req.batch, !SwaleConfig.batchRange.contains(n) {
                    throw ServiceError("batch \(n) out of range (\(SwaleConfig.batchRange.lowerBound)...\(SwaleConfig.batchRange.upperBound))")
                }
                let b = try addBridge(req.bridge ?? req.name ?? "", batch: req.batch)
                return try ok(bridgeInfo(b))
            case "bridge.del":
                try deleteBridge(req.bridge ?? req.name ?? "", force: req.force ?? false)
                return try ok(Empty())
            case "bridge.list":
                return try ok(bridges.keys.sorted().map { bridgeInfo(bridges[$0]!) })
            case "port.list":
                return try ok(try portInfos(bridge: req.bridge))
            case "stats":
                return try ok(try stats(req.name))
            case "fdb.show":
                return try ok(try fdbShow(req.bridge ?? ""))
            case "fdb.flush":
                return try ok(["flushed": try fdbFlush(req.bridge ?? "", port: req.port)])
            case "bridge.aging":
                let b = try bridgeEntry(req.bridge ?? "")
                guard let secs = req.mtu, (1...Int(Int32.max)).contains(secs) else { throw ServiceError("aging time must be between 1 and \(Int32.max) seconds") }
                b.bridge.setAging(UInt32(secs))
                return try ok(bridgeInfo(b))
            case "port.add":
                return try ok(try addKernelPort(req))
            case "port.attach":
                return try ok(try attachPort(req))
            case "port.del":
                try deletePort(bridge: req.bridge ?? "", port: req.port ?? "", keepInterface: req.keep ?? false)
                return try ok(Empty())
            case "iface.create":
                return try ok(try createLooseTap(req))
            case "iface.remove":
                try removeLooseInterface(req.ifname ?? req.name ?? "")
                return try ok(Empty())
            case "iface.list":
                return try ok(looseInterfaces.keys.sorted())
            case "config.dump":
                return try ok(ConfigText(text: runningConfig().rendered()))
            default:
                return fail("unknown operation '\(req.op)'")
            }
        } catch let e as NameError {
            return fail(e.description)
        } catch {
            return fail("\(error)")
        }
    }

    // MARK: bridges

    func bridgeEntry(_ name: String) throws -> BridgeEntry {
        try Names.validateBridge(name)
        guard let b = bridges[name] else { throw ServiceError("no bridge named '\(name)'") }
        return b
    }

    @discardableResult
    func addBridge(_ name: String, mustBeNew: Bool = true, batch: Int? = nil) throws -> BridgeEntry {
        try Names.validateBridge(name)
        if let b = bridges[name] {
            if mustBeNew { throw ServiceError("bridge '\(name)' already exists") }
            return b
        }
        guard bridges.count < Service.maxBridges else { throw ServiceError("too many bridges (max \(Service.maxBridges))") }
        var config = options.bridge
        if let batch { config.batch = batch }
        let b = BridgeEntry(bridge: try Bridge(name: name, config: config))
        b.bridge.start()
        bridges[name] = b
        log.info("bridge \(name) created")
        if b.bridge.priorityError != 0, let nice = config.forwardingNice {
            log.warning("bridge \(name): forwarding thread left at normal priority: nice \(nice) refused (\(String(cString: strerror(b.bridge.priorityError)))); frames may be dropped when busy programs share its core")
        }
        return b
    }

    func deleteBridge(_ name: String, force: Bool) throws {
        let b = try bridgeEntry(name)
        if !b.ports.isEmpty && !force {
            throw ServiceError("bridge '\(name)' has \(b.ports.count) port(s) attached (\(b.ports.keys.sorted().joined(separator: ", "))); use --force to delete it anyway")
        }
        for p in b.ports.values {
            if p.openSession != nil || p.pipes > 0 {
                // Applications still hold it: detach it from forwarding; memory goes with the session.
                b.bridge.removePort(p.index)
            } else {
                removePortEntry(p, from: b)
            }
        }
        b.bridge.stop()
        bridges[name] = nil
        log.info("bridge \(name) deleted")
    }

    func bridgeInfo(_ b: BridgeEntry) -> BridgeInfo {
        let t = b.bridge.tableStats()
        var c = BridgeCounters()
        c.flooded = t.flooded; c.learned = t.learned; c.aged = t.aged; c.moved = t.moved; c.evicted = t.evicted
        c.fdbEntries = t.entries; c.batches = t.batches; c.wakeups = t.wakeups
        return BridgeInfo(name: b.bridge.name, ports: b.ports.count, agingSeconds: Int(b.bridge.agingSeconds), batch: b.bridge.config.batch, counters: c)
    }

    // MARK: ports

    /// Creates the region, rings and doorbells of a port and plugs it into the bridge.
    func makePort(bridge b: BridgeEntry, name: String, kind: PortKind, slots: Int, adapter: PortBackend? = nil, mtu: Int? = nil) throws -> PortEntry {
        let s = max(64, min(slots, 16384))
        let pool = try MemoryPool(name: "swale:\(b.bridge.name):\(name)", bufSize: options.bufSize, initialBlocks: 2 * s + 64)
        let layout = try pool.makeInterface(name: name, slots: s)
        let kick = try Doorbell()
        let notify = try Doorbell()
        let p = PortEntry(bridge: b.bridge.name, name: name, kind: kind, pool: pool, layout: layout, kick: kick, notify: notify)
        guard let idx = b.bridge.addPort(pool: pool, layout: layout, kickFD: kick.waitEnd.fd, notifyFD: notify.ringEnd.fd,
                                         backend: adapter, mtu: mtu) else {
            kick.close(); notify.close()
            throw ServiceError("bridge '\(b.bridge.name)' is full (\(b.bridge.config.maxPorts) ports)")
        }
        p.index = idx
        p.adapter = adapter
        b.ports[name] = p
        return p
    }

    func releaseIfUnused(_ p: PortEntry) {
        guard p.unused else { return }
        if let b = bridges[p.bridge], b.ports[p.name] === p {
            removePortEntry(p, from: b)
        } else {
            p.kick.close(); p.notify.close()
        }
    }

    func removePortEntry(_ p: PortEntry, from b: BridgeEntry) {
        if let st = b.bridge.removePort(p.index) { p.finalStats = st }
        b.ports[p.name] = nil
        p.adapter?.close()
        p.kick.close()
        p.notify.close()
        log.info("port \(p.fullName) removed")
    }

    // MARK: open (app ports here; pipe ends in Pipes.swift)

    func open(_ text: String, session sid: Int, slots: Int?) throws -> (OpenInfo, [Int32]) {
        let name = try PortName.parse(text)
        guard let session = sessions[sid] else { throw ServiceError("no session") }
        let slots = max(64, min(slots ?? options.slots, 16384))
        if let (role, id) = name.pipe {
            return try openPipeEnd(parent: name.parent, role: role, id: id, session: session, slots: slots)
        }
        guard case .bridgePort(let bname, let pname) = name.base else {
            throw ServiceError("'\(text)' is an interface name; applications open bridge ports (vale0:NAME) or pipes (NAME<ID, NAME>ID)")
        }
        try checkClientLimit(session, pipe: false)
        let b = try addBridge(bname, mustBeNew: false)
        let p: PortEntry
        if let existing = b.ports[pname] {
            guard existing.kind == .app else {
                throw ServiceError("port \(existing.fullName) is a \(existing.kind.rawValue) port (interface \(existing.ifname ?? "?")); applications cannot open it, only pipes on it")
            }
            if let holder = existing.openPid {
                throw ServiceError("port \(existing.fullName) is already open (by pid \(holder))")
            }
            p = existing
        } else {
            p = try makePort(bridge: b, name: pname, kind: .app, slots: slots)
            log.info("app port \(p.fullName) created for pid \(session.pid)")
        }
        p.openSession = sid
        p.openPid = session.pid
        session.holdings.append(.port(p))
        let info = OpenInfo(name: p.fullName, kind: "port", bufSize: p.pool.bufSize, regionSize: p.pool.region.mappedSize,
                            nifpOffset: p.layout.nifpOffset, txRing: p.layout.txRingOffsets[0], rxRing: p.layout.rxRingOffsets[0],
                            slots: p.layout.slotsPerRing)
        return (info, [p.pool.region.fd, p.notify.waitEnd.fd, p.kick.ringEnd.fd])
    }

    /// Ports and pipe ends one user holds, over all their connections, are bounded.
    func checkClientLimit(_ session: Session, pipe: Bool) throws {
        var held = 0
        for s in sessions.values where s.uid == session.uid {
            for h in s.holdings {
                switch h {
                case .port: if !pipe { held += 1 }
                case .pipeEnd: if pipe { held += 1 }
                }
            }
        }
        let limit = pipe ? options.clientMaxPipes : options.clientMaxPorts
        if held >= limit {
            throw ServiceError("uid \(session.uid) already holds \(held) \(pipe ? "pipe ends" : "ports") open (limit \(limit), setting \(pipe ? "clientMaxPipes" : "clientMaxPorts"))")
        }
    }

    // MARK: status, stats, fdb

    func allPorts() -> [PortEntry] {
        bridges.keys.sorted().flatMap { k in bridges[k]!.ports.values.sorted { $0.index < $1.index } }
    }

    func status() -> StatusInfo {
        var regions: [RegionInfo] = []
        for p in allPorts() {
            let a = p.pool.allocator
            var users = [p.fullName]
            let mine = pipes.values.filter { $0.parent === p }
            users += mine.map { $0.key }.sorted()
            let layouts = [p.layout] + mine.flatMap { [$0.master, $0.slave] }
            let accounted = Int(BlockAllocator.reserved) + layouts.reduce(0) {
                $0 + $1.metaBlocks + $1.slotsPerRing * ($1.txRingOffsets.count + $1.rxRingOffsets.count)
            }
            regions.append(RegionInfo(name: p.pool.name, size: p.pool.region.mappedSize, bufSize: p.pool.bufSize,
                                      buffersTotal: a.total, buffersFree: a.freeCount, refusedFrees: a.refusedFrees,
                                      buffersAccounted: accounted, users: users))
        }
        let pipeInfos = pipes.values.sorted { $0.key < $1.key }.map {
            PipeInfo(parent: $0.parent.fullName, id: $0.id, masterOpen: $0.masterSession != nil, slaveOpen: $0.slaveSession != nil,
                     masterPid: $0.masterPid, slavePid: $0.slavePid)
        }
        return StatusInfo(pid: Int(getpid()), uptimeSeconds: Date().timeIntervalSince(started), socket: options.socketPath,
                          bridges: bridges.keys.sorted().map { bridgeInfo(bridges[$0]!) }, regions: regions, pipes: pipeInfos,
                          clients: sessions.count)
    }

    func portInfo(_ p: PortEntry) -> PortInfo {
        var c = PortCounters()
        var st = p.finalStats
        var resets: UInt64 = 0
        if let b = bridges[p.bridge], let (s, r) = b.bridge.portStats(p.index) { st = s; resets = r }
        c.rxPackets = st.rxPackets; c.rxBytes = st.rxBytes; c.txPackets = st.txPackets; c.txBytes = st.txBytes
        c.dropRingFull = st.dropRingFull; c.dropTooShort = st.dropTooShort; c.dropTooLong = st.dropTooLong
        c.dropBadSlot = st.dropBadSlot; c.dropNoRoute = st.dropNoRoute; c.ringResets = resets
        if p.adapter != nil, let b = bridges[p.bridge] { c.adapter = b.bridge.adapterCounters(p.index) }
        return PortInfo(bridge: p.bridge, name: p.name, index: p.index, kind: p.kind.rawValue, ifname: p.ifname,
                        openBy: p.openPid, created: p.created, counters: c)
    }

    func portInfos(bridge: String?) throws -> [PortInfo] {
        if let bridge, !bridge.isEmpty {
            let b = try bridgeEntry(bridge)
            return b.ports.values.sorted { $0.index < $1.index }.map(portInfo)
        }
        return allPorts().map(portInfo)
    }

    func stats(_ target: String?) throws -> StatsInfo {
        guard let target, !target.isEmpty else {
            return StatsInfo(bridges: bridges.keys.sorted().map { bridgeInfo(bridges[$0]!) }, ports: allPorts().map(portInfo))
        }
        if target.contains(":") {
            let n = try PortName.parse(target)
            guard case .bridgePort(let bn, let pn) = n.base, n.pipe == nil else { throw ServiceError("stats takes BRIDGE or BRIDGE:PORT") }
            let b = try bridgeEntry(bn)
            guard let p = b.ports[pn] else { throw ServiceError("no port '\(pn)' on bridge '\(bn)'") }
            return StatsInfo(bridges: [], ports: [portInfo(p)])
        }
        let b = try bridgeEntry(target)
        return StatsInfo(bridges: [bridgeInfo(b)], ports: b.ports.values.sorted { $0.index < $1.index }.map(portInfo))
    }

    func fdbShow(_ bridge: String) throws -> [FdbEntry] {
        let b = try bridgeEntry(bridge)
        var byIndex: [Int: String] = [:]
        for p in b.ports.values { byIndex[p.index] = p.name }
        return b.bridge.fdbEntries().sorted { $0.mac < $1.mac }.map {
            FdbEntry(mac: Names.formatMAC($0.mac), port: byIndex[Int($0.port)] ?? "#\($0.port)", age: Int($0.age))
        }
    }

    func fdbFlush(_ bridge: String, port: String?) throws -> Int {
        let b = try bridgeEntry(bridge)
        if let port, !port.isEmpty {
            guard let p = b.ports[port] else { throw ServiceError("no port '\(port)' on bridge '\(bridge)'") }
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
            for p in b.ports.values { p.adapter?.close() }
        }
    }
}
