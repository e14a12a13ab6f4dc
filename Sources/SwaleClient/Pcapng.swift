/*
 * Pcapng — a writer of the pcapng capture format (IETF draft-ietf-opsawg-pcapng) that tcpdump,
 * tshark and Wireshark read: one section header, one interface description per captured
 * interface (Ethernet, nanosecond timestamps, its name), an enhanced packet block per frame (with
 * its original length and direction), and interface statistics (frames received and dropped) at
 * the end. Little-endian, every block padded to 32 bits. `swalectl capture` writes it from
 * monitor ports.
 */
import Foundation

public struct PcapngWriter {
    public enum Direction: UInt32 {
        case unknown = 0
        case inbound = 1
        case outbound = 2
    }

    /// The bytes written so far and not yet taken by `take()`.
    public private(set) var buffer = Data()
    public let snaplen: Int

    public init(snaplen: Int = 65535, application: String = "swalectl capture") {
        self.snaplen = max(snaplen, 1)
        var opts = Data()
        PcapngWriter.option(&opts, 4, Data(application.utf8))  // shb_userappl
        block(
            0x0A0D_0D0A,
            body: PcapngWriter.u32(0x1A2B_3C4D) + PcapngWriter.u16(1) + PcapngWriter.u16(0)
                + PcapngWriter.u64(UInt64.max) + opts + PcapngWriter.endOfOptions)
    }

    /// Describes interface number `count-so-far` (the first is 0).
    public mutating func addInterface(name: String) {
        var opts = Data()
        PcapngWriter.option(&opts, 2, Data(name.utf8))  // if_name
        PcapngWriter.option(&opts, 9, Data([9]))  // if_tsresol: 10^-9 s
        block(
            1,
            body: PcapngWriter.u16(1) + PcapngWriter.u16(0) + PcapngWriter.u32(UInt32(snaplen)) + opts + PcapngWriter.endOfOptions
        )
    }

    /// One frame seen on `interface` at `nanoseconds` since the epoch, cut to the snap length.
    public mutating func addFrame(interface: Int, nanoseconds: UInt64, frame: UnsafeRawBufferPointer, direction: Direction) {
        let captured = min(frame.count, snaplen)
        var body =
            PcapngWriter.u32(UInt32(interface)) + PcapngWriter.u32(UInt32(nanoseconds >> 32))
            + PcapngWriter.u32(UInt32(truncatingIfNeeded: nanoseconds)) + PcapngWriter.u32(UInt32(captured))
            + PcapngWriter.u32(UInt32(frame.count))
        body.append(contentsOf: frame.prefix(captured))
        body.append(contentsOf: [UInt8](repeating: 0, count: (4 - captured % 4) % 4))
        var opts = Data()
        if direction != .unknown { PcapngWriter.option(&opts, 2, PcapngWriter.u32(direction.rawValue)) }  // epb_flags
        block(6, body: body + opts + (opts.isEmpty ? Data() : PcapngWriter.endOfOptions))
    }

    /// Counters of an interface at the end of the capture.
    public mutating func addStatistics(interface: Int, nanoseconds: UInt64, received: UInt64, dropped: UInt64) {
        var opts = Data()
        PcapngWriter.option(&opts, 4, PcapngWriter.u64(received))  // isb_ifrecv
        PcapngWriter.option(&opts, 5, PcapngWriter.u64(dropped))  // isb_ifdrop
        block(
            5,
            body: PcapngWriter.u32(UInt32(interface)) + PcapngWriter.u32(UInt32(nanoseconds >> 32))
                + PcapngWriter.u32(UInt32(truncatingIfNeeded: nanoseconds)) + opts + PcapngWriter.endOfOptions)
    }

    /// Hands over what was written (to be written out) and starts a new buffer.
    public mutating func take() -> Data {
        defer { buffer = Data() }
        return buffer
    }

    private mutating func block(_ type: UInt32, body: Data) {
        let total = UInt32(12 + body.count)
        buffer += PcapngWriter.u32(type) + PcapngWriter.u32(total) + body + PcapngWriter.u32(total)
    }

    static let endOfOptions = Data([0, 0, 0, 0])

    static func option(_ d: inout Data, _ code: UInt16, _ value: Data) {
        d += u16(code) + u16(UInt16(value.count)) + value
        d.append(contentsOf: [UInt8](repeating: 0, count: (4 - value.count % 4) % 4))
    }

    static func u16(_ v: UInt16) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func u32(_ v: UInt32) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func u64(_ v: UInt64) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
}
