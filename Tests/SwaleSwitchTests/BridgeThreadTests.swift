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
        layouts.append(layout)
        let backend: PortBackend? = kernel ? try MemoryPort(slots: 64) : nil
        return try XCTUnwrap(b.addPort(pool: pool, layout: layout, kickFD: -1, notifyFD: -1, backend: backend)).index
    }
    var pools: [MemoryPool] = []
    var layouts: [InterfaceLayout] = []

    func niceOfCaller() -> Int { Int(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(swale_gettid()))) }

    func testForwardingThreadIsPlacedOnItsCPUsOnly() throws {
        let mine = try XCTUnwrap(Bridge.cpus(ofThread: 0))
        try XCTSkipIf(mine.count < 2, "placement cannot be seen with one CPU: the thread would have it anyway")
        let cpu = try XCTUnwrap(mine.last)
        var c = BridgeConfig()
        c.fdbCapacity = 8
        c.forwardingCPUs = [cpu]
        let b = try Bridge(name: "vale85", config: c)
        b.start()
        defer { b.stop() }
        XCTAssertEqual(b.placementError, 0)
        XCTAssertEqual(b.threadCPUs, [cpu])
        let status = try String(contentsOfFile: "/proc/self/task/\(b.threadID)/status", encoding: .utf8)
        XCTAssertTrue(status.contains("Cpus_allowed_list:\t\(cpu)\n"), status)
        XCTAssertEqual(Bridge.cpus(ofThread: 0), mine, "the caller's thread keeps its CPUs")
        _ = try addPort(b, kernel: false)  // the placed thread still serves its mailbox
    }

    func testAPlacementTheKernelRefusesLeavesTheThreadWhereItWas() throws {
        let mine = try XCTUnwrap(Bridge.cpus(ofThread: 0))
        var c = BridgeConfig()
        c.fdbCapacity = 8
        c.forwardingCPUs = [1023]  // not a CPU of this machine (the largest CPU_SETSIZE holds)
        let b = try Bridge(name: "vale86", config: c)
        b.start()
        defer { b.stop() }
        XCTAssertEqual(b.placementError, EINVAL)
        XCTAssertEqual(b.threadCPUs, mine)
        _ = try addPort(b, kernel: false)
        b.stop()
        XCTAssertNil(b.threadCPUs, "a stopped bridge names no thread (its id may be another's by now)")
    }

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

    /// A raised thread that overruns an application reader which reads steps down to the
    /// inherited priority (so that a reader sharing its core gets it) and takes -10 back when it
    /// goes idle; for a reader that stopped reading it does not step down.
    func testARaisedThreadLendsItsPriorityToALiveReaderOnly() throws {
        try XCTSkipUnless(geteuid() == 0, "raising a thread's priority needs CAP_SYS_NICE (run as root)")
        let b = try bridge("vale85", nice: -10)
        defer { b.stop() }
        _ = try addPort(b, kernel: true)
        _ = try addPort(b, kernel: false)
        _ = try addPort(b, kernel: false)
        let sender = pools[1], reader = pools[2]
        let tx = UserRing(ring: sender.region.base + layouts[1].txRingOffsets[0], region: sender.region)
        let rx = UserRing(ring: reader.region.base + layouts[2].rxRingOffsets[0], region: reader.region)
        // Broadcast frames from the sender: they reach the reader (and the kernel port, which has no say).
        func send(_ count: Int) throws {
            let w = try XCTUnwrap(tx.window())
            XCTAssertGreaterThanOrEqual(Int(w.count), count)
            var i = w.head
            var frame = [UInt8](repeating: 0, count: 60)
            for k in 0..<6 { frame[k] = 0xff }
            frame[6] = 2
            frame[11] = 1
            for _ in 0..<count {
                var wr = SlotWriter(tx, at: i)
                frame.withUnsafeBytes { wr.write($0.baseAddress!, $0.count) }
                i = RingMath.add(i, wr.finish(), tx.numSlots)
            }
            tx.advance(to: i)
            b.perform { _ in }  // wakes the thread, should it sleep
            let deadline = Date().addingTimeInterval(5)
            while tx.window()?.count != tx.numSlots - 1 && Date() < deadline { usleep(1000) }
            XCTAssertEqual(tx.window()?.count, tx.numSlots - 1, "the switch took them all")
        }
        func settledNice() throws -> Int {
            let deadline = Date().addingTimeInterval(2)
            while try niceOfThread(b, named: "swale-vale85") != -10 && Date() < deadline { usleep(1000) }
            return try niceOfThread(b, named: "swale-vale85")
        }
        XCTAssertEqual(try settledNice(), -10)
        try send(63)  // the reader's ring (64 slots) is full now: nothing dropped, nothing lent
        XCTAssertEqual(b.perform { $0.priorityLends }, 0)
        try send(10)
        XCTAssertEqual(b.perform { $0.priorityLends }, 1, "overran a reader found full for the first time")
        XCTAssertEqual(try settledNice(), -10, "taken back once idle")
        XCTAssertFalse(b.perform { $0.lent })
        usleep(UInt32(ForwardingEngine.deadReaderMillis + 50) * 1000)
        try send(10)
        XCTAssertEqual(b.perform { $0.priorityLends }, 1, "a reader that has not read for the whole window is not waited for")
        XCTAssertEqual(try settledNice(), -10)
        let w = try XCTUnwrap(rx.window())
        XCTAssertEqual(w.count, 63)
        rx.advance(to: RingMath.add(w.head, w.count, rx.numSlots))
        try send(63)
        try send(1)
        XCTAssertEqual(b.perform { $0.priorityLends }, 2, "it read: alive again")
        XCTAssertEqual(b.tableStats().priorityLends, 2, "what stats and metrics report")
        XCTAssertEqual(try settledNice(), -10)
        XCTAssertEqual(b.priorityError, 0)
    }
}
