// A hostile pipe peer (issue #10 finding 7): every shared field the client library reads is
// corrupted in turn, and the library must report it (peerErrors, lastPeerFault, checkPeer) and
// carry on — never crash, never touch memory outside the region.
import CSwaleABI
import CSwaleSys
import Glibc
import SwaleProtocol
import SwaleRings
import XCTest

@testable import SwaleClient

final class HostilePeerTests: XCTestCase {
    func send(_ p: SwalePort, _ frames: [[UInt8]]) {
        for f in frames { XCTAssertTrue(f.withUnsafeBytes { p.send($0, timeoutMs: 100) }) }
    }

    func testFramesCrossTheLocalPipeWithoutErrors() throws {
        let p = try LocalPipe()
        let frames = [testFrame(60, tag: 1), testFrame(1500, tag: 2), testFrame(5000, tag: 3)]  // the last spans 3 slots
        send(p.a, frames)
        XCTAssertEqual(drain(p.b), frames)
        XCTAssertEqual(p.a.peerErrors + p.b.peerErrors, 0)
        XCTAssertNil(p.b.lastPeerFault)
        XCTAssertNoThrow(try p.b.checkPeer())
    }

    func testRxTailOutOfRangeIsEmptyAndCounted() throws {
        let p = try LocalPipe()
        send(p.a, [testFrame(60, tag: 1)])
        p.b.rx.ptr.storeTail(UInt32(p.slots) + 3)  // the peer's field
        XCTAssertEqual(p.b.rxWindow().count, 0)
        XCTAssertEqual(p.b.lastPeerFault, .rxIndices)
        XCTAssertEqual(p.b.peerErrors, 1)
        XCTAssertEqual(p.b.receive { _ in XCTFail("nothing is read from a ring with a bad tail") }, 0)
        XCTAssertThrowsError(try p.b.checkPeer()) { XCTAssertTrue("\($0)".contains("peer misbehaved"), "\($0)") }
        // The next sync publishes the peer's own (private) tail again: nothing was lost.
        send(p.a, [testFrame(70, tag: 2)])
        XCTAssertEqual(drain(p.b), [testFrame(60, tag: 1), testFrame(70, tag: 2)])
    }

    func testRxHeadOutOfRangeIsEmptyAndTheSenderResetsIt() throws {
        let p = try LocalPipe()
        p.b.rx.ptr.storeHead(.max)
        XCTAssertEqual(p.b.rx.head, 0, "an out-of-range head never reaches an index")
        XCTAssertEqual(p.b.rxWindow().count, 0)
        XCTAssertEqual(p.b.lastPeerFault, .rxIndices)
        // The sender checks the receiver's head (sync prologue), resets the ring and counts it.
        send(p.a, [testFrame(60, tag: 5)])
        XCTAssertEqual(p.a.lastPeerFault, .peerRxRing)
        XCTAssertEqual(drain(p.b), [testFrame(60, tag: 5)])
    }

    func testPeerRxHeadPastItsTailIsResetBySender() throws {
        let p = try LocalPipe()
        send(p.a, [testFrame(60, tag: 1)])
        // In range, but released beyond what was published: netmap's rxsync prologue refuses it.
        p.b.rx.ptr.storeCur(5)
        p.b.rx.ptr.storeHead(5)
        send(p.a, [testFrame(61, tag: 2)])
        XCTAssertEqual(p.a.lastPeerFault, .peerRxRing)
        XCTAssertEqual(p.a.peerErrors, 1)
    }

    func testSlotBufferIndexOutsideTheRegionIsSkipped() throws {
        let p = try LocalPipe()
        let limit = p.b.rx.bufLimit
        for bad: UInt32 in [0, 1, limit, limit + 1, 0xffff_fff0] {
            let before = p.b.peerErrors
            let head = p.b.rxWindow().head
            let frames = (0..<3).map { testFrame(100, tag: UInt8($0)) }
            send(p.a, frames)
            let victim = RingMath.next(head, UInt32(p.slots))
            p.b.rx.slot(victim).pointee.buf_idx = bad
            XCTAssertNil(p.b.rxSlot(victim).buffer, "index \(bad)")
            XCTAssertEqual(p.b.lastPeerFault, .bufferIndex)
            XCTAssertEqual(drain(p.b), [frames[0], frames[2]], "index \(bad): the bad slot is skipped, the others read")
            XCTAssertEqual(p.b.peerErrors, before + 2, "index \(bad): counted at each read")
            // Give the slot a real buffer back so the next round starts clean.
            p.b.rx.slot(victim).pointee.buf_idx = p.pool.region.blockLimit - 1
        }
    }

    func testSlotLengthBeyondTheBufferIsSkipped() throws {
        let p = try LocalPipe()
        for bad in [p.b.bufferSize + 1, 0xffff] {
            let head = p.b.rxWindow().head
            send(p.a, [testFrame(60, tag: 1), testFrame(60, tag: 2)])
            p.b.rx.slot(head).pointee.len = UInt16(bad)
            let v = p.b.rxSlot(head)
            XCTAssertNil(v.buffer)
            XCTAssertEqual(Int(v.len), bad, "the raw value stays visible for reports")
            XCTAssertEqual(p.b.lastPeerFault, .length)
            XCTAssertEqual(drain(p.b), [testFrame(60, tag: 2)])
        }
    }

    func testFrameWhoseFragmentsFillTheRingIsDroppedNotWaitedFor() throws {
        let p = try LocalPipe()
        let frames = (0..<(p.slots - 1)).map { testFrame(60, tag: UInt8($0)) }
        send(p.a, frames)
        XCTAssertEqual(p.b.rxAvailable(), UInt32(p.slots - 1), "the ring is full")
        for i in 0..<UInt32(p.slots) { p.b.rx.slot(i).pointee.flags = UInt16(SWALE_NS_MOREFRAG) }
        XCTAssertEqual(p.b.receive { _ in XCTFail("an unterminated frame is never passed on") }, 0)
        XCTAssertEqual(p.b.lastPeerFault, .unterminatedFrame)
        XCTAssertEqual(p.b.rxAvailable(), 0, "released, so the pipe moves again")
        send(p.a, [testFrame(80, tag: 9)])
        XCTAssertEqual(drain(p.b), [testFrame(80, tag: 9)])
    }

    func testOwnTxIndicesBreakingTheRulesAreReset() throws {
        let p = try LocalPipe()
        p.a.tx.ptr.storeHead(UInt32(p.slots) + 5)
        p.a.txSync()
        XCTAssertEqual(p.a.lastPeerFault, .ownTxRing)
        XCTAssertEqual(p.b.rxAvailable(), 0, "nothing moved")
        // cur behind head.
        XCTAssertTrue(testFrame(60, tag: 1).withUnsafeBytes { p.a.enqueue($0) })
        p.a.tx.ptr.storeCur(RingMath.prev(p.a.tx.head, UInt32(p.slots)))
        p.a.txSync()
        XCTAssertEqual(p.a.peerErrors, 2)
        XCTAssertEqual(p.b.rxAvailable(), 0)
        // The reset ring works again.
        send(p.a, [testFrame(60, tag: 2)])
        XCTAssertEqual(drain(p.b), [testFrame(60, tag: 2)])
    }

    func testTxTailOutOfRangeIsCountedAndRepairedBySync() throws {
        let p = try LocalPipe()
        p.a.tx.ptr.storeTail(0xdead)
        XCTAssertEqual(p.a.tx.space(), 0)
        let w = p.a.txWindow()
        XCTAssertEqual(p.a.lastPeerFault, .txIndices)
        XCTAssertEqual(p.a.peerErrors, 1)
        XCTAssertEqual(w.count, UInt32(p.slots - 1), "the sync wrote our tail back from private state")
        send(p.a, [testFrame(60, tag: 3)])
        XCTAssertEqual(drain(p.b), [testFrame(60, tag: 3)])
    }

    func testBadBufferComingBackIntoTxBecomesAnEmptyFragment() throws {
        let p = try LocalPipe()
        // A peer that releases a slot with a garbage index hands it to our tx ring on the next swap.
        let head = p.a.txWindow().head
        p.a.tx.slot(head).pointee.buf_idx = 0xffff_0000
        XCTAssertNil(p.a.txBuffer(head))
        XCTAssertEqual(p.a.lastPeerFault, .bufferIndex)
        let f = testFrame(300, tag: 4)
        send(p.a, [f])
        // The receiver skips the empty fragment (counting it) and gets the frame whole.
        XCTAssertEqual(drain(p.b), [f])
        XCTAssertEqual(p.b.lastPeerFault, .bufferIndex)
    }

    func testTxBufferRefusesIndicesOutsideTheRing() throws {
        let p = try LocalPipe()
        XCTAssertNil(p.a.txBuffer(UInt32(p.slots)))
        XCTAssertFalse(p.a.rx.read(UInt32(p.slots) + 100).isValid)
    }

    func testIndexInMemoryTheRegionGainedIsMappedNotCounted() throws {
        let p = try LocalPipe()
        let old = p.pool.region.blockLimit
        try p.pool.region.grow(toBlocks: Int(old) + 64)  // another pipe was added after we mapped
        let idx = old + 5
        let payload = testFrame(90, tag: 7)
        payload.withUnsafeBytes { _ = memcpy(p.pool.region.buffer(idx), $0.baseAddress!, 90) }
        let head = p.b.rxWindow().head
        send(p.a, [testFrame(90, tag: 0)])
        p.b.rx.slot(head).pointee.buf_idx = idx  // a buffer moved in from the new part
        XCTAssertEqual(drain(p.b), [payload])
        XCTAssertEqual(p.b.peerErrors, 0, "a legitimate index beyond the first mapping is not an error")
        XCTAssertEqual(p.b.rx.bufLimit, UInt32(Int(old) + 64))
    }

    func testGarbageWakeupFlagsOnlyWake() throws {
        // The control block's flags are booleans: any value is valid and can only cause a wake-up.
        let p = try LocalPipe()
        let peerCsb = (p.pool.region.base + p.slave.csbOffset).assumingMemoryBound(to: swale_csb.self)
        peerCsb.pointee.app_rx_waiting = 0xdead_beef
        send(p.a, [testFrame(60, tag: 1)])
        var pfd = pollfd(fd: p.b.fileDescriptor, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&pfd, 1, 1000), 1, "the receiver was woken")
        XCTAssertEqual(p.a.peerErrors + p.b.peerErrors, 0)
    }

    /// Random values in every field of both ends' rings while the two ends move frames, for a
    /// bounded time: the library must count and carry on (a crash fails the whole test run).
    func testConcurrentScribblingNeverCrashes() throws {
        let p = try LocalPipe(slots: 64)
        let rings = [p.a.tx, p.a.rx, p.b.tx, p.b.rx]
        let limit = p.b.rx.bufLimit
        let bs = UInt32(p.b.bufferSize)
        let until = Date().addingTimeInterval(0.7)
        let done = DispatchSemaphore(value: 0)
        let scribbler = Thread {
            var rng = SystemRandomNumberGenerator()
            // Half near-valid values, so the deeper checks are reached too.
            func pick(_ near: UInt32) -> UInt32 {
                Bool.random(using: &rng)
                    ? UInt32.random(in: 0...UInt32.max, using: &rng) : UInt32.random(in: 0..<near, using: &rng)
            }
            while Date() < until {
                for r in rings {
                    let s = r.slot(UInt32.random(in: 0..<r.numSlots, using: &rng))
                    s.pointee.buf_idx = pick(limit + 4)
                    s.pointee.len = UInt16(truncatingIfNeeded: pick(bs * 2))
                    s.pointee.flags = UInt16.random(in: 0...UInt16.max, using: &rng)
                    r.ptr.storeHead(pick(r.numSlots + 2))
                    r.ptr.storeCur(pick(r.numSlots + 2))
                    r.ptr.storeTail(pick(r.numSlots + 2))
                }
                usleep(20)
            }
            done.signal()
        }
        scribbler.start()
        var rounds = 0, frames = 0
        while Date() < until {
            let f = testFrame(60 + rounds % 3000, tag: UInt8(truncatingIfNeeded: rounds))
            _ = f.withUnsafeBytes { p.a.send($0, timeoutMs: 1) }
            frames += p.b.receive { XCTAssertLessThanOrEqual($0.count, 65536) }
            let w = p.b.rxWindow()
            if w.count > 0 { _ = p.b.rxSlot(w.head) }
            rounds += 1
        }
        done.wait()
        XCTAssertGreaterThan(rounds, 100)
        XCTAssertGreaterThan(p.a.peerErrors + p.b.peerErrors, 0, "the scribbling was seen and counted")
        print("scribbled pipe: \(rounds) rounds, \(frames) frames read, peer errors a \(p.a.peerErrors) b \(p.b.peerErrors)")
    }
}

/// Issue #11: a failing SwalePort init must close the three descriptors it was given.
final class DescriptorTests: XCTestCase {
    func testFailedInitClosesAllThreeDescriptors() throws {
        let pool = try MemoryPool(name: "client-fd-test", initialBlocks: 256)
        let l = try pool.makeInterface(name: "f", slots: 16)
        let peer = try pool.makeInterface(name: "g", slots: 16)
        let bell = try Doorbell()
        defer { bell.close() }
        let good = LocalPipe.info("t<1", l, peer: peer, pool)
        func variant(_ change: (inout OpenInfo) -> Void) -> OpenInfo { var i = good; change(&i); return i }
        func unsealedMemfd() -> Int32 {
            let fd = swale_memfd_create("unsealed")
            _ = ftruncate(fd, off_t(pool.region.mappedSize))
            return fd
        }
        let size = pool.region.mappedSize
        let cases: [(String, OpenInfo, () -> Int32)] = [
            ("ring size 1", variant { $0.slots = 1 }, { dup(pool.region.fd) }),
            ("ring size too large", variant { $0.slots = 1 << 20 }, { dup(pool.region.fd) }),
            ("rx ring past the end", variant { $0.rxRing = size - 100 }, { dup(pool.region.fd) }),
            ("negative offset", variant { $0.txRing = -2048 }, { dup(pool.region.fd) }),
            ("misaligned offset", variant { $0.nifpOffset += 4 }, { dup(pool.region.fd) }),
            ("huge offset", variant { $0.peerCsb = Int.max }, { dup(pool.region.fd) }),
            ("peer rx ring outside", variant { $0.peerRxRing = size }, { dup(pool.region.fd) }),
            ("unsealed memfd", good, unsealedMemfd),
            ("buffer size too small", variant { $0.bufSize = 32 }, { dup(pool.region.fd) })
        ]
        for (what, info, regionFD) in cases {
            let before = openDescriptorCount()
            let fds = [regionFD(), dup(bell.waitEnd.fd), dup(bell.ringEnd.fd)]
            XCTAssertTrue(fds.allSatisfy(isOpen), what)
            let conn = LocalPipe.connection()
            XCTAssertThrowsError(try SwalePort(info: info, fds: fds, connection: conn), what)
            for fd in fds { XCTAssertFalse(isOpen(fd), "\(what): descriptor \(fd) left open") }
            XCTAssertTrue(isOpen(conn.fd), "\(what): the connection stays the caller's to close")
            conn.close()
            XCTAssertEqual(openDescriptorCount(), before, what)
        }
        // The unchanged layout opens, and closing gives everything back.
        // (The region's memfd goes with the mapping, when the port object goes.)
        let before = openDescriptorCount()
        do {
            let port = try SwalePort(
                info: good, fds: [dup(pool.region.fd), dup(bell.waitEnd.fd), dup(bell.ringEnd.fd)],
                connection: LocalPipe.connection())
            XCTAssertTrue(port.isPipe)
            port.close()
        }
        XCTAssertEqual(openDescriptorCount(), before)
    }

    func testWrongDescriptorCountClosesWhatCame() throws {
        let fds = [open("/dev/null", O_RDONLY), open("/dev/null", O_RDONLY)]
        let conn = LocalPipe.connection()
        defer { conn.close() }
        let info = OpenInfo(name: "x", kind: "port", bufSize: 2048, regionSize: 0, nifpOffset: 0, txRing: 0, rxRing: 0, slots: 16)
        XCTAssertThrowsError(try SwalePort(info: info, fds: fds, connection: conn))
        for fd in fds { XCTAssertFalse(isOpen(fd)) }
    }
}
