import CSwaleSys
// The need-wakeup handshake of SwalePort.wait / txSync / rxSync (docs/ARCHITECTURE.md, "The
// need-wakeup handshake"), run by two threads on a pipe without swaled, with random delays on
// both sides: a sleeper is always woken when work arrives, never left asleep with work waiting.
import Foundation
import Glibc
import XCTest

@testable import SwaleClient

final class WakeupProtocolTests: XCTestCase {
    /// What the sender thread reports; read after it signalled `done`.
    final class SenderState: @unchecked Sendable {
        var sent = 0
        var slowWaits = 0
        let done = DispatchSemaphore(value: 0)
    }

    /// Random pauses of 0-`maxMicros` µs, mostly none, so both the busy and the sleeping paths run.
    struct Jitter {
        var state: UInt64
        mutating func pause(maxMicros: UInt32) {
            guard maxMicros > 0 else { return }
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            if state % 4 == 0 { usleep(UInt32(truncatingIfNeeded: state >> 8) % (maxMicros + 1)) }
        }
    }

    struct Outcome {
        var received = 0
        var senderDone = false
        /// Waits that ran into their 2 s timeout. Nothing makes either side pause for a second, so
        /// each is a lost wake-up.
        var slowSenderWaits = 0
        var slowReceiverWaits = 0
        var peerErrors: UInt64 = 0
    }

    /// `count` frames from a to b over a `slots`-slot pipe, both sides sleeping (no busy polling)
    /// whenever they cannot go on; each pauses at random up to its `Pause` µs after a sync, and the
    /// receiver takes at most `receiveMax` frames a time.
    func exchange(slots: Int, count: Int, senderPause: UInt32, receiverPause: UInt32, receiveMax: Int = .max) throws
        -> Outcome
    {
        let p = try LocalPipe(slots: slots)
        // Each end says it sleeps the membarrier way, so the other publishes with a compiler barrier
        // (where swale_fenceless allows it: withEachBarrier).
        let says = UInt16(swale_barrier_sleeper() != 0 ? SWALE_SLEEPS_MEMBARRIER : 0)
        XCTAssertEqual(p.a.controlBlock.pointee.app_membarrier, says)
        XCTAssertEqual(p.b.controlBlock.pointee.app_membarrier, says)
        p.a.busyPollMicros = 0
        p.b.busyPollMicros = 0
        let frame = testFrame(60, tag: 9)
        let st = SenderState()
        let sender = Thread {
            var j = Jitter(state: 0x1234_5678)
            while st.sent < count {
                if p.a.txSpace() == 0 {
                    let t0 = Date()
                    _ = p.a.wait(for: .tx, timeoutMs: 2000)
                    if Date().timeIntervalSince(t0) > 1.0 { st.slowWaits += 1 }
                    continue
                }
                _ = frame.withUnsafeBytes { p.a.enqueue($0) }
                st.sent += 1
                p.a.txSync()
                j.pause(maxMicros: senderPause)
            }
            st.done.signal()
        }
        sender.start()
        var out = Outcome()
        var j = Jitter(state: 0x9abc_def0)
        let deadline = Date().addingTimeInterval(60)
        while out.received < count && Date() < deadline {
            if p.b.rxAvailable() == 0 {
                let t0 = Date()
                _ = p.b.wait(for: .rx, timeoutMs: 2000)
                if Date().timeIntervalSince(t0) > 1.0 { out.slowReceiverWaits += 1 }
                continue
            }
            out.received += p.b.receive(max: receiveMax) { _ in }
            p.b.rxSync()
            j.pause(maxMicros: receiverPause)
        }
        out.senderDone = st.done.wait(timeout: .now() + 10) == .success
        out.slowSenderWaits = st.slowWaits
        out.peerErrors = p.a.peerErrors + p.b.peerErrors
        return out
    }

    /// Runs `body` once with each flavour of the publisher's barrier (swale_atomics.h): the
    /// compiler barrier that membarrier registration allows, and the full fence a process without
    /// it uses. The sleeper's side is the same in both.
    func withEachBarrier(_ body: (String) throws -> Void) rethrows {
        let registered = swale_barrier_register()
        XCTAssertEqual(registered, 1, "membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) is in every kernel Swale supports")
        defer { swale_fenceless = registered }
        swale_fenceless = registered
        try body("compiler barrier (registered)")
        swale_fenceless = 0
        try body("full fence")
    }

    /// Every frame arrived, nothing was left to a wait's timeout (each such wait is a lost wake-up),
    /// and neither side saw an invalid value.
    func assertNoWakeUpLost(_ o: Outcome, count: Int, _ barrier: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(o.senderDone, barrier, file: file, line: line)
        XCTAssertEqual(o.received, count, barrier, file: file, line: line)
        XCTAssertEqual(o.slowReceiverWaits, 0, "receiver waits that ran into their timeout (\(barrier))", file: file, line: line)
        XCTAssertEqual(o.slowSenderWaits, 0, "sender waits that ran into their timeout (\(barrier))", file: file, line: line)
        XCTAssertEqual(o.peerErrors, 0, barrier, file: file, line: line)
    }

    /// The receiver keeps finding its ring empty and sleeps; every frame must wake it.
    func testASleepingReceiverIsAlwaysWoken() throws {
        try withEachBarrier { barrier in
            let o = try exchange(slots: 64, count: 20_000, senderPause: 200, receiverPause: 200)
            assertNoWakeUpLost(o, count: 20_000, barrier)
        }
    }

    /// The other direction: a sender with a full ring sleeps until the receiver releases slots
    /// (rxSync rings it only when it asked); the receiver takes one frame at a time, slowly.
    func testASenderWaitingForRoomIsAlwaysWoken() throws {
        try withEachBarrier { barrier in
            let o = try exchange(slots: 16, count: 10_000, senderPause: 0, receiverPause: 100, receiveMax: 1)
            assertNoWakeUpLost(o, count: 10_000, barrier)
        }
    }

    /// Neither side pauses: the publisher's light barrier and the sleeper's membarrier race at
    /// full speed on an 8-slot ring, so that both sides go to sleep and are woken very often.
    func testNoWakeUpIsLostAtFullSpeed() throws {
        try withEachBarrier { barrier in
            let o = try exchange(slots: 8, count: 200_000, senderPause: 0, receiverPause: 0, receiveMax: 3)
            assertNoWakeUpLost(o, count: 200_000, barrier)
        }
    }

    /// A forked child is a new process image for membarrier: it registers anew before it syncs.
    func testAForkedChildRegistersAgain() throws {
        XCTAssertEqual(swale_barrier_register(), 1)
        XCTAssertEqual(swale_barrier_registered(), 1)
        let pid = fork()
        if pid == 0 { _exit(swale_fenceless == 1 && swale_barrier_registered() == 1 ? 0 : 3) }
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertEqual(status, 0, "the child was not registered (exit status \(status >> 8))")
    }
}
