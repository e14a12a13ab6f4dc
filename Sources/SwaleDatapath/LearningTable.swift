/*
 LearningTable — the MAC learning table (forwarding database) of one bridge.

 It answers one question on the hot path, "which port is this MAC behind?", and learns the answer
 from the source MAC of every frame. It is used by a single thread (the bridge's forwarding
 thread); control-plane requests (`entries`, `flush`, `expire`) are made by that same thread, so
 there is no locking inside.

 Representation of a MAC: a UInt64 holding the 48-bit address big-endian in its low 48 bits, so
 the first octet is bits 47...40 and the group (multicast/broadcast) bit — bit 0 of the first
 octet — is bit 40. `mac(fromFrame:offset:)` reads one from a frame with two loads and byte swaps.
 Entries are keyed by (VLAN, MAC) as in an 802.1Q bridge: the 12-bit VID sits in bits 59...48 of
 the key, so VLAN 0 (a bridge without VLAN filtering) gives exactly the MAC-only key, and the same
 MAC in two VLANs is two entries that learn and age independently.

 Storage. One zero-filled block obtained once with mmap (lazily committed; MADV_HUGEPAGE so that
 random probes over a big table do not miss in the TLB), used as an `UnsafeMutablePointer<Entry>`
 array of `bucketCount * 8` entries. Nothing is allocated, retained or released per lookup or per
 learn. An entry is 16 bytes:

     key:  UInt64   MAC | VID << 48 | validBit (bit 63); 0 means the slot is empty
     port: UInt16   the port the MAC was last seen on (never `LearningTable.none`)
     flags: UInt16  `staticFlag`: added by the control plane (`addStatic`)
     seen: UInt32   last time (seconds, caller's monotonic clock) the MAC was seen as a source

 Buckets hold 8 entries (128 bytes: two cache lines, aligned). The bucket count is a power of two
 with at least two slots per requested entry (8 * buckets >= 2 * capacity), so a full table runs
 at <= 50% load: with 8-way buckets that keeps collisions that overflow a bucket rare (about 1% of
 entries at full load with random MACs, and those are handled, see below).

 Hash: multiply-add-shift on the 64-bit key, `h = key * a + b`, with `a` (odd) and `b` drawn per
 table from a random seed (through splitmix64), so nobody can precompute MACs that all land in one
 bucket of our table. The top log2(buckets) bits of h pick the bucket, the next 3 bits the key's
 home slot in it. The top bits of the product depend on every bit of the MAC, including the
 NIC-specific low 24 bits that vary most.

 A MAC lives only in its bucket (no displacement into other buckets). A new key takes the first
 empty slot in the order home, home^1, home^2, ... home^7, so it usually sits in its home slot or
 in the partner slot home^1 (same 32 bytes): about 75% + 13% of the keys of a full table (random
 MACs, 50% load). A lookup compares the home slot, picks home or home^1 from the result without a
 branch (xor with the comparison bit), tests that one slot, and only if it misses scans all 8
 slots. The hot path thus touches one cache line and has one well-predicted branch; the position
 of a match inside the bucket, which is random, never decides a branch in the common case.
 (Measured: a branch-free compare of all 8 slots is slower for big tables, because the dozens of
 instructions waiting on the cache miss limit how many misses overlap; an early-exit scan of 8
 slots mispredicts on almost every lookup.) Empty slots may sit anywhere in a bucket (after
 flush/expire), which is fine because a miss always compares all 8 slots.

 Batches. `lookup(_:count:now:into:)` looks up many MACs (the destinations of a batch of frames):
 it first loads the home slot of each MAC of a chunk of 64 with nothing waiting on the result, so
 the cache misses of a big table overlap like prefetches, then does the lookups from the cache.

 Aging. An entry is expired when `now - seen >= agingSeconds` (wrapping difference read as signed,
 so a `seen` slightly in the future counts as fresh; the Linux bridge uses the same ">=" rule).
 Expired entries are never returned by `lookup` and not listed by `entries`; they keep their slot
 until `expire` sweeps them (counted in `aged`) or `learn` reuses the slot (also counted in
 `aged`). `count` is the number of occupied slots and is maintained exactly by every operation; it
 equals the number of live entries right after a full `expire`.

 Learning (`learn`), only for unicast MACs (group MACs and port `none` are ignored):
   - MAC present, same port, not expired: refresh `seen` (written only when it changes, so a busy
     host does not dirty the cache line more than once a second).
   - MAC present on another port, not expired: the station MOVED; update the port (`moved`).
   - MAC present but expired: it had logically aged out; count it `aged` then `learned`.
   - MAC absent: take an empty slot of its bucket; if the bucket is full, reuse the oldest expired
     entry (`aged`), else evict the least-recently-seen entry of the bucket (`evicted`). Either way
     the newest MAC gets a slot, so a collision never makes a station flooded forever: the victim
     is relearned on its next frame, at the cost of evicting the stalest neighbour.
 The common case (known MAC, same port) is the lookup probe above and at most one 4-byte store;
 the insertion/move paths are kept out of line.

 Static entries (`fdb add`) are never aged, evicted or moved: a learn of that (VID, MAC) on another
 port returns `.staticElsewhere` and changes nothing, so the caller drops the frame. They do not
 count toward a port's MAC limit.

 MAC limit per port (`setLimit`): the table counts the dynamic entries of each port (kept exact by
 insert, move, evict, expire and flush, all out of line); a learn that would give a port at its
 limit a new entry returns `.limitReached` and changes nothing.

 `expire(now:)` sweeps the whole table; `expire(now:buckets:)` sweeps a slice and remembers where it
 stopped, so the forwarding engine can age a big table a little at a time without a long stall.
 `flush(port:)` removes every entry, or those of one port (when a port is deleted or goes down).
 `entries(now:)` lists live entries for `fdb show` (control plane: it allocates).

 Changes (`trackChanges`, for the kernel fast path's mirror of the table, Fastpath.swift): every
 operation that adds, moves, ages, evicts, flushes or replaces an entry — all out of line — notes
 the address in a fixed list of `changeCapacity`; a refresh on the same port notes nothing. The
 forwarding thread takes the list after each pass (`takeChanges`); when more changed than the
 list holds, `changesOverflowed` asks it to mirror the whole table again. Off, it costs one branch
 on those out-of-line paths only.
 */

import Glibc
import SwaleNames
import SwaleRings

public final class LearningTable {
    /// Returned by `lookup` when the MAC is unknown or its entry has expired.
    public static let none: UInt16 = .max

    // MARK: - Layout constants

    static let macMask: UInt64 = 0x0000_FFFF_FFFF_FFFF
    static let vlanShift: UInt64 = 48
    static let staticFlag: UInt16 = 1
    static let validBit: UInt64 = 1 << 63
    static let groupBit: UInt64 = 1 << 40
    static let bucketShift = 3  // 8 entries per bucket
    public static let entriesPerBucket = 8

    struct Entry {
        var key: UInt64
        var port: UInt16
        var flags: UInt16
        var seen: UInt32
        var isStatic: Bool { flags & LearningTable.staticFlag != 0 }
    }

    /// What `learn` did with a source address.
    public enum Verdict: UInt8 {
        /// Learned or refreshed: the frame may go on.
        case learned
        /// A static entry puts this (VLAN, MAC) on another port: nothing changed; drop the frame.
        case staticElsewhere
        /// The port is at its MAC limit and this would be a new entry for it: drop the frame.
        case limitReached
    }

    /// One live entry, for `fdb show`.
    public struct Record: Sendable, Equatable {
        public var mac: UInt64
        public var vlan: UInt16
        public var port: UInt16
        public var age: UInt32
        public var isStatic: Bool
        public init(mac: UInt64, vlan: UInt16, port: UInt16, age: UInt32, isStatic: Bool) {
            self.mac = mac; self.vlan = vlan; self.port = port; self.age = age; self.isStatic = isStatic
        }
    }

    // MARK: - Storage (immutable after init: no exclusivity checks on the hot path)

    let table: UnsafeMutablePointer<Entry>
    let bucketMask: Int
    let hashShift: UInt64
    let hashMul: UInt64
    let hashAdd: UInt64
    private let mappedBytes: Int

    /// Number of buckets (a power of two) and of slots (8 per bucket).
    public let bucketCount: Int
    public var slotCount: Int { bucketCount &<< LearningTable.bucketShift }

    // MARK: - State

    /// Age limit as a signed value, compared with the signed wrapping age.
    @exclusivity(unchecked) var agingLimit: Int32

    /// Aging time in seconds (default 300). Values above Int32.max are clamped to Int32.max.
    /// 0 makes every entry expire at once (the bridge then floods everything, like a hub).
    public var agingSeconds: UInt32 {
        get { UInt32(bitPattern: agingLimit) }
        set { agingLimit = Int32(clamping: newValue) }
    }

    /// Occupied slots (see the header: expired entries count until swept or reused).
    @exclusivity(unchecked) public private(set) var count: Int = 0
    /// New entries (including a MAC relearned after its entry expired).
    @exclusivity(unchecked) public private(set) var learned: UInt64 = 0
    /// Live entries whose MAC showed up on another port.
    @exclusivity(unchecked) public private(set) var moved: UInt64 = 0
    /// Expired entries removed by `expire` or reused by `learn`.
    @exclusivity(unchecked) public private(set) var aged: UInt64 = 0
    /// Live entries thrown out to make room in a full bucket.
    @exclusivity(unchecked) public private(set) var evicted: UInt64 = 0

    @exclusivity(unchecked) private var sweepCursor = 0

    /// Learned, moved, expired and evicted addresses (and the engine's port events), for `events`.
    public let events = EventLog()

    /// Note changed addresses for a mirror (see the header). Changes made while off are not noted.
    @exclusivity(unchecked) public var trackChanges = false
    public static let changeCapacity = 1024
    let changeList: UnsafeMutablePointer<UInt64>
    /// Addresses noted since the last `takeChanges` (at most `changeCapacity`).
    @exclusivity(unchecked) public private(set) var changeCount = 0
    /// More changed than the list holds: the mirror must be rebuilt from the whole table.
    @exclusivity(unchecked) public private(set) var changesOverflowed = false

    /// Ports the per-port counts and limits cover (port indices below it).
    public let maxPorts: Int
    /// Dynamic entries per port, and each port's limit (0: none).
    let portEntries: UnsafeMutablePointer<UInt32>
    let portLimits: UnsafeMutablePointer<UInt32>

    // MARK: - Init / deinit

    /// - Parameters:
    ///   - capacity: entries the table is sized for (>= 1). The table gets
    ///     max(1, nextPowerOfTwo(ceil(2 * capacity / 8))) buckets, i.e. at most 50% load at `capacity`.
    ///     `capacity` 1...4 gives a single bucket of 8 slots.
    ///   - agingSeconds: aging time (default 300 s, as Open vSwitch and the Linux bridge).
    ///   - seed: hash salt; random when nil (pass one only for reproducible tests).
    /// - Throws: SystemError when the table's memory cannot be mapped.
    public init(capacity: Int = 1 << 20, agingSeconds: UInt32 = 300, seed: UInt64? = nil, maxPorts: Int = 4096) throws {
        precondition(capacity >= 1 && capacity <= 1 << 40, "LearningTable capacity must be in 1...2^40")
        precondition(MemoryLayout<Entry>.stride == 16, "LearningTable.Entry must be 16 bytes")
        let wantedBuckets = (2 * capacity + LearningTable.entriesPerBucket - 1) / LearningTable.entriesPerBucket
        var buckets = 1
        while buckets < wantedBuckets { buckets <<= 1 }
        var log2 = 0
        while (1 << log2) < buckets { log2 += 1 }

        bucketCount = buckets
        bucketMask = buckets - 1
        // A shift of at most 63 keeps it < 64 (with one bucket the mask then selects bucket 0).
        hashShift = UInt64(64 - max(log2, 1))

        var s = seed ?? UInt64.random(in: .min ... .max)
        hashMul = LearningTable.splitmix64(&s) | 1
        hashAdd = LearningTable.splitmix64(&s)

        agingLimit = Int32(clamping: agingSeconds)
        self.maxPorts = max(maxPorts, 1)
        portEntries = .allocate(capacity: self.maxPorts)
        portEntries.initialize(repeating: 0, count: self.maxPorts)
        portLimits = .allocate(capacity: self.maxPorts)
        portLimits.initialize(repeating: 0, count: self.maxPorts)
        changeList = .allocate(capacity: LearningTable.changeCapacity)

        let bytes = buckets * LearningTable.entriesPerBucket * MemoryLayout<Entry>.stride
        let page = 4096
        mappedBytes = (bytes + page - 1) & ~(page - 1)
        guard let raw = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            raw != MAP_FAILED
        else {
            portEntries.deallocate(); portLimits.deallocate(); changeList.deallocate()
            throw SystemError("mmap", detail: "learning table of \(mappedBytes) bytes")
        }
        if mappedBytes >= 2 << 20 {
            _ = madvise(raw, mappedBytes, MADV_HUGEPAGE)  // advisory; ignore failure
        }
        // Anonymous mappings are zero-filled: every key is 0, i.e. every slot is empty.
        table = raw.bindMemory(to: Entry.self, capacity: buckets * LearningTable.entriesPerBucket)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(table), mappedBytes)
        portEntries.deallocate()
        portLimits.deallocate()
        changeList.deallocate()
    }

    // MARK: - Changes (for a mirror of the table)

    @inline(__always)
    func noteChange(_ key: UInt64) {
        guard trackChanges else { return }
        if changeCount < LearningTable.changeCapacity {
            changeList[changeCount] = key & LearningTable.addressMask
            changeCount += 1
        } else {
            changesOverflowed = true
        }
    }

    /// Hands the noted addresses to `body` (valid only during the call) with whether some were lost
    /// (rebuild the mirror), and starts a new list.
    public func takeChanges(_ body: (UnsafeBufferPointer<UInt64>, _ overflowed: Bool) -> Void) {
        body(UnsafeBufferPointer(start: changeList, count: changeCount), changesOverflowed)
        changeCount = 0
        changesOverflowed = false
    }

    /// Refreshes a dynamic entry's `seen` as a frame from it would (frames the kernel fast path
    /// forwarded): nothing when it is absent, static or already expired (then it has aged out).
    public func touch(address: UInt64, now: UInt32) {
        let key = LearningTable.key(address)
        let (b, home) = locate(key)
        guard let e = find(key, b, home), !e.pointee.isStatic, !isExpired(e.pointee.seen, now) else { return }
        e.pointee.seen = now
    }

    // MARK: - MAC helpers

    /// Reads the 6-byte MAC at `offset` of a frame (0: destination, 6: source), big-endian, into the
    /// low 48 bits: two unaligned loads (4 + 2 bytes, never past the 6 bytes) and byte swaps.
    @inline(__always)
    public static func mac(fromFrame p: UnsafeRawPointer, offset: Int) -> UInt64 {
        let hi = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        let lo = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: offset &+ 4, as: UInt16.self))
        return UInt64(hi) &<< 16 | UInt64(lo)
    }

    /// Multicast or broadcast: bit 0 of the first octet (bit 40 of the value).
    @inline(__always)
    public static func isGroup(_ mac: UInt64) -> Bool {
        mac & groupBit != 0
    }

    /// "aa:bb:cc:dd:ee:ff" (control plane).
    public static func string(_ mac: UInt64) -> String { Names.formatMAC(mac) }

    static let addressMask: UInt64 = 0x0FFF_FFFF_FFFF_FFFF

    /// (VLAN, MAC) as one value: the MAC in the low 48 bits, the VID in bits 59...48. The engine
    /// builds it once per frame (it also keys its per-batch caches) and looks it up as is, so a
    /// VLAN-aware lookup costs the same instructions as a MAC-only one.
    @inline(__always)
    public static func address(_ mac: UInt64, vlan: UInt16) -> UInt64 {
        (mac & macMask) | UInt64(vlan & 0xfff) &<< vlanShift
    }

    /// The key of an address: the valid bit on top.
    @inline(__always)
    static func key(_ mac: UInt64, _ vlan: UInt16) -> UInt64 { key(address(mac, vlan: vlan)) }

    @inline(__always)
    static func key(_ address: UInt64) -> UInt64 { (address & addressMask) | validBit }

    // MARK: - Hot path

    /// Bucket and home slot of a key: the top bits of the product pick the bucket, the next 3
    /// bits the slot where the key goes when it is free (3 <= hashShift <= 63, see init).
    @inline(__always)
    func locate(_ key: UInt64) -> (bucket: UnsafeMutablePointer<Entry>, home: Int) {
        // Salted multiply, then a xor-shift-multiply finalizer: a bare multiply-shift clusters
        // arithmetic progressions of MACs (sequentially assigned containers) for unlucky salts.
        var h = (key ^ hashAdd) &* hashMul
        h ^= h &>> 29
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h &>> 32
        let index = Int(truncatingIfNeeded: h &>> hashShift) & bucketMask
        let home = Int(truncatingIfNeeded: h &>> (hashShift &- 3)) & 7
        return (table + (index &<< LearningTable.bucketShift), home)
    }

    /// The slot holding `key`: home or partner (the common case, one well-predicted branch),
    /// else a scan of the bucket; nil when absent.
    @inline(__always)
    func find(_ key: UInt64, _ b: UnsafeMutablePointer<Entry>, _ home: Int) -> UnsafeMutablePointer<Entry>? {
        // home or its partner (home ^ 1, same 32 bytes), chosen without a branch
        let first = home ^ Int(truncatingIfNeeded: UInt8((b[home].key != key) ? 1 : 0))
        if b[first].key == key { return b + first }
        for i in 0..<LearningTable.entriesPerBucket where b[i].key == key { return b + i }
        return nil
    }

    @inline(__always)
    func isExpired(_ seen: UInt32, _ now: UInt32) -> Bool {
        Int32(bitPattern: now &- seen) >= agingLimit
    }

    /// Port of `mac`, or `LearningTable.none` when it is unknown or its entry has expired.
    @inline(__always)
    public func lookup(_ mac: UInt64, vlan: UInt16 = 0, now: UInt32) -> UInt16 {
        lookup(address: LearningTable.address(mac, vlan: vlan), now: now)
    }

    /// Port of an address (`address(_:vlan:)`), or `none`.
    @inline(__always)
    public func lookup(address: UInt64, now: UInt32) -> UInt16 {
        let key = LearningTable.key(address)
        let (b, home) = locate(key)
        guard let e = find(key, b, home) else { return LearningTable.none }
        if isExpired(e.pointee.seen, now) && !e.pointee.isStatic { return LearningTable.none }
        return e.pointee.port
    }

    /// The port of a static entry for (VLAN, MAC), or `none` (a locked port admits only these).
    public func staticPort(_ mac: UInt64, vlan: UInt16 = 0) -> UInt16 {
        let key = LearningTable.key(mac, vlan)
        let (b, home) = locate(key)
        guard let e = find(key, b, home), e.pointee.isStatic else { return LearningTable.none }
        return e.pointee.port
    }

    /// Looks up `count` MACs (say the destinations of a batch of frames) into `ports`, same
    /// results as `lookup` one by one. For tables bigger than the caches it first touches the
    /// home slot of every MAC of a chunk (a load whose only use is an OR, so up to dozens of
    /// cache misses overlap, like a prefetch), then looks the chunk up from the cache.
    @inline(__always)
    public func lookup(
        _ macs: UnsafePointer<UInt64>, count n: Int, now: UInt32,
        into ports: UnsafeMutablePointer<UInt16>
    ) {
        var done = 0
        var touched: UInt64 = 0
        while done < n {
            let chunk = min(n &- done, LearningTable.touchChunk)
            for i in done..<(done &+ chunk) {
                let (b, home) = locate(LearningTable.key(macs[i]))
                touched |= b[home].key
            }
            for i in done..<(done &+ chunk) { ports[i] = lookup(macs[i], now: now) }
            done &+= chunk
        }
        touchSink = touched  // keeps the touching loads alive
    }

    static let touchChunk = 64
    @exclusivity(unchecked) private var touchSink: UInt64 = 0

    /// Learns (or refreshes) `mac` in `vlan` on `port`. Group MACs and `port == none` are ignored
    /// (`.learned`: nothing to refuse).
    @inline(__always)
    @discardableResult
    public func learn(_ mac: UInt64, vlan: UInt16 = 0, port: UInt16, now: UInt32) -> Verdict {
        learn(address: LearningTable.address(mac, vlan: vlan), port: port, now: now)
    }

    /// Learns an address (`address(_:vlan:)`) on `port`.
    @inline(__always)
    @discardableResult
    public func learn(address: UInt64, port: UInt16, now: UInt32) -> Verdict {
        if address & LearningTable.groupBit != 0 || port == LearningTable.none { return .learned }
        let key = LearningTable.key(address)
        let (b, home) = locate(key)
        if let e = find(key, b, home) {
            if e.pointee.port == port && !isExpired(e.pointee.seen, now) {
                if e.pointee.seen != now { e.pointee.seen = now }
                return .learned
            }
            return update(e, port: port, now: now)
        }
        return insert(b, home: home, key: key, port: port, now: now)
    }

    @inline(__always)
    func atLimit(_ port: UInt16) -> Bool {
        Int(port) < maxPorts && portLimits[Int(port)] != 0 && portEntries[Int(port)] >= portLimits[Int(port)]
    }

    @inline(__always)
    func countEntry(_ port: UInt16, _ delta: Int32) {
        if Int(port) < maxPorts {
            portEntries[Int(port)] = UInt32(bitPattern: Int32(bitPattern: portEntries[Int(port)]) &+ delta)
        }
    }

    /// Present entry on another port, or expired: out of line.
    @inline(never)
    func update(_ e: UnsafeMutablePointer<Entry>, port: UInt16, now: UInt32) -> Verdict {
        if e.pointee.isStatic {
            guard e.pointee.port == port else { return .staticElsewhere }
            e.pointee.seen = now
            return .learned
        }
        if e.pointee.port != port {
            if atLimit(port) { return .limitReached }
            countEntry(e.pointee.port, -1)
            countEntry(port, 1)
        }
        let kind: EventLog.Kind
        if isExpired(e.pointee.seen, now) {
            aged &+= 1
            learned &+= 1
            kind = .learned
        } else {
            moved &+= 1
            kind = .moved
        }
        e.pointee.port = port
        e.pointee.seen = now
        record(kind, e.pointee, now)
        return .learned
    }

    func record(_ kind: EventLog.Kind, _ e: Entry, _ now: UInt32) {
        noteChange(e.key)
        events.record(
            kind, port: e.port, vlan: UInt16((e.key &>> LearningTable.vlanShift) & 0xfff), mac: e.key & LearningTable.macMask,
            time: now)
    }

    /// New MAC: the first empty slot in the order home, home^1, ..., home^7; in a full bucket the
    /// slot of the oldest dynamic entry — reused if expired (`aged`), evicted otherwise (`evicted`).
    /// A bucket of 8 static entries learns nothing more (`.limitReached`).
    @inline(never)
    func insert(_ b: UnsafeMutablePointer<Entry>, home: Int, key: UInt64, port: UInt16, now: UInt32) -> Verdict {
        if atLimit(port) { return .limitReached }
        guard let slot = freeSlot(b, home: home, now: now) else { return .limitReached }
        learned &+= 1
        countEntry(port, 1)
        b[slot] = Entry(key: key, port: port, flags: 0, seen: now)
        record(.learned, b[slot], now)
        return .learned
    }

    /// An empty slot of the bucket, else the oldest dynamic entry's (counted `aged` or `evicted`
    /// and taken off its port's count); nil when all 8 are static.
    func freeSlot(_ b: UnsafeMutablePointer<Entry>, home: Int, now: UInt32) -> Int? {
        var victim = -1
        var oldestAge = Int32.min
        for i in 0..<LearningTable.entriesPerBucket {
            let j = home ^ i  // home, its partner, then the rest of the bucket
            if b[j].key == 0 { count &+= 1; return j }
            if b[j].isStatic { continue }
            let age = Int32(bitPattern: now &- b[j].seen)
            if age > oldestAge { oldestAge = age; victim = j }
        }
        guard victim >= 0 else { return nil }
        if oldestAge >= agingLimit { aged &+= 1 } else { evicted &+= 1 }
        record(oldestAge >= agingLimit ? .expired : .evicted, b[victim], now)
        countEntry(b[victim].port, -1)
        return victim
    }

    // MARK: - Static entries and limits (control plane, same thread)

    /// Adds or replaces a static entry for (VLAN, MAC) on `port` (a dynamic entry for it is
    /// replaced). False when the MAC is a group address or its bucket holds 8 static entries.
    @discardableResult
    public func addStatic(_ mac: UInt64, vlan: UInt16 = 0, port: UInt16, now: UInt32) -> Bool {
        guard mac & LearningTable.groupBit == 0, mac & LearningTable.macMask != 0, port != LearningTable.none else {
            return false
        }
        let key = LearningTable.key(mac, vlan)
        let (b, home) = locate(key)
        if let e = find(key, b, home) {
            if !e.pointee.isStatic { countEntry(e.pointee.port, -1) }
            e.pointee = Entry(key: key, port: port, flags: LearningTable.staticFlag, seen: now)
            noteChange(key)
            return true
        }
        guard let slot = freeSlot(b, home: home, now: now) else { return false }
        b[slot] = Entry(key: key, port: port, flags: LearningTable.staticFlag, seen: now)
        noteChange(key)
        return true
    }

    /// Removes the static entry for (VLAN, MAC); false when there is none.
    @discardableResult
    public func removeStatic(_ mac: UInt64, vlan: UInt16 = 0) -> Bool {
        let key = LearningTable.key(mac, vlan)
        let (b, home) = locate(key)
        guard let e = find(key, b, home), e.pointee.isStatic else { return false }
        e.pointee.key = 0
        count -= 1
        noteChange(key)
        return true
    }

    /// Limits the dynamic entries of `port` (0: no limit). Entries it already has stay.
    public func setLimit(port: Int, _ limit: UInt32) {
        if port >= 0 && port < maxPorts { portLimits[port] = limit }
    }

    /// Dynamic entries of `port` (live or expired-not-yet-swept).
    public func entryCount(port: Int) -> Int {
        port >= 0 && port < maxPorts ? Int(portEntries[port]) : 0
    }

    // MARK: - Control plane (same thread)

    /// Removes every expired entry; returns how many (also added to `aged`).
    @discardableResult
    public func expire(now: UInt32) -> Int {
        sweepCursor = 0
        return sweep(from: 0, buckets: bucketCount, now: now)
    }

    /// Incremental aging: sweeps the next `buckets` buckets (wrapping), remembering where it
    /// stopped. Calling it with bucketCount / N buckets every T seconds ages the whole table
    /// every N * T seconds without a long pause on the forwarding thread.
    @discardableResult
    public func expire(now: UInt32, buckets: Int) -> Int {
        var left = min(max(buckets, 0), bucketCount)
        var removed = 0
        while left > 0 {
            let n = min(left, bucketCount - sweepCursor)
            removed += sweep(from: sweepCursor, buckets: n, now: now)
            sweepCursor += n
            if sweepCursor == bucketCount { sweepCursor = 0 }
            left -= n
        }
        return removed
    }

    private func sweep(from first: Int, buckets n: Int, now: UInt32) -> Int {
        var removed = 0
        let start = first &<< LearningTable.bucketShift
        let end = (first + n) &<< LearningTable.bucketShift
        for i in start..<end where table[i].key != 0 && !table[i].isStatic && isExpired(table[i].seen, now) {
            record(.expired, table[i], now)
            table[i].key = 0
            countEntry(table[i].port, -1)
            removed += 1
        }
        count -= removed
        aged &+= UInt64(removed)
        return removed
    }

    /// Removes the dynamic entries (with `includingStatic`, all of them) of every port (port nil)
    /// or of one port; returns how many were removed. `fdb flush` keeps static entries, as Linux
    /// does; a port that goes away takes all of its entries with it.
    @discardableResult
    public func flush(port: UInt16? = nil, includingStatic: Bool = false) -> Int {
        var removed = 0
        for i in 0..<slotCount where table[i].key != 0 {
            if let p = port, table[i].port != p { continue }
            if table[i].isStatic {
                guard includingStatic else { continue }
            } else {
                countEntry(table[i].port, -1)
            }
            noteChange(table[i].key)
            table[i].key = 0
            removed += 1
        }
        count -= removed
        return removed
    }

    /// Live entries (static ones always) sorted by VLAN and MAC, with their age in seconds.
    public func entries(now: UInt32) -> [Record] {
        var out: [Record] = []
        out.reserveCapacity(count)
        appendEntries(slots: 0..<slotCount, now: now, to: &out)
        out.sort { ($0.vlan, $0.mac) < ($1.vlan, $1.mac) }
        return out
    }

    /// The live entries among `slots` (clamped to the table), unsorted: a caller that must not hold
    /// the forwarding thread for a whole large table copies it a slice at a time.
    public func appendEntries(slots: Range<Int>, now: UInt32, to out: inout [Record]) {
        for i in slots.clamped(to: 0..<slotCount) where table[i].key != 0 {
            let e = table[i]
            if !e.isStatic && isExpired(e.seen, now) { continue }
            let age = e.isStatic ? 0 : Int32(bitPattern: now &- e.seen)
            out.append(
                Record(
                    mac: e.key & LearningTable.macMask, vlan: UInt16((e.key &>> LearningTable.vlanShift) & 0xfff), port: e.port,
                    age: UInt32(max(age, 0)), isStatic: e.isStatic))
        }
    }

    static func splitmix64(_ s: inout UInt64) -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
