/*
 * FrameCopy — the copy of one frame's bytes between two buffers, as the switch does it for every
 * frame it forwards (app -> switch -> app, and every single-slot frame of the general path).
 *
 * Most frames are short, and memcpy is a call and a dispatch on the length for each of them. A
 * frame of 8 to 64 bytes is copied as two unaligned loads and two stores each side that overlap in
 * the middle (for 60 bytes: bytes 0-31 and 28-59), so exactly `count` bytes are written: a byte of
 * the sender's buffer past its frame (what it sent to someone else before) never reaches the
 * reader, and nothing past the frame in the destination is touched. Longer (and shorter) frames go
 * to memcpy. `swale-bench --engine`, 60-byte unicast, two alternating rounds: 80.6 and 63.2 Mpps
 * before, 103.4 and 89.8 after (docs/BENCHMARKS.md).
 */
import Glibc

public enum FrameCopy {
    /// Copies `count` bytes from `from` to `to` (the two must not overlap). Inlinable: it runs once
    /// per frame in other modules (the forwarding engine).
    @inlinable @inline(__always)
    public static func copy(_ to: UnsafeMutableRawPointer, _ from: UnsafeRawPointer, count: Int) {
        if count > 64 || count < 8 {
            memcpy(to, from, count)
        } else if count > 32 {
            let head = from.loadUnaligned(as: SIMD32<UInt8>.self)
            let tail = from.loadUnaligned(fromByteOffset: count &- 32, as: SIMD32<UInt8>.self)
            to.storeBytes(of: head, as: SIMD32<UInt8>.self)
            to.storeBytes(of: tail, toByteOffset: count &- 32, as: SIMD32<UInt8>.self)
        } else if count > 16 {
            let head = from.loadUnaligned(as: SIMD16<UInt8>.self)
            let tail = from.loadUnaligned(fromByteOffset: count &- 16, as: SIMD16<UInt8>.self)
            to.storeBytes(of: head, as: SIMD16<UInt8>.self)
            to.storeBytes(of: tail, toByteOffset: count &- 16, as: SIMD16<UInt8>.self)
        } else {
            let head = from.loadUnaligned(as: UInt64.self)
            let tail = from.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            to.storeBytes(of: head, as: UInt64.self)
            to.storeBytes(of: tail, toByteOffset: count &- 8, as: UInt64.self)
        }
    }
}
