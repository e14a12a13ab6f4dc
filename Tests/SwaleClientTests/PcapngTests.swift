// The pcapng writer's blocks: lengths, padding, snap length, byte order.
import Foundation
import SwaleClient
import XCTest

final class PcapngTests: XCTestCase {
    /// (type, total length) of every block, checking that each block's two length fields agree.
    func blocks(_ d: Data) -> [(UInt32, Int)] {
        var out: [(UInt32, Int)] = []
        var i = 0
        let b = [UInt8](d)
        func u32(_ o: Int) -> UInt32 { UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24 }
        while i + 12 <= b.count {
            let len = Int(u32(i + 4))
            XCTAssertEqual(len % 4, 0, "blocks are padded to 32 bits")
            XCTAssertEqual(Int(u32(i + len - 4)), len, "trailing length")
            out.append((u32(i), len))
            i += len
        }
        XCTAssertEqual(i, b.count)
        return out
    }

    func testBlocksAreWellFormed() {
        var w = PcapngWriter(snaplen: 64)
        w.addInterface(name: "vale0:a rx")
        let frame = [UInt8](repeating: 0xab, count: 61)
        frame.withUnsafeBytes { w.addFrame(interface: 0, nanoseconds: 1_700_000_000_123_456_789, frame: $0, direction: .inbound) }
        let big = [UInt8](repeating: 1, count: 1500)
        big.withUnsafeBytes { w.addFrame(interface: 0, nanoseconds: 1, frame: $0, direction: .outbound) }
        w.addStatistics(interface: 0, nanoseconds: 2, received: 2, dropped: 5)
        let d = w.take()
        XCTAssertEqual(Array(d.prefix(4)), [0x0A, 0x0D, 0x0D, 0x0A])
        XCTAssertEqual(Array(d[8..<12]), [0x4D, 0x3C, 0x2B, 0x1A], "byte-order magic, little-endian")
        let list = blocks(d)
        XCTAssertEqual(list.map(\.0), [0x0A0D_0D0A, 1, 6, 6, 5])
        // EPB: 28 bytes of fields + 64 (61 padded) + flags option (8) + end (4) + trailing length (4).
        XCTAssertEqual(list[2].1, 12 + 20 + 64 + 12)
        XCTAssertEqual(list[3].1, 12 + 20 + 64 + 12, "cut to the snap length")
        let epb2 = [UInt8](d)[(list[0].1 + list[1].1 + list[2].1)...]
        let orig = epb2.dropFirst(24).prefix(4)
        XCTAssertEqual(Array(orig), [0xdc, 0x05, 0, 0], "original length 1500 kept")
        XCTAssertTrue(w.take().isEmpty)
    }
}
