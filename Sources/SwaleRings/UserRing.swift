/*
 * UserRing — the application side of a ring (netmap's nm_ring_* helpers).
 *
 * Whoever is on the *user* side of a ring — an application in its own process, or a port backend
 * (TAP, AF_PACKET) called from the forwarding thread — writes tx [head, tail) and advances head,
 * reads rx [head, tail) and advances head, exactly as a netmap application would. Every buffer
 * index read from a slot is checked against the mapped region before it is turned into a pointer.
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
    @inlinable @inline(__always) public var head: UInt32 { ptr.headPtr.pointee }

    /// Slots available to the user: on tx, free slots to fill; on rx, frames to read.
    @inlinable @inline(__always)
    public func space() -> UInt32 {
        // Whoever else maps the region may have scribbled on the indices: out of range means none.
        let n = ptr.numSlots
        let h = ptr.headPtr.pointee, t = ptr.loadTail()
        guard h < n, t < n else { return 0 }
        return RingMath.distance(h, t, n)
    }

    @inlinable @inline(__always)
    public func slot(_ i: UInt32) -> UnsafeMutablePointer<swale_slot> { ptr.slots + Int(i) }

    /// The buffer of a slot, or nil if its index is out of bounds (a scribbled ring).
    @inlinable @inline(__always)
    public func buffer(_ s: UnsafeMutablePointer<swale_slot>) -> UnsafeMutableRawPointer? {
        let idx = s.pointee.buf_idx
        guard idx >= BlockAllocator.reserved, idx < bufLimit else { return nil }
        return bufBase + Int(idx) &* bufSize
    }

    /// Publishes head = cur = i (submit on tx, release on rx).
    @inlinable @inline(__always)
    public func advance(to i: UInt32) {
        ptr.storeCur(i)
        ptr.storeHead(i)
    }

    @inlinable @inline(__always)
    public func next(_ i: UInt32) -> UInt32 { RingMath.next(i, ptr.numSlots) }
}

extension UserRing {
    public init(pointer: RingPointer, bufBase: UnsafeMutableRawPointer, bufSize: Int, bufLimit: UInt32) {
        self.ptr = pointer
        self.bufBase = bufBase
        self.bufSize = bufSize
        self.bufLimit = bufLimit
    }
}
