/*
 * Fastpath — one bridge's kernel fast path, loaded and attached with libbpf (the programs:
 * Sources/CSwaleFastpath/bpf/fastpath.bpf.c; the engine's mirror of its maps:
 * SwaleDatapath/Fastpath.swift).
 *
 * Each bridge loads its own copy of the object (its own maps), compiled by clang for the BPF
 * target when the machine is set up (Scripts/setup.sh installs it as
 * /usr/local/lib/swale/swale-fastpath.bpf.o; `$SWALE_FASTPATH_OBJECT`, a file of that name beside
 * the executable, or PREFIX/lib/swale for an executable in PREFIX/bin (Scripts/install.sh) come
 * first). For every kernel port wrapped by a packet socket:
 *
 *   1. the socket filter goes on the port's AF_PACKET socket (SO_ATTACH_BPF), so the switch no
 *      longer sees frames the fast path will take;
 *   2. the tc program goes on the interface's ingress as a tcx link (bpf(BPF_LINK_CREATE,
 *      BPF_TCX_INGRESS), Linux 6.6+): no qdisc is created, other tc programs on an attached
 *      interface keep running, and the kernel detaches it when the link's descriptor closes — at
 *      port removal or when swaled exits or dies, so a restart finds nothing stale;
 *   3. the engine marks the port on in the port map (and mirrors its learned addresses).
 * A TAP port has no packet socket: what the host stack sends into it passes the TAP's tc egress
 * before it is queued for swaled's read(), so the egress program alone (a tcx egress link) both
 * takes those frames and keeps them from the switch; frames for a TAP go up the host stack
 * (SWALE_FP_PORT_HOST).
 * The maps are not pinned: they go with the last descriptor (the object's, the links' and the
 * sockets' filters).
 *
 * Map writes that fail (a full map) are counted, not fatal: an address missing from the map only
 * means its frames take the slow path.
 */
import CSwaleFastpath
import Foundation
import Glibc
import SwaleDatapath

public final class KernelFastpath: FastpathMaps {
    private var object = swale_fp_object()
    private let lock = NSLock()
    /// tcx link descriptors by ifindex.
    private var links: [Int32: Int32] = [:]
    /// Map writes the kernel refused (a full map): those addresses stay on the slow path.
    public private(set) var mapErrors: UInt64 = 0
    public let path: String

    public static let objectName = "swale-fastpath.bpf.o"

    /// Where the BPF object is looked for, in order.
    public static func objectCandidates() -> [String] {
        var c: [String] = []
        if let e = ProcessInfo.processInfo.environment["SWALE_FASTPATH_OBJECT"], !e.isEmpty { c.append(e) }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        c.append(exe.appendingPathComponent(objectName).path)
        // PREFIX/bin/swaled → PREFIX/lib/swale (Scripts/install.sh)
        c.append(exe.deletingLastPathComponent().appendingPathComponent("lib/swale/\(objectName)").path)
        c.append("/usr/local/lib/swale/\(objectName)")
        c.append("/usr/lib/swale/\(objectName)")
        return c
    }

    /// Loads the object (the first candidate that exists unless `path` is given) into the kernel.
    public init(path: String? = nil) throws {
        guard let p = path ?? KernelFastpath.objectCandidates().first(where: { FileManager.default.fileExists(atPath: $0) })
        else {
            throw KernelError(
                "load fast path", KernelFastpath.objectName,
                reason:
                    "not found (looked in \(KernelFastpath.objectCandidates().joined(separator: ", ")); Scripts/setup.sh builds it)"
            )
        }
        self.path = p
        var err = [CChar](repeating: 0, count: 2048)
        let rc = swale_fp_load(p, &object, &err, err.count)
        if rc < 0 {
            let detail = String(cString: err).split(separator: "\n").suffix(3).joined(separator: " | ")
            throw KernelError(
                "load fast path", p, reason: "\(String(cString: strerror(-rc)))\(detail.isEmpty ? "" : " (\(detail))")")
        }
    }

    deinit { close() }

    /// Detaches every link and releases the programs and maps.
    public func close() {
        lock.lock()
        for (_, fd) in links { Glibc.close(fd) }
        links = [:]
        lock.unlock()
        swale_fp_unload(&object)
    }

    /// Steps 1 and 2 of the header for the interface `ifindex` and its packet socket `socketFD`;
    /// without a socket (a TAP, read through its own descriptor), the egress program on the TAP.
    public func attach(ifindex: Int32, socketFD: Int32?, name: String) throws {
        var rc: Int32
        if let socketFD {
            rc = swale_fp_attach_socket(socketFD, object.sockfilter_fd)
            if rc < 0 { throw KernelError("attach fast-path socket filter", name, errno: -rc) }
            rc = swale_fp_attach_tcx(object.ingress_fd, ifindex, 0)
            if rc < 0 { throw KernelError("attach fast-path tcx ingress", name, errno: -rc) }
        } else {
            rc = swale_fp_attach_tcx(object.egress_fd, ifindex, 1)
            if rc < 0 { throw KernelError("attach fast-path tcx egress", name, errno: -rc) }
        }
        lock.lock()
        if let old = links[ifindex] { Glibc.close(old) }
        links[ifindex] = rc
        lock.unlock()
    }

    /// Removes the tc program from the interface (a socket filter goes with its socket).
    public func detach(ifindex: Int32) {
        lock.lock()
        if let fd = links.removeValue(forKey: ifindex) { Glibc.close(fd) }
        lock.unlock()
    }

    public var attachedCount: Int { lock.lock(); defer { lock.unlock() }; return links.count }

    // MARK: FastpathMaps

    private func check(_ rc: Int32, allowMissing: Bool = false) {
        if rc < 0 && !(allowMissing && rc == -ENOENT) { mapErrors &+= 1 }
    }

    public func setEntry(address: UInt64, ifindex: Int32) {
        check(swale_fp_fdb_set(object.fdb_fd, address, UInt32(bitPattern: ifindex)))
    }

    public func removeEntry(address: UInt64) { check(swale_fp_fdb_delete(object.fdb_fd, address), allowMissing: true) }

    public func removeAllEntries() { check(swale_fp_fdb_clear(object.fdb_fd)) }

    public func lastSeen(address: UInt64) -> UInt64? {
        var seen: UInt64 = 0
        return swale_fp_fdb_seen(object.fdb_fd, address, &seen) == 0 ? seen : nil
    }

    public func setPort(ifindex: Int32, slot: Int, flags: UInt32) {
        check(swale_fp_port_set(object.ports_fd, UInt32(bitPattern: ifindex), UInt32(slot), flags))
    }

    public func removePort(ifindex: Int32) {
        check(swale_fp_port_delete(object.ports_fd, UInt32(bitPattern: ifindex)), allowMissing: true)
    }

    public func counters(slot: Int) -> FastpathCounters {
        var c = swale_fp_counters()
        guard slot >= 0, slot < Int(SWALE_FP_PORTS_MAX), swale_fp_counters_read(object.counters_fd, UInt32(slot), &c) == 0 else {
            return FastpathCounters()
        }
        return FastpathCounters(txPackets: c.tx_packets, txBytes: c.tx_bytes, rxPackets: c.rx_packets, rxBytes: c.rx_bytes)
    }

    public func resetCounters(slot: Int) {
        guard slot >= 0, slot < Int(SWALE_FP_PORTS_MAX) else { return }
        check(swale_fp_counters_zero(object.counters_fd, UInt32(slot)))
    }
}
