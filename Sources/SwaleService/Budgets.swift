/*
 * Budgets — what one user, and all users together, may hold.
 *
 * Per user (uid; root is exempt from these): sessions (connections), ports (app ports, pipe
 * parents included), pipes, bridges, and bytes of shared memory (the regions of the ports they
 * own, pipes included). Globally: sessions, bridges and shared memory, where users other than root
 * together may use all but a reserve, so root can always connect, look and clean up.
 *
 * Counts are taken from the state itself when a new object is about to be made (no counters to
 * drift); a request that would pass a budget is refused before anything is allocated, with the
 * setting's name in the message.
 */
import SwaleProtocol
import SwaleRings

public struct Budgets: Sendable, Equatable {
    public var clientMaxSessions = 64
    public var clientMaxPorts = 256
    public var clientMaxPipes = 1024
    public var clientMaxBridges = 16
    public var clientMaxMemoryMiB = 1024
    /// MAC table entries of a bridge a member makes (root's bridges use fdbCapacity).
    public var clientFdbCapacity = 65536
    public var maxSessions = 1024
    public var maxBridges = 1024
    public var maxMemoryMiB = 8192
    /// Held back for root from each global budget.
    public var rootReservedSessions = 32
    public var rootReservedBridges = 32
    public var rootReservedMemoryMiB = 512
    public init() {}

    static let mib = 1 << 20

    /// Blocks a port's region starts with: the reserved blocks and the port's interface (so making
    /// it does not grow the region), and a few spare.
    static func portBlocks(slots: Int, bufSize: Int) -> Int {
        Int(BlockAllocator.reserved) + MemoryPool.interfaceBlocks(slots: slots, bufSize: bufSize) + 8
    }
}

extension Service {
    struct Usage {
        var sessions = 0, ports = 0, pipes = 0, bridges = 0, bytes = 0
    }

    /// Whose holdings `usage` counts.
    enum Holder {
        case user(UInt32)
        /// Every user but root, together.
        case members
        case everyone

        func counts(_ owner: UInt32) -> Bool {
            switch self {
            case .user(let uid): return owner == uid
            case .members: return owner != 0
            case .everyone: return true
            }
        }
    }

    /// What `holder` holds. Ports and pipes a session still holds
    /// after their bridge was deleted count too: their memory and descriptors live until it closes.
    func usage(of holder: Holder) -> Usage {
        let counts = holder.counts
        var u = Usage()
        u.sessions = sessions.values.filter { !$0.root && counts($0.uid) }.count
        var seenPorts = Set<ObjectIdentifier>()
        var seenPipes = Set<ObjectIdentifier>()
        func port(_ p: PortEntry) {
            guard counts(p.owner), seenPorts.insert(ObjectIdentifier(p)).inserted else { return }
            u.ports += 1
            u.bytes += p.pool.region.mappedSize
        }
        func pipe(_ p: PipeEntry) {
            port(p.parent)
            if counts(p.parent.owner), seenPipes.insert(ObjectIdentifier(p)).inserted { u.pipes += 1 }
        }
        for b in bridges.values {
            if counts(b.owner) { u.bridges += 1 }
            b.ports.values.forEach(port)
        }
        pipes.values.forEach(pipe)
        for s in sessions.values {
            for h in s.holdings {
                switch h {
                case .port(let p), .sharedPort(let p): port(p)
                case .pipeEnd(let p, _), .adoptedPipeEnd(let p, _): pipe(p)
                }
            }
        }
        return u
    }

    /// Shared memory of every port, root's included (held ones too).
    var totalBytes: Int { usage(of: .everyone).bytes }

    func limitError(_ what: String, _ held: Int, _ limit: Int, _ setting: String, uid: UInt32? = nil) -> ControlError {
        ControlError(
            .limit,
            "\(uid.map { "uid \($0) holds" } ?? "users other than root hold") \(held) \(what) (limit \(limit), setting \(setting))"
        )
    }

    func sessionRefusal(_ who: Credentials) -> ControlError? {
        let b = options.budgets
        if who.root {
            return sessions.count >= b.maxSessions
                ? limitError("sessions in all", sessions.count, b.maxSessions, "maxSessions") : nil
        }
        let mine = sessions.values.filter { $0.uid == who.uid && !$0.root }.count
        if mine >= b.clientMaxSessions {
            return limitError("sessions", mine, b.clientMaxSessions, "clientMaxSessions", uid: who.uid)
        }
        let others = sessions.values.filter { !$0.root }.count
        let cap = b.maxSessions - b.rootReservedSessions
        return others >= cap ? limitError("sessions", others, cap, "maxSessions less the root reserve") : nil
    }

    func checkNewBridge(_ s: Session) throws {
        let b = options.budgets
        if s.root {
            if bridges.count >= b.maxBridges { throw limitError("bridges in all", bridges.count, b.maxBridges, "maxBridges") }
            return
        }
        let mine = usage(of: .user(s.uid)).bridges
        if mine >= b.clientMaxBridges { throw limitError("bridges", mine, b.clientMaxBridges, "clientMaxBridges", uid: s.uid) }
        let others = usage(of: .members).bridges
        let cap = b.maxBridges - b.rootReservedBridges
        if others >= cap || bridges.count >= b.maxBridges {
            throw limitError("bridges", others, cap, "maxBridges less the root reserve")
        }
    }

    /// `bytes`: what the new object will add to its region.
    func checkMemory(_ s: Session, adding bytes: Int) throws {
        let b = options.budgets
        let mib = Budgets.mib
        if s.root {
            let total = totalBytes
            if total + bytes > b.maxMemoryMiB * mib {
                throw ControlError(
                    .limit,
                    "shared memory would reach \((total + bytes) / mib) MiB (limit \(b.maxMemoryMiB) MiB, setting maxMemoryMiB)")
            }
            return
        }
        let mine = usage(of: .user(s.uid)).bytes
        if mine + bytes > b.clientMaxMemoryMiB * mib {
            throw ControlError(
                .limit,
                "uid \(s.uid) would hold \((mine + bytes) / mib) MiB of shared memory (limit \(b.clientMaxMemoryMiB) MiB, setting clientMaxMemoryMiB)"
            )
        }
        let others = usage(of: .members).bytes
        let cap = (b.maxMemoryMiB - b.rootReservedMemoryMiB) * mib
        if others + bytes > cap || totalBytes + bytes > b.maxMemoryMiB * mib {
            throw ControlError(
                .limit,
                "users other than root would hold \((others + bytes) / mib) MiB of shared memory (limit \(cap / mib) MiB: maxMemoryMiB less the root reserve)"
            )
        }
    }

    func checkNewPort(_ s: Session, slots: Int) throws {
        if !s.root {
            let mine = usage(of: .user(s.uid)).ports
            if mine >= options.budgets.clientMaxPorts {
                throw limitError("ports", mine, options.budgets.clientMaxPorts, "clientMaxPorts", uid: s.uid)
            }
        }
        let blocks = MemoryPool.pageAligned(Budgets.portBlocks(slots: slots, bufSize: options.bufSize), bufSize: options.bufSize)
        try checkMemory(s, adding: blocks * options.bufSize)
    }

    func checkNewPipe(_ s: Session, slots: Int, in pool: MemoryPool) throws {
        if !s.root {
            let mine = usage(of: .user(s.uid)).pipes
            if mine >= options.budgets.clientMaxPipes {
                throw limitError("pipes", mine, options.budgets.clientMaxPipes, "clientMaxPipes", uid: s.uid)
            }
        }
        // Two interfaces of one tx and one rx ring each: what the parent's region grows by.
        try checkMemory(
            s, adding: pool.growthBytes(forBlocks: 2 * MemoryPool.interfaceBlocks(slots: slots, bufSize: pool.bufSize)))
    }
}
