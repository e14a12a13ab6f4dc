// A pipe built without swaled: both ends laid out in a memfd region of the test's own the way the
// service lays them out (SwaleService/Pipes.swift), opened through SwalePort's real initializer, so
// the library's ring and pipe code runs on memory the test can corrupt field by field.
import CSwaleABI
import CSwaleSys
import Glibc
import SwaleProtocol
import SwaleRings
import XCTest

@testable import SwaleClient

final class LocalPipe {
    let pool: MemoryPool
    let master: InterfaceLayout
    let slave: InterfaceLayout
    let masterBell: Doorbell
    let slaveBell: Doorbell
    /// The master end (`t<1`) and the slave end (`t>1`).
    let a: SwalePort
    let b: SwalePort
    let slots: Int

    init(slots: Int = 16) throws {
        self.slots = slots
        pool = try MemoryPool(name: "client-test", initialBlocks: 4 * slots + 64)
        master = try pool.makeInterface(name: "t{1", slots: slots)
        slave = try pool.makeInterface(name: "t}1", slots: slots)
        masterBell = try Doorbell()
        slaveBell = try Doorbell()
        // As swaled hands them out: region, own doorbell to poll, the peer's doorbell to ring.
        a = try SwalePort(
            info: LocalPipe.info("t<1", master, peer: slave, pool),
            fds: [dup(pool.region.fd), dup(masterBell.waitEnd.fd), dup(slaveBell.ringEnd.fd)],
            connection: LocalPipe.connection())
        b = try SwalePort(
            info: LocalPipe.info("t>1", slave, peer: master, pool),
            fds: [dup(pool.region.fd), dup(slaveBell.waitEnd.fd), dup(masterBell.ringEnd.fd)],
            connection: LocalPipe.connection())
    }

    deinit {
        a.close()
        b.close()
        masterBell.close()
        slaveBell.close()
    }

    static func info(_ name: String, _ mine: InterfaceLayout, peer: InterfaceLayout?, _ pool: MemoryPool) -> OpenInfo {
        var i = OpenInfo(
            name: name, kind: peer == nil ? "port" : "pipe", bufSize: pool.bufSize,
            regionSize: pool.region.mappedSize, nifpOffset: mine.nifpOffset,
            txRing: mine.txRingOffsets[0], rxRing: mine.rxRingOffsets[0], slots: mine.slotsPerRing)
        if let peer {
            i.peerRxRing = peer.rxRingOffsets[0]
            i.peerTxRing = peer.txRingOffsets[0]
            i.peerCsb = peer.csbOffset
        }
        return i
    }

    /// The port only closes its connection; any descriptor will do without a service.
    static func connection() -> ControlConnection { ControlConnection(fd: open("/dev/null", O_RDONLY)) }
}

/// Frame of `len` bytes whose content depends on `tag`.
func testFrame(_ len: Int, tag: UInt8) -> [UInt8] { (0..<len).map { UInt8(truncatingIfNeeded: $0 &* 7) &+ tag } }

/// Everything waiting in the port's rx ring, frame by frame.
func drain(_ p: SwalePort) -> [[UInt8]] {
    var got: [[UInt8]] = []
    // receive() may release only invalid slots in one call: a few calls, bounded.
    for _ in 0..<8 where p.rxAvailable() > 0 { p.receive { got.append(Array($0)) } }
    return got
}

/// Descriptors open in this process.
func openDescriptorCount() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }

func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }
