/*
 * Pipe — netmap_pipe.c's data path, run by the applications themselves.
 *
 * Each end of a pipe has a tx and an rx ring in the parent's region. An end's txSync moves the
 * slots it submitted into the peer's rx ring by swapping buffer indices with slots the peer has
 * released (zero copy), publishes the peer's rx tail, and sets its own tx tail from the room left
 * in the peer's ring. The peer releases by advancing its rx head. Everything read from the shared
 * rings is read once and validated like the switch does (KRing): our tx head/cur and the peer's rx
 * head/cur by netmap's sync prologue rules against private copies (hwcur/hwtail) that never live in
 * shared memory, so every slot touched is one of [0, num_slots). A ring that breaks the rules is
 * reset and counted (`SwalePort.peerErrors`), never a crash or an access outside the region.
 * Buffer indices are only moved here, never dereferenced: whoever uses a buffer checks its index
 * then (SwalePort.rxSlot / txBuffer).
 */
import CSwaleABI
import CSwaleSys
import SwaleRings

/// The pipe data path: our tx ring feeds the peer's rx ring by swapping buffer indices. A struct
/// held in place by the port (mutated through `pipe!`), so a sync takes no reference count.
struct PipeLink {
    var ownTx: KRing
    var peerRx: KRing
    let peerCsb: UnsafeMutablePointer<swale_csb>

    init(ownTx t: RingPointer, peerRx r: RingPointer, peerCsb: UnsafeMutablePointer<swale_csb>) {
        // Resume from what shared memory says (an end may be reopened); anything invalid restarts.
        ownTx = KRing(t, isTx: true)
        let h = t.loadHead(), tl = t.loadTail()
        if h < t.numSlots && tl < t.numSlots { ownTx.hwcur = h; ownTx.hwtail = tl } else { ownTx.reset() }
        peerRx = KRing(r, isTx: false)
        let pt = r.loadTail(), ph = r.loadHead()
        if pt < r.numSlots && ph < r.numSlots { peerRx.hwtail = pt; peerRx.hwcur = ph } else { peerRx.reset() }
        self.peerCsb = peerCsb
    }

    /// netmap_pipe_txsync: swap submitted tx buffers with free buffers of the peer's rx ring.
    /// Ring resets (our tx ring or the peer's rx ring broke the rules) are added to `errors`.
    @inline(__always)
    mutating func txsync(errors: inout UInt64, last: inout PeerFault?) -> UInt32 {
        let ownBefore = ownTx.resets, peerBefore = peerRx.resets
        let pending = ownTx.pendingTx()
        let room = peerRx.rxRoom()
        let k = min(pending, room)
        var a = ownTx.hwcur
        var b = peerRx.hwtail
        let n = ownTx.n
        let pn = peerRx.n
        let changed = UInt64(SWALE_NS_BUF_CHANGED) << 48
        for _ in 0..<k {
            // buf_idx, len and flags are the slot's first 8 bytes: one load each side, no re-reads.
            let ts = PipeLink.word(ownTx.slot(a))
            let rs = PipeLink.word(peerRx.slot(b))
            let ours = swale_load_relaxed_u64(ts)
            let theirs = swale_load_relaxed_u64(rs)
            // The peer's slot gets our buffer, length and flags (plus BUF_CHANGED); ours gets the
            // buffer the peer released, keeps its length, flags just BUF_CHANGED.
            swale_store_relaxed_u64(rs, ours | changed)
            swale_store_relaxed_u64(ts, (theirs & 0xffff_ffff) | (ours & 0xffff_0000_0000) | changed)
            a = RingMath.next(a, n)
            b = RingMath.next(b, pn)
        }
        if k > 0 { peerRx.publishRx(k) }
        ownTx.consumeTx(k, available: room &- k)
        if ownTx.resets != ownBefore { errors &+= ownTx.resets &- ownBefore; last = .ownTxRing }
        if peerRx.resets != peerBefore { errors &+= peerRx.resets &- peerBefore; last = .peerRxRing }
        return k
    }

    @inline(__always)
    static func word(_ s: UnsafeMutablePointer<swale_slot>) -> UnsafeMutablePointer<UInt64> {
        UnsafeMutableRawPointer(s).assumingMemoryBound(to: UInt64.self)
    }
}
