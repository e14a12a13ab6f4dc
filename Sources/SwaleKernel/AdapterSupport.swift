/*
 * AdapterSupport — what the TAP and AF_PACKET adapters share: the virtio-net header rules and
 * the counters.
 *
 * Offload metadata. Both kernel paths can hand over and accept a virtio_net_hdr in front of each
 * frame (tun with IFF_VNET_HDR, packet sockets with PACKET_VNET_HDR): GSO frames up to 64 KiB
 * (gso_type, gso_size, hdr_len) and frames whose checksum is still to be filled in
 * (VIRTIO_NET_HDR_F_NEEDS_CSUM with csum_start/csum_offset). In Swale rings such a frame starts
 * with the 12-byte virtio_net_hdr_v1 and its first slot carries SWALE_NS_VNET_HDR. A header that
 * says nothing (no GSO, no pending checksum) is dropped on the way in when that costs no more than
 * a short memmove, so ordinary frames stay plain Ethernet frames in the rings; on the way out,
 * plain frames get a zeroed header from a static buffer through the iovec (no copy).
 *
 * Counters are written by the forwarding thread once per batch (relaxed stores) and read by the
 * control plane (relaxed loads): no locks, no allocation on the data path.
 */
import CSwaleABI
import CSwaleSys
import SwaleDatapath
import SwaleRings

extension VnetHeader {
    /// 16 zero bytes, shared read-only: the header of plain frames sent to the kernel.
    static let zeros: UnsafeMutableRawPointer = {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        return p
    }()
}

/// A fixed set of UInt64 counters with one writer (the forwarding thread) and any readers.
final class AdapterCounters {
    let values: UnsafeMutablePointer<UInt64>

    init() {
        values = .allocate(capacity: C.allCases.count)
        values.initialize(repeating: 0, count: C.allCases.count)
    }

    deinit { values.deallocate() }

    @inline(__always)
    func add(_ c: C, _ v: Int) {
        if v == 0 { return }
        let p = values + c.rawValue
        swale_store_relaxed_u64(p, swale_load_relaxed_u64(p) &+ UInt64(truncatingIfNeeded: v))
    }

    subscript(_ c: C) -> UInt64 { swale_load_relaxed_u64(values + c.rawValue) }

    /// One receive batch's tally (counts an adapter does not keep stay 0).
    @inline(__always)
    func addRx(frames: Int, bytes: Int, gso: Int, calls: Int = 0, truncated: Int, runts: Int, errors: Int = 0, vlans: Int = 0) {
        add(.rxFrames, frames)
        add(.rxBytes, bytes)
        add(.rxGSOFrames, gso)
        add(.rxSyscalls, calls)
        add(.rxTruncated, truncated)
        add(.rxRunts, runts)
        add(.rxErrors, errors)
        add(.rxVlanRestored, vlans)
    }

    /// One transmit batch's tally (both adapters count the same things).
    @inline(__always)
    func addTx(frames: Int, bytes: Int, gso: Int, calls: Int, errors: Int, bad: Int, down: Int) {
        add(.txFrames, frames)
        add(.txBytes, bytes)
        add(.txGSOFrames, gso)
        add(.txSyscalls, calls)
        add(.txErrors, errors)
        add(.txBadFrames, bad)
        add(.txLinkDown, down)
    }

    var snapshot: [String: UInt64] {
        var d: [String: UInt64] = [:]
        for c in C.allCases { d[c.name] = self[c] }
        return d
    }
}

/// The counter names both adapters report ("rx" = from the kernel into the switch, "tx" = from the
/// switch to the kernel, as seen by the port's rings).
enum C: Int, CaseIterable {
    case rxFrames, rxBytes, rxGSOFrames, rxSyscalls, rxTruncated, rxRunts, rxBadSlot, rxErrors
    case txFrames, txBytes, txGSOFrames, txSyscalls, txErrors, txBadFrames, txLinkDown, txAgain
    case kernelDrops, rxVlanRestored, linkDownEvents, rxQueued

    var name: String {
        switch self {
        case .rxFrames: return "rx_frames"
        case .rxBytes: return "rx_bytes"
        case .rxGSOFrames: return "rx_gso_frames"
        case .rxSyscalls: return "rx_syscalls"
        case .rxTruncated: return "rx_drop_truncated"
        case .rxRunts: return "rx_drop_runt"
        case .rxBadSlot: return "rx_bad_slot"
        case .rxErrors: return "rx_errors"
        case .txFrames: return "tx_frames"
        case .txBytes: return "tx_bytes"
        case .txGSOFrames: return "tx_gso_frames"
        case .txSyscalls: return "tx_syscalls"
        case .txErrors: return "tx_drop_error"
        case .txBadFrames: return "tx_drop_bad_frame"
        case .txLinkDown: return "tx_drop_link_down"
        case .txAgain: return "tx_would_block"
        case .kernelDrops: return "kernel_ring_drops"
        case .rxVlanRestored: return "rx_vlan_tag_restored"
        case .linkDownEvents: return "link_down_events"
        case .rxQueued: return "rx_queued_frames"
        }
    }
}

/// Constants Glibc imports inconsistently (MSG_DONTWAIT is an enum case aliased by a macro).
enum SysConst {
    static let msgDontWait: Int32 = 0x40
}
