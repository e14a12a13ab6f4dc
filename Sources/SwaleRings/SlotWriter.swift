/*
 * SlotWriter — the one way a frame is laid across consecutive slots of a ring.
 *
 * A frame larger than a buffer spans slots: every slot but the last is full (len = buffer size)
 * and carries SWALE_NS_MOREFRAG, the last carries the rest with no flag, and the first may carry
 * frame-level flags (SWALE_NS_VNET_HDR). The writer starts at a slot, reads each slot's buffer
 * index once and checks it against the mapped blocks before turning it into a pointer (a ring a
 * client scribbled on makes `ok` false, never a write outside the region), copies bytes in
 * (`write`) or accounts bytes a system call already put into the buffers (`skip`), and `finish`
 * sets the last slot and the first slot's flags. Room is the caller's business: it reserves
 * ceil(bytes / buffer size) slots before writing. `headroom` zero bytes go first (the virtio-net
 * header an application port with headers expects in front of a frame that has none).
 */
import CSwaleABI
import Glibc

public enum SlotFlags {
    public static let moreFrag = UInt16(SWALE_NS_MOREFRAG)
    public static let vnetHdr = UInt16(SWALE_NS_VNET_HDR)
    public static let noLearn = UInt16(SWALE_NS_NO_LEARN)
    public static let bufChanged = UInt16(SWALE_NS_BUF_CHANGED)
}

public struct SlotWriter {
    @usableFromInline let slots: UnsafeMutablePointer<swale_slot>
    @usableFromInline let numSlots: UInt32
    @usableFromInline let bufBase: UnsafeMutableRawPointer
    @usableFromInline let bufSize: Int
    @usableFromInline let bufLimit: UInt32
    /// The frame's first slot.
    public let start: UInt32
    /// The slot being filled.
    public var index: UInt32
    @usableFromInline var buf: UnsafeMutableRawPointer?
    @usableFromInline var off = 0
    /// Slots touched so far (the current one included).
    public var used: UInt32 = 1
    /// False once a slot held a buffer index outside the region: nothing more is written.
    public var ok: Bool

    @inlinable @inline(__always)
    public init(
        slots: UnsafeMutablePointer<swale_slot>, numSlots: UInt32, bufBase: UnsafeMutableRawPointer,
        bufSize: Int, bufLimit: UInt32, at index: UInt32, headroom: Int = 0
    ) {
        self.slots = slots
        self.numSlots = numSlots
        self.bufBase = bufBase
        self.bufSize = bufSize
        self.bufLimit = bufLimit
        self.start = index
        self.index = index
        self.buf = nil
        self.ok = true
        buf = buffer(index)
        ok = buf != nil
        if headroom > 0, let b = buf {
            memset(b, 0, headroom)
            off = headroom
        }
    }

    /// A writer on the user side of a ring (`bufSize` may be smaller than the ring's buffers).
    @inlinable @inline(__always)
    public init(_ ring: UserRing, at index: UInt32, bufSize: Int? = nil) {
        self.init(
            slots: ring.ptr.slots, numSlots: ring.numSlots, bufBase: ring.bufBase, bufSize: bufSize ?? ring.bufSize,
            bufLimit: ring.bufLimit, at: index)
    }

    /// The buffer of slot i (one read of its index), or nil if the index is out of bounds.
    @inlinable @inline(__always)
    public func buffer(_ i: UInt32) -> UnsafeMutableRawPointer? {
        let idx = slots[Int(i)].buf_idx
        guard idx >= BlockAllocator.reserved, idx < bufLimit else { return nil }
        return bufBase + Int(idx) &* bufSize
    }

    /// Copies n bytes in, moving to the next slot whenever a buffer is full.
    @inlinable @inline(__always)
    public mutating func write(_ src: UnsafeRawPointer, _ n: Int) { put(src, n) }

    /// Accounts n bytes already in the buffers (a readv/recvmsg wrote them): lengths only.
    @inlinable @inline(__always)
    public mutating func skip(_ n: Int) { put(nil, n) }

    @inlinable @inline(__always)
    public mutating func put(_ from: UnsafeRawPointer?, _ n: Int) {
        var src = from
        var left = n
        while left > 0 && ok {
            if off == bufSize {
                slots[Int(index)].len = UInt16(truncatingIfNeeded: off)
                slots[Int(index)].flags = SlotFlags.moreFrag
                index = RingMath.next(index, numSlots)
                buf = buffer(index)
                if buf == nil { ok = false; return }
                off = 0
                used &+= 1
            }
            let c = min(left, bufSize &- off)
            if let s = src { memcpy(buf! + off, s, c); src = s + c }
            off &+= c
            left &-= c
        }
    }

    /// Sets the last slot's length (no MOREFRAG) and adds `firstFlags` to the first slot; returns
    /// the slots used. The index after the frame is `RingMath.add(start, used, n)`.
    @inlinable @inline(__always) @discardableResult
    public mutating func finish(firstFlags: UInt16 = 0) -> UInt32 {
        slots[Int(index)].len = UInt16(truncatingIfNeeded: off)
        slots[Int(index)].flags = 0
        slots[Int(start)].flags |= firstFlags
        return used
    }

    /// A frame that fits one buffer, into slot i: one read of the slot's buffer index, one copy,
    /// its length and flags. False, with nothing written, if the index is outside the region.
    /// The same rule as a writer of one slot, without the writer's state.
    @inlinable @inline(__always)
    public static func writeOne(
        slots: UnsafeMutablePointer<swale_slot>, bufBase: UnsafeMutableRawPointer, bufSize: Int, bufLimit: UInt32,
        at i: UInt32, from src: UnsafeRawPointer, count: Int, flags: UInt16
    ) -> Bool {
        let slot = slots + Int(i)
        let idx = slot.pointee.buf_idx  // read once
        guard idx >= BlockAllocator.reserved, idx < bufLimit, count <= bufSize else { return false }
        FrameCopy.copy(bufBase + Int(idx) &* bufSize, src, count: count)
        slot.pointee.len = UInt16(truncatingIfNeeded: count)
        slot.pointee.flags = flags
        return true
    }
}
