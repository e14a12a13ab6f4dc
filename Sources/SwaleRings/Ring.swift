/*
 * Rings — netmap's index rules, and the "kernel side" of a ring done in user space.
 *
 * A ring of n slots has three shared indices: head and cur belong to the application, tail to the
 * other side (the switch, or the peer of a pipe). On a tx ring the application fills [head, tail)
 * and advances head to submit; on an rx ring the application reads [head, tail) and advances head
 * to release. One slot always stays empty, so head == tail means "nothing" on rx and "full" on tx.
 *
 * The other side keeps its own copies of the indices it trusts (hwcur: the first slot not yet
 * consumed or released; hwtail: the tail it last published) in private memory, never in the
 * shared ring. Every sync reads head and cur once and checks them against those private copies
 * the way netmap's nm_txsync_prologue / nm_rxsync_prologue do: the application can only move head
 * forward, and never past tail. A ring that breaks the rules is reset to the last good state and
 * counted (netmap_ring_reinit); nothing the application wrote is used unchecked.
 */
import CSwaleABI
import CSwaleSys

public enum RingMath {
    @inlinable @inline(__always)
    public static func next(_ i: UInt32, _ n: UInt32) -> UInt32 { i &+ 1 == n ? 0 : i &+ 1 }

    @inlinable @inline(__always)
    public static func prev(_ i: UInt32, _ n: UInt32) -> UInt32 { i == 0 ? n &- 1 : i &- 1 }

    @inlinable @inline(__always)
    public static func add(_ i: UInt32, _ k: UInt32, _ n: UInt32) -> UInt32 {
        let s = i &+ k
        return s >= n ? s &- n : s
    }

    /// Slots from a to b going forward (both < n).
    @inlinable @inline(__always)
    public static func distance(_ a: UInt32, _ b: UInt32, _ n: UInt32) -> UInt32 {
        b >= a ? b &- a : b &+ n &- a
    }

    /// nm_*sync_prologue's rule: head and cur must lie in [hwcur, hwtail] going forward, cur not before head.
    @inlinable @inline(__always)
    public static func validUserIndices(head: UInt32, cur: UInt32, hwcur: UInt32, hwtail: UInt32, n: UInt32) -> Bool {
        guard head < n, cur < n else { return false }
        let span = distance(hwcur, hwtail, n)
        let h = distance(hwcur, head, n)
        let c = distance(hwcur, cur, n)
        return h <= span && c <= span && c >= h
    }
}

/// Pointers to a ring in mapped memory, with netmap's accessors.
public struct RingPointer {
    public let ring: UnsafeMutablePointer<swale_ring>
    public let slots: UnsafeMutablePointer<swale_slot>
    public let numSlots: UInt32

    @inlinable @inline(__always)
    public init(_ raw: UnsafeMutableRawPointer) {
        ring = raw.assumingMemoryBound(to: swale_ring.self)
        slots = (raw + Int(SWALE_RING_SLOT_OFFSET)).assumingMemoryBound(to: swale_slot.self)
        numSlots = ring.pointee.num_slots
    }

    /// A ring whose size comes from a trusted source (the service's reply), not from shared memory.
    @inlinable
    public init(_ raw: UnsafeMutableRawPointer, slots n: Int) {
        ring = raw.assumingMemoryBound(to: swale_ring.self)
        slots = (raw + Int(SWALE_RING_SLOT_OFFSET)).assumingMemoryBound(to: swale_slot.self)
        numSlots = UInt32(truncatingIfNeeded: n)
    }

    @inlinable @inline(__always) public var headPtr: UnsafeMutablePointer<UInt32> {
        UnsafeMutableRawPointer(ring).advanced(by: Int(SWALE_RING_HEAD_OFFSET)).assumingMemoryBound(to: UInt32.self)
    }
    @inlinable @inline(__always) public var curPtr: UnsafeMutablePointer<UInt32> {
        UnsafeMutableRawPointer(ring).advanced(by: Int(SWALE_RING_CUR_OFFSET)).assumingMemoryBound(to: UInt32.self)
    }
    @inlinable @inline(__always) public var tailPtr: UnsafeMutablePointer<UInt32> {
        UnsafeMutableRawPointer(ring).advanced(by: Int(SWALE_RING_TAIL_OFFSET)).assumingMemoryBound(to: UInt32.self)
    }

    @inlinable @inline(__always) public func loadHead() -> UInt32 { swale_load_acquire(headPtr) }
    @inlinable @inline(__always) public func loadCur() -> UInt32 { swale_load_acquire(curPtr) }
    @inlinable @inline(__always) public func loadTail() -> UInt32 { swale_load_acquire(tailPtr) }
    @inlinable @inline(__always) public func storeHead(_ v: UInt32) { swale_store_release(headPtr, v) }
    @inlinable @inline(__always) public func storeCur(_ v: UInt32) { swale_store_release(curPtr, v) }
    @inlinable @inline(__always) public func storeTail(_ v: UInt32) { swale_store_release(tailPtr, v) }

    /// Bytes a ring of n slots occupies.
    public static func bytes(slots n: Int) -> Int { Int(SWALE_RING_SLOT_OFFSET) + Int(SWALE_SLOT_SIZE) * n }
}

/// The non-application side of one ring: private hwcur/hwtail plus validation.
public struct KRing {
    public let ptr: RingPointer
    public let n: UInt32
    public var hwcur: UInt32
    public var hwtail: UInt32
    /// Times the application's indices broke the rules and the ring was reset.
    public var resets: UInt64 = 0

    /// `isTx`: a tx ring starts with n-1 free slots for the application; an rx ring starts empty.
    public init(_ ptr: RingPointer, isTx: Bool) {
        self.ptr = ptr
        self.n = ptr.numSlots
        self.hwcur = 0
        self.hwtail = isTx ? ptr.numSlots &- 1 : 0
    }

    /// Reads head/cur once and validates them. Returns the new head, or nil after a reset.
    @inlinable @inline(__always)
    public mutating func validatedHead() -> UInt32? {
        let head = ptr.loadHead()
        let cur = ptr.loadCur()
        if _fastPath(RingMath.validUserIndices(head: head, cur: cur, hwcur: hwcur, hwtail: hwtail, n: n)) {
            return head
        }
        reset()
        return nil
    }

    /// netmap_ring_reinit: put the shared indices back to the last good state.
    public mutating func reset() {
        resets &+= 1
        ptr.storeHead(hwcur)
        ptr.storeCur(hwcur)
        ptr.storeTail(hwtail)
    }

    // MARK: tx side (the application submits, we consume)

    /// Slots submitted and not yet consumed: [hwcur, head). 0 after a reset.
    @inlinable @inline(__always)
    public mutating func pendingTx() -> UInt32 {
        guard let head = validatedHead() else { return 0 }
        return RingMath.distance(hwcur, head, n)
    }

    /// Marks k slots consumed; `available` is how many slots past hwcur the application may fill
    /// next (n-1 for a switch port: every consumed slot is free at once).
    @inlinable @inline(__always)
    public mutating func consumeTx(_ k: UInt32, available: UInt32) {
        hwcur = RingMath.add(hwcur, k, n)
        hwtail = RingMath.add(hwcur, min(available, n &- 1), n)
        ptr.storeTail(hwtail)
    }

    // MARK: rx side (we produce, the application releases)

    /// Reads what the application released and returns the free room: slots [hwtail, hwcur-1).
    @inlinable @inline(__always)
    public mutating func rxRoom() -> UInt32 {
        if let head = validatedHead() { hwcur = head }
        return RingMath.distance(hwtail, RingMath.prev(hwcur, n), n)
    }

    /// Publishes k slots filled at hwtail.
    @inlinable @inline(__always)
    public mutating func publishRx(_ k: UInt32) {
        hwtail = RingMath.add(hwtail, k, n)
        ptr.storeTail(hwtail)
    }

    @inlinable @inline(__always)
    public func slot(_ i: UInt32) -> UnsafeMutablePointer<swale_slot> { ptr.slots + Int(i) }
}
