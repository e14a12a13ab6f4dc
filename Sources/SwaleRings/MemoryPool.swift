/*
 * MemoryPool — a region plus its allocator, and the layout of interfaces inside it (service side).
 *
 * An interface (what an application opens: a switch port, or one end of a pipe) is one run of
 * blocks holding, in order: the netmap-compatible interface descriptor (with its ring_ofs[]),
 * the wake-up control block at SWALE_CSB_OFFSET, then each ring. Every slot of every ring gets its
 * own packet buffer, as in netmap. When the allocator runs out, the region grows: there is no fixed
 * ceiling on rings or pipes per region.
 */
import CSwaleABI
import CSwaleSys
import Glibc

/// Where an interface lives inside a region: everything a client needs to find its rings.
public struct InterfaceLayout: Codable, Sendable, Equatable {
    public var nifpOffset: Int
    public var txRingOffsets: [Int]
    public var rxRingOffsets: [Int]
    public var metaStart: UInt32
    public var metaBlocks: Int
    public var slotsPerRing: Int

    public var csbOffset: Int { nifpOffset + Int(SWALE_CSB_OFFSET) }
}

public final class MemoryPool {
    public let region: Region
    @exclusivity(unchecked) public private(set) var allocator: BlockAllocator
    public let name: String
    /// Blocks added each time the region has to grow, at least.
    public var growthBlocks = 1024

    public init(name: String, bufSize: Int = Region.defaultBufSize, initialBlocks: Int, reserve: Int = Region.defaultReserve)
        throws
    {
        let blocks = MemoryPool.pageAligned(max(initialBlocks, Int(BlockAllocator.reserved) + 1), bufSize: bufSize)
        region = try Region(name: name, bufSize: bufSize, blocks: blocks, reserve: reserve)
        allocator = BlockAllocator(blocks: blocks)
        self.name = name
    }

    public var bufSize: Int { region.bufSize }

    /// Rounds a block count up so the region ends on a page boundary: growth maps the next part of
    /// the file at the current end, and mmap offsets must be page aligned.
    public static func pageAligned(_ blocks: Int, bufSize: Int) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var b = blocks
        while (b * bufSize) % page != 0 { b += 1 }
        return b
    }

    /// Grows the region by at least `count` blocks (called when an allocation just failed).
    private func grow(atLeast count: Int) throws {
        let total = MemoryPool.pageAligned(
            allocator.total + max(count + 8, growthBlocks, allocator.total / 2), bufSize: region.bufSize)
        let add = total - allocator.total
        try region.grow(toBlocks: allocator.total + add)
        allocator.addBlocks(add)
    }

    public func allocateRun(_ count: Int) throws -> UInt32 {
        if let s = allocator.allocate(count: count) { return s }
        try grow(atLeast: count)
        guard let s = allocator.allocate(count: count) else {
            throw SystemError("allocate", errno: ENOMEM, detail: "\(count) blocks")
        }
        return s
    }

    public func allocateBuffer() throws -> UInt32 {
        if let s = allocator.allocate() { return s }
        try grow(atLeast: 1)
        guard let s = allocator.allocate() else { throw SystemError("allocate", errno: ENOMEM, detail: "buffer") }
        return s
    }

    @discardableResult
    public func freeBuffer(_ index: UInt32) -> Bool { allocator.free(index) }

    /// Blocks an interface of `rings` rings of `slots` slots takes: its descriptor run (descriptor,
    /// control block, rings) and one buffer per slot. What budgets and initial sizes are made of.
    public static func interfaceBlocks(slots: Int, rings: Int = 2, bufSize: Int) -> Int {
        let descBytes = Int(SWALE_CSB_OFFSET) + MemoryLayout<swale_csb>.stride
        let ringBlocks = (RingPointer.bytes(slots: slots) + bufSize - 1) / bufSize
        return (descBytes + bufSize - 1) / bufSize + rings * ringBlocks + rings * slots
    }

    /// Bytes the region would grow by to give `blocks` more blocks (0 if it has them free), by the
    /// same rule as `grow`. A free run may still be too fragmented for a descriptor run, so this is
    /// what an allocation costs unless the free blocks are scattered.
    public func growthBytes(forBlocks blocks: Int) -> Int {
        guard allocator.freeCount < blocks else { return 0 }
        let total = MemoryPool.pageAligned(
            allocator.total + max(blocks + 8, growthBlocks, allocator.total / 2), bufSize: region.bufSize)
        return (total - allocator.total) * region.bufSize
    }

    /// Lays out an interface with the given rings; every slot gets a buffer.
    public func makeInterface(name ifname: String, txRings: Int = 1, rxRings: Int = 1, slots: Int) throws -> InterfaceLayout {
        precondition(slots >= 2 && slots <= 65536)
        let bs = region.bufSize
        let nrings = txRings + rxRings
        let ringBlocks = (RingPointer.bytes(slots: slots) + bs - 1) / bs
        let metaBlocks = MemoryPool.interfaceBlocks(slots: slots, rings: nrings, bufSize: bs) - nrings * slots
        let descBlocks = metaBlocks - nrings * ringBlocks
        let start = try allocateRun(metaBlocks)
        // If a buffer cannot be had (the region cannot grow), give back everything taken so far.
        var buffers: [UInt32] = []
        buffers.reserveCapacity(nrings * slots)
        do {
            return try layOut(
                name: ifname, start: start, descBlocks: descBlocks, ringBlocks: ringBlocks, metaBlocks: metaBlocks,
                txRings: txRings, rxRings: rxRings, slots: slots, buffers: &buffers)
        } catch {
            for b in buffers { allocator.free(b) }
            allocator.free(start: start, count: metaBlocks)
            throw error
        }
    }

    private func layOut(
        name ifname: String, start: UInt32, descBlocks: Int, ringBlocks: Int, metaBlocks: Int,
        txRings: Int, rxRings: Int, slots: Int, buffers: inout [UInt32]
    ) throws -> InterfaceLayout {
        let bs = region.bufSize
        let nrings = txRings + rxRings
        let nifpOffset = Int(start) * bs
        memset(region.base + nifpOffset, 0, metaBlocks * bs)

        let nifp = (region.base + nifpOffset).assumingMemoryBound(to: swale_if.self)
        withUnsafeMutableBytes(of: &nifp.pointee.ni_name) { raw in
            for (i, b) in ifname.utf8.prefix(15).enumerated() { raw[i] = b }
        }
        nifp.pointee.ni_version = 14
        nifp.pointee.ni_tx_rings = UInt32(txRings)
        nifp.pointee.ni_rx_rings = UInt32(rxRings)
        let ringOfs = (region.base + nifpOffset + Int(SWALE_IF_RING_OFS_OFFSET)).assumingMemoryBound(to: Int.self)

        var tx: [Int] = []
        var rx: [Int] = []
        for r in 0..<nrings {
            let isTx = r < txRings
            let off = nifpOffset + (descBlocks + r * ringBlocks) * bs
            ringOfs[r] = off - nifpOffset
            let ring = (region.base + off).assumingMemoryBound(to: swale_ring.self)
            ring.pointee.buf_ofs = -Int64(off)
            ring.pointee.num_slots = UInt32(slots)
            ring.pointee.nr_buf_size = UInt32(bs)
            ring.pointee.ringid = UInt16(isTx ? r : r - txRings)
            ring.pointee.dir = isTx ? 0 : 1
            ring.pointee.head = 0
            ring.pointee.cur = 0
            ring.pointee.tail = isTx ? UInt32(slots - 1) : 0
            let sl = RingPointer(region.base + off, slots: slots).slots
            for s in 0..<slots {
                sl[s].buf_idx = try allocateBuffer()
                buffers.append(sl[s].buf_idx)
                sl[s].len = 0
                sl[s].flags = 0
            }
            if isTx { tx.append(off) } else { rx.append(off) }
        }
        return InterfaceLayout(
            nifpOffset: nifpOffset, txRingOffsets: tx, rxRingOffsets: rx,
            metaStart: start, metaBlocks: metaBlocks, slotsPerRing: slots)
    }

    /// Frees an interface: the buffers its slots hold now (whatever swaps happened) and its blocks.
    /// Returns how many buffer frees were refused (duplicates or garbage left by a client).
    @discardableResult
    public func freeInterface(_ layout: InterfaceLayout) -> Int {
        var refused = 0
        for off in layout.txRingOffsets + layout.rxRingOffsets {
            let ring = RingPointer(region.base + off)
            let n = min(Int(ring.numSlots), layout.slotsPerRing)
            for s in 0..<n where !allocator.free(ring.slots[s].buf_idx) { refused += 1 }
        }
        allocator.free(start: layout.metaStart, count: layout.metaBlocks)
        return refused
    }

    public func ring(at offset: Int) -> RingPointer { RingPointer(region.base + offset) }
    public func csb(_ layout: InterfaceLayout) -> UnsafeMutablePointer<swale_csb> {
        (region.base + layout.csbOffset).assumingMemoryBound(to: swale_csb.self)
    }
}
