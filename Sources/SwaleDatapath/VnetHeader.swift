/*
 * VnetHeader — the offload metadata that travels with a frame in a ring (SWALE_NS_VNET_HDR): a
 * 12-byte struct virtio_net_hdr_v1 at the start of the frame's first buffer, read and written
 * through this one view (little-endian fields, as virtio and the Linux tun/packet paths use):
 *
 *     0 flags        NEEDS_CSUM (1): the L4 checksum holds only the pseudo-header sum
 *     1 gso_type     NONE 0, TCPV4 1, UDP 3 (UFO), TCPV6 4, UDP_L4 5; bit 0x80 = ECN
 *     2 hdr_len      4 gso_size     6 csum_start     8 csum_offset
 *    10 num_buffers  (v1 only; the legacy header of older kernels is the first 10 bytes)
 *
 * The GSO type is always read with the ECN bit masked off (as the kernel's
 * virtio_net_hdr_to_skb does): a header whose only bit is ECN describes no GSO frame. Kernel
 * backends produce and consume it; the engine finishes it in software (Offload) for ports that
 * cannot take it.
 */
public struct VnetHeader {
    /// sizeof(struct virtio_net_hdr_v1): what Swale rings carry.
    public static let size = 12
    /// sizeof(struct virtio_net_hdr): the legacy header of older kernels.
    public static let legacySize = 10
    public static let flagNeedsCsum: UInt8 = 1
    public static let flagDataValid: UInt8 = 2
    public static let gsoNone: UInt8 = 0
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoUDP: UInt8 = 3
    public static let gsoTCPv6: UInt8 = 4
    public static let gsoUDPL4: UInt8 = 5
    public static let gsoECN: UInt8 = 0x80

    public let raw: UnsafeMutableRawPointer

    @inlinable @inline(__always)
    public init(_ p: UnsafeMutableRawPointer) { raw = p }
    @inlinable @inline(__always)
    public init(_ p: UnsafeRawPointer) { raw = UnsafeMutableRawPointer(mutating: p) }

    @inlinable @inline(__always) public var flags: UInt8 { raw.load(as: UInt8.self) }
    /// gso_type without the ECN bit.
    @inlinable @inline(__always) public var gsoType: UInt8 { raw.load(fromByteOffset: 1, as: UInt8.self) & ~Self.gsoECN }
    @inlinable @inline(__always) public var isGSO: Bool { gsoType != Self.gsoNone }
    @inlinable @inline(__always) public var needsChecksum: Bool { flags & Self.flagNeedsCsum != 0 }
    /// Whether the header carries information: a pending checksum or a GSO type.
    @inlinable @inline(__always) public var isMeaningful: Bool { needsChecksum || isGSO }
    @inlinable @inline(__always) public var hdrLen: Int {
        get { field(2) }
        nonmutating set { setField(2, newValue) }
    }
    @inlinable @inline(__always) public var gsoSize: Int { field(4) }
    @inlinable @inline(__always) public var csumStart: Int {
        get { field(6) }
        nonmutating set { setField(6, newValue) }
    }
    @inlinable @inline(__always) public var csumOffset: Int { field(8) }
    /// num_buffers (v1): 0 in everything Swale writes (the tun driver leaves it unwritten).
    @inlinable @inline(__always) public var numBuffers: Int {
        get { field(10) }
        nonmutating set { setField(10, newValue) }
    }

    @inlinable @inline(__always)
    func field(_ offset: Int) -> Int { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) }
    @inlinable @inline(__always)
    func setField(_ offset: Int, _ v: Int) {
        raw.storeBytes(of: UInt16(truncatingIfNeeded: v).littleEndian, toByteOffset: offset, as: UInt16.self)
    }
}
