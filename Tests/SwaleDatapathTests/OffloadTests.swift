// Software offloads: checksum completion and GSO segmentation for ports that cannot take
// virtio-net metadata. Frames are built here and every output is checked independently.
import SwaleDatapath
import XCTest

final class OffloadTests: XCTestCase {
    func be16(_ f: [UInt8], _ o: Int) -> Int { Int(f[o]) << 8 | Int(f[o + 1]) }

    /// One's-complement checksum over bytes, folded and inverted.
    func checksum(_ b: ArraySlice<UInt8>, initial: UInt32 = 0) -> UInt16 {
        var s = initial
        var i = b.startIndex
        while i + 1 < b.endIndex { s += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
        if i < b.endIndex { s += UInt32(b[i]) << 8 }
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        return ~UInt16(s)
    }

    func tcpFrame(payload: Int, flags: UInt8 = 0x18) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 14 + 20 + 20 + payload)
        f[12] = 0x08; f[13] = 0x00
        f[14] = 0x45; f[22] = 64; f[23] = 6
        f[16] = UInt8((40 + payload) >> 8); f[17] = UInt8((40 + payload) & 0xff)
        f[18] = 0x12; f[19] = 0x34
        f[26...29] = [10, 0, 0, 1]; f[30...33] = [10, 0, 0, 2]
        f[34] = 0x30; f[35] = 0x39; f[36] = 0x00; f[37] = 0x50
        f[38...41] = [0, 0, 0x10, 0]  // seq 4096
        f[46] = 0x50; f[47] = flags
        for i in 0..<payload { f[54 + i] = UInt8(truncatingIfNeeded: i * 31) }
        return f
    }

    func testTCPv4SegmentationProducesValidSegments() {
        var f = tcpFrame(payload: 4000, flags: 0x19)  // FIN|PSH|ACK on the big frame
        var out = [UInt8](repeating: 0, count: 1 << 16)
        var segs: [[UInt8]] = []
        let n = f.withUnsafeMutableBytes { fb in
            out.withUnsafeMutableBytes { ob in
                Offload.segment(fb.baseAddress!, length: fb.count, gsoType: 1, gsoSize: 1448, out: ob.baseAddress!) { p, len in
                    segs.append(Array(UnsafeRawBufferPointer(start: p, count: len)))
                }
            }
        }
        XCTAssertEqual(n, 3)
        XCTAssertEqual(segs.map(\.count), [54 + 1448, 54 + 1448, 54 + 1104])
        var reassembled: [UInt8] = []
        for (k, s) in segs.enumerated() {
            XCTAssertEqual(be16(s, 16), s.count - 14, "IPv4 total length")
            XCTAssertEqual(be16(s, 18), 0x1234 + k, "IPv4 id increments")
            XCTAssertEqual(checksum(s[14..<34]), 0, "IPv4 header checksum valid")
            let seq = UInt32(be16(s, 38)) << 16 | UInt32(be16(s, 40))
            XCTAssertEqual(seq, 4096 + UInt32(k * 1448))
            let tcpLen = s.count - 34
            var pseudo: UInt32 = UInt32(be16(s, 26)) + UInt32(be16(s, 28)) + UInt32(be16(s, 30)) + UInt32(be16(s, 32))
            pseudo += 6 + UInt32(tcpLen)
            XCTAssertEqual(checksum(s[34...], initial: pseudo), 0, "TCP checksum valid in segment \(k)")
            let fl = s[47]
            XCTAssertEqual(fl & 0x09 != 0, k == 2, "FIN/PSH only on the last segment")
            reassembled += s[54...]
        }
        XCTAssertEqual(reassembled, Array(f[54...]), "payload intact and in order")
    }

    func testUDPChecksumCompletion() {
        // UDP over IPv4 with only the pseudo-header sum in the checksum field (checksum partial).
        var f = [UInt8](repeating: 0, count: 14 + 20 + 8 + 11)
        f[12] = 0x08; f[14] = 0x45; f[23] = 17
        f[26...29] = [10, 0, 0, 1]; f[30...33] = [10, 0, 0, 2]
        f[38] = 0; f[39] = 19
        for i in 0..<11 { f[42 + i] = UInt8(65 + i) }
        var pseudo: UInt32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 19
        while pseudo >> 16 != 0 { pseudo = (pseudo & 0xffff) + (pseudo >> 16) }
        f[40] = UInt8(pseudo >> 8); f[41] = UInt8(pseudo & 0xff)
        let ok = f.withUnsafeMutableBytes { Offload.completeChecksum($0.baseAddress!, length: $0.count, start: 34, offset: 6) }
        XCTAssertTrue(ok)
        let full: UInt32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 19
        XCTAssertEqual(checksum(f[34...], initial: full), 0, "UDP checksum now valid")
        // Offsets outside the frame are refused, not written.
        XCTAssertFalse(
            f.withUnsafeMutableBytes { Offload.completeChecksum($0.baseAddress!, length: $0.count, start: 60, offset: 6) })
    }

    func testSegmentRefusesWhatItCannotParse() {
        var f = tcpFrame(payload: 100)
        f[12] = 0x86; f[13] = 0xdd  // says IPv6, is not
        f[20] = 17  // next header UDP while TCP GSO asked
        var out = [UInt8](repeating: 0, count: 1 << 16)
        let n = f.withUnsafeMutableBytes { fb in
            out.withUnsafeMutableBytes { ob in
                Offload.segment(fb.baseAddress!, length: fb.count, gsoType: 4, gsoSize: 50, out: ob.baseAddress!) { _, _ in }
            }
        }
        XCTAssertNil(n)
        var tiny = [UInt8](repeating: 0, count: 20)
        tiny[12] = 0x08
        let m = tiny.withUnsafeMutableBytes { fb in
            out.withUnsafeMutableBytes { ob in
                Offload.segment(fb.baseAddress!, length: fb.count, gsoType: 1, gsoSize: 50, out: ob.baseAddress!) { _, _ in }
            }
        }
        XCTAssertNil(m)
    }

    /// The one header view: little-endian fields, GSO type read without the ECN bit.
    func testVnetHeaderViewMasksECN() {
        var h: [UInt8] = [1, 0x80, 54, 0, 0xe8, 0x03, 34, 0, 16, 0, 9, 9]
        h.withUnsafeMutableBytes { raw in
            let v = VnetHeader(raw.baseAddress!)
            XCTAssertFalse(v.isGSO, "ECN alone is no GSO type")
            XCTAssertTrue(v.needsChecksum)
            XCTAssertTrue(v.isMeaningful)
            XCTAssertEqual(v.hdrLen, 54)
            XCTAssertEqual(v.gsoSize, 1000)
            XCTAssertEqual(v.csumStart, 34)
            XCTAssertEqual(v.csumOffset, 16)
            v.csumStart += 4
            v.numBuffers = 0
            raw[1] = VnetHeader.gsoECN | VnetHeader.gsoTCPv6
            XCTAssertEqual(v.gsoType, VnetHeader.gsoTCPv6)
            XCTAssertTrue(v.isGSO)
            raw[0] = 0; raw[1] = VnetHeader.gsoECN
            XCTAssertFalse(v.isMeaningful, "nothing to say: the header may be dropped")
        }
        XCTAssertEqual(Array(h[6...11]), [38, 0, 16, 0, 0, 0])
    }
}
