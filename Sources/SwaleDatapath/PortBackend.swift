/*
 * PortBackend — the one contract between the forwarding engine and whatever drives a port's rings
 * from inside the switch (netmap's bwrap: a kernel interface wrapped into a port).
 *
 * Everything that plugs into a bridge looks the same to the forwarding engine: a tx ring the port
 * fills (frames entering the switch) and an rx ring the switch fills (frames leaving through the
 * port). An application drives those rings from its own process and has no backend. A backend
 * (TAP, AF_PACKET, the in-memory port of the tests) drives them from the forwarding thread, once
 * per batch and never per frame, on the *user* side: it writes tx [head, tail) and advances head,
 * reads rx [head, tail) and advances head, as a netmap application would (Snabb's "one small
 * uniform port contract"). Backends are classes, so the engine holds them as a pointer and a
 * witness table: no boxing, no allocation per call.
 */
import SwaleRings

public protocol PortBackend: AnyObject {
    /// Readable when the kernel has frames for the switch (added to the bridge's epoll set), or -1.
    var pollFD: Int32 { get }
    /// Moves up to the ring's free space of frames from the kernel into `tx` (user side), advancing
    /// its head. Returns frames moved.
    func receive(into tx: UserRing) -> Int
    /// Hands the frames waiting in `rx` (user side) to the kernel and releases what it took
    /// (usually `transmitRing`). Returns frames sent.
    func transmit(from rx: UserRing) -> Int
    /// Hands a prefix of `frames` to the kernel: `consumed` frames are done with (sent, or refused
    /// by the kernel and counted), `sent` of them went out. The rest stay with the caller: the
    /// kernel cannot take more now.
    func transmit(_ frames: borrowing OutFrames) -> (consumed: Int, sent: Int)
    /// The interface's MTU: the largest Ethernet payload (frame without its 14-byte header and
    /// without a vnet header) it takes; larger frames toward it are dropped and counted.
    var mtu: Int { get }
    /// Re-reads the MTU from the kernel (called once a second by the engine's housekeeping, off
    /// the per-batch path); nil when it cannot be read (the MTU in force stays).
    func currentMTU() -> Int?
    /// Whether frames may carry a virtio-net header (SWALE_NS_VNET_HDR) toward this port.
    var acceptsVnetHeader: Bool { get }
    /// Adapter-level counters for `swalectl stats`.
    var counters: [String: UInt64] { get }
    /// The poll fd reported an error (link down or gone): read and clear it so polling calms down.
    func handlePollError()
    func close()
}

extension PortBackend {
    public func handlePollError() {}
}
