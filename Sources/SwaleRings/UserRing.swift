/*
 * UserRing — the application side of a ring (netmap's nm_ring_* helpers).
 *
 * Whoever is on the *user* side of a ring — an application in its own process, or a port backend
 * (TAP, AF_PACKET) called from the forwarding thread — writes tx [head, tail) and advances head,
 * reads rx [head, tail) and advances head, exactly as a netmap application would.
 *
 * Whoever else maps the region (the switch, a pipe peer, another pipe of the same parent) can write
 * anything into it, so the user side reads each shared value once and checks it where it is used:
 * `window()` takes head and tail in one read each (both must be below num_slots), and `read(_:)`
 * takes a slot's buf_idx, len and flags in one 8-byte load (buf_idx must name a mapped buffer, len
 * must fit in it). Callers then work on those locals only; nothing checked is read again.
 */
import CSwaleABI
import CSwaleSys

public struct UserRing {
    public let ptr: RingPointer
    public let bufBase: UnsafeMutableRawPointer
    public let bufSize: Int
    /// Buffer indices must be below this (blocks mapped).
    public var bufLimit: UInt32

    public init(ring raw: UnsafeMutableRawPointer, region: Region) {
        ptr = RingPointer(raw)
        bufBase = region.base
        bufSize = region.bufSize
        bufLimit = region.blockLimit
    }

    @inlinable @inline(__always) public var numSlots: UInt32 { ptr.numSlots }
    /// The shared head, read once; an out-of-range (scribbled) head reads as 0 so that no caller
    /// indexes outside the ring. Prefer `window()`, which pairs head with the tail it was read with.
    @inlinable @inline(__always) public var head: UInt32 {
        let h = ptr.loadHead()
        return h < ptr.numSlots ? h : 0
    }

    /// head and the slots available from it (tx: free to fill; rx: frames to read), from one read
    /// of each index; nil if either is out of range (someone scribbled on the ring).
    @inlinable @inline(__always)
    public func window() -> RingWindow? {
        let n = ptr.numSlots
        let h = ptr.loadHead(), t = ptr.loadTail()
        guard _fastPath(h < n && t < n) else { return nil }
        return RingWindow(head: h, count: RingMath.distance(h, t, n))
    }

    /// Slots available to the user: on tx, free slots to fill; on rx, frames to read (0 if the
    /// indices are out of range).
    @inlinable @inline(__always)
    public func space() -> UInt32 { window()?.count ?? 0 }

    @inlinable @inline(__always)
    public func slot(_ i: UInt32) -> UnsafeMutablePointer<swale_slot> { ptr.slots + Int(i) }

    /// The buffer of a slot, or nil if its index is out of bounds (a scribbled ring).
    @inlinable @inline(__always)
    public func buffer(_ s: UnsafeMutablePointer<swale_slot>) -> UnsafeMutableRawPointer? {
        let idx = s.pointee.buf_idx
        guard idx >= BlockAllocator.reserved, idx < bufLimit else { return nil }
        return bufBase + Int(idx) &* bufSize
    }

    /// Slot i read once: buf_idx, len and flags come from one 8-byte load (they are the first eight
    /// bytes of netmap_slot, little-endian), so a concurrent writer cannot make them disagree.
    /// An i outside the ring gives an invalid view rather than a read outside it.
    @inlinable @inline(__always)
    public func read(_ i: UInt32) -> SlotView {
        guard _fastPath(i < ptr.numSlots) else { return SlotView(bufIndex: .max, len: 0, flags: 0, buffer: nil) }
        let word = swale_load_relaxed_u64(UnsafeRawPointer(ptr.slots + Int(i)).assumingMemoryBound(to: UInt64.self))
        return check(
            bufIndex: UInt32(truncatingIfNeeded: word), len: UInt16(truncatingIfNeeded: word >> 32),
            flags: UInt16(truncatingIfNeeded: word >> 48))
    }

    /// Validates values already read (also after the mapping grew: the same values, a new limit).
    @inlinable @inline(__always)
    public func check(bufIndex idx: UInt32, len: UInt16, flags: UInt16) -> SlotView {
        let ok = idx >= BlockAllocator.reserved && idx < bufLimit && Int(len) <= bufSize
        return SlotView(bufIndex: idx, len: len, flags: flags, buffer: ok ? bufBase + Int(idx) &* bufSize : nil)
    }

    /// Publishes head = cur = i (submit on tx, release on rx).
    @inlinable @inline(__always)
    public func advance(to i: UInt32) {
        ptr.storeCur(i)
        ptr.storeHead(i)
    }

    @inlinable @inline(__always)
    public func next(_ i: UInt32) -> UInt32 { RingMath.next(i, ptr.numSlots) }

    /// Asks for the first cache line of slot i's buffer ahead of use. Worth it a few slots before a
    /// frame is read: a pipe's buffers come in no order the hardware prefetcher could follow, and
    /// each was just written by the other side's core. Checked like a read; never faults.
    @inlinable @inline(__always)
    public func prefetch(_ i: UInt32) {
        guard i < ptr.numSlots else { return }
        let idx = (ptr.slots + Int(i)).pointee.buf_idx
        if idx < bufLimit { swale_prefetch(bufBase + Int(idx) &* bufSize) }
    }
}

/// The part of a ring the user may work on, as read at one moment: slots head, head+1, ... (count of them).
public struct RingWindow: Equatable {
    public let head: UInt32
    public let count: UInt32
    @inlinable public init(head: UInt32, count: UInt32) { self.head = head; self.count = count }
}

/// One slot as read once. `buffer` is nil when bufIndex names no mapped buffer or len exceeds the
/// buffer size; the raw values stay available for reporting.
public struct SlotView {
    public let bufIndex: UInt32
    public let len: UInt16
    public let flags: UInt16
    public let buffer: UnsafeMutableRawPointer?

    @inlinable public init(bufIndex: UInt32, len: UInt16, flags: UInt16, buffer: UnsafeMutableRawPointer?) {
        self.bufIndex = bufIndex; self.len = len; self.flags = flags; self.buffer = buffer
    }

    @inlinable public var isValid: Bool { buffer != nil }
    @inlinable public var moreFragments: Bool { flags & UInt16(SWALE_NS_MOREFRAG) != 0 }
    /// The frame bytes (nil for an invalid slot).
    @inlinable public var bytes: UnsafeRawBufferPointer? {
        guard let buffer else { return nil }
        return UnsafeRawBufferPointer(start: buffer, count: Int(len))
    }
}

extension UserRing {
    public init(pointer: RingPointer, bufBase: UnsafeMutableRawPointer, bufSize: Int, bufLimit: UInt32) {
        self.ptr = pointer
        self.bufBase = bufBase
        self.bufSize = bufSize
        self.bufLimit = bufLimit
    }
}
