/*
 * Backend — the Swale half of libswale-netmap.so: what the /dev/netmap emulation (CSwaleNetmap,
 * interpose.c) calls to open, sync and close a port. Each port is a SwalePort, so a netmap program
 * gets exactly what a Swale application gets: the same control protocol and permission checks, the
 * same region, rings and wake-up handshake, the same checks on everything a peer writes.
 *
 * swaled is found the way every client finds it: $SWALE_SOCKET, else /run/swale/swaled.sock.
 */
import CSwaleABI
import CSwaleNetmap
import Glibc
import SwaleClient
import SwaleProtocol

/// The errno netmap would give for the service's refusal.
func errnoFor(_ e: Error) -> Int32 {
    guard let s = e as? SwaleError, let code = s.code else { return ENXIO }
    switch code {
    case .permissionDenied: return EPERM
    case .notFound: return ENXIO
    case .exists: return EBUSY
    case .limit: return ENOMEM
    case .invalidArgument, .malformed, .tooLarge, .version: return EINVAL
    case .unknownOperation: return EOPNOTSUPP
    case .system: return ENXIO
    }
}

@inline(__always) func port(_ handle: UnsafeMutableRawPointer?) -> SwalePort {
    Unmanaged<SwalePort>.fromOpaque(handle!).takeUnretainedValue()
}

@_cdecl("swale_nm_open")
public func swale_nm_open(
    _ name: UnsafePointer<CChar>?, _ extra: UInt32, _ share: Int32, _ out: UnsafeMutablePointer<swale_nm_port>?,
    _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int
) -> Int32 {
    guard let name, let out else { return EINVAL }
    let text = String(cString: name)
    // netmap may grant fewer extra buffers than asked: at most what the service allows.
    let wanted = min(Int(extra), 4096)
    return opened(out, err, errlen) {
        try SwalePort.open(text, extraBuffers: wanted == 0 ? nil : wanted, share: share != 0)
    }
}

@_cdecl("swale_nm_adopt")
public func swale_nm_adopt(
    _ fd: Int32, _ out: UnsafeMutablePointer<swale_nm_port>?, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int
) -> Int32 {
    guard let out else { return EINVAL }
    return opened(out, err, errlen) { try SwalePort.adopt(descriptor: fd) }
}

/// Fills `out` from the port `open` gives; an errno (and the message in err) if it throws.
func opened(
    _ out: UnsafeMutablePointer<swale_nm_port>, _ err: UnsafeMutablePointer<CChar>?, _ errlen: Int,
    _ open: () throws -> SwalePort
) -> Int32 {
    let p: SwalePort
    do { p = try open() } catch {
        if let err, errlen > 0 {
            let msg = Array("\(error)".utf8.prefix(errlen - 1)) + [0]
            msg.withUnsafeBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { err.update(from: $0, count: b.count) }
            }
        }
        return errnoFor(error)
    }
    let m = p.mapping
    var st = stat()
    guard fstat(m.fd, &st) == 0 else {
        p.close()
        return ENXIO
    }
    out.pointee = swale_nm_port(
        handle: Unmanaged.passRetained(p).toOpaque(),
        base: m.base.assumingMemoryBound(to: CChar.self),
        nifp_offset: UInt64(p.interface - m.base),
        memsize: UInt64(m.reserve),
        // The memfd's identity: equal only for the same region (device and inode).
        region_id: (UInt64(st.st_dev) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(st.st_ino),
        slots: p.tx.ptr.numSlots,
        buf_size: UInt32(p.bufferSize),
        buf_total: m.buffers,
        extra_bufs: UInt32(p.extraBuffers),
        notify_fd: p.fileDescriptor,
        tx: p.tx.ptr.ring,
        rx: p.rx.ptr.ring,
        csb: p.controlBlock,
        is_pipe: p.isPipe ? 1 : 0)
    return 0
}

@_cdecl("swale_nm_txsync")
public func swale_nm_txsync(_ handle: UnsafeMutableRawPointer?) { port(handle).txSync() }

@_cdecl("swale_nm_rxsync")
public func swale_nm_rxsync(_ handle: UnsafeMutableRawPointer?) { port(handle).rxSync() }

@_cdecl("swale_nm_refresh")
public func swale_nm_refresh(_ handle: UnsafeMutableRawPointer?) -> UInt32 {
    let p = port(handle)
    p.refreshMapping()
    return p.mapping.buffers
}

@_cdecl("swale_nm_set_hdr")
public func swale_nm_set_hdr(_ handle: UnsafeMutableRawPointer?, _ length: UInt32) -> Int32 {
    do { try port(handle).setVirtioHeader(length: Int(length)) } catch { return errnoFor(error) }
    return 0
}

@_cdecl("swale_nm_region_fd")
public func swale_nm_region_fd(_ handle: UnsafeMutableRawPointer?) -> Int32 { port(handle).mapping.fd }

@_cdecl("swale_nm_close")
public func swale_nm_close(_ handle: UnsafeMutableRawPointer?) {
    let p = Unmanaged<SwalePort>.fromOpaque(handle!).takeRetainedValue()
    p.close()
}
