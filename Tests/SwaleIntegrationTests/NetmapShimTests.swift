// Unmodified netmap programs on Swale: Tests/netmap/nmapp.c, written against the netmap API (a
// struct nmreq_header and NIOCCTRL or the legacy NIOCREGIF, mmap, NETMAP_TXRING/NETMAP_BUF/
// nm_ring_next, poll/select/epoll), built here with the system C compiler and run under
// LD_PRELOAD=libswale-netmap.so against a private swaled.
import Foundation
import Glibc
import SwaleClient
import SwaleProtocol
import XCTest

final class NetmapShimTests: XCTestCase {
    var svc: ServiceFixture!

    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// nmapp, compiled once per run (warnings are errors: the API header must be clean C).
    static let program: Result<String, FixtureError> = {
        let out = NSTemporaryDirectory() + "swale-nmapp-\(getpid())"
        let r = repo.path
        let (rc, text) = sh(
            "cc -O2 -Wall -Werror -I \(r)/Sources/CSwaleABI/include -I \(r)/Sources/CSwaleNetmap/include -o \(out) \(r)/Tests/netmap/nmapp.c",
            seconds: 120)
        return rc == 0 ? .success(out) : .failure(FixtureError("building nmapp with cc failed: \(text)"))
    }()

    /// The compiled program goes with the test run.
    override class func tearDown() {
        if case .success(let path) = program { unlink(path) }
    }

    override func setUpWithError() throws {
        guard sh("command -v cc").0 == 0 else { throw FixtureError("no C compiler (cc): Scripts/setup.sh installs gcc") }
        _ = try NetmapShimTests.program.get()
        svc = try ServiceFixture()
    }

    override func tearDown() {
        if let svc { _ = svc.stop() }
    }

    /// nmapp with the shim preloaded, talking to this test's swaled.
    func nmapp(_ args: [String]) throws -> Child {
        let lib = Products.dir.appendingPathComponent("libswale-netmap.so").path
        guard FileManager.default.fileExists(atPath: lib) else { throw FixtureError("\(lib) is not built") }
        return try Child(try NetmapShimTests.program.get(), args, env: ["LD_PRELOAD": lib, "SWALE_SOCKET": svc.socket])
    }

    func run(_ args: [String], seconds: Double = 30) throws -> (Int32, String) {
        let c = try nmapp(args)
        let rc = c.wait(seconds: seconds)
        return (rc, c.stdout + c.stderr)
    }

    /// A receiver that has registered (it says "ready"), then a sender; the receiver's report.
    func transfer(rx: [String], tx: [String]) throws -> (rx: String, tx: String, rxSeconds: Double) {
        let start = Date()
        let r = try nmapp(["rx"] + rx)
        XCTAssertTrue(svc.eventually(10) { r.partialStdout.contains("ready") }, "receiver did not register: \(r.stderr)")
        let (trc, tout) = try run(["tx"] + tx)
        XCTAssertEqual(trc, 0, tout)
        let rrc = r.wait(seconds: 30)
        XCTAssertEqual(rrc, 0, r.stdout + r.stderr)
        return (r.stdout + r.stderr, tout, Date().timeIntervalSince(start))
    }

    func testBadRequestsGetNetmapsErrors() throws {
        let (rc, out) = try run(["errors", "vale5:e"])
        XCTAssertEqual(rc, 0, out)
        XCTAssertTrue(out.contains("errors: 0 wrong"), out)
        for line in [
            "API version 13: ok", "host rings: ok", "an option: ok", "txsync before register: ok", "mmap before register: ok",
            "malformed name: ok", "register twice: ok", "virtio-net header 14: ok",
            "shared open of a port held exclusively: ok", "exclusive open of a port held exclusively: ok"
        ] {
            XCTAssertTrue(out.contains(line), "\(line) in \(out)")
        }
    }

    func testFramesCrossTheSwitchExactlyWithEveryWayOfWaiting() throws {
        for (wait, legacy) in [
            ("poll", false), ("ppoll", false), ("select", false), ("epoll", true), ("ioctl", false), ("poll", true)
        ] {
            let extra = legacy ? ["legacy"] : []
            let size = legacy ? "1400" : "60"
            let rxWait = wait == "ioctl" ? "poll" : wait
            // Paced (16 frames, then 200 µs: a 1024-slot ring holds 12 ms of it): the switch drops
            // what a full rx ring cannot take, as netmap's VALE does, and this is about exact
            // delivery, not speed, on a machine where the receiver may wait for a core.
            let t = try transfer(
                rx: ["vale5:b", "20000", "3000", rxWait] + extra,
                tx: ["vale5:a", "20000", size, wait, "batch=16", "pace=200"] + extra)
            XCTAssertTrue(t.rx.contains("received 20000 frames, 0 bad"), "\(wait)\(legacy ? " legacy" : ""): \(t.rx)")
            XCTAssertTrue(t.tx.contains("sent 20000 frames"), t.tx)
        }
        // Both ports went with their programs.
        XCTAssertTrue(try svc.eventually { try svc.ctl(["port", "list", "vale5"]).1.split(separator: "\n").count <= 1 })
    }

    func testPollWakesTheReceiverWhenFramesArrive() throws {
        // The receiver sleeps in poll (5 s timeout); ten frames sent 0.5 s later must wake it at once.
        let r = try nmapp(["rx", "vale5:w", "10", "5000", "poll"])
        XCTAssertTrue(svc.eventually(10) { r.partialStdout.contains("ready") }, r.stderr)
        usleep(500_000)
        let sent = Date()
        let (trc, tout) = try run(["tx", "vale5:s", "10", "60", "poll"])
        XCTAssertEqual(trc, 0, tout)
        XCTAssertEqual(r.wait(seconds: 10), 0, r.stdout + r.stderr)
        let woke = Date().timeIntervalSince(sent)
        XCTAssertTrue(r.stdout.contains("received 10 frames, 0 bad"), r.stdout)
        XCTAssertLessThan(woke, 2.0, "the receiver slept through the frames (woke after \(woke) s)")
    }

    func testPipesShareOneMappingAndMoveBuffersNotBytes() throws {
        for legacy in [false, true] {
            let (rc, out) = try run(["pipe-zerocopy", "vale5:p", "100000"] + (legacy ? ["legacy"] : []))
            XCTAssertEqual(rc, 0, out)
            XCTAssertTrue(out.contains("pipe: 100000 of 100000 frames, 0 not in the sender's buffers"), out)
        }
    }

    func testExtraBuffersAreListedUsedAndTakenBack() throws {
        // The parent port stays open here, so its region outlives the pipe and can be counted.
        let parent = try SwalePort.open("vale5:x", socket: svc.socket)
        defer { parent.close() }
        func region() throws -> RegionInfo {
            guard let r = try svc.status().regions.first(where: { $0.users.contains("vale5:x") }) else {
                throw FixtureError("no region for vale5:x in status")
            }
            return r
        }
        let before = try region()
        for legacy in [false, true] {
            let (rc, out) = try run(["extra", "vale5:x", "300"] + (legacy ? ["legacy"] : []))
            XCTAssertEqual(rc, 0, out)
            XCTAssertTrue(
                out.contains("asked 300, granted 300, listed 300; frame from an extra buffer arrived in that buffer"), out)
        }
        // Both pipe ends closed: the pipe and the 300 extra buffers (one swapped through the ring) are back.
        XCTAssertTrue(try svc.eventually { try region().users == ["vale5:x"] })
        let after = try region()
        XCTAssertEqual(after.buffersTotal - after.buffersFree, before.buffersTotal - before.buffersFree, "buffers in use")
        XCTAssertEqual(after.buffersTotal - after.buffersFree - after.buffersAccounted, 0, "every buffer in use is accounted for")
        XCTAssertEqual(after.refusedFrees, 0)
        // A list left looping on itself: swaled takes back what it can check (one), refuses the
        // second visit, logs the rest as kept, and keeps serving.
        let (drc, dout) = try run(["extra", "vale5:x", "10", "damage"])
        XCTAssertEqual(drc, 0, dout)
        XCTAssertTrue(try svc.eventually { try region().users == ["vale5:x"] })
        let damaged = try region()
        XCTAssertEqual(
            damaged.buffersTotal - damaged.buffersFree - damaged.buffersAccounted, 9, "the 9 unlisted buffers show as unaccounted"
        )
        XCTAssertTrue(svc.daemon.process.isRunning)
        // A list naming a buffer a live ring slot holds: refused (freeing it would hand it out twice).
        let (src, sout) = try run(["extra", "vale5:x", "10", "steal"])
        XCTAssertEqual(src, 0, sout)
        XCTAssertTrue(try svc.eventually { try region().users == ["vale5:x"] })
        let stolen = try region()
        XCTAssertEqual(stolen.buffersTotal - stolen.buffersFree - stolen.buffersAccounted, 9 + 10, "none freed: all 10 kept")
        XCTAssertEqual(stolen.refusedFrees, damaged.refusedFrees, "nothing in use was even tried")
        // The region still works: a clean round after both hostile ones.
        let (crc, cout) = try run(["pipe-zerocopy", "vale5:x", "10000"])
        XCTAssertEqual(crc, 0, cout)
        // More than the service gives: netmap's rule, fewer are granted (nmapp reports and fails on it).
        let (rc, out) = try run(["extra", "vale5:x", "5000"])
        XCTAssertEqual(rc, 1, out)
        XCTAssertTrue(out.contains("asked 5000, granted 4096, listed 4096"), out)
    }

    func testCopiesOfADescriptorNameTheSameOpen() throws {
        // dup before registering, F_DUPFD after, the original closed: both copies sync, poll and map;
        // over a pipe, so every frame must arrive.
        let r = try nmapp(["rx", "vale5:d}1", "20000", "3000", "poll"])
        XCTAssertTrue(svc.eventually(10) { r.partialStdout.contains("ready") }, r.stderr)
        let (rc, out) = try run(["dup", "vale5:d{1", "20000"])
        XCTAssertEqual(rc, 0, out)
        XCTAssertTrue(out.contains("dup: sent 20000 frames"), out)
        XCTAssertEqual(r.wait(seconds: 10), 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("received 20000 frames, 0 bad"), r.stdout)
    }

    func testAForkedChildTransmitsOnTheInheritedDescriptor() throws {
        // Over a pipe, which never drops (the sender waits for room): every frame must arrive.
        let (rc, out) = try run(["fork", "vale5:f{1", "vale5:f}1", "20000"])
        XCTAssertEqual(rc, 0, out)
        XCTAssertTrue(out.contains("received 20000 frames, 0 bad"), out)
    }

    func testSharedOpensJoinThePortAndEveryHolderIsWoken() throws {
        // Two programs register vale5:s without NR_EXCLUSIVE (netmap's default): the second joins.
        let holder = try nmapp(["hold", "vale5:s", "20"])
        XCTAssertTrue(svc.eventually(10) { holder.partialStdout.contains("holding") }, holder.stdout + holder.stderr)
        let r = try nmapp(["rx", "vale5:s", "10", "5000", "poll"])
        XCTAssertTrue(svc.eventually(10) { r.partialStdout.contains("ready") }, r.stdout + r.stderr)
        let listed = try svc.ctl(["port", "list", "vale5"]).1
        XCTAssertTrue(listed.contains("pid \(holder.pid) +pid \(r.pid)"), listed)
        // An exclusive open (netmap's /x) of a port in use, and Swale's own clients (exclusive by
        // default), are refused; a shared one from Swale's client joins.
        let (erc, eout) = try run(["hold", "vale5:s", "0", "excl"])
        XCTAssertEqual(erc, 3, eout)
        XCTAssertTrue(eout.contains("Device or resource busy"), eout)
        XCTAssertThrowsError(try SwalePort.open("vale5:s", socket: svc.socket)) {
            XCTAssertTrue("\($0)".contains("already open"), "\($0)")
        }
        let joined = try SwalePort.open("vale5:s", socket: svc.socket, share: true)
        // The receiver sleeps in poll; frames flooded to vale5:s must wake it although three
        // processes hold the port, each on a wake-up line of its own.
        usleep(500_000)
        let sent = Date()
        let (trc, tout) = try run(["tx", "vale5:t", "10", "60", "poll"])
        XCTAssertEqual(trc, 0, tout)
        XCTAssertEqual(r.wait(seconds: 10), 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("received 10 frames, 0 bad"), r.stdout)
        XCTAssertLessThan(Date().timeIntervalSince(sent), 2.0, "the receiver slept through the frames")
        // The port stays while any holder has it, and goes with the last.
        XCTAssertTrue(try svc.eventually { try svc.ctl(["port", "list", "vale5"]).1.contains("vale5:s") })
        joined.close()
        holder.signal(SIGTERM)
        _ = holder.wait(seconds: 10)
        XCTAssertTrue(try svc.eventually(10) { !(try svc.ctl(["port", "list", "vale5"]).1.contains("vale5:s")) })
    }

    func testADescriptorPassedToAnotherProcessCarriesThePort() throws {
        // As netmap's fd_server: the child gets the descriptor over SCM_RIGHTS (no table entry, no
        // inherited mapping), maps it and transmits; through a pipe (never drops) and the switch.
        let (rc, out) = try run(["pass", "vale5:g{1", "vale5:g}1", "20000"])
        XCTAssertEqual(rc, 0, out)
        XCTAssertTrue(out.contains("child: mapped the descriptor passed"), out)
        XCTAssertTrue(out.contains("received 20000 frames, 0 bad"), out)
        let (src, sout) = try run(["pass", "vale5:pa", "vale5:pb", "2000", "batch=16", "pace=200"])
        XCTAssertEqual(src, 0, sout)
        XCTAssertTrue(sout.contains("received 2000 frames, 0 bad"), sout)
        XCTAssertTrue(try svc.eventually(10) { try svc.ctl(["port", "list", "vale5"]).1.split(separator: "\n").count <= 1 })
    }

    func testVirtioNetHeadersCarryOffloadRequestsThroughTheSwitch() throws {
        // va and vb with 12-byte headers (vb set before registering), vc without: plain frames get a
        // zeroed header or lose theirs; a checksum request and a TCP GSO frame from va are finished
        // for vc and reach vb as sent. The legacy 10-byte header and pipe ends are refused.
        let (rc, out) = try run(["vnet", "vale5"])
        XCTAssertEqual(rc, 0, out)
        for line in [
            "header length 11: ok", "legacy header length 10: ok", "plain frame from a header port: ok",
            "plain frame to header ports: ok", "UDP checksum completed for vc, asked of vb: ok",
            "TCP GSO cut into 3 segments for vc: ok", "TCP GSO whole for vb: ok", "header on a pipe end: ok", "vnet: 0 wrong"
        ] {
            XCTAssertTrue(out.contains(line), "\(line) in \(out)")
        }
        XCTAssertTrue(try svc.eventually(10) { try svc.ctl(["port", "list", "vale5"]).1.split(separator: "\n").count <= 1 })
    }

    func testWithoutSwaledRegisteringFailsCleanly() throws {
        _ = svc.stop()
        svc = nil
        let lib = Products.dir.appendingPathComponent("libswale-netmap.so").path
        let c = try Child(
            try NetmapShimTests.program.get(), ["rx", "vale5:x", "1", "100"],
            env: ["LD_PRELOAD": lib, "SWALE_SOCKET": NSTemporaryDirectory() + "no-such-swaled.sock"])
        XCTAssertEqual(c.wait(seconds: 10), 2)
        XCTAssertTrue(c.stderr.contains("No such device or address"), c.stderr)
    }
}
