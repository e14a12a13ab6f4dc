/*
 * BridgeRules — what makes the forwarding engine an 802.1D/802.1Q bridge rather than a hub with a
 * MAC table: which frames it refuses, and which ports a frame may reach and in what form.
 *
 * Ingress, once per distinct (VLAN, source) of a batch (`admitSource`):
 *   - A source MAC that is multicast, broadcast or zero is dropped (`bad-source`), never learned.
 *   - Locked port (Linux `locked on`, 802.1X): the source must have a static entry on this port
 *     (in the frame's VLAN); nothing is learned there.
 *   - Otherwise the source is learned; the table refuses a (VLAN, MAC) that a static entry puts on
 *     another port (`static-move`) and a new entry beyond the port's MAC limit (`mac-limit`).
 * Reserved groups: 01:80:C2:00:00:01 ... 0F are link-local (pause, LACP, 802.1X, LLDP, ...) and
 * are not forwarded unless their bit is set in `groupForwardMask`; 01:80:C2:00:00:00 (STP BPDUs)
 * is forwarded, as the Linux bridge does while it runs no STP. Checked only for group
 * destinations, so unicast pays nothing.
 *
 * VLANs (only while `vlanFiltering` is on; off, tags pass through untouched and every frame is in
 * "VLAN 0", which keeps the MAC table keyed exactly as before). Per port, two 4096-bit maps in
 * `vlanBits` — member of VID, and VID leaves untagged — plus a PVID in PortState; a new port is
 * in VLAN 1, PVID, untagged (Linux's default_pvid). `classify` reads the frame once:
 *   - 802.1Q tag (TPID 0x8100) with VID 1...4094: that VLAN; VID 0 (priority tag): the PVID,
 *     keeping the priority bits; VID 4095 is reserved and dropped;
 *   - anything else (802.1ad 0x88a8 included, as Linux's 802.1Q bridge does) is untagged: PVID.
 *   - The port must be a member of the VLAN, and a port without PVID drops untagged frames.
 * Learning and lookup are keyed by (VID, MAC); floods reach only members of the VID; a known
 * unicast destination that is not a member is dropped (`vlan`). At egress a frame leaves tagged
 * unless the VID is "untagged" on that port. When the form it arrived in is the form it leaves in,
 * it takes the normal paths (copy, or direct transmit to the kernel) unchanged; otherwise
 * `deliverRetagged` rebuilds it in the scratch area (tag pushed, popped or rewritten; a virtio-net
 * header's csum_start and hdr_len moved with it; software offload after that if the destination
 * needs it). So access ports (untagged in, untagged out) and trunks (tagged in, tagged out) never
 * pay for a rewrite; only frames crossing between them do.
 *
 * Isolation (Linux `isolated on`): an isolated port's frames reach only non-isolated ports.
 *
 * Split horizon (VPP's split-horizon group): ports in the same nonzero group never forward to each
 * other. Tunnels of a full mesh share one group, so a flood that came in over one tunnel goes to
 * local ports only, never back out over another tunnel (each remote floods to its own locals): no
 * loop, and each host gets a broadcast exactly once. Floods skip same-group ports; known unicast
 * between them is dropped and counted (`dropHorizon`) against the source.
 *
 * A batch decides once whether any egress rule applies (`batchScoped`: VLAN filtering, an
 * isolated source, or a source in a horizon group); when none does, delivery runs exactly as
 * without this file: a batch from a port without rules pays one load and one compare, per batch.
 */
import CSwaleABI
import Glibc
import SwaleRings

extension ForwardingEngine {
    /// Why a frame was refused (counted against its source port).
    enum Drop: UInt8 {
        case none, badSource, locked, staticMove, macLimit, reserved, vlan, isolated, horizon
    }

    /// How a frame of the batch goes to one destination.
    enum Egress: UInt8 {
        case skip, asIs, retag
    }

    /// ftTag values: how the source frame carries its VLAN.
    static let untaggedFrame: UInt8 = 0
    /// Tagged with the VID it is classified in: can leave tagged as it is.
    static let taggedFrame: UInt8 = 1
    /// Priority-tagged (VID 0): leaves tagged only after the VID is written in.
    static let retagFrame: UInt8 = 2

    static let vlanWordsPerPort = 128  // 64 words of membership, 64 of "untagged"
    public static let vlanRange: ClosedRange<UInt16> = 1...4094

    @inline(never)  // a refusal: kept out of the per-frame loop
    func countDrop(_ why: Drop, _ p: UnsafeMutablePointer<PortState>) {
        switch why {
        case .none: break
        case .badSource: p.pointee.stats.dropBadSource &+= 1
        case .locked: p.pointee.stats.dropLocked &+= 1
        case .staticMove: p.pointee.stats.dropStaticMove &+= 1
        case .macLimit: p.pointee.stats.dropMacLimit &+= 1
        case .reserved: p.pointee.stats.dropReserved &+= 1
        case .vlan: p.pointee.stats.dropVlan &+= 1
        case .isolated: p.pointee.stats.dropIsolated &+= 1
        case .horizon: p.pointee.stats.dropHorizon &+= 1
        }
    }

    // MARK: ingress

    /// Checks a source and learns it (see the header). Out of line: once per distinct source.
    @inline(never)
    func admitSource(_ address: UInt64, port s: Int, learn: Bool, now: UInt32) -> Drop {
        let mac = address & 0xFFFF_FFFF_FFFF
        if LearningTable.isGroup(mac) || mac == 0 { return .badSource }
        if ports[s].locked { return table.staticPort(mac, vlan: UInt16(address >> 48)) == UInt16(s) ? .none : .locked }
        guard learn else { return .none }
        switch table.learn(address: address, port: UInt16(s), now: now) {
        case .learned: return .none
        case .staticElsewhere: return .staticMove
        case .limitReached: return .macLimit
        }
    }

    /// 01:80:C2:00:00:01 ... 0F whose bit is not in the forward mask.
    @inline(__always)
    func isReservedGroup(_ mac: UInt64) -> Bool {
        guard mac & ~0xF == 0x0180_C200_0000 else { return false }
        let bit = Int(mac & 0xF)
        return bit != 0 && (groupForwardMask >> UInt16(bit)) & 1 == 0
    }

    /// The VLAN of a frame arriving on port s (vid 0: drop it), the tag it leaves with where it
    /// leaves tagged, and how it is tagged now. `length` is the frame's, `firstSlot` the bytes of
    /// it in its first slot (the tag must be there).
    @inline(__always)
    func classify(_ f: UnsafeRawPointer, length: Int, firstSlot: Int, port s: Int) -> (vid: UInt16, tci: UInt16, tag: UInt8) {
        let pvid = ports[s].pvid
        var vid = pvid
        var tci = pvid
        var tag = ForwardingEngine.untaggedFrame
        if firstSlot >= 18 && length >= 18 && f.loadUnaligned(fromByteOffset: 12, as: UInt16.self) == UInt16(0x8100).bigEndian {
            let t = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
            let v = t & 0xfff
            if v == 0xfff { return (0, 0, 0) }
            if v == 0 {
                vid = pvid
                tci = (t & 0xf000) | pvid
                tag = ForwardingEngine.retagFrame
            } else {
                vid = v
                tci = t
                tag = ForwardingEngine.taggedFrame
            }
        }
        guard vid != 0, isMember(s, vid) else { return (0, 0, 0) }
        return (vid, tci, tag)
    }

    // MARK: egress

    /// A known unicast destination d: refused if it is not in the VLAN, both ends are isolated, or
    /// both are in the same split-horizon group.
    @inline(never)
    func unicastEgress(vid: UInt16, to d: Int) -> Drop {
        if batchIsolated && ports[d].isolated { return .isolated }
        if batchHorizon != 0 && ports[d].horizon == batchHorizon { return .horizon }
        if vlanFiltering && !isMember(d, vid) { return .vlan }
        return .none
    }

    /// Whether entry e of the batch goes to d, and whether its tag must change on the way.
    @inline(__always)
    func egress(entry e: Int, to d: Int) -> Egress {
        if batchIsolated && ports[d].isolated { return .skip }
        if batchHorizon != 0 && ports[d].horizon == batchHorizon { return .skip }
        guard vlanFiltering else { return .asIs }
        let vid = ftVid[e]
        guard isMember(d, vid) else { return .skip }
        let want = isUntagged(d, vid) ? ForwardingEngine.untaggedFrame : ForwardingEngine.taggedFrame
        return ftTag[e] == want ? .asIs : .retag
    }

    /// Delivers entry e's frame in the form port d wants (tag pushed, popped or rewritten). A plain
    /// frame is written straight into d's buffers in pieces (addresses, the new tag, the rest); one
    /// with a virtio-net header is rebuilt in the scratch area first (its header moves with the
    /// tag), then finished in software if the port cannot take the header. Out of line: only frames
    /// that cross between access and trunk ports come here.
    @inline(never)
    func deliverRetagged(entry e: Int, source s: Int, to d: Int, room: inout UInt32, tail: inout UInt32, filled: inout UInt32) {
        if snapFlags[Int(ftSlot[e])] & SlotFlags.vnetHdr == 0 {
            writeRetagged(entry: e, source: s, to: d, room: &room, tail: &tail, filled: &filled)
            return
        }
        let dst = ports + d
        let total = Int(ftLen[e])
        guard total + 4 <= ForwardingEngine.scratchBytes / 2 else { dst.pointee.stats.dropTooLong &+= 1; return }
        let pos = Int(ftSlot[e])
        gather(entry: e, source: s)
        let hasVnet = snapFlags[pos] & SlotFlags.vnetHdr != 0
        let hdr = hasVnet ? VnetHeader.size : 0
        let f = scratch + hdr
        var len = total - hdr
        var delta = 0
        let tci = ftTci[e].bigEndian
        if !isUntagged(d, ftVid[e]) {
            if ftTag[e] == ForwardingEngine.untaggedFrame {
                memmove(f + 16, f + 12, len - 12)
                f.storeBytes(of: UInt16(0x8100).bigEndian, toByteOffset: 12, as: UInt16.self)
                len += 4
                delta = 4
            }
            f.storeBytes(of: tci, toByteOffset: 14, as: UInt16.self)
        } else {
            memmove(f + 12, f + 16, len - 16)
            len -= 4
            delta = -4
        }
        if hasVnet && delta != 0 {
            let h = VnetHeader(scratch)
            if h.needsChecksum { h.csumStart = h.csumStart + delta }
            if h.hdrLen != 0 { h.hdrLen = h.hdrLen + delta }
        }
        if hasVnet && !dst.pointee.acceptsVnet {
            _ = finishOffloaded(to: d, frameLength: len, room: &room, tail: &tail, filled: &filled)
        } else {
            _ = emitLinear(scratch, hdr + len, to: d, vnet: hasVnet, room: &room, tail: &tail, filled: &filled)
        }
    }

    /// A plain frame with its tag changed, copied once: the 12 address bytes, the tag d wants (if
    /// any), the rest of the first slot after the old tag (if any), then the other slots. The first
    /// slot holds at least the Ethernet header, and the tag when there is one (checked at ingress).
    func writeRetagged(entry e: Int, source s: Int, to d: Int, room: inout UInt32, tail: inout UInt32, filled: inout UInt32) {
        let dst = ports + d
        let src = ports + s
        let pos = Int(ftSlot[e])
        let tagOut = !isUntagged(d, ftVid[e])
        let tagIn = ftTag[e] != ForwardingEngine.untaggedFrame
        let len = Int(ftLen[e]) + (tagOut ? 4 : 0) - (tagIn ? 4 : 0)
        if len - 14 - (tagOut ? 4 : 0) > dst.pointee.mtu { dst.pointee.stats.dropTooLong &+= 1; return }
        let pad = dst.pointee.headroom(frameHasVnet: false)
        let need = dst.pointee.slots(for: len, frameHasVnet: false)
        if need > room { dst.pointee.stats.dropRingFull &+= 1; return }
        var w = SlotWriter(
            slots: dst.pointee.rx.ptr.slots, numSlots: dst.pointee.rx.n, bufBase: dst.pointee.bufBase,
            bufSize: dst.pointee.bufSize, bufLimit: dst.pointee.bufLimit, at: tail, headroom: pad)
        let first = src.pointee.bufBase + Int(snapIdx[pos]) &* src.pointee.bufSize
        w.write(first, 12)
        if tagOut {
            var tag = (UInt32(0x8100) << 16 | UInt32(ftTci[e])).bigEndian
            withUnsafeBytes(of: &tag) { w.write(UnsafeMutableRawPointer(mutating: $0.baseAddress!), 4) }
        }
        let skip = tagIn ? 16 : 12
        w.write(first + skip, Int(snapLen[pos]) - skip)
        for k in 1..<Int(ftFrags[e]) where w.ok {
            w.write(src.pointee.bufBase + Int(snapIdx[pos + k]) &* src.pointee.bufSize, Int(snapLen[pos + k]))
        }
        guard w.ok else {
            // A scribbled rx ring: reset it and give it nothing more in this batch (as `deliver`).
            dst.pointee.rx.reset()
            dst.pointee.stats.dropBadSlot &+= 1
            room = 0
            return
        }
        let used = w.finish(firstFlags: pad != 0 ? SlotFlags.vnetHdr : 0)
        tail = RingMath.add(tail, used, dst.pointee.rx.n)
        room -= used
        filled += used
        dst.pointee.stats.rxPackets &+= 1
        dst.pointee.stats.rxBytes &+= UInt64(len)
    }

    /// Ethernet payload of a frame, not counting one VLAN tag (MTUs do not count it, as in Linux).
    @inline(__always)
    static func payloadLength(_ f: UnsafeRawPointer, _ len: Int) -> Int {
        let type = UInt16(bigEndian: f.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        return len &- 14 &- (len >= 18 && (type == 0x8100 || type == 0x88a8) ? 4 : 0)
    }

    // MARK: VLAN maps and port rules (control plane, between passes)

    @inline(__always)
    func isMember(_ p: Int, _ vid: UInt16) -> Bool {
        (vlanBits[p &* ForwardingEngine.vlanWordsPerPort &+ Int(vid &>> 6)] &>> UInt64(vid & 63)) & 1 != 0
    }

    @inline(__always)
    func isUntagged(_ p: Int, _ vid: UInt16) -> Bool {
        (vlanBits[p &* ForwardingEngine.vlanWordsPerPort &+ 64 &+ Int(vid &>> 6)] &>> UInt64(vid & 63)) & 1 != 0
    }

    /// A new port: VLAN 1, PVID, untagged; not isolated, not locked.
    func resetVlans(port i: Int) {
        setVlans(port: i, [(1, true)], pvid: 1)
    }

    /// Replaces port i's VLANs: (VID, leaves untagged) pairs and the PVID (0: untagged frames are
    /// dropped). VIDs outside 1...4094 are ignored.
    public func setVlans(port i: Int, _ vlans: [(vid: UInt16, untagged: Bool)], pvid: UInt16) {
        guard i >= 0, i < config.maxPorts else { return }
        let words = vlanBits + i * ForwardingEngine.vlanWordsPerPort
        words.update(repeating: 0, count: ForwardingEngine.vlanWordsPerPort)
        for (vid, untagged) in vlans where ForwardingEngine.vlanRange.contains(vid) {
            words[Int(vid >> 6)] |= 1 << UInt64(vid & 63)
            if untagged { words[64 + Int(vid >> 6)] |= 1 << UInt64(vid & 63) }
        }
        if i < portCount { ports[i].pvid = ForwardingEngine.vlanRange.contains(pvid) ? pvid : 0 }
    }

    /// Port i's VLANs as (VID, untagged), and its PVID.
    public func vlans(port i: Int) -> (vlans: [(vid: UInt16, untagged: Bool)], pvid: UInt16) {
        guard i >= 0, i < portCount, ports[i].active else { return ([], 0) }
        let list = ForwardingEngine.vlanRange.filter { isMember(i, $0) }.map { ($0, isUntagged(i, $0)) }
        return (list, ports[i].pvid)
    }

    /// Isolation, locking, the MAC limit (0: none) and the split-horizon group (0: none) of port i.
    public func setPortRules(port i: Int, isolated: Bool, locked: Bool, maxMacs: UInt32, horizon: UInt8 = 0) {
        guard i >= 0, i < portCount, ports[i].active else { return }
        ports[i].isolated = isolated
        ports[i].locked = locked
        ports[i].horizon = horizon
        table.setLimit(port: i, maxMacs)
        refreshFastpathPorts()
    }
}
