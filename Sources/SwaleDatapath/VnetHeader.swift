// The offload metadata that travels with a frame in a ring (SWALE_NS_VNET_HDR): a 12-byte
// struct virtio_net_hdr_v1 at the start of the frame's first buffer. Kernel adapters produce and
// consume it; the switch finishes it in software for ports that cannot take it.
public enum VnetHeader {
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
}
