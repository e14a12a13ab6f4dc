/*
 * PacketSocket — any other netdev (a veth end, a dummy, an existing interface) as a switch port,
 * through an AF_PACKET socket (netmap's bwrap, done with the kernel's own packet-capture rings).
 *
 * The socket is an AF_PACKET SOCK_RAW socket bound to the interface's ifindex for ETH_P_ALL,
 * set up before bind (so nothing is queued half-configured):
 *
 *   PACKET_VNET_HDR_SZ 12   (Linux 6.2+; else PACKET_VNET_HDR, the legacy 10-byte header, and the
 *                            adapter converts 10 <-> 12) every frame carries a virtio_net_hdr, so
 *                            GSO frames (up to 64 KiB) and partial checksums cross in both
 *                            directions with their metadata instead of being segmented or
 *                            checksummed in software. In the ring, tpacket_rcv reserves room for
 *                            the header but always writes the 10-byte legacy struct right before
 *                            the MAC header (checked on 6.18), so that is where it is read;
 *                            packet_snd reads vnet_hdr_sz bytes from the start of each message.
 *   PACKET_VERSION V2 + PACKET_RX_RING
 *                           a ring of fixed-size frames mmap()ed into the service. TPACKET_V2,
 *                           not V3: V3 hands over whole blocks, only when a block fills or its
 *                           retire timer (milliseconds) fires, which would add up to that much
 *                           latency to every quiet-link frame (libpcap uses V2 for "immediate
 *                           mode" for the same reason). Ring frames are 2 KiB (4096 of them by
 *                           default: 8 MiB), so a burst of small frames has room.
 *   PACKET_COPY_THRESH      a frame larger than a ring frame (a GSO frame of up to 64 KiB, a
 *                           jumbo frame) is put in the ring truncated and flagged TP_STATUS_COPY,
 *                           and the whole skb is queued on the socket (SO_RCVBUFFORCE 16 MiB) in
 *                           the same order; the adapter reads it with one recvmsg() whose iovecs
 *                           are the tx slots' buffers, so the kernel copies it straight into
 *                           the switch's ring. Without a virtio-net header (very old kernels)
 *                           this is off and ring frames are 64 KiB instead.
 *   PACKET_QDISC_BYPASS     transmitted frames go straight to the driver (no qdisc; the switch
 *                           is the queue).
 *   PACKET_IGNORE_OUTGOING  the socket does not see frames leaving the interface, in particular
 *                           the ones it transmits itself (no echo back into the switch). Frames
 *                           the host stack sends out of an attached interface are not seen either:
 *                           as in netmap, the host stack is not part of the port.
 *   PACKET_ADD_MEMBERSHIP PACKET_MR_PROMISC
 *                           promiscuous mode as a reference held by the socket: it is released
 *                           by the kernel when the socket closes (even if the service dies), and
 *                           it does not touch the administrative IFF_PROMISC flag, so there is
 *                           nothing to restore.
 *
 * receive (kernel → switch): one walk over the mmap ring per batch, no poll() and no syscall
 * (but one recvmsg per frame flagged TP_STATUS_COPY).
 * Frames whose tp_status has TP_STATUS_USER are copied into the next free tx-ring slots
 * (MOREFRAG chains for frames larger than a buffer) and handed back (tp_status = KERNEL). A VLAN
 * tag the NIC or veth kept out of band (TP_STATUS_VLAN_VALID) is put back into the frame, and
 * csum_start/hdr_len move with it. A header that says nothing is not copied (plain frame). If the
 * next frame needs more slots than are free, the batch stops and the frame stays in the kernel
 * ring; if the kernel ring fills meanwhile, the kernel drops and counts (kernel_ring_drops).
 *
 * transmit (switch → kernel): frames arrive as an OutFrames batch — straight from the source
 * port's tx slots when this port has nothing queued (the forwarding engine's direct transmit), or
 * from this port's rx ring (`transmitRing`) — and become one sendmmsg() per up to 256 frames, each
 * message an iovec list over the frame's segments (plus the shared zero header for a plain frame,
 * or a split first segment when the kernel only takes 10-byte headers): no copy in user space,
 * one system call per batch. EAGAIN (socket buffer full) hands the unsent frames back to the
 * caller; a frame the kernel refuses (EMSGSIZE, EINVAL, ENOBUFS, ENETDOWN) is dropped and counted,
 * and sending resumes with the next.
 *
 * Link state: when the interface goes down or disappears the kernel flags the socket with
 * ENETDOWN (poll reports POLLERR until it is read); `takeError()` reads and clears it.
 */
import CSwaleABI
import CSwaleSys
import Glibc
import SwaleDatapath
import SwaleRings

public final class PacketSocketAdapter: PortBackend {
    public let name: String
    public let ifindex: Int32
    public let fd: Int32
    public var pollFD: Int32 { fd }
    @exclusivity(unchecked) public private(set) var mtu: Int
    /// Bytes of virtio-net header the kernel uses on this socket: 12, 10 (pre-6.2 kernels) or 0.
    public let vnetSize: Int
    public var acceptsVnetHeader: Bool { vnetSize != 0 }
    public let qdiscBypass: Bool
    public let ignoresOutgoing: Bool
    public let frameSize: Int
    public let frameCount: Int
    /// Frames larger than `frameSize` are read whole from the socket's queue (PACKET_COPY_THRESH).
    public let copyThresh: Bool
    private let rxIov: UnsafeMutablePointer<iovec>
    private static let rxIovCapacity = 1028
    /// Frames moved per receive call at most.
    @exclusivity(unchecked) public var batchLimit = 256

    /// Whether tpacket_rcv already counts an out-of-band VLAN tag in csum_start (a patch proposed
    /// upstream in 2023; Linux 6.18 does not). Learned from the first tagged IPv4 frame with a
    /// pending checksum; until then assumed false.
    @exclusivity(unchecked) public private(set) var kernelCountsVlanInCsumStart = false
    @exclusivity(unchecked) private var vlanCsumLearned = false
    private let ring: UnsafeMutableRawPointer
    private let ringBytes: Int
    @exclusivity(unchecked) private var cursor = 0
    private let stats = AdapterCounters()
    private static let maxMessages = 256
    private static let iovCapacity = 2048
    private let msgs: UnsafeMutablePointer<swale_mmsghdr>
    private let iov: UnsafeMutablePointer<iovec>
    /// The frame each message carries.
    private let frameOf: UnsafeMutablePointer<Int32>
    /// The rx ring's frames, described for `transmit(_:)`.
    @exclusivity(unchecked) private var out = OutFrames()
    @exclusivity(unchecked) private var closed = false

    public var counters: [String: UInt64] {
        var p: UInt32 = 0, d: UInt32 = 0
        if !closed, swale_packet_stats(fd, &p, &d) == 0 { stats.add(.kernelDrops, Int(d)) }
        return stats.snapshot
    }

    private init(
        name: String, ifindex: Int32, fd: Int32, mtu: Int, vnetSize: Int, bypass: Bool, ignoreOut: Bool,
        ring: UnsafeMutableRawPointer, ringBytes: Int, frameSize: Int, frameCount: Int, copyThresh: Bool
    ) {
        self.name = name
        self.ifindex = ifindex
        self.fd = fd
        self.mtu = mtu
        self.vnetSize = vnetSize
        self.qdiscBypass = bypass
        self.ignoresOutgoing = ignoreOut
        self.ring = ring
        self.ringBytes = ringBytes
        self.frameSize = frameSize
        self.frameCount = frameCount
        self.copyThresh = copyThresh
        rxIov = .allocate(capacity: Self.rxIovCapacity)
        rxIov.initialize(repeating: iovec(), count: Self.rxIovCapacity)
        msgs = .allocate(capacity: Self.maxMessages)
        msgs.initialize(repeating: swale_mmsghdr(), count: Self.maxMessages)
        iov = .allocate(capacity: Self.iovCapacity)
        iov.initialize(repeating: iovec(), count: Self.iovCapacity)
        frameOf = .allocate(capacity: Self.maxMessages)
        frameOf.initialize(repeating: 0, count: Self.maxMessages)
    }

    deinit {
        close()
        msgs.deallocate()
        iov.deallocate()
        frameOf.deallocate()
        rxIov.deallocate()
    }

    /// Attaches to an existing interface. `frameSize` (a multiple of 16, at least 2048) bounds the
    /// largest frame received; `frameCount` is the kernel ring's depth. Memory: about
    /// frameSize * frameCount of kernel memory (8 MiB by default).
    public static func attach(
        name: String, frameSize requested: Int? = nil, frameCount: Int = 4096,
        netlink: Netlink? = nil
    ) throws -> PacketSocketAdapter {
        try Netlink.validateName(name)
        var frameSize = requested ?? 2048
        guard frameSize >= 2048, frameSize % 16 == 0, frameSize <= 1 << 20 else {
            throw KernelError("attach", name, reason: "frame size \(frameSize) must be a multiple of 16 in 2048...1048576")
        }
        guard frameCount >= 2, frameCount <= 1 << 16 else {
            throw KernelError("attach", name, reason: "frame count \(frameCount) must be in 2...65536")
        }
        let nl = try netlink ?? Netlink()
        guard let info = try nl.linkInfo(name: name) else { throw KernelError("attach", name, reason: "no such interface") }

        let fd = swale_packet_open()
        guard fd >= 0 else { throw KernelError("AF_PACKET socket", name, errno: -fd) }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }

        // Virtio-net header: 12 bytes if the kernel knows PACKET_VNET_HDR_SZ, else the legacy 10.
        var vnet = 0
        if swale_packet_setopt(fd, SWALE_PACKET_VNET_HDR_SZ, Int32(VnetHeader.size)) == 0 {
            vnet = VnetHeader.size
        } else if swale_packet_setopt(fd, SWALE_PACKET_VNET_HDR, 1) == 0 {
            vnet = VnetHeader.legacySize
        }
        // Frames larger than a ring frame (GSO frames) wait whole in the socket's queue and are read
        // with recvmsg; it needs the header to carry their metadata. Without it, ring frames must
        // hold 64 KiB.
        var copyThresh = false
        if vnet != 0 && swale_packet_setopt(fd, SWALE_PACKET_COPY_THRESH, 1) == 0 {
            copyThresh = true
            var rcvbuf: Int32 = 16 << 20
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, socklen_t(MemoryLayout<Int32>.size))
        } else if requested == nil {
            frameSize = 65536
        }
        var rc = swale_packet_setopt(fd, SWALE_PACKET_VERSION, SWALE_TPACKET_V2)
        guard rc == 0 else { throw KernelError("PACKET_VERSION TPACKET_V2", name, errno: -rc) }
        let bypass = swale_packet_setopt(fd, SWALE_PACKET_QDISC_BYPASS, 1) == 0
        let ignoreOut = swale_packet_setopt(fd, SWALE_PACKET_IGNORE_OUTGOING, 1) == 0
        var sndbuf: Int32 = 4 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, socklen_t(MemoryLayout<Int32>.size))

        // Blocks of a power-of-two number of pages (the kernel allocates them that way), >= 128 KiB.
        var block = 131072
        while block < frameSize { block <<= 1 }
        let perBlock = block / frameSize
        let blocks = (frameCount + perBlock - 1) / perBlock
        let frames = blocks * perBlock
        rc = swale_packet_rx_ring(fd, UInt32(block), UInt32(blocks), UInt32(frameSize), UInt32(frames))
        guard rc == 0 else { throw KernelError("PACKET_RX_RING \(blocks)x\(block)", name, errno: -rc) }
        let bytes = block * blocks
        guard let map = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), map != MAP_FAILED else {
            throw KernelError("mmap packet ring", name, errno: errno)
        }
        var mapped = true
        defer { if !ok && mapped { munmap(map, bytes) } }

        rc = swale_packet_bind(fd, info.ifindex)
        guard rc == 0 else { throw KernelError("bind AF_PACKET", name, errno: -rc) }
        rc = swale_packet_promisc(fd, info.ifindex, 1)
        guard rc == 0 else { throw KernelError("PACKET_MR_PROMISC", name, errno: -rc) }
        ok = true
        mapped = false
        return PacketSocketAdapter(
            name: name, ifindex: info.ifindex, fd: fd, mtu: info.mtu, vnetSize: vnet,
            bypass: bypass, ignoreOut: ignoreOut, ring: map, ringBytes: bytes,
            frameSize: frameSize, frameCount: frames, copyThresh: copyThresh)
    }

    /// The interface's MTU now, asked through the packet socket itself (so in the interface's
    /// namespace, by ifindex): two ioctls, no netlink round trip.
    public func currentMTU() -> Int? {
        if closed { return nil }
        let m = swale_ifindex_mtu(fd, ifindex)
        guard m > 0 else { return nil }
        mtu = Int(m)
        return mtu
    }

    /// Reads and clears the socket's pending error (ENETDOWN when the link went down or away);
    /// call it when poll reports POLLERR on `pollFD`. Returns 0 if none.
    @discardableResult
    public func takeError() -> Int32 {
        if closed { return 0 }
        let e = swale_socket_error(fd)
        if e != 0 { stats.add(.linkDownEvents, 1) }
        return e
    }

    // MARK: kernel → switch

    public func receive(into tx: UserRing) -> Int {
        if closed { return 0 }
        let bs = min(tx.bufSize, 65535)
        var free = Int(tx.space())
        let start = tx.head
        var i = start
        var frames = 0, bytes = 0, gso = 0, truncated = 0, runts = 0, vlans = 0, queuedFrames = 0
        let fsize = frameSize
        while frames < batchLimit {
            let f = ring + cursor &* fsize
            let statusPtr = f.assumingMemoryBound(to: UInt32.self)
            let status = swale_load_acquire(statusPtr)
            if status & UInt32(SWALE_TP_STATUS_USER) == 0 { break }
            let h = f.assumingMemoryBound(to: swale_tpacket2_hdr.self)
            let len = Int(h.pointee.tp_len)
            let snap = Int(h.pointee.tp_snaplen)
            let mac = Int(h.pointee.tp_mac)
            // The kernel owns this memory, but check before trusting offsets.
            let queued = status & UInt32(SWALE_TP_STATUS_COPY) != 0  // the whole frame waits in the socket's queue
            var drop = false
            if (snap < len && !queued) || mac < VnetHeader.legacySize + 32 || mac + snap > fsize {
                truncated += 1; drop = true
            } else if snap < 14 {
                runts += 1; drop = true
            } else if !ignoresOutgoing
                && f.load(fromByteOffset: Int(SWALE_TPACKET2_SLL_OFFSET) + 10, as: UInt8.self) == UInt8(SWALE_PACKET_OUTGOING)
            {
                drop = true
            }
            if drop {
                if queued { _ = swale_recv_iov(fd, nil, 0) }  // its copy in the queue goes too
                swale_store_release(statusPtr, UInt32(SWALE_TP_STATUS_KERNEL))
                cursor = cursor &+ 1 == frameCount ? 0 : cursor &+ 1
                continue
            }
            let vlan = status & UInt32(SWALE_TP_STATUS_VLAN_VALID) != 0
            if queued {
                // Larger than a ring frame (a GSO frame): recvmsg straight into the tx slots.
                let needed = (VnetHeader.size + len + (vlan ? 4 : 0) + bs - 1) / bs
                if needed > free && needed < Int(tx.numSlots) && needed <= Self.rxIovCapacity - 4 { break }  // next batch
                var used = -1
                var isGSO = false
                if needed <= free && needed <= Self.rxIovCapacity - 4 {
                    used = readQueued(into: tx, at: i, slots: needed, vlan: vlan ? vlanTag(h, status) : nil, isGSO: &isGSO)
                } else {
                    _ = swale_recv_iov(fd, nil, 0)
                }
                swale_store_release(statusPtr, UInt32(SWALE_TP_STATUS_KERNEL))
                cursor = cursor &+ 1 == frameCount ? 0 : cursor &+ 1
                if used < 0 { if used == -1 { truncated += 1 }; continue }
                i = RingMath.add(i, UInt32(used), tx.numSlots)
                free -= used
                frames += 1
                bytes += len + (vlan ? 4 : 0)
                if isGSO { gso += 1 }
                queuedFrames += 1
                if vlan { vlans += 1 }
                continue
            }
            let data = UnsafeRawPointer(f + mac)
            // tpacket_rcv reserves vnet_hdr_sz bytes in front of the frame but writes the 10-byte
            // struct virtio_net_hdr right before the MAC header, whatever PACKET_VNET_HDR_SZ says.
            let hdr = UnsafeRawPointer(f + mac - VnetHeader.legacySize)
            let withHdr = vnetSize != 0 && VnetHeader(hdr).isMeaningful
            let total = (withHdr ? VnetHeader.size : 0) + snap + (vlan ? 4 : 0)
            let needed = (total + bs - 1) / bs
            if needed > free {
                if needed < Int(tx.numSlots) { break }  // stays in the kernel ring for the next batch
                // Larger than the whole ring could ever hold: drop it rather than stall.
                truncated += 1
                swale_store_release(statusPtr, UInt32(SWALE_TP_STATUS_KERNEL))
                cursor = cursor &+ 1 == frameCount ? 0 : cursor &+ 1
                continue
            }

            if !withHdr && !vlan && snap <= bs {
                // Fast path: one plain frame, one slot, one memcpy.
                let s = tx.slot(i)
                guard let b = tx.buffer(s) else { stats.add(.rxBadSlot, 1); break }
                memcpy(b, data, snap)
                s.pointee.len = UInt16(truncatingIfNeeded: snap)
                s.pointee.flags = 0
                i = tx.next(i)
                free -= 1
            } else {
                var w = SlotWriter(tx, at: i, bufSize: bs)
                if withHdr {
                    // 12-byte v1 header: the kernel's 10 bytes, num_buffers = 0. With a VLAN tag put
                    // back in front of the network header, csum_start moves by 4 unless the kernel
                    // already counted the tag.
                    var hv: (UInt64, UInt32) = (0, 0)
                    withUnsafeMutableBytes(of: &hv) { hb in
                        let p = hb.baseAddress!
                        memcpy(p, hdr, VnetHeader.legacySize)
                        let v = VnetHeader(p)
                        if vlan && v.needsChecksum {
                            if !vlanCsumLearned { learnVlanCsum(csumStart: v.csumStart, data: data, snap: snap) }
                            if !kernelCountsVlanInCsumStart { v.csumStart += 4 }
                        }
                        w.write(UnsafeRawPointer(p), VnetHeader.size)
                    }
                    if VnetHeader(hdr).isGSO { gso += 1 }
                }
                if vlan {
                    w.write(data, 12)
                    var tag = vlanTag(h, status)
                    withUnsafeBytes(of: &tag) { w.write($0.baseAddress!, 4) }
                    w.write(data + 12, snap - 12)
                    vlans += 1
                } else {
                    w.write(data, snap)
                }
                guard w.ok else { stats.add(.rxBadSlot, 1); break }
                let used = w.finish(firstFlags: withHdr ? SlotFlags.vnetHdr : 0)
                i = RingMath.add(i, used, tx.numSlots)
                free -= Int(used)
            }
            swale_store_release(statusPtr, UInt32(SWALE_TP_STATUS_KERNEL))
            cursor = cursor &+ 1 == frameCount ? 0 : cursor &+ 1
            frames += 1
            bytes += snap + (vlan ? 4 : 0)
        }
        if i != start { tx.advance(to: i) }
        stats.addRx(frames: frames, bytes: bytes, gso: gso, calls: queuedFrames, truncated: truncated, runts: runts, vlans: vlans)
        stats.add(.rxQueued, queuedFrames)
        return frames
    }

    /// The 802.1Q tag the kernel kept out of band, as it goes on the wire (TPID, TCI; big-endian).
    @inline(__always)
    private func vlanTag(_ h: UnsafeMutablePointer<swale_tpacket2_hdr>, _ status: UInt32) -> (UInt16, UInt16) {
        var tpid: UInt16 = 0x8100
        if status & UInt32(SWALE_TP_STATUS_VLAN_TPID_VALID) != 0 && h.pointee.tp_vlan_tpid != 0 { tpid = h.pointee.tp_vlan_tpid }
        return (tpid.bigEndian, h.pointee.tp_vlan_tci.bigEndian)
    }

    /// Reads the datagram at the head of the socket's queue — the frame the current ring entry
    /// stands for — straight into `slots` tx slots from `index`: the kernel writes the header and
    /// the frame across the slots' buffers (one copy, no pass through the ring). A VLAN tag kept out
    /// of band is put back by leaving a 4-byte gap after the MAC addresses. Sets the slots' len and
    /// flags; returns the slots used, -1 (empty queue, longer than announced) or -2 (a bad slot,
    /// counted here). Either way the datagram is gone from the queue.
    private func readQueued(into tx: UserRing, at index: UInt32, slots: Int, vlan: (UInt16, UInt16)?, isGSO: inout Bool) -> Int {
        let bs = tx.bufSize
        let hdr = VnetHeader.size
        var v = 0
        var idx = index
        var first: UnsafeMutableRawPointer?
        for k in 0..<slots {
            guard let b = tx.buffer(tx.slot(idx)) else { _ = swale_recv_iov(fd, nil, 0); stats.add(.rxBadSlot, 1); return -2 }
            if k == 0 {
                first = b
                // The kernel writes vnetSize (12, or 10 before 6.2) header bytes; the frame starts at 12.
                rxIov[v] = iovec(iov_base: b, iov_len: vnetSize); v += 1
                if vlan != nil {
                    rxIov[v] = iovec(iov_base: b + hdr, iov_len: 12); v += 1
                    rxIov[v] = iovec(iov_base: b + hdr + 16, iov_len: bs - hdr - 16); v += 1
                } else {
                    rxIov[v] = iovec(iov_base: b + hdr, iov_len: bs - hdr); v += 1
                }
            } else {
                rxIov[v] = iovec(iov_base: b, iov_len: bs); v += 1
            }
            idx = tx.next(idx)
        }
        let r = Int(swale_recv_iov(fd, rxIov, Int32(v)))
        let capacity = slots * bs - hdr - (vlan != nil ? 4 : 0)
        guard r >= vnetSize + 14, r - vnetSize <= capacity, let p = first else { return -1 }
        let h = VnetHeader(p)
        if vnetSize < hdr { h.numBuffers = 0 }  // the kernel wrote the 10-byte legacy header
        var total = hdr + r - vnetSize
        if let (tpid, tci) = vlan {
            p.storeBytes(of: tpid, toByteOffset: hdr + 12, as: UInt16.self)
            p.storeBytes(of: tci, toByteOffset: hdr + 14, as: UInt16.self)
            total += 4
            // csum_start counts from the MAC header as the kernel saw it, without the tag.
            if h.needsChecksum { h.csumStart += 4 }
        }
        isGSO = h.isGSO
        // The kernel wrote the bytes into the slots' buffers: lay out the lengths and flags.
        var w = SlotWriter(tx, at: index, bufSize: bs)
        w.skip(total)
        return Int(w.finish(firstFlags: SlotFlags.vnetHdr))
    }

    /// Compares csum_start with the L4 offset of an untagged IPv4 frame (14 + IHL*4 bytes).
    private func learnVlanCsum(csumStart: Int, data: UnsafeRawPointer, snap: Int) {
        guard snap >= 34, data.load(fromByteOffset: 12, as: UInt8.self) == 0x08,
            data.load(fromByteOffset: 13, as: UInt8.self) == 0x00
        else { return }
        let l4 = 14 + Int(data.load(fromByteOffset: 14, as: UInt8.self) & 15) * 4
        if Int(csumStart) == l4 {
            kernelCountsVlanInCsumStart = false; vlanCsumLearned = true
        } else if Int(csumStart) == l4 + 4 {
            kernelCountsVlanInCsumStart = true; vlanCsumLearned = true
        }
    }

    // MARK: switch → kernel

    public func transmit(from rx: UserRing) -> Int {
        transmitRing(rx, using: &out)
    }

    /// One sendmmsg() per up to 256 frames, each message an iovec list over the frame's segments.
    public func transmit(_ f: borrowing OutFrames) -> (consumed: Int, sent: Int) {
        if closed { return (f.count, 0) }
        var consumed = 0
        var sent = 0, bytes = 0, calls = 0, gso = 0, errors = 0, bad = 0, down = 0
        send: while consumed < f.count {
            // Messages for frames [consumed, k); a broken frame ends the batch unless it leads it.
            var m = 0, v = 0
            var k = consumed
            while k < f.count && m < Self.maxMessages {
                let first = Int(f.firstSegment[k]), end = Int(f.firstSegment[k + 1])
                let vnet = f.vnet[k]
                // A vnet header with metadata the kernel cannot take (no vnet on this socket) is unusable too.
                let unusable =
                    f.payload[k] < 0
                    || (vnet && vnetSize == 0 && VnetHeader(f.segments[first].iov_base!).isMeaningful)
                    || end - first + 2 > Self.iovCapacity
                if unusable {
                    if m > 0 { break }
                    bad += 1
                    k += 1
                    consumed = k
                    continue
                }
                if v + (end - first) + 2 > Self.iovCapacity { break }  // next round
                let v0 = v
                if !vnet && vnetSize != 0 {
                    iov[v] = iovec(iov_base: VnetHeader.zeros, iov_len: vnetSize)
                    v += 1
                }
                for g in first..<end {
                    var seg = f.segments[g]
                    if g == first && vnet && vnetSize != VnetHeader.size {
                        // The kernel takes 10 (or no) header bytes: a prefix of our header, then the
                        // frame from byte 12 — a split iovec, not a copy.
                        if vnetSize != 0 { iov[v] = iovec(iov_base: seg.iov_base, iov_len: vnetSize); v += 1 }
                        seg = iovec(iov_base: seg.iov_base! + VnetHeader.size, iov_len: seg.iov_len - VnetHeader.size)
                    }
                    if seg.iov_len > 0 { iov[v] = seg; v += 1 }
                }
                msgs[m].msg_hdr = msghdr(
                    msg_name: nil, msg_namelen: 0, msg_iov: iov + v0, msg_iovlen: v - v0,
                    msg_control: nil, msg_controllen: 0, msg_flags: 0)
                msgs[m].msg_len = 0
                frameOf[m] = Int32(k)
                m += 1
                k += 1
            }
            if m == 0 { continue }
            // One sendmmsg for the batch; a frame the kernel refuses is dropped and sending goes on.
            var done = 0
            while done < m {
                let res = retryingInterrupts { Int(swale_sendmmsg(fd, msgs + done, UInt32(m - done), SysConst.msgDontWait)) }
                calls += 1
                var e: Int32 = 0
                switch res {
                case .done(let r) where r > 0:
                    for j in done..<(done + r) {
                        let fk = Int(frameOf[j])
                        bytes += Int(f.payload[fk])
                        if f.isGSO(fk) { gso += 1 }
                    }
                    sent += r
                    done += r
                    consumed = Int(frameOf[done - 1]) + 1
                    continue
                case .done, .wouldBlock:
                    stats.add(.txAgain, 1)
                    break send
                case .failed(let err):
                    e = err
                }
                if e == ENETDOWN || e == ENXIO || e == ENODEV {
                    // The link is down or gone: everything in this batch is undeliverable.
                    down += m - done
                    consumed = k
                    break
                }
                errors += 1
                consumed = Int(frameOf[done]) + 1
                done += 1
            }
        }
        stats.addTx(frames: sent, bytes: bytes, gso: gso, calls: calls, errors: errors, bad: bad, down: down)
        return (consumed, sent)
    }

    // MARK: lifetime

    /// Unmaps the ring and closes the socket; the kernel drops the promiscuous membership.
    public func close() {
        if closed { return }
        closed = true
        munmap(ring, ringBytes)
        Glibc.close(fd)
    }
}

extension PacketSocketAdapter {
    public func handlePollError() { _ = takeError() }
}
