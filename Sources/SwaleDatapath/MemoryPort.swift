/*
 * MemoryPort — a port backend whose "wire" is two Swift arrays, for running the forwarding engine
 * without a thread or a kernel (tests, examples).
 *
 * The port's rings live in a MemoryPool of its own (one memfd, like every port's). `inject` queues
 * frames; the engine's next pass calls `receive(into:)`, which writes them into the tx ring with
 * the one SlotWriter (frames larger than a buffer span slots with MOREFRAG; a frame given with a
 * virtio-net header gets SWALE_NS_VNET_HDR) — exactly what a kernel backend does. Frames the
 * engine sends arrive through `transmit(_:)` (direct transmit from the source's slots, or this
 * port's rx ring through `transmitRing`) and are appended to `received`, header and all.
 * `acceptLimit` makes the "kernel" take only that many frames per call (0: a full socket buffer),
 * so frames queue in the rx ring as they do behind a slow interface. This is a test backend: it
 * allocates per frame, which the kernel backends never do.
 */
import CSwaleABI
import Glibc
import SwaleRings

public final class MemoryPort: PortBackend {
    /// A frame as it crossed the port: its bytes (the virtio-net header first when `vnet`).
    public struct Frame: Equatable, Sendable {
        public var bytes: [UInt8]
        public var vnet: Bool
        public init(_ bytes: [UInt8], vnet: Bool = false) {
            self.bytes = bytes
            self.vnet = vnet
        }
        /// The Ethernet frame without the header.
        public var ethernet: ArraySlice<UInt8> { vnet ? bytes[VnetHeader.size...] : bytes[...] }
    }

    public let pool: MemoryPool
    public let layout: InterfaceLayout
    /// The user side of the port's rings (what `receive` fills, what `transmitRing` drains).
    public let tx: UserRing
    public let rx: UserRing
    /// Frames waiting to enter the switch.
    public private(set) var pending: [Frame] = []
    /// Frames the switch delivered, in order.
    public var received: [Frame] = []
    public var mtu: Int
    public var acceptsVnetHeader: Bool
    /// Frames `transmit(_:)` takes per call (nil: all).
    public var acceptLimit: Int?
    public var pollFD: Int32 { -1 }
    private var out = OutFrames()

    public init(slots: Int = 256, bufSize: Int = Region.defaultBufSize, mtu: Int = 1500, acceptsVnetHeader: Bool = true) throws {
        pool = try MemoryPool(name: "swale-memory-port", bufSize: bufSize, initialBlocks: 2 * slots + 64)
        layout = try pool.makeInterface(name: "memory", slots: slots)
        tx = UserRing(ring: pool.region.base + layout.txRingOffsets[0], region: pool.region)
        rx = UserRing(ring: pool.region.base + layout.rxRingOffsets[0], region: pool.region)
        self.mtu = mtu
        self.acceptsVnetHeader = acceptsVnetHeader
    }

    /// Queues frames to enter the switch at the next pass.
    public func inject(_ frames: [Frame]) { pending += frames }
    public func inject(_ bytes: [UInt8], vnet: Bool = false) { pending.append(Frame(bytes, vnet: vnet)) }

    /// Moves queued frames into the tx ring while whole frames fit.
    public func receive(into tx: UserRing) -> Int {
        var free = tx.space()
        var i = tx.head
        var moved = 0
        while moved < pending.count {
            let f = pending[moved]
            let need = UInt32(max(1, (f.bytes.count + tx.bufSize - 1) / tx.bufSize))
            if need > free { break }
            var w = SlotWriter(tx, at: i)
            f.bytes.withUnsafeBytes { w.write($0.baseAddress!, $0.count) }
            guard w.ok else { break }
            let used = w.finish(firstFlags: f.vnet ? SlotFlags.vnetHdr : 0)
            i = RingMath.add(i, used, tx.numSlots)
            free -= used
            moved += 1
        }
        if moved > 0 {
            pending.removeFirst(moved)
            tx.advance(to: i)
        }
        return moved
    }

    public func transmit(from rx: UserRing) -> Int { transmitRing(rx, using: &out) }

    public func transmit(_ frames: borrowing OutFrames) -> (consumed: Int, sent: Int) {
        let n = min(frames.count, acceptLimit ?? frames.count)
        var sent = 0
        for k in 0..<n where frames.payload[k] >= 0 {
            var bytes: [UInt8] = []
            for g in Int(frames.firstSegment[k])..<Int(frames.firstSegment[k + 1]) {
                let seg = frames.segments[g]
                bytes += UnsafeRawBufferPointer(start: seg.iov_base, count: seg.iov_len)
            }
            received.append(Frame(bytes, vnet: frames.vnet[k]))
            sent += 1
        }
        return (n, sent)
    }

    public func currentMTU() -> Int? { mtu }
    public var counters: [String: UInt64] { ["received": UInt64(received.count), "pending": UInt64(pending.count)] }
    public func close() {}
}
