// Allocator invariants: exact free counts, no double free, reserved blocks, growth, and pool
// accounting through interface creation, buffer swaps and frees.
import CSwaleABI
import CSwaleSys
import SwaleRings
import XCTest

final class AllocatorTests: XCTestCase {
    func testReservedAndCounts() {
        var a = BlockAllocator(blocks: 10)
        XCTAssertEqual(a.total, 10)
        XCTAssertEqual(a.freeCount, 8, "blocks 0 and 1 are reserved")
        XCTAssertFalse(a.free(0))
        XCTAssertFalse(a.free(1))
        XCTAssertEqual(a.refusedFrees, 2)
        var got: Set<UInt32> = []
        while let b = a.allocate() { XCTAssertTrue(got.insert(b).inserted, "never handed out twice") }
        XCTAssertEqual(got, Set(2..<10))
        XCTAssertEqual(a.freeCount, 0)
        XCTAssertNil(a.allocate())
    }

    func testDoubleFreeAndOutOfRangeAreRefused() {
        var a = BlockAllocator(blocks: 16)
        let b = a.allocate()!
        XCTAssertTrue(a.free(b))
        XCTAssertFalse(a.free(b), "double free refused")
        XCTAssertFalse(a.free(16))
        XCTAssertFalse(a.free(.max))
        XCTAssertEqual(a.refusedFrees, 3)
        XCTAssertEqual(a.freeCount, 14)
    }

    func testContiguousRunsAndGrowth() {
        var a = BlockAllocator(blocks: 12)
        let r = a.allocate(count: 4)!
        XCTAssertEqual(r, 2)
        XCTAssertNil(a.allocate(count: 7), "only 6 left")
        a.addBlocks(100)
        XCTAssertEqual(a.total, 112)
        XCTAssertEqual(a.freeCount, 106)
        let r2 = a.allocate(count: 50)!
        for i in r2..<(r2 + 50) { XCTAssertFalse(a.isFree(i)) }
        a.free(start: r2, count: 50)
        a.free(start: r, count: 4)
        XCTAssertEqual(a.freeCount, 110)
        XCTAssertEqual(a.refusedFrees, 0)
    }

    func testRandomizedAccounting() {
        var a = BlockAllocator(blocks: 1000)
        var held: [UInt32] = []
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20000 {
            if Bool.random(using: &rng), let b = a.allocate() {
                held.append(b)
            } else if !held.isEmpty {
                XCTAssertTrue(a.free(held.remove(at: Int.random(in: 0..<held.count))))
            }
            XCTAssertEqual(a.freeCount + held.count, 998)
        }
    }

    func testPoolInterfacesGrowAndFreeExactly() throws {
        let pool = try MemoryPool(name: "pool-test", initialBlocks: 16)
        let free0 = pool.allocator.freeCount
        let total0 = pool.allocator.total
        var layouts: [InterfaceLayout] = []
        for i in 0..<20 { layouts.append(try pool.makeInterface(name: "p\(i)", slots: 256)) }
        XCTAssertGreaterThan(pool.allocator.total, total0, "the region grew: no fixed ceiling")
        XCTAssertEqual(pool.region.mappedSize, pool.allocator.total * pool.bufSize)
        // Every slot's buffer is distinct across all interfaces.
        var seen = Set<UInt32>()
        for l in layouts {
            for off in l.txRingOffsets + l.rxRingOffsets {
                let r = pool.ring(at: off)
                for s in 0..<Int(r.numSlots) { XCTAssertTrue(seen.insert(r.slots[s].buf_idx).inserted) }
            }
        }
        XCTAssertEqual(seen.count, 20 * 2 * 256)
        // Swap buffers between two interfaces' rings (zero copy), then free: nothing leaks.
        let a = pool.ring(at: layouts[0].txRingOffsets[0]), b = pool.ring(at: layouts[1].rxRingOffsets[0])
        let t = a.slots[0].buf_idx
        a.slots[0].buf_idx = b.slots[5].buf_idx
        b.slots[5].buf_idx = t
        for l in layouts { XCTAssertEqual(pool.freeInterface(l), 0) }
        XCTAssertEqual(pool.allocator.freeCount, pool.allocator.total - 2)
        XCTAssertGreaterThanOrEqual(pool.allocator.freeCount, free0)
        // A scribbled duplicate index is refused, counted, and does not corrupt the count.
        let l = try pool.makeInterface(name: "dup", slots: 8)
        let r = pool.ring(at: l.txRingOffsets[0])
        let lost = r.slots[1].buf_idx
        r.slots[1].buf_idx = r.slots[0].buf_idx
        XCTAssertEqual(pool.freeInterface(l), 1)
        XCTAssertFalse(pool.allocator.isFree(lost), "the overwritten buffer stays accounted as in use")
        XCTAssertEqual(pool.allocator.freeCount, pool.allocator.total - 3)
    }

    func testClientMappingFollowsGrowth() throws {
        let pool = try MemoryPool(name: "grow-test", initialBlocks: 8)
        let fd = dup(pool.region.fd)
        let client = try Region(mapping: fd, bufSize: pool.bufSize)
        XCTAssertEqual(client.mappedSize, pool.region.mappedSize)
        let l = try pool.makeInterface(name: "g", slots: 512)
        XCTAssertGreaterThan(pool.region.mappedSize, client.mappedSize)
        XCTAssertTrue(try client.refresh())
        XCTAssertEqual(client.mappedSize, pool.region.mappedSize)
        // Same bytes on both sides, same base-relative offsets.
        let r = pool.ring(at: l.rxRingOffsets[0])
        let idx = r.slots[100].buf_idx
        pool.region.buffer(idx).storeBytes(of: 0xfeed_f00d as UInt32, as: UInt32.self)
        XCTAssertEqual(client.buffer(idx).load(as: UInt32.self), 0xfeed_f00d)
        XCTAssertEqual(RingPointer(client.base + l.rxRingOffsets[0]).numSlots, 512)
    }

    /// Pages of a region resident in this mapping (mincore), and the page count.
    func resident(_ r: Region) -> (Int, Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pages = (r.mappedSize + page - 1) / page
        var vec = [UInt8](repeating: 0, count: pages)
        XCTAssertEqual(mincore(r.base, r.mappedSize, &vec), 0)
        return (vec.filter { $0 & 1 != 0 }.count, pages)
    }

    /// Rings are allocated and mapped when created, not on the forwarding path: every page of a new
    /// region, of its grown tail, and of a client's mapping is resident before any frame is written.
    func testRegionsArePopulatedWhenMapped() throws {
        let pool = try MemoryPool(name: "populate-test", initialBlocks: 64)
        var (have, pages) = resident(pool.region)
        XCTAssertEqual(have, pages)
        _ = try pool.makeInterface(name: "p", slots: 1024)  // grows the region
        (have, pages) = resident(pool.region)
        XCTAssertGreaterThan(pages, 64 * pool.bufSize / 4096)
        XCTAssertEqual(have, pages)
        let client = try Region(mapping: dup(pool.region.fd), bufSize: pool.bufSize)
        (have, pages) = resident(client)
        XCTAssertEqual(have, pages)
    }

    /// An interface that cannot get all its buffers (the region may not grow past its reservation)
    /// gives back every block it took before throwing.
    func testFailedInterfaceLeavesNoBlocksBehind() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pool = try MemoryPool(name: "swale-test-nogrow", bufSize: 2048, initialBlocks: 256, reserve: 256 * 2048 + page)
        let before = pool.allocator.freeCount
        XCTAssertThrowsError(try pool.makeInterface(name: "big", slots: 1024))
        XCTAssertEqual(pool.allocator.freeCount, before)
        XCTAssertEqual(pool.allocator.refusedFrees, 0)
        _ = try pool.makeInterface(name: "small", slots: 64)  // the pool still works
    }
}
