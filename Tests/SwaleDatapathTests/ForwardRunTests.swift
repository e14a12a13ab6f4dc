// Runs of one flow (ForwardingEngine.forwardRun): a batch's first frames, while they are whole
// single-slot frames with the first frame's addresses to a known application port, are copied
// straight to it. These tests check that a run takes what it should (runFrames counts it), ends
// where the flow changes, and leaves every other frame to the general path with the same outcome
// and the same counters as without runs: order per destination, drops, learning.
import CSwaleABI
import CSwaleSys
import Foundation
import SwaleDatapath
import SwaleRings
import XCTest

final class ForwardRunTests: XCTestCase {
    typealias F = ForwardingEngineTests

    static func value(_ mac: [UInt8]) -> UInt64 { mac.reduce(0) { $0 << 8 | UInt64($1) } }

    /// Ports a (0), b (1), c (2); b and c have announced themselves.
    func bridge(slots: Int = 64, mtuOfB: Int? = nil) throws -> (ForwardingEngine, [AppRings]) {
        var c = EngineConfig()
        c.fdbCapacity = 64
        let e = try ForwardingEngine(config: c)
        let apps = try (0..<3).map { _ in try AppRings(slots: slots) }
        for (i, app) in apps.enumerated() {
            let mtu = i == 1 ? mtuOfB : nil
            XCTAssertEqual(e.addPort(pool: app.pool, layout: app.layout, kickFD: -1, notifyFD: -1, backend: nil, mtu: mtu), i)
        }
        apps[1].send([F.frame(to: F.broadcast, from: F.mac(2))])
        apps[2].send([F.frame(to: F.broadcast, from: F.mac(3))])
        F.run(e)
        for app in apps { _ = app.take() }
        let csb = apps[0].pool.csb(apps[0].layout)
        XCTAssertEqual(
            csb.pointee.switch_membarrier, swale_barrier_sleeper() != 0 ? 1 : 0, "the switch says it sleeps the membarrier way")
        XCTAssertEqual(csb.pointee.app_membarrier, 0, "no application has said so: the switch fences toward it")
        return (e, apps)
    }

    func testAFlowGoesInARunWithTheCountersOfTheGeneralPath() throws {
        let (e, apps) = try bridge()
        let before = e.runFrames
        let frames = (0..<40).map { F.frame(to: F.mac(2), from: F.mac(1), length: 60 + $0, seed: $0) }
        XCTAssertEqual(apps[0].send(frames), 40)
        F.run(e)
        XCTAssertEqual(apps[1].take(), frames)
        XCTAssertEqual(e.runFrames - before, 40, "one flow to a known application port is one run")
        let bytes = UInt64(frames.reduce(0) { $0 + $1.count })
        XCTAssertEqual(e.port(0)?.stats.txPackets, 40)
        XCTAssertEqual(e.port(0)?.stats.txBytes, bytes)
        XCTAssertEqual(e.port(1)?.stats.rxPackets, 41)  // and c's announce
        XCTAssertEqual(e.port(2)?.stats.rxPackets, 1)  // b's announce
        XCTAssertEqual(e.table.lookup(address: Self.value(F.mac(1)), now: 1), 0, "the run learned its source")
    }

    func testARunEndsWhereTheFlowChangesAndEveryDestinationKeepsItsOrder() throws {
        let (e, apps) = try bridge()
        let toB = F.mac(2), toC = F.mac(3), me = F.mac(1)
        let frames = [
            F.frame(to: toB, from: me, seed: 0), F.frame(to: toB, from: me, seed: 1), F.frame(to: toC, from: me, seed: 2),
            F.frame(to: toB, from: me, seed: 3), F.frame(to: F.broadcast, from: me, seed: 4),
            F.frame(to: toB, from: me, seed: 5), F.frame(to: toB, from: F.mac(9), seed: 6), F.frame(to: toB, from: me, seed: 7)
        ]
        let before = e.runFrames
        apps[0].send(frames)
        F.run(e)
        XCTAssertEqual(apps[1].take(), [frames[0], frames[1], frames[3], frames[4], frames[5], frames[6], frames[7]])
        XCTAssertEqual(apps[2].take(), [frames[2], frames[4]])
        XCTAssertEqual(e.runFrames - before, 2, "the run was the first two frames; the general path took the rest")
        XCTAssertEqual(e.port(0)?.stats.txPackets, 8)
        XCTAssertEqual(e.table.lookup(address: Self.value(F.mac(9)), now: 1), 0, "a second source, learned")
    }

    func testAFullRingEndsTheRunAndTheRestIsDroppedAndCounted() throws {
        let (e, apps) = try bridge(slots: 64)
        let frames = (0..<63).map { F.frame(to: F.mac(2), from: F.mac(1), seed: $0) }
        XCTAssertEqual(apps[0].send(frames), 63)
        F.run(e)  // b's ring (63 usable slots) is full now
        XCTAssertFalse(e.overranReader)
        XCTAssertEqual(apps[0].send(frames), 63)
        XCTAssertEqual(e.pass(now: 1), 63)
        XCTAssertTrue(e.overranReader, "the thread is told that a reader fell behind (it then yields its core)")
        XCTAssertEqual(e.pass(now: 1), 0)
        XCTAssertFalse(e.overranReader, "only for the pass that dropped")
        XCTAssertEqual(apps[0].send(frames.prefix(5).map { $0 }), 5)
        XCTAssertEqual(e.pass(now: 1), 5)
        XCTAssertTrue(e.overranReader, "also while the reader has not read since: it may be waiting for the core")
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 68)
        XCTAssertEqual(apps[1].take(), frames, "the first 63, whole and in order")
        XCTAssertEqual(e.port(0)?.stats.txPackets, 131)
        XCTAssertEqual(e.port(1)?.stats.rxPackets, 63 + 1)
        // Once it has read, frames fit again and nothing is said.
        XCTAssertEqual(apps[0].send(frames), 63)
        XCTAssertEqual(e.pass(now: 1), 63)
        XCTAssertFalse(e.overranReader, "63 fit again")
    }

    /// A full ring says whether its reader is alive (a forwarding thread above its readers'
    /// priority steps down only for one): it is while it reads, and for `deadReaderMillis` after.
    func testAReaderBehindCountsAsLiveWhileItReads() throws {
        let (e, apps) = try bridge(slots: 64)
        let frames = (0..<63).map { F.frame(to: F.mac(2), from: F.mac(1), seed: $0) }
        XCTAssertEqual(apps[0].send(frames), 63)
        F.run(e)
        XCTAssertFalse(e.liveReaderBehind, "63 fit")
        XCTAssertEqual(apps[0].send(frames.prefix(5).map { $0 }), 5)
        let firstFull = ForwardingEngine.coarseMillis()
        XCTAssertEqual(e.pass(now: 1), 5)
        XCTAssertTrue(e.overranReader)
        XCTAssertTrue(e.liveReaderBehind, "first found full: a reader that is behind")
        XCTAssertEqual(apps[0].send(frames.prefix(5).map { $0 }), 5)
        XCTAssertEqual(e.pass(now: 1), 5)
        // Microseconds after the first, unless this thread lost its core for most of the window.
        if ForwardingEngine.coarseMillis() - firstFull < ForwardingEngine.deadReaderMillis - 20 {
            XCTAssertTrue(e.liveReaderBehind, "not read since, but within the window")
        }
        usleep(UInt32(ForwardingEngine.deadReaderMillis + 30) * 1000)
        XCTAssertEqual(apps[0].send(frames.prefix(5).map { $0 }), 5)
        XCTAssertEqual(e.pass(now: 1), 5)
        XCTAssertTrue(e.overranReader, "the frames are still dropped and counted")
        XCTAssertFalse(e.liveReaderBehind, "full and unmoved for longer than the window: not reading")
        XCTAssertEqual(apps[1].take().count, 63)
        XCTAssertEqual(apps[0].send(frames), 63)
        XCTAssertEqual(e.pass(now: 1), 63)
        XCTAssertFalse(e.liveReaderBehind, "63 fit again")
        XCTAssertEqual(apps[0].send(frames.prefix(1).map { $0 }), 1)
        XCTAssertEqual(e.pass(now: 1), 1)
        XCTAssertTrue(e.liveReaderBehind, "it read since: alive again")
        XCTAssertEqual(e.pass(now: 1), 0)
        XCTAssertFalse(e.liveReaderBehind, "only for the pass that found it full")
    }

    /// Frames that take another way to the ring (a VLAN tag pushed on the way) and find it full
    /// say so too: the reader is behind all the same.
    func testARetaggedFlowThatFindsTheRingFullTellsTheThread() throws {
        var c = EngineConfig()
        c.fdbCapacity = 64
        let e = try ForwardingEngine(config: c)
        let apps = try (0..<2).map { _ in try AppRings(slots: 64) }
        for (i, app) in apps.enumerated() {
            XCTAssertEqual(e.addPort(pool: app.pool, layout: app.layout, kickFD: -1, notifyFD: -1, backend: nil), i)
        }
        e.vlanFiltering = true
        e.setVlans(port: 0, [(10, true)], pvid: 10)  // access: untagged in VLAN 10
        e.setVlans(port: 1, [(10, false)], pvid: 0)  // trunk: gets them tagged
        let frames = (0..<63).map { F.frame(to: F.broadcast, from: F.mac(1), seed: $0) }
        XCTAssertEqual(apps[0].send(frames), 63)
        F.run(e)
        XCTAssertEqual(e.port(1)?.stats.rxPackets, 63)
        XCTAssertEqual(apps[0].send(frames.prefix(4).map { $0 }), 4)
        XCTAssertEqual(e.pass(now: 1), 4)
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 4)
        XCTAssertTrue(e.overranReader)
        XCTAssertTrue(e.liveReaderBehind)
        XCTAssertEqual(apps[1].take().count, 63)
        XCTAssertTrue(apps[1].take().isEmpty)
    }

    /// Under flow control a full ring holds the sender back instead of dropping; its reader is
    /// behind all the same.
    func testAReaderHoldingASenderBackIsBehindToo() throws {
        var c = EngineConfig()
        c.fdbCapacity = 64
        c.flowControlMicros = 1_000_000
        let e = try ForwardingEngine(config: c)
        let apps = try (0..<2).map { _ in try AppRings(slots: 64) }
        for (i, app) in apps.enumerated() {
            XCTAssertEqual(e.addPort(pool: app.pool, layout: app.layout, kickFD: -1, notifyFD: -1, backend: nil), i)
        }
        apps[1].send([F.frame(to: F.broadcast, from: F.mac(2))])
        F.run(e)
        _ = apps[0].take()
        let frames = (0..<63).map { F.frame(to: F.mac(2), from: F.mac(1), seed: $0) }
        XCTAssertEqual(apps[0].send(frames), 63)
        F.run(e)
        XCTAssertEqual(apps[0].send(frames.prefix(3).map { $0 }), 3)
        XCTAssertEqual(e.pass(now: 1), 0, "the frames wait for room")
        XCTAssertTrue(e.waitingForRoom)
        XCTAssertTrue(e.liveReaderBehind)
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 0)
    }

    func testFramesTheRunDoesNotTakeMeetTheGeneralPathsRules() throws {
        let (e, apps) = try bridge(mtuOfB: 100)
        let me = F.mac(1), toB = F.mac(2)
        let ok = F.frame(to: toB, from: me, seed: 1)
        let overMTU = F.frame(to: toB, from: me, length: 14 + 101)
        let short = Array(F.frame(to: toB, from: me).prefix(12))
        let groupSource = F.frame(to: toB, from: [0x03, 0, 0, 0, 0, 1])
        let large = F.frame(to: toB, from: me, length: 3000)  // two slots
        apps[0].send([ok, overMTU, ok, short, ok, groupSource])
        F.run(e)
        XCTAssertEqual(apps[1].take(), [ok, ok, ok])
        XCTAssertEqual(e.port(1)?.stats.dropTooLong, 1, "over b's MTU")
        XCTAssertEqual(e.port(0)?.stats.dropTooShort, 1)
        XCTAssertEqual(e.port(0)?.stats.dropBadSource, 1, "counted once")
        // A bad source first in a batch: the run counts it, once, and the general path takes the rest.
        apps[0].send([groupSource, ok, ok])
        F.run(e)
        XCTAssertEqual(e.port(0)?.stats.dropBadSource, 2)
        XCTAssertEqual(apps[1].take(), [ok, ok])
        // A frame of two slots ends the run; the general path takes it and the rest of the batch.
        let (e2, apps2) = try bridge()
        let before = e2.runFrames
        apps2[0].send([ok, large, ok])
        F.run(e2)
        XCTAssertEqual(apps2[1].takeFrames(), [ok, large, ok])
        XCTAssertEqual(e2.runFrames - before, 1)
    }

    func testAScribbledDestinationSlotGoesTheGeneralWay() throws {
        let (e, apps) = try bridge()
        let frames = (0..<4).map { F.frame(to: F.mac(2), from: F.mac(1), seed: $0) }
        // b scribbles on the buffer index of the slot the next frame goes into.
        let rx = apps[1].rx
        rx.slot(rx.ptr.loadTail()).pointee.buf_idx = 1
        apps[0].send(frames)
        F.run(e)
        XCTAssertEqual(e.port(1)?.stats.dropBadSlot, 1, "the general path resets b's ring and counts it")
        XCTAssertEqual(e.port(1)?.stats.dropRingFull, 3, "nothing more goes to a ring that was just reset in this batch")
        XCTAssertEqual(e.port(1)?.stats.rxPackets, 1, "only c's announce: nothing reached the scribbled ring")
    }
}
