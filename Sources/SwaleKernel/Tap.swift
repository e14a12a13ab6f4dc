/*
 * Tap — a TAP device as a switch port (netmap's bwrap over a tun/tap fd).
 *
 * A TAP is a netdev whose "wire" is a file descriptor: every frame the kernel transmits on the
 * device is queued for read() on the fd, every frame write()n to the fd is received by the device
 * as if it came from the wire. The adapter owns that fd:
 *
 *   open("/dev/net/tun") + TUNSETIFF(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), O_NONBLOCK
 *   TUNSETVNETHDRSZ 12      every frame read or written is preceded by a virtio_net_hdr_v1
 *   TUNSETOFFLOAD CSUM|TSO4|TSO6
 *                           we accept partial checksums and TSO frames, so the kernel hands over
 *                           GSO frames of up to 64 KiB instead of segmenting them for us
 *
 * and configures the link (MTU, MAC, up) with Netlink.
 *
 * receive (kernel → switch). tun has no batched read, so one readv() per frame, straight into
 * the tx ring: the iovec array (preallocated, one entry per slot) points at the buffers of the
 * next free slots, so a 64 KiB GSO frame lands across ~33 slots with no intermediate copy. The
 * header occupies the first 12 bytes of the first slot. Afterwards the slots get len and flags
 * (SWALE_NS_MOREFRAG on all but the last, SWALE_NS_VNET_HDR on the first). A header that says
 * nothing (no GSO, no pending checksum) on a one-slot frame is removed with a memmove of at most
 * one buffer, so ordinary frames are plain Ethernet in the ring. The kernel's read cannot be
 * sized in advance (tun cannot peek), so a read is only attempted while at least one maximal
 * frame's worth of slots is free; otherwise the frames stay queued in the kernel. The batch ends
 * at EAGAIN, at the batch limit, or when the ring is too full. tun reports the full length of a
 * frame even when the iovec was shorter; such a frame is counted as truncated and dropped.
 *
 * transmit (switch → kernel). One writev() per frame (tun has no batched write either), over the
 * frame's segments as an OutFrames batch describes them: straight from the source port's tx slots
 * when this port has nothing queued (the forwarding engine's direct transmit), or from this port's
 * rx ring (`transmitRing`). A frame without SWALE_NS_VNET_HDR gets the shared zero header as its
 * first iovec. EAGAIN hands the frame (and the rest) back to the caller; any other error drops the
 * frame and counts it (EIO: the device is down).
 *
 * Lifetime. A TAP lives as long as an fd is attached, unless it is persistent (TUNSETPERSIST).
 * `create(..., persist: true)` keeps the device when the service stops, and calling `create`
 * again with the same name re-attaches to it (TUNSETIFF on an existing TAP); `destroy()` clears
 * persistence and closes, which removes the device. TUNSETIFF refuses a name that belongs to a
 * netdev that is not a TAP, so an existing interface is never taken over.
 */
import CSwaleABI
import CSwaleSys
import Glibc
import SwaleDatapath
import SwaleRings

public final class TapAdapter: PortBackend {
    public let name: String
    public let ifindex: Int32
    public let fd: Int32
    public var pollFD: Int32 { fd }
    @exclusivity(unchecked) public private(set) var mtu: Int
    public var acceptsVnetHeader: Bool { true }
    /// Whether the kernel may hand over GSO / partial-checksum frames (TUNSETOFFLOAD succeeded).
    public let offloads: Bool
    public let persistent: Bool
    /// Frames moved per call at most, in each direction.
    @exclusivity(unchecked) public var batchLimit = 256
    /// The device went away under us (EBADFD / ENODEV on the fd).
    @exclusivity(unchecked) public private(set) var linkGone = false

    private let stats = AdapterCounters()
    private let iov: UnsafeMutablePointer<iovec>
    private let iovCapacity = 256
    /// The rx ring's frames, described for `transmit(_:)`.
    @exclusivity(unchecked) private var out = OutFrames()
    @exclusivity(unchecked) private var closed = false
    /// A socket for SIOCGIFMTU (-1 if none could be opened).
    private let ioctlFD: Int32
    /// Largest frame the kernel may hand over, vnet header included.
    private let maxFrameBytes: Int

    public var counters: [String: UInt64] { stats.snapshot }

    private init(name: String, ifindex: Int32, fd: Int32, mtu: Int, offloads: Bool, persistent: Bool) {
        // The tun fd answers no interface ioctls: a datagram socket asks for the MTU.
        ioctlFD = swale_ioctl_socket()
        self.name = name
        self.ifindex = ifindex
        self.fd = fd
        self.mtu = mtu
        self.offloads = offloads
        self.persistent = persistent
        // GSO frames: up to 64 KiB of skb plus a VLAN tag; without offloads the MTU bounds it.
        maxFrameBytes = VnetHeader.size + (offloads ? 65536 + 4 : mtu + 14 + 4)
        iov = .allocate(capacity: iovCapacity)
        iov.initialize(repeating: iovec(), count: iovCapacity)
    }

    deinit {
        close()
        iov.deallocate()
    }

    /// Creates (or re-attaches to) the TAP `name`, enables the 12-byte vnet header and offloads,
    /// and configures the link through netlink: MTU and MAC if given, then up.
    public static func create(
        name: String, mtu: Int? = nil, mac: [UInt8]? = nil, up: Bool = true,
        persist: Bool = false, offloads: Bool = true, netlink: Netlink? = nil
    ) throws -> TapAdapter {
        try Netlink.validateName(name)
        var out = [CChar](repeating: 0, count: 16)
        let fd = swale_tap_open(name, 1, &out)
        guard fd >= 0 else {
            let reason = -fd == EINVAL ? " (is \(name) an existing interface that is not a TAP?)" : ""
            throw KernelError("create tap", name, errno: -fd, hint: reason)
        }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }
        let kname = String(cString: out)
        var rc = swale_tap_set_vnet_hdr_size(fd, Int32(VnetHeader.size))
        guard rc == 0 else { throw KernelError("TUNSETVNETHDRSZ 12", kname, errno: -rc) }
        var withOffloads = false
        if offloads {
            rc = swale_tap_set_offload(fd, swale_tun_f_csum() | swale_tun_f_tso4() | swale_tun_f_tso6())
            withOffloads = rc == 0
        } else {
            _ = swale_tap_set_offload(fd, 0)
        }
        if persist {
            rc = swale_tap_set_persist(fd, 1)
            guard rc == 0 else { throw KernelError("TUNSETPERSIST", kname, errno: -rc) }
        }
        let nl = try netlink ?? Netlink()
        if let mtu { try nl.setMTU(kname, mtu) }
        if let mac { try nl.setMAC(kname, mac) }
        if up { try nl.setUp(kname, true) }
        guard let info = try nl.linkInfo(name: kname) else {
            throw KernelError("create tap", kname, reason: "the device vanished after creation")
        }
        ok = true
        return TapAdapter(
            name: kname, ifindex: info.ifindex, fd: fd, mtu: info.mtu, offloads: withOffloads,
            persistent: persist)
    }

    /// The device's MTU now (SIOCGIFMTU by ifindex through a socket of the namespace the TAP was
    /// created in; a TAP moved to another namespace keeps its last known MTU).
    public func currentMTU() -> Int? {
        if closed || linkGone || ioctlFD < 0 { return nil }
        let m = swale_ifindex_mtu(ioctlFD, ifindex)
        guard m > 0 else { return nil }
        mtu = Int(m)
        return mtu
    }

    // MARK: kernel → switch

    public func receive(into tx: UserRing) -> Int {
        if closed || linkGone { return 0 }
        let bs = min(tx.bufSize, 65535)
        // Slots a maximal frame needs (bounded by the iovec array and by what the ring can ever
        // have free; a frame larger than that is counted as truncated).
        let need = min((maxFrameBytes + bs - 1) / bs, iovCapacity, Int(tx.numSlots) - 1)
        let capacity = need * bs
        var free = Int(tx.space())
        let start = tx.head
        var i = start
        var frames = 0, bytes = 0, calls = 0, gso = 0, truncated = 0, runts = 0, errors = 0
        while frames < batchLimit && free >= need {
            var j = i
            var k = 0
            while k < need {
                guard let b = tx.buffer(tx.slot(j)) else { break }
                iov[k] = iovec(iov_base: b, iov_len: bs)
                j = tx.next(j)
                k += 1
            }
            if k < need { stats.add(.rxBadSlot, 1); break }
            let r = retryingInterrupts { readv(fd, iov, Int32(need)) }
            calls += 1
            guard case .done(let n) = r else {
                if case .failed(let e) = r {
                    if e == EBADFD || e == ENODEV || e == ENXIO { linkGone = true }
                    errors += 1
                }
                break
            }
            if n > capacity { truncated += 1; continue }
            if n < VnetHeader.size + 14 { runts += 1; continue }
            let b0 = iov[0].iov_base!
            let s0 = tx.slot(i)
            if n <= bs && !VnetHeader(b0).isMeaningful {
                // Plain frame: drop the empty header.
                memmove(b0, b0 + VnetHeader.size, n - VnetHeader.size)
                s0.pointee.len = UInt16(truncatingIfNeeded: n - VnetHeader.size)
                s0.pointee.flags = 0
                i = tx.next(i)
                free -= 1
                bytes += n - VnetHeader.size
            } else {
                let h = VnetHeader(b0)
                h.numBuffers = 0  // tun leaves it unwritten
                if h.isGSO { gso += 1 }
                // readv filled the slots' buffers already: lay out the lengths and flags.
                var w = SlotWriter(tx, at: i, bufSize: bs)
                w.skip(n)
                let used = w.finish(firstFlags: SlotFlags.vnetHdr)
                i = RingMath.add(i, used, tx.numSlots)
                free -= Int(used)
                bytes += n - VnetHeader.size
            }
            frames += 1
        }
        if i != start { tx.advance(to: i) }
        stats.addRx(frames: frames, bytes: bytes, gso: gso, calls: calls, truncated: truncated, runts: runts, errors: errors)
        return frames
    }

    // MARK: switch → kernel

    public func transmit(from rx: UserRing) -> Int {
        transmitRing(rx, using: &out)
    }

    /// One writev() per frame over its segments; a plain frame gets the shared zero header first.
    public func transmit(_ f: borrowing OutFrames) -> (consumed: Int, sent: Int) {
        if closed || linkGone {
            // Nobody to hand frames to: consume them so the switch does not stall.
            stats.add(.txLinkDown, f.count)
            return (f.count, 0)
        }
        var frames = 0, bytes = 0, calls = 0, gso = 0, errors = 0, bad = 0, down = 0
        var k = 0
        while k < f.count {
            let first = Int(f.firstSegment[k]), end = Int(f.firstSegment[k + 1])
            if f.payload[k] < 0 || end - first + 1 > iovCapacity { bad += 1; k += 1; continue }
            let vec: UnsafeMutablePointer<iovec>
            var cnt = end - first
            if f.vnet[k] {
                vec = f.segments + first  // the header is already in front: send the segments as they are
            } else {
                iov[0] = iovec(iov_base: VnetHeader.zeros, iov_len: VnetHeader.size)
                (iov + 1).update(from: f.segments + first, count: cnt)
                cnt += 1
                vec = iov
            }
            let r = retryingInterrupts { writev(fd, vec, Int32(cnt)) }
            calls += 1
            if r == .wouldBlock { stats.add(.txAgain, 1); break }
            if case .failed(let e) = r {
                if e == EBADFD || e == ENODEV || e == ENXIO { linkGone = true }
                if e == EIO { down += 1 } else { errors += 1 }
                k += 1
                continue
            }
            if f.isGSO(k) { gso += 1 }
            frames += 1
            bytes += Int(f.payload[k])
            k += 1
        }
        stats.addTx(frames: frames, bytes: bytes, gso: gso, calls: calls, errors: errors, bad: bad, down: down)
        return (k, frames)
    }

    // MARK: lifetime

    /// Closes the fd. A non-persistent TAP disappears with it; a persistent one stays.
    public func close() {
        if closed { return }
        closed = true
        Glibc.close(fd)
        if ioctlFD >= 0 { Glibc.close(ioctlFD) }
    }

    /// Removes the device: clears persistence, then closes.
    public func destroy() {
        if closed { return }
        if persistent { _ = swale_tap_set_persist(fd, 0) }
        close()
    }
}
