/*
 * Region — one memfd mapped by the service and by the application(s) that use it.
 *
 * Like netmap_mem2, a region is a pool of fixed-size blocks: buffer index i lives at
 * base + i * bufSize, and interface descriptors and rings occupy runs of blocks, so one index space
 * names everything. Unlike netmap there is no fixed ceiling: the region grows when more pipes or
 * rings are asked for. To grow without moving, each side reserves a large span of address space
 * once (PROT_NONE, no memory committed) and maps the memfd over its beginning; growing maps the new
 * tail of the file right after the old one (MAP_FIXED), so every pointer and offset stays valid.
 * The service grows the file; a client notices with fstat and extends its own mapping.
 *
 * Every mapping is made with MAP_POPULATE: the memory is allocated and the page tables filled when
 * the ring is created, not on the forwarding path. Lazily, each frame written to a slot not used
 * before took a page fault (one per two 2 KiB slots) — for the first lap of every ring, which is
 * all of a quiet port's life: a ping across the switch paid two faults per round trip.
 */
import CSwaleABI
import CSwaleSys
import Glibc

public final class Region {
    public static let defaultBufSize = 2048
    public static let defaultReserve = 1 << 31  // 2 GiB of address space, not memory

    public let fd: Int32
    public let base: UnsafeMutableRawPointer
    public let reserve: Int
    public let bufSize: Int
    /// Bytes of the memfd currently mapped here.
    @exclusivity(unchecked) public private(set) var mappedSize: Int

    /// Number of blocks mapped: every valid buffer index is below this.
    public var blockLimit: UInt32 { UInt32(truncatingIfNeeded: mappedSize / bufSize) }

    public var header: UnsafeMutablePointer<swale_region_header> {
        base.assumingMemoryBound(to: swale_region_header.self)
    }

    /// Creates a new region (service side) of `blocks` blocks.
    public init(name: String, bufSize: Int = Region.defaultBufSize, blocks: Int, reserve: Int = Region.defaultReserve) throws {
        precondition(bufSize >= 64 && bufSize % 64 == 0, "buffer size must be a multiple of 64")
        let fd = swale_memfd_create(name)
        guard fd >= 0 else { throw SystemError("memfd_create", detail: name) }
        let size = blocks * bufSize
        guard size <= reserve else {
            close(fd); throw SystemError("region", errno: ENOMEM, detail: "\(size) bytes exceed the \(reserve)-byte reservation")
        }
        guard ftruncate(fd, off_t(size)) == 0 else { let e = errno; close(fd); throw SystemError("ftruncate", errno: e) }
        // Clients get this fd: nobody may shrink the file under the service's mappings.
        let sealed = swale_seal_region(fd)
        guard sealed == 0 else { close(fd); throw SystemError("memfd seal", errno: -sealed) }
        guard let base = Region.reserveAndMap(fd: fd, size: size, reserve: reserve) else {
            let e = errno; close(fd); throw SystemError("mmap", errno: e, detail: "region \(name)")
        }
        self.fd = fd
        self.base = base
        self.reserve = reserve
        self.bufSize = bufSize
        self.mappedSize = size
        let h = base.assumingMemoryBound(to: swale_region_header.self)
        h.pointee.magic = SWALE_REGION_MAGIC
        h.pointee.version = 1
        h.pointee.buf_size = UInt32(bufSize)
        h.pointee.size = UInt64(size)
    }

    /// Maps an existing region received from the service (client side). Takes ownership of fd.
    public init(mapping fd: Int32, bufSize: Int, reserve: Int = Region.defaultReserve) throws {
        guard swale_region_is_sealed(fd) == 1 else {
            close(fd); throw SystemError("region", errno: EPERM, detail: "memfd is not sealed against shrinking")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { let e = errno; close(fd); throw SystemError("fstat", errno: e) }
        let size = Int(st.st_size)
        guard size >= 2 * bufSize, size <= reserve, bufSize >= 64 else {
            close(fd); throw SystemError("region", errno: EINVAL, detail: "size \(size) does not fit buffer size \(bufSize)")
        }
        guard let base = Region.reserveAndMap(fd: fd, size: size, reserve: reserve) else {
            let e = errno; close(fd); throw SystemError("mmap", errno: e)
        }
        self.fd = fd
        self.base = base
        self.reserve = reserve
        self.bufSize = bufSize
        self.mappedSize = size
        guard header.pointee.magic == SWALE_REGION_MAGIC else {
            throw SystemError("region", errno: EINVAL, detail: "bad magic")
        }
    }

    private static func reserveAndMap(fd: Int32, size: Int, reserve: Int) -> UnsafeMutableRawPointer? {
        guard let span = mmap(nil, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
            span != MAP_FAILED
        else { return nil }
        guard let m = mmap(span, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, 0), m != MAP_FAILED
        else {
            munmap(span, reserve)
            return nil
        }
        return span
    }

    /// Grows the file and the mapping to `blocks` blocks (service side).
    public func grow(toBlocks blocks: Int) throws {
        let newSize = blocks * bufSize
        guard newSize > mappedSize else { return }
        guard newSize <= reserve else { throw SystemError("region grow", errno: ENOMEM, detail: "beyond reservation") }
        guard ftruncate(fd, off_t(newSize)) == 0 else { throw SystemError("ftruncate") }
        try mapTail(to: newSize)
        header.pointee.size = UInt64(newSize)
    }

    /// Extends the mapping to the file's current size (client side, after the service grew it).
    @discardableResult
    public func refresh() throws -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("fstat") }
        let size = min(Int(st.st_size), reserve)
        guard size > mappedSize else { return false }
        try mapTail(to: size - size % bufSize)
        return true
    }

    private func mapTail(to newSize: Int) throws {
        let m = mmap(
            base + mappedSize, newSize - mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd,
            off_t(mappedSize))
        guard let m, m != MAP_FAILED else { throw SystemError("mmap", detail: "grow") }
        mappedSize = newSize
    }

    @inlinable @inline(__always)
    public func pointer(offset: Int) -> UnsafeMutableRawPointer { base + offset }

    @inlinable @inline(__always)
    public func buffer(_ index: UInt32) -> UnsafeMutableRawPointer { base + Int(index) &* bufSize }

    deinit {
        munmap(base, reserve)
        close(fd)
    }
}
