/*
 * Pipe — netmap_pipe.c's data path, run by the applications themselves.
 *
 * Each end of a pipe has a tx and an rx ring in the parent's region. An end's txSync moves the
 * slots it submitted into the peer's rx ring by swapping buffer indices with slots the peer has
 * released (zero copy), publishes the peer's rx tail, and sets its own tx tail from the room left
 * in the peer's ring. The peer releases by advancing its rx head. Everything read from the shared
 * rings is validated like the switch does (KRing); a peer that scribbles gets its ring reset and
 * counted (`SwalePort.peerErrors`), never a crash or an access outside the region.
 */
import CSwaleABI
import CSwaleSys
import SwaleRings

/// The pipe data path: our tx ring feeds the peer's rx ring by swapping buffer indices.
final class PipeLink {
    @exclusivity(unchecked) var ownTx: KRing
    @exclusivity(unchecked) var peerRx: KRing
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
    @inline(__always)
    func txsync(limit: inout UInt32, errors: inout UInt64) -> UInt32 {
        let before = ownTx.resets &+ peerRx.resets
        let pending = ownTx.pendingTx()
        let room = peerRx.rxRoom()
        let k = min(pending, room)
        var a = ownTx.hwcur
        var b = peerRx.hwtail
        let n = ownTx.n
        let pn = peerRx.n
        for _ in 0..<k {
            let ts = ownTx.slot(a)
            let rs = peerRx.slot(b)
            let idx = ts.pointee.buf_idx
            ts.pointee.buf_idx = rs.pointee.buf_idx
            rs.pointee.buf_idx = idx
            rs.pointee.len = ts.pointee.len
            rs.pointee.flags = (ts.pointee.flags & ~UInt16(SWALE_NS_BUF_CHANGED)) | UInt16(SWALE_NS_BUF_CHANGED)
            ts.pointee.flags = UInt16(SWALE_NS_BUF_CHANGED)
            a = RingMath.next(a, n)
            b = RingMath.next(b, pn)
        }
        if k > 0 { peerRx.publishRx(k) }
        ownTx.consumeTx(k, available: room &- k)
        errors &+= (ownTx.resets &+ peerRx.resets) &- before
        return k
    }
}
