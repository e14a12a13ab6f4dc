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
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            if state % 4 == 0 { usleep(UInt32(truncatingIfNeeded: state >> 8) % (maxMicros + 1)) }
        }
    }

    /// Sends `count` frames from a to b; b sleeps (no busy polling) whenever its ring is empty.
    /// Every wait must end in time: a lost wake-up shows as a wait that runs into its timeout.
    func testASleepingReceiverIsAlwaysWoken() throws {
        let p = try LocalPipe(slots: 64)
        p.a.busyPollMicros = 0
        p.b.busyPollMicros = 0
        let count = 20_000
        let frame = testFrame(60, tag: 9)
        let st = SenderState()
        let sender = Thread {
            var j = Jitter(state: 0x1234_5678)
            while st.sent < count {
                if p.a.txSpace() == 0 {
                    _ = p.a.wait(for: .tx, timeoutMs: 2000)
                    continue
                }
                _ = frame.withUnsafeBytes { p.a.enqueue($0) }
                st.sent += 1
                p.a.txSync()
                j.pause(maxMicros: 200)
            }
            st.done.signal()
        }
        sender.start()
        var got = 0
        var slowWaits = 0
        var j = Jitter(state: 0x9abc_def0)
        let deadline = Date().addingTimeInterval(60)
        while got < count && Date() < deadline {
            if p.b.rxAvailable() == 0 {
                let t0 = Date()
                _ = p.b.wait(for: .rx, timeoutMs: 2000)
                // Nothing makes the sender pause for a second: a wait that long missed its wake-up.
                if Date().timeIntervalSince(t0) > 1.0 { slowWaits += 1 }
                continue
            }
            got += p.b.receive { _ in }
            p.b.rxSync()
            j.pause(maxMicros: 200)
        }
        XCTAssertEqual(st.done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(got, count)
        XCTAssertEqual(slowWaits, 0, "waits that ran into their timeout: lost wake-ups")
        XCTAssertEqual(p.a.peerErrors + p.b.peerErrors, 0)
    }

    /// The other direction of the handshake: a sender with a full ring sleeps until the receiver
    /// releases slots (rxSync rings it only when it asked).
    func testASenderWaitingForRoomIsAlwaysWoken() throws {
        let p = try LocalPipe(slots: 16)
        p.a.busyPollMicros = 0
        p.b.busyPollMicros = 0
        let count = 10_000
        let frame = testFrame(60, tag: 3)
        let st = SenderState()
        let sender = Thread {
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
            }
            st.done.signal()
        }
        sender.start()
        var got = 0
        var j = Jitter(state: 42)
        let deadline = Date().addingTimeInterval(60)
        while got < count && Date() < deadline {
            if p.b.rxAvailable() == 0 {
                _ = p.b.wait(for: .rx, timeoutMs: 2000)
                continue
            }
            // Slowly, one frame at a time: the sender keeps finding its ring full.
            got += p.b.receive(max: 1) { _ in }
            p.b.rxSync()
            j.pause(maxMicros: 100)
        }
        XCTAssertEqual(st.done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(got, count)
        XCTAssertEqual(st.slowWaits, 0, "sender waits that ran into their timeout: lost wake-ups")
    }
}
