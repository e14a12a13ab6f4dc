// SlotWriter: how a frame is laid across slots (lengths, MOREFRAG, first-slot flags), and what a
// scribbled buffer index does to it.
import CSwaleABI
import SwaleRings
import XCTest

final class SlotWriterTests: XCTestCase {
    func ring() throws -> (MemoryPool, UserRing) {
        let pool = try MemoryPool(name: "swale-test-writer", bufSize: 2048, initialBlocks: 256)
        let layout = try pool.makeInterface(name: "w", slots: 64)
        return (pool, UserRing(ring: pool.region.base + layout.txRingOffsets[0], region: pool.region))
    }

    func testFrameSpansSlotsWithMoreFragAndFirstFlags() throws {
        let (pool, tx) = try ring()
        defer { withExtendedLifetime(pool) {} }
        let bytes = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        var w = SlotWriter(tx, at: 62)  // wraps around the end of the ring
        bytes.withUnsafeBytes {
            w.write($0.baseAddress!, 3000); w.write($0.baseAddress! + 3000, 2000)
        }
        XCTAssertTrue(w.ok)
        XCTAssertEqual(w.finish(firstFlags: SlotFlags.vnetHdr), 3)
        let idx: [UInt32] = [62, 63, 0]
        XCTAssertEqual(idx.map { tx.slot($0).pointee.len }, [2048, 2048, 904])
        XCTAssertEqual(
            idx.map { tx.slot($0).pointee.flags },
            [SlotFlags.moreFrag | SlotFlags.vnetHdr, SlotFlags.moreFrag, 0])
        var got: [UInt8] = []
        for i in idx {
            let s = tx.slot(i)
            got += UnsafeRawBufferPointer(start: tx.buffer(s), count: Int(s.pointee.len))
        }
        XCTAssertEqual(got, bytes)
    }

    func testHeadroomPutsZeroesBeforeTheFrameAndCountsThem() throws {
        let (pool, tx) = try ring()
        defer { withExtendedLifetime(pool) {} }
        let b = try XCTUnwrap(tx.buffer(tx.slot(3)))
        memset(b, 0xEE, 2048)  // what a previous frame left
        let bytes = (0..<2040).map { UInt8(truncatingIfNeeded: $0 &+ 1) }
        let ring = tx.ptr
        var w = SlotWriter(
            slots: ring.slots, numSlots: ring.numSlots, bufBase: tx.bufBase, bufSize: 2048, bufLimit: tx.bufLimit, at: 3,
            headroom: 12)
        bytes.withUnsafeBytes { w.write($0.baseAddress!, $0.count) }
        XCTAssertEqual(w.finish(), 2, "12 + 2040 bytes need a second slot")
        XCTAssertEqual([tx.slot(3).pointee.len, tx.slot(4).pointee.len], [2048, 4])
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: b, count: 12)), [UInt8](repeating: 0, count: 12))
        var got = Array(UnsafeRawBufferPointer(start: b + 12, count: 2036))
        got += UnsafeRawBufferPointer(start: tx.buffer(tx.slot(4)), count: 4)
        XCTAssertEqual(got, bytes)
    }

    func testSkipLaysOutLengthsOnly() throws {
        let (pool, tx) = try ring()
        defer { withExtendedLifetime(pool) {} }
        let b = try XCTUnwrap(tx.buffer(tx.slot(0)))
        b.storeBytes(of: 0xAB, as: UInt8.self)
        var w = SlotWriter(tx, at: 0, bufSize: 1000)
        w.skip(2500)
        XCTAssertEqual(w.finish(), 3)
        XCTAssertEqual((0..<3).map { tx.slot($0).pointee.len }, [1000, 1000, 500])
        XCTAssertEqual(b.load(as: UInt8.self), 0xAB, "no byte written")
    }

    func testBadBufferIndexStopsTheWriter() throws {
        let (pool, tx) = try ring()
        defer { withExtendedLifetime(pool) {} }
        tx.slot(1).pointee.buf_idx = 1  // reserved: never a packet buffer
        var w = SlotWriter(tx, at: 0)
        let bytes = [UInt8](repeating: 7, count: 3000)
        bytes.withUnsafeBytes { w.write($0.baseAddress!, $0.count) }
        XCTAssertFalse(w.ok)
        tx.slot(5).pointee.buf_idx = UInt32.max
        XCTAssertFalse(SlotWriter(tx, at: 5).ok, "checked before the first byte")
    }

    /// The one-slot path lays a frame out as a writer of one slot does, and refuses a bad index
    /// or a frame larger than a buffer without writing anything.
    func testWriteOneMatchesTheWriterAndRefusesBadSlots() throws {
        let (pool, tx) = try ring()
        defer { withExtendedLifetime(pool) {} }
        let bytes = (0..<60).map { UInt8($0) }
        let ok = bytes.withUnsafeBytes {
            SlotWriter.writeOne(
                slots: tx.ptr.slots, bufBase: tx.bufBase, bufSize: tx.bufSize, bufLimit: tx.bufLimit, at: 5,
                from: $0.baseAddress!, count: 60, flags: SlotFlags.vnetHdr)
        }
        XCTAssertTrue(ok)
        XCTAssertEqual(tx.slot(5).pointee.len, 60)
        XCTAssertEqual(tx.slot(5).pointee.flags, SlotFlags.vnetHdr)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: tx.buffer(tx.slot(5)), count: 60)), bytes)
        tx.slot(6).pointee.len = 7
        tx.slot(6).pointee.buf_idx = tx.bufLimit  // scribbled
        let big = [UInt8](repeating: 1, count: 4096)
        XCTAssertFalse(
            bytes.withUnsafeBytes {
                SlotWriter.writeOne(
                    slots: tx.ptr.slots, bufBase: tx.bufBase, bufSize: tx.bufSize, bufLimit: tx.bufLimit, at: 6,
                    from: $0.baseAddress!, count: 60, flags: 0)
            })
        XCTAssertFalse(
            big.withUnsafeBytes {
                SlotWriter.writeOne(
                    slots: tx.ptr.slots, bufBase: tx.bufBase, bufSize: tx.bufSize, bufLimit: tx.bufLimit, at: 7,
                    from: $0.baseAddress!, count: 4096, flags: 0)
            })
        XCTAssertEqual(tx.slot(6).pointee.len, 7, "nothing written")
    }
}

// FrameCopy: every length copies exactly its bytes, at any alignment: not one byte of the source
// past the frame reaches the destination, and nothing around the destination frame changes.
final class FrameCopyTests: XCTestCase {
    func testEveryLengthCopiesExactlyItsBytesAtAnyAlignment() {
        let size = 256
        let src = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        let dst = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { src.deallocate(); dst.deallocate() }
        for k in 0..<size { src.storeBytes(of: UInt8(truncatingIfNeeded: k &* 7 &+ 1), toByteOffset: k, as: UInt8.self) }
        for count in 0...130 {
            for (s, d) in [(0, 0), (1, 3), (7, 0), (0, 5), (13, 31)] {
                memset(dst, 0xEE, size)
                FrameCopy.copy(dst + 16 + d, src + s, count: count)
                for k in 0..<size {
                    let got = dst.load(fromByteOffset: k, as: UInt8.self)
                    let inFrame = k >= 16 + d && k < 16 + d + count
                    let want = inFrame ? src.load(fromByteOffset: s + k - 16 - d, as: UInt8.self) : 0xEE
                    if got != want {
                        XCTFail("count \(count), source +\(s), destination +\(d): byte \(k) is \(got), want \(want)")
                        return
                    }
                }
            }
        }
    }

    /// A read before the frame's first byte or past its last would touch an inaccessible page and
    /// kill the test: the source frame is put right after one and right before another.
    func testNoReadOutsideTheSourceFrame() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let map = mmap(nil, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let map, map != MAP_FAILED else { throw XCTSkip("mmap failed") }
        defer { munmap(map, 3 * page) }
        XCTAssertEqual(mprotect(map, page, PROT_NONE), 0)
        XCTAssertEqual(mprotect(map + 2 * page, page, PROT_NONE), 0)
        let usable = map + page
        for k in 0..<page { usable.storeBytes(of: UInt8(truncatingIfNeeded: k &* 5 &+ 3), toByteOffset: k, as: UInt8.self) }
        let dst = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 64)
        defer { dst.deallocate() }
        for count in 0...130 {
            for from in [usable, usable + page - count] {  // starts at the page's start, ends at its end
                FrameCopy.copy(dst, UnsafeRawPointer(from), count: count)
                XCTAssertEqual(memcmp(dst, from, count), 0, "count \(count)")
            }
        }
    }
}
