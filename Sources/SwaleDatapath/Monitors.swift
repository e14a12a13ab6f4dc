/*
 * Monitors — netmap's monitor ports in the user-space switch: `vale0:p1/r`, `/t`, `/rt` is a
 * read-only application port that gets a copy of what the switch forwards to p1 (r), what p1 sends
 * into the switch (t), or both.
 *
 * A monitor is a port in the engine's array (its own region and rings, like any application port)
 * marked `isMonitor`: its tx ring is never read, it takes no part in floods, learning or the count
 * of forwarding ports. The watched port lists its monitors in `monitorTable` (at most `maxMonitors`)
 * and counts them in `monitors`, so a port without monitors pays one byte compare per batch
 * (as source) and per delivery (as destination).
 *
 * Copies are made per batch, before delivery (room read, ring published, application woken once
 * per monitor per batch): for `/t`, every frame the source's batch forwards;
 * for `/r`, every frame of the batch headed for the port (what the switch forwards to it, so also
 * a frame the port then drops because its own ring is full; tags as they arrived). A frame with a
 * virtio-net header is copied without the header (a monitor sees the Ethernet frame, a GSO frame
 * whole, as tcpdump on the interface would). A monitor without room loses the copy, counted in its
 * own `dropRingFull`; the switched traffic never waits for a monitor. When the watched port goes
 * away its monitors stay open and get nothing more.
 */
import CSwaleABI
import CSwaleSys
import SwaleRings

extension ForwardingEngine {
    public static let maxMonitors = 8

    /// Installs a monitor of port `target` (see `addPort` for the other arguments). With a
    /// `backend` (a TAP: `swalectl mirror`) the copies go to it, as to a kernel port; what the
    /// backend would bring in is never read. Nil when the engine is full, `target` is no port, or
    /// it has `maxMonitors` monitors already.
    public func addMonitor(
        pool: MemoryPool, layout: InterfaceLayout, kickFD: Int32, notifyFD: Int32, of target: Int, rx: Bool, tx: Bool,
        backend: PortBackend? = nil
    ) -> Int? {
        guard target >= 0, target < portCount, ports[target].active, !ports[target].isMonitor,
            Int(ports[target].monitors) < ForwardingEngine.maxMonitors,
            let i = addPort(pool: pool, layout: layout, kickFD: kickFD, notifyFD: notifyFD, backend: backend, monitor: true)
        else { return nil }
        activeCount -= 1  // not a forwarding port
        ports[i].isMonitor = true
        ports[i].monitorOf = Int32(target)
        ports[i].monitorRx = rx
        ports[i].monitorTx = tx
        let list = monitorTable + target * ForwardingEngine.maxMonitors
        list[Int(ports[target].monitors)] = Int16(i)
        ports[target].monitors += 1
        refreshFastpathPorts()  // a watched port's frames must cross the switch to be copied
        return i
    }

    /// A port going away: a monitor leaves its port's list; a watched port orphans its monitors.
    func detachMonitors(_ index: Int) {
        let p = ports + index
        if p.pointee.isMonitor {
            let t = Int(p.pointee.monitorOf)
            guard t >= 0 else { return }
            let list = monitorTable + t * ForwardingEngine.maxMonitors
            let n = Int(ports[t].monitors)
            if let k = (0..<n).first(where: { list[$0] == Int16(index) }) {
                list[k] = list[n - 1]
                list[n - 1] = -1
                ports[t].monitors -= 1
            }
            p.pointee.monitorOf = -1
            refreshFastpathPorts()
        } else {
            let list = monitorTable + index * ForwardingEngine.maxMonitors
            for k in 0..<Int(p.pointee.monitors) {
                ports[Int(list[k])].monitorOf = -1
                list[k] = -1
            }
            p.pointee.monitors = 0
        }
    }

    /// Copies the frames of the current batch that port `p` transmitted (all of them) or is sent
    /// (`transmitted` false: those headed for p) to p's monitors that want them.
    @inline(never)
    func mirror(batchOf s: Int, count ft: Int, of p: Int, transmitted: Bool) {
        let list = monitorTable + p * ForwardingEngine.maxMonitors
        for k in 0..<Int(ports[p].monitors) {
            let m = Int(list[k])
            let mon = ports + m
            guard transmitted ? mon.pointee.monitorTx : mon.pointee.monitorRx else { continue }
            // Room read once, the copies published once and the monitor woken once per batch, as `deliver` does.
            var room = mon.pointee.rx.rxRoom()
            var tail = mon.pointee.rx.hwtail
            var filled: UInt32 = 0
            for e in 0..<ft {
                if !transmitted {
                    let fd = ftDst[e]
                    if fd != UInt16(p) && fd != ForwardingEngine.broadcast { continue }
                    if batchScoped && egress(entry: e, to: p) == .skip { continue }
                }
                copy(entry: e, source: s, to: mon, room: &room, tail: &tail, filled: &filled)
            }
            guard filled > 0 else { continue }
            mon.pointee.rx.publishRx(filled)
            if mon.pointee.hasBackend {
                mon.pointee.needsTransmit = true  // handed to the backend at the end of the pass
            } else if let c = mon.pointee.csb {
                swale_barrier_toward(&c.pointee.app_membarrier)
                if swale_load_relaxed(&c.pointee.app_rx_waiting) != 0 { _ = swale_doorbell_ring(mon.pointee.notifyFD) }
            }
        }
    }

    /// One frame of the batch into a monitor's rx ring at `tail` (the header of a frame with
    /// offload metadata left out); no room: the copy is lost, counted.
    @inline(__always)
    func copy(
        entry e: Int, source s: Int, to mon: UnsafeMutablePointer<PortState>, room: inout UInt32, tail: inout UInt32,
        filled: inout UInt32
    ) {
        let src = ports + s
        let pos = Int(ftSlot[e])
        let hdr = snapFlags[pos] & SlotFlags.vnetHdr != 0 ? VnetHeader.size : 0
        let len = Int(ftLen[e]) - hdr
        let need = UInt32((len + mon.pointee.bufSize - 1) / mon.pointee.bufSize)
        guard need <= room else { mon.pointee.stats.dropRingFull &+= 1; return }
        var w = SlotWriter(
            slots: mon.pointee.rx.ptr.slots, numSlots: mon.pointee.rx.n, bufBase: mon.pointee.bufBase,
            bufSize: mon.pointee.bufSize, bufLimit: mon.pointee.bufLimit, at: tail)
        for k in 0..<Int(ftFrags[e]) where w.ok {
            let skip = k == 0 ? hdr : 0
            w.write(src.pointee.bufBase + Int(snapIdx[pos + k]) &* src.pointee.bufSize + skip, Int(snapLen[pos + k]) - skip)
        }
        guard w.ok else {
            // The monitor's application scribbled on its ring: reset it, nothing more this batch.
            mon.pointee.rx.reset()
            mon.pointee.stats.dropBadSlot &+= 1
            room = 0
            return
        }
        let used = w.finish()
        tail = RingMath.add(tail, used, mon.pointee.rx.n)
        room &-= used
        filled &+= used
        mon.pointee.stats.rxPackets &+= 1
        mon.pointee.stats.rxBytes &+= UInt64(len)
    }
}
