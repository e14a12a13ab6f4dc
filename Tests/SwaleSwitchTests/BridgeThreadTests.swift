import CSwaleABI
import CSwaleSys
// The forwarding thread's priority: configured nice applied to that thread only, refusal reported.
import Foundation
import Glibc
import SwaleSwitch
import XCTest

final class BridgeThreadTests: XCTestCase {
    /// Nice value of a bridge's forwarding thread, and its name (from /proc/self/task/ID).
    func niceOfThread(_ b: Bridge, named name: String) throws -> Int {
        let dir = "/proc/self/task/\(b.threadID)"
        let comm = try String(contentsOfFile: dir + "/comm", encoding: .utf8)
        XCTAssertEqual(comm.trimmingCharacters(in: .whitespacesAndNewlines), name)
        let stat = try String(contentsOfFile: dir + "/stat", encoding: .utf8)
        let close = try XCTUnwrap(stat.lastIndex(of: ")"))
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return try XCTUnwrap(Int(fields[16]))  // field 19 of stat; fields[0] is field 3 (state)
    }

    func bridge(_ name: String, nice: Int?) throws -> Bridge {
        var c = BridgeConfig()
        c.fdbCapacity = 8
        c.forwardingNice = nice
        let b = try Bridge(name: name, config: c)
        b.start()
        return b
    }

    func testConfiguredNiceIsAppliedToTheForwardingThreadOnly() throws {
        let mine = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(swale_gettid()))
        let b = try bridge("vale81", nice: 7)  // a lower priority needs no privilege
        defer { b.stop() }
        XCTAssertEqual(b.priorityError, 0)
        XCTAssertEqual(try niceOfThread(b, named: "swale-vale81"), 7)
        XCTAssertEqual(
            getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(swale_gettid())), mine,
            "the caller's thread keeps its nice")
    }

    func testNoNiceInheritsTheCreatorsPriority() throws {
        let mine = Int(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(swale_gettid())))
        let b = try bridge("vale82", nice: nil)
        defer { b.stop() }
        XCTAssertEqual(b.priorityError, 0)
        XCTAssertEqual(try niceOfThread(b, named: "swale-vale82"), mine)
    }

    /// The default raises the priority: applied as root, reported (not fatal) otherwise.
    func testRaisedPriorityIsAppliedOrItsRefusalReported() throws {
        let b = try bridge("vale83", nice: BridgeConfig().forwardingNice)
        defer { b.stop() }
        XCTAssertEqual(BridgeConfig().forwardingNice, -10)
        if geteuid() == 0 {
            XCTAssertEqual(b.priorityError, 0)
            XCTAssertEqual(try niceOfThread(b, named: "swale-vale83"), -10)
        } else {
            XCTAssertTrue(b.priorityError == EACCES || b.priorityError == EPERM, "errno \(b.priorityError)")
        }
    }
}
