import CSwaleABI
import CSwaleSys
// The forwarding thread's priority: configured nice applied to that thread only, while the bridge
// has kernel ports; refusal reported.
import Foundation
import Glibc
import SwaleDatapath
import SwaleRings
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

    /// A port on `b`: with a backend (a kernel port, here in memory) or without (an application's).
    func addPort(_ b: Bridge, kernel: Bool) throws -> Int {
        let pool = try MemoryPool(name: "swale-thread-test", initialBlocks: 2 * 64 + 64)
        let layout = try pool.makeInterface(name: "p", slots: 64)
        pools.append(pool)
        let backend: PortBackend? = kernel ? try MemoryPort(slots: 64) : nil
        return try XCTUnwrap(b.addPort(pool: pool, layout: layout, kickFD: -1, notifyFD: -1, backend: backend)).index
    }
    var pools: [MemoryPool] = []

    func niceOfCaller() -> Int { Int(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(swale_gettid()))) }

    func testConfiguredNiceIsAppliedToTheForwardingThreadOnly() throws {
        let mine = niceOfCaller()
        let b = try bridge("vale81", nice: 7)  // a lower priority needs no privilege
        defer { b.stop() }
        _ = try addPort(b, kernel: true)
        XCTAssertEqual(b.priorityError, 0)
        XCTAssertEqual(try niceOfThread(b, named: "swale-vale81"), 7)
        XCTAssertEqual(niceOfCaller(), mine, "the caller's thread keeps its nice")
    }

    func testNoNiceInheritsTheCreatorsPriority() throws {
        let mine = niceOfCaller()
        let b = try bridge("vale82", nice: nil)
        defer { b.stop() }
        _ = try addPort(b, kernel: true)
        XCTAssertEqual(b.priorityError, 0)
        XCTAssertEqual(try niceOfThread(b, named: "swale-vale82"), mine)
    }

    /// The default raises the priority while the bridge has a kernel port: applied as root,
    /// reported (not fatal) otherwise.
    func testRaisedPriorityIsAppliedOrItsRefusalReported() throws {
        let b = try bridge("vale83", nice: BridgeConfig().forwardingNice)
        defer { b.stop() }
        XCTAssertEqual(BridgeConfig().forwardingNice, -10)
        _ = try addPort(b, kernel: true)
        if geteuid() == 0 {
            XCTAssertEqual(b.priorityError, 0)
            XCTAssertEqual(try niceOfThread(b, named: "swale-vale83"), -10)
        } else {
            XCTAssertTrue(b.priorityError == EACCES || b.priorityError == EPERM, "errno \(b.priorityError)")
        }
    }

    /// Application ports alone keep the inherited priority (a thread that outranks its readers
    /// starves the one it shares a core with); the first kernel port raises it, the last one's
    /// removal lowers it again.
    func testThePriorityFollowsTheBridgesKernelPorts() throws {
        try XCTSkipUnless(geteuid() == 0, "raising a thread's priority needs CAP_SYS_NICE (run as root)")
        let mine = niceOfCaller()
        let b = try bridge("vale84", nice: -10)
        defer { b.stop() }
        _ = try addPort(b, kernel: false)
        XCTAssertEqual(try niceOfThread(b, named: "swale-vale84"), mine, "application ports only")
        let k1 = try addPort(b, kernel: true)
        XCTAssertEqual(try niceOfThread(b, named: "swale-vale84"), -10, "a kernel port")
        let k2 = try addPort(b, kernel: true)
        b.removePort(k1)
        XCTAssertEqual(try niceOfThread(b, named: "swale-vale84"), -10, "one kernel port left")
        b.removePort(k2)
        XCTAssertEqual(try niceOfThread(b, named: "swale-vale84"), mine, "none left")
        XCTAssertEqual(b.priorityError, 0)
    }
}
