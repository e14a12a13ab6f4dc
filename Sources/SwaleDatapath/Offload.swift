/*
 * Offload — software completion of virtio-net offload metadata, for destinations that cannot take
 * it (application ports expect plain Ethernet frames).
 *
 * Kernel ports hand the switch frames with a virtio_net_hdr_v1 in front: "checksum partial" frames
 * (the L4 checksum holds only the pseudo-header sum; the sum from csum_start to the end must be
 * added) and GSO frames (one large TCP/UDP packet to be cut into gso_size pieces). Between kernel
 * ports such frames pass unchanged, which is what keeps TCP fast; only when a frame goes to a port
 * that does not accept the header is the work done here: checksum completed, or the frame segmented
 * with IPv4/IPv6 lengths, IPv4 ids and header checksums, TCP sequence numbers and flags, and L4
 * checksums fixed per segment, like the kernel's skb_segment.
 */
import CSwaleABI
import CSwaleSys
import Glibc
import SwaleRings

public enum Offload {
    public static let needsChecksum = VnetHeader.flagNeedsCsum
    public static let gsoNone = VnetHeader.gsoNone
    public static let gsoUDP = VnetHeader.gsoUDP
    public static let gsoUDPL4 = VnetHeader.gsoUDPL4

    @inline(__always)
    static func be16(_ p: UnsafeRawPointer, _ o: Int) -> Int {
        Int(p.load(fromByteOffset: o, as: UInt8.self)) << 8 | Int(p.load(fromByteOffset: o + 1, as: UInt8.self))
    }
    @inline(__always)
    static func put16(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: Int) {
        p.storeBytes(of: UInt8(truncatingIfNeeded: v >> 8), toByteOffset: o, as: UInt8.self)
        p.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: o + 1, as: UInt8.self)
    }

    /// One's-complement sum of len bytes (not folded, not inverted).
    public static func sum(_ p: UnsafeRawPointer, _ len: Int, initial: UInt64 = 0) -> UInt64 {
        var s = initial
        var i = 0
        while i + 1 < len { s &+= UInt64(be16(p, i)); i += 2 }
        if i < len { s &+= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << 8 }
        return s
    }

    public static func fold(_ s: UInt64) -> UInt16 {
        var s = s
        while s >> 16 != 0 { s = (s & 0xffff) + (s >> 16) }
        return UInt16(s)
    }

    /// Completes a "checksum partial" frame in place (frame starts at the Ethernet header).
    public static func completeChecksum(_ f: UnsafeMutableRawPointer, length: Int, start: Int, offset: Int) -> Bool {
        guard start + offset + 2 <= length, start < length else { return false }
        var c = ~fold(sum(f + start, length - start))
        if c == 0 { c = 0xffff }
        put16(f, start + offset, Int(c))
        return true
    }

    /// L3 offset and ethertype after optional VLAN tags.
    static func l3(_ f: UnsafeRawPointer, _ len: Int) -> (Int, Int)? {
        var off = 12
        var type = be16(f, off)
        while (type == 0x8100 || type == 0x88a8) && off + 6 <= len {
            off += 4
            type = be16(f, off)
        }
        return off + 2 <= len ? (off + 2, type) : nil
    }

    /// Cuts a GSO frame into segments, calling `emit` for each complete plain frame. `gsoType` is
    /// the header's type without the ECN bit (`VnetHeader.gsoType`).
    /// Returns the number of segments, or nil if the frame is not something we can segment.
    public static func segment(
        _ f: UnsafeMutableRawPointer, length: Int, gsoType: UInt8, gsoSize: Int,
        out: UnsafeMutableRawPointer, emit: (UnsafeMutableRawPointer, Int) -> Void
    ) -> Int? {
        // Tiny segment sizes would turn one frame into tens of thousands: refuse them.
        guard gsoSize >= 64, let (l3off, etype) = l3(f, length) else { return nil }
        let isV4 = etype == 0x0800
        guard isV4 || etype == 0x86dd else { return nil }
        guard l3off + (isV4 ? 20 : 40) <= length else { return nil }
        let ipHdr = isV4 ? Int(f.load(fromByteOffset: l3off, as: UInt8.self) & 0x0f) * 4 : 40
        let l4off = l3off + ipHdr
        guard ipHdr >= 20, l4off + 20 <= length else { return nil }
        let proto =
            isV4 ? Int(f.load(fromByteOffset: l3off + 9, as: UInt8.self)) : Int(f.load(fromByteOffset: l3off + 6, as: UInt8.self))
        // UFO (type 3) means IP fragmentation, not separate datagrams: not done here (the kernel no
        // longer emits it); such a frame is refused and counted rather than cut wrongly.
        guard gsoType != gsoUDP else { return nil }
        let isTCP = gsoType != gsoUDPL4
        guard (isTCP && proto == 6) || (!isTCP && proto == 17) else { return nil }
        let l4hdr = isTCP ? Int(f.load(fromByteOffset: l4off + 12, as: UInt8.self) >> 4) * 4 : 8
        guard l4hdr >= 8 && (!isTCP || l4hdr >= 20) else { return nil }
        let hdrLen = l4off + l4hdr
        guard hdrLen <= length, hdrLen + gsoSize <= ForwardingEngine.scratchBytes / 2 else { return nil }
        let payload = length - hdrLen
        var seq: UInt32 = 0
        if isTCP {
            seq = UInt32(be16(f, l4off + 4)) << 16 | UInt32(be16(f, l4off + 6))
        }
        let ipID = isV4 ? be16(f, l3off + 4) : 0
        var done = 0
        var n = 0
        while done < payload || (payload == 0 && n == 0) {
            let chunk = min(gsoSize, payload - done)
            let segLen = hdrLen + chunk
            memcpy(out, f, hdrLen)
            memcpy(out + hdrLen, f + hdrLen + done, chunk)
            let last = done + chunk >= payload
            if isV4 {
                put16(out, l3off + 2, ipHdr + l4hdr + chunk)
                put16(out, l3off + 4, (ipID + n) & 0xffff)
                put16(out, l3off + 10, 0)
                put16(out, l3off + 10, Int(~fold(sum(out + l3off, ipHdr))))
            } else {
                put16(out, l3off + 4, l4hdr + chunk)
            }
            // Pseudo header.
            var ph: UInt64 = 0
            if isV4 {
                ph = sum(out + l3off + 12, 8)
            } else {
                ph = sum(out + l3off + 8, 32)
            }
            ph &+= UInt64(proto) &+ UInt64(l4hdr + chunk)
            if isTCP {
                let s = seq &+ UInt32(done)
                put16(out, l4off + 4, Int(s >> 16))
                put16(out, l4off + 6, Int(s & 0xffff))
                var flags = Int(out.load(fromByteOffset: l4off + 13, as: UInt8.self))
                if !last { flags &= ~0x09 }  // FIN, PSH only on the last segment
                if n > 0 { flags &= ~0x80 }  // CWR only on the first
                out.storeBytes(of: UInt8(flags), toByteOffset: l4off + 13, as: UInt8.self)
                put16(out, l4off + 16, 0)
                put16(out, l4off + 16, Int(~fold(sum(out + l4off, l4hdr + chunk, initial: ph))))
            } else {
                put16(out, l4off + 4, 8 + chunk)
                put16(out, l4off + 6, 0)
                var c = ~fold(sum(out + l4off, 8 + chunk, initial: ph))
                if c == 0 { c = 0xffff }
                put16(out, l4off + 6, Int(c))
            }
            emit(out, segLen)
            n += 1
            done += chunk
            if payload == 0 { break }
        }
        return n
    }
}

extension ForwardingEngine {
    /// Linearizes a frame with a virtio-net header, finishes its offloads, and delivers plain frames.
    func deliverOffloaded(entry e: Int, source s: Int, to d: Int, room: inout UInt32, tail: inout UInt32, filled: inout UInt32)
        -> Int
    {
        let dst = ports + d
        let total = Int(ftLen[e])
        guard total <= ForwardingEngine.scratchBytes / 2 else { dst.pointee.stats.dropTooLong &+= 1; return 0 }
        gather(entry: e, source: s)
        return finishOffloaded(to: d, frameLength: total - VnetHeader.size, room: &room, tail: &tail, filled: &filled)
    }

    /// Copies entry e's frame (all its slots) to the start of the scratch area.
    func gather(entry e: Int, source s: Int) {
        let src = ports + s
        let pos = Int(ftSlot[e])
        var off = 0
        for k in 0..<Int(ftFrags[e]) {
            let len = Int(snapLen[pos + k])
            memcpy(scratch + off, src.pointee.bufBase + Int(snapIdx[pos + k]) &* src.pointee.bufSize, len)
            off += len
        }
    }

    /// Finishes the offloads of the frame in the scratch area (a virtio-net header, then
    /// `frameLength` bytes of frame) and delivers the plain frames to d. Returns frames delivered.
    func finishOffloaded(to d: Int, frameLength flen: Int, room: inout UInt32, tail: inout UInt32, filled: inout UInt32) -> Int {
        let dst = ports + d
        let h = VnetHeader(scratch)
        let frame = scratch + VnetHeader.size
        if !h.isGSO {
            if h.needsChecksum {
                guard Offload.completeChecksum(frame, length: flen, start: h.csumStart, offset: h.csumOffset) else {
                    dst.pointee.stats.dropBadSlot &+= 1
                    return 0
                }
            }
            return emitLinear(frame, flen, to: d, room: &room, tail: &tail, filled: &filled) ? 1 : 0
        }
        var sent = 0
        let out = scratch + ForwardingEngine.scratchBytes / 2
        let r = Offload.segment(frame, length: flen, gsoType: h.gsoType, gsoSize: h.gsoSize, out: out) { p, len in
            if emitLinear(p, len, to: d, room: &room, tail: &tail, filled: &filled) { sent += 1 }
        }
        if r == nil { dst.pointee.stats.dropTooLong &+= 1 }
        return sent
    }

    /// Copies one frame from linear memory into d's rx ring at `tail`: a plain one, or with `vnet`
    /// one that starts with a virtio-net header (for a port that accepts it).
    func emitLinear(
        _ p: UnsafeMutableRawPointer, _ len: Int, to d: Int, vnet: Bool = false, room: inout UInt32, tail: inout UInt32,
        filled: inout UInt32
    ) -> Bool {
        let dst = ports + d
        let hdr = vnet ? VnetHeader.size : 0
        if ForwardingEngine.payloadLength(p + hdr, len - hdr) > dst.pointee.mtu && !(vnet && VnetHeader(p).isGSO) {
            dst.pointee.stats.dropTooLong &+= 1
            return false
        }
        let bs = dst.pointee.bufSize
        let pad = dst.pointee.headroom(frameHasVnet: vnet)
        let need = dst.pointee.slots(for: len, frameHasVnet: vnet)
        if need > room { dst.pointee.stats.dropRingFull &+= 1; return false }
        var w = SlotWriter(
            slots: dst.pointee.rx.ptr.slots, numSlots: dst.pointee.rx.n, bufBase: dst.pointee.bufBase,
            bufSize: bs, bufLimit: dst.pointee.bufLimit, at: tail, headroom: pad)
        w.write(p, len)
        guard w.ok else {
            // A scribbled rx ring: reset it and give it nothing more in this batch, as `deliver` does.
            dst.pointee.rx.reset()
            dst.pointee.stats.dropBadSlot &+= 1
            room = 0
            return false
        }
        let used = w.finish(firstFlags: vnet || pad != 0 ? SlotFlags.vnetHdr : 0)
        tail = RingMath.add(tail, used, dst.pointee.rx.n)
        room -= used
        filled += used
        dst.pointee.stats.rxPackets &+= 1
        dst.pointee.stats.rxBytes &+= UInt64(len - hdr)
        return true
    }
}
