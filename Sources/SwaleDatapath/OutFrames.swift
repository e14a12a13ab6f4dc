/*
 * OutFrames — a batch of frames for a kernel adapter to transmit, described as (pointer, length)
 * segments in buffers the caller owns until the call returns.
 *
 * Two producers use it:
 *   - the forwarding engine, for frames still sitting in the *source* port's tx slots ("direct
 *     transmit"): when the destination is a kernel port with nothing queued, the frames go to the
 *     kernel straight from where they are, with no copy into the destination's rx ring;
 *   - an adapter draining its own rx ring (`transmitRing`), for the frames the switch queued there
 *     when the kernel could not take them at once.
 * The adapter's `transmit(_:)` hands a prefix of the batch to the kernel and returns how many
 * frames it consumed (sent, or dropped and counted); the rest stay with the caller (the kernel
 * said "later": EAGAIN).
 *
 * A frame with `vnet` set begins with the 12-byte virtio_net_hdr_v1 in its first segment (which
 * is at least that long). A frame the ring gatherer found broken (a bad buffer index, shorter than
 * an Ethernet header) has payload -1: the adapter counts and skips it. A batch is non-copyable: its
 * storage is allocated once when its owner (the engine, an adapter) creates it and freed when the
 * owner goes; backends only borrow it, so no copy can outlive or double-free it, and building a
 * batch allocates nothing.
 */
import CSwaleABI
import CSwaleSys
import Glibc
import SwaleRings

public struct OutFrames: ~Copyable {
    public static let frameCapacity = 256
    public static let segmentCapacity = 2048
    /// Every frame's segments, in order.
    public let segments: UnsafeMutablePointer<iovec>
    /// Frame k's segments are segments[firstSegment[k] ..< firstSegment[k + 1]].
    public let firstSegment: UnsafeMutablePointer<Int32>
    /// Frame k starts with a virtio-net header.
    public let vnet: UnsafeMutablePointer<Bool>
    /// Frame k's bytes without the virtio-net header; -1 for a broken frame.
    public let payload: UnsafeMutablePointer<Int32>
    /// Ring index just past frame k (set by `gather`), to release exactly what was consumed.
    public let ringEnd: UnsafeMutablePointer<UInt32>
    public private(set) var count = 0
    public private(set) var segmentCount = 0

    /// Allocates the storage once (the owner keeps one batch for its lifetime); freed with it.
    public init() {
        segments = .allocate(capacity: Self.segmentCapacity)
        firstSegment = .allocate(capacity: Self.frameCapacity + 1)
        vnet = .allocate(capacity: Self.frameCapacity)
        payload = .allocate(capacity: Self.frameCapacity)
        ringEnd = .allocate(capacity: Self.frameCapacity)
        segments.initialize(repeating: iovec(), count: Self.segmentCapacity)
        firstSegment.initialize(repeating: 0, count: Self.frameCapacity + 1)
        vnet.initialize(repeating: false, count: Self.frameCapacity)
        payload.initialize(repeating: 0, count: Self.frameCapacity)
        ringEnd.initialize(repeating: 0, count: Self.frameCapacity)
    }

    deinit {
        segments.deallocate(); firstSegment.deallocate(); vnet.deallocate(); payload.deallocate(); ringEnd.deallocate()
    }

    @inline(__always)
    public mutating func reset() {
        count = 0
        segmentCount = 0
        firstSegment[0] = 0
    }

    @inline(__always) public var isFull: Bool { count == Self.frameCapacity }

    /// Appends one segment of the frame being built; false if the batch has no segment left.
    @inline(__always)
    public mutating func addSegment(_ base: UnsafeMutableRawPointer, _ length: Int) -> Bool {
        guard segmentCount < Self.segmentCapacity else { return false }
        segments[segmentCount] = iovec(iov_base: base, iov_len: length)
        segmentCount &+= 1
        return true
    }

    /// Ends the frame being built (its segments are those added since the previous frame).
    @inline(__always)
    public mutating func commitFrame(vnet hasVnet: Bool, payload bytes: Int) {
        vnet[count] = hasVnet
        payload[count] = Int32(truncatingIfNeeded: bytes)
        count &+= 1
        firstSegment[count] = Int32(truncatingIfNeeded: segmentCount)
    }

    /// Forgets the segments added since the last committed frame.
    @inline(__always)
    public mutating func abandonFrame() {
        segmentCount = Int(firstSegment[count])
    }

    /// Whether frame k is a GSO frame (its header's gso_type is not NONE).
    @inlinable @inline(__always)
    public func isGSO(_ k: Int) -> Bool {
        vnet[k] && VnetHeader(segments[Int(firstSegment[k])].iov_base!).isGSO
    }

    /// Describes whole frames of rx [start, tail) until the batch is full, setting `ringEnd`. Returns
    /// the index after the last frame taken. A frame not yet complete (MOREFRAG up to the tail) is
    /// left for later; a broken one is taken with payload -1 (consumed and counted, never sent).
    public mutating func gather(from rx: UserRing, at start: UInt32, tail: UInt32) -> UInt32 {
        reset()
        let bs = rx.bufSize
        var i = start
        while i != tail && count < Self.frameCapacity {
            let frameStart = i
            let first = rx.slot(i)
            let hasVnet = first.pointee.flags & SlotFlags.vnetHdr != 0
            var total = 0
            var broken = hasVnet && Int(first.pointee.len) < VnetHeader.size
            var outOfSegments = false
            while true {
                let s = rx.slot(i)
                if let b = rx.buffer(s) {
                    let l = min(Int(s.pointee.len), bs)
                    if !addSegment(b, l) { outOfSegments = true }
                    total &+= l
                } else {
                    broken = true
                }
                let more = s.pointee.flags & SlotFlags.moreFrag != 0
                i = rx.next(i)
                if !more { break }
                if i == tail { abandonFrame(); return frameStart }  // incomplete: wait for the rest
            }
            if outOfSegments && count > 0 { abandonFrame(); return frameStart }  // next batch
            let bytes = total &- (hasVnet ? VnetHeader.size : 0)
            if broken || outOfSegments || bytes < 14 {
                abandonFrame()
                commitFrame(vnet: false, payload: -1)
            } else {
                commitFrame(vnet: hasVnet, payload: bytes)
            }
            ringEnd[count &- 1] = i
        }
        return i
    }
}

extension PortBackend {
    /// Hands the frames waiting in `rx` (user side) to `transmit(_:)` batch by batch and releases
    /// what it consumed; stops when the kernel takes no more. Returns frames sent.
    @inlinable
    public func transmitRing(_ rx: UserRing, using out: inout OutFrames) -> Int {
        let tail = rx.ptr.loadTail()
        let start = rx.head
        // Anyone mapping the region (a root pipe on this port) could have written the tail: out of
        // range, nothing is sent rather than a walk that never meets it.
        guard tail < rx.numSlots else { return 0 }
        var released = start
        var sent = 0
        while released != tail {
            _ = out.gather(from: rx, at: released, tail: tail)
            if out.count == 0 { break }
            let r = transmit(out)
            if r.consumed > 0 { released = out.ringEnd[r.consumed - 1] }
            sent += r.sent
            if r.consumed < out.count { break }
        }
        if released != start { rx.advance(to: released) }
        return sent
    }
}
