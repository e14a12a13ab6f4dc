/*
 * UserRing — the application side of a ring (netmap's nm_ring_* helpers), plus the uniform port
 * contract every kernel adapter implements.
 *
 * Everything that plugs into a bridge looks the same to the forwarding loop: a tx ring the port
 * fills (frames entering the switch) and an rx ring the switch fills (frames leaving through the
 * port). An application drives those rings from its own process; a kernel adapter (TAP,
 * AF_PACKET) drives them from inside the bridge's loop, as a per-batch call. Either way the
 * adapter is on the *user* side: it writes tx [head, tail) and advances head, reads rx
 * [head, tail) and advances head, exactly as a netmap application would (Snabb's "one small
 * uniform port contract").
 */
import CSwale

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

/// A kernel interface wrapped into a port (netmap's bwrap). Called from the bridge's forwarding
/// thread once per batch, never per frame.
public protocol PortAdapter: AnyObject {
    /// Readable when the kernel has frames for the switch (added to the bridge's epoll set), or -1.
    var pollFD: Int32 { get }
    /// Moves up to the ring's free space of frames from the kernel into `tx` (user side), advancing
    /// its head. Returns frames moved.
    func receive(into tx: UserRing) -> Int
    /// Hands the frames waiting in `rx` (user side) to the kernel and releases what it took
    /// (usually `transmitRing`). Returns frames sent.
    func transmit(from rx: UserRing) -> Int
    /// Hands a prefix of `frames` to the kernel: `consumed` frames are done with (sent, or refused
    /// by the kernel and counted), `sent` of them went out. The rest stay with the caller: the
    /// kernel cannot take more now.
    func transmit(_ frames: OutFrames) -> (consumed: Int, sent: Int)
    /// Largest frame (without vnet header) the interface takes; larger ones are dropped and counted.
    var mtu: Int { get }
    /// Whether frames may carry a virtio-net header (SWALE_NS_VNET_HDR) toward this port.
    var acceptsVnetHeader: Bool { get }
    /// Adapter-level counters for `swalectl stats`.
    var counters: [String: UInt64] { get }
    /// The poll fd reported an error (link down or gone): read and clear it so polling calms down.
    func handlePollError()
    func close()
}

extension PortAdapter {
    public func handlePollError() {}
}

extension UserRing {
    public init(pointer: RingPointer, bufBase: UnsafeMutableRawPointer, bufSize: Int, bufLimit: UInt32) {
        self.ptr = pointer
        self.bufBase = bufBase
        self.bufSize = bufSize
        self.bufLimit = bufLimit
    }
}
