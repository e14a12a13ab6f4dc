/*
 * PortState — what the forwarding engine knows about one port, kept in a flat array of structs so
 * the hot path works with pointers and indices only (no classes, no reference counting, no
 * existentials per frame). A port is two rings: `tx` carries frames from the port into the switch,
 * `rx` carries frames from the switch to the port. The switch is the "kernel side" of both (KRing:
 * private hwcur/hwtail, every index from shared memory validated).
 */
import CSwaleABI
import CSwaleSys
import SwaleRings

/// Per-port counters, written by the forwarding thread only.
public struct PortStats {
    public var rxPackets: UInt64 = 0  // delivered to the port
    public var rxBytes: UInt64 = 0
    public var txPackets: UInt64 = 0  // taken from the port into the switch
    public var txBytes: UInt64 = 0
    public var dropRingFull: UInt64 = 0  // the port's rx ring had no room
    public var dropTooShort: UInt64 = 0  // shorter than an Ethernet header
    public var dropTooLong: UInt64 = 0  // over the frame limit or the port's MTU
    public var dropBadSlot: UInt64 = 0  // buffer index or length out of bounds
    public var dropNoRoute: UInt64 = 0  // known destination is the source port (no hairpin)
    // Bridge rules (counted against the port the frame came from):
    public var dropReserved: UInt64 = 0  // to an IEEE 802.1D reserved group the bridge does not forward
    public var dropBadSource: UInt64 = 0  // source MAC multicast, broadcast or zero
    public var dropVlan: UInt64 = 0  // VLAN the port is not in, no PVID for an untagged frame, or not in the destination's
    public var dropStaticMove: UInt64 = 0  // source MAC has a static entry on another port
    public var dropMacLimit: UInt64 = 0  // new source beyond the port's MAC limit
    public var dropLocked: UInt64 = 0  // locked port, source without a static entry on it
    public var dropIsolated: UInt64 = 0  // unicast from an isolated port to an isolated port
    public var dropHorizon: UInt64 = 0  // unicast between two ports of the same split-horizon group
    public init() {}
}

public struct PortState {
    public var active = false
    public var tx: KRing
    public var rx: KRing
    public var bufBase: UnsafeMutableRawPointer
    public var bufSize: Int
    public var bufLimit: UInt32
    public var csb: UnsafeMutablePointer<swale_csb>?
    /// App → switch wake-ups: the doorbell end we poll; -1 for kernel ports.
    public var kickFD: Int32
    /// Switch → app wake-ups: the doorbell end we ring; -1 for kernel ports.
    public var notifyFD: Int32
    /// The wake-up lines of the port's other holders (netmap's non-exclusive opens), each rung with
    /// `notifyFD`; -1 where unused, and always filled from the first.
    public var sharedNotify: (Int32, Int32, Int32) = (-1, -1, -1)
    public static let maxSharedNotify = 3

    /// Rings the application's wake-up line, and those of the port's other holders.
    @inlinable @inline(__always)
    public func ringNotify() {
        _ = swale_doorbell_ring(notifyFD)
        if sharedNotify.0 >= 0 { ringShared() }
    }

    @usableFromInline @inline(never)
    func ringShared() {
        _ = swale_doorbell_ring(sharedNotify.0)
        if sharedNotify.1 >= 0 { _ = swale_doorbell_ring(sharedNotify.1) }
        if sharedNotify.2 >= 0 { _ = swale_doorbell_ring(sharedNotify.2) }
    }
    /// A backend (kernel adapter) drives the user side of the rings; false for an application port.
    public var hasBackend: Bool
    /// Largest Ethernet payload accepted toward this port (frame limit minus the header).
    public var mtu: Int
    public var acceptsVnet: Bool
    /// An application port with virtio-net headers (netmap's nr_hdr_len 12): every frame it sends
    /// starts with one, and every frame it gets does too (a zeroed one in front of frames that
    /// have none); GSO and checksum-partial frames reach it as they are (acceptsVnet).
    public var vnetApp = false

    /// Zero bytes to put in front of a frame for this port: a header it expects and the frame lacks.
    @inlinable @inline(__always)
    public func headroom(frameHasVnet: Bool) -> Int { vnetApp && !frameHasVnet ? VnetHeader.size : 0 }

    /// rx slots a frame of `bytes` takes here, its headroom included: what delivery uses and what
    /// flow control reserves must be the same count.
    @inlinable @inline(__always)
    public func slots(for bytes: Int, frameHasVnet: Bool) -> UInt32 {
        UInt32(truncatingIfNeeded: (bytes &+ headroom(frameHasVnet: frameHasVnet) &+ bufSize &- 1) / bufSize)
    }
    /// Frames were delivered to this kernel port during this pass and must be handed to the kernel.
    public var needsTransmit = false
    /// VLAN given to untagged and priority-tagged frames from this port (0: none, they are dropped).
    /// Used only while the bridge filters VLANs; membership lives in the engine's VLAN bitmaps.
    public var pvid: UInt16 = 1
    /// Reaches only non-isolated ports (Linux `bridge link set dev X isolated on`).
    public var isolated = false
    /// Only sources with a static entry on this port may send; nothing is learned on it.
    public var locked = false
    /// Split-horizon group (VPP's SHG; 0: none): never forwards to a port of the same group. Kept
    /// beside the other one-byte rules, where it fits in their padding.
    public var horizon: UInt8 = 0
    /// A monitor port (Monitors.swift): it gets copies, never forwards, never takes part in floods.
    public var isMonitor = false
    /// Monitor: the port it watches (-1: none, that port went away) and what it copies.
    public var monitorOf: Int32 = -1
    public var monitorRx = false
    public var monitorTx = false
    /// Monitors watching this port (their indices are in the engine's monitor table).
    public var monitors: UInt8 = 0
    /// Flow control: when (micros) the frame at the head of this port's tx ring started waiting for
    /// room at its destination; 0 while none waits.
    public var blockedSince = 0
    /// Where this port's reader stood (rx hwcur) the last time the switch found its ring full, and
    /// when (coarse milliseconds) it was last seen to have moved at such a time: a reader found full
    /// for longer than `ForwardingEngine.deadReaderMillis` without moving is not reading at all.
    public var fullAt = UInt32.max
    public var fullMovedAt = 0
    /// Head of a tx ring that stopped on an incomplete multi-slot frame: not "pending" for sleep purposes.
    public var stalledHead = UInt32.max
    public var stats = PortStats()

    public init(
        tx: KRing, rx: KRing, region: Region, csb: UnsafeMutablePointer<swale_csb>?, kickFD: Int32, notifyFD: Int32,
        hasBackend: Bool, mtu: Int, acceptsVnet: Bool
    ) {
        self.tx = tx
        self.rx = rx
        self.bufBase = region.base
        self.bufSize = region.bufSize
        self.bufLimit = region.blockLimit
        self.csb = csb
        self.kickFD = kickFD
        self.notifyFD = notifyFD
        self.hasBackend = hasBackend
        self.mtu = mtu
        self.acceptsVnet = acceptsVnet
    }
}
