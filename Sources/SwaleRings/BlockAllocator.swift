/*
 * BlockAllocator — exact accounting of a region's blocks (netmap_mem2's bitmap allocator).
 *
 * One bit per block, set when free. Runs of blocks hold interface descriptors and rings; single
 * blocks are packet buffers. Blocks 0 and 1 are reserved (the region header; netmap reserves
 * buffer indices 0 and 1 too) and can never be allocated or freed. Freeing a block that is already
 * free, reserved or out of range is refused and counted, never corrupts the accounting: so a
 * client that scribbled duplicate buffer indices into its rings cannot make the pool leak or
 * hand one block out twice.
 */
public struct BlockAllocator {
    @inlinable public static var reserved: UInt32 { 2 }

    private var bits: [UInt64] = []
    public private(set) var total: Int = 0
    public private(set) var freeCount: Int = 0
    /// Frees refused: double frees, reserved or out-of-range indices.
    public private(set) var refusedFrees: Int = 0
    private var hint: Int = 0

    public init(blocks: Int) {
        addBlocks(blocks)
    }

    /// Adds blocks at the end (after the region grew). The first two blocks ever are reserved.
    public mutating func addBlocks(_ n: Int) {
        let newTotal = total + n
        while bits.count * 64 < newTotal { bits.append(0) }
        for i in total..<newTotal where i >= Int(BlockAllocator.reserved) {
            bits[i >> 6] |= 1 << UInt64(i & 63)
            freeCount += 1
        }
        total = newTotal
    }

    @inline(__always)
    public func isFree(_ i: UInt32) -> Bool {
        let i = Int(i)
        return i < total && bits[i >> 6] & (1 << UInt64(i & 63)) != 0
    }

    /// Allocates `count` contiguous blocks; returns the first index or nil.
    public mutating func allocate(count: Int = 1) -> UInt32? {
        guard count > 0, count <= freeCount else { return nil }
        if count == 1 {
            // Word scan from the hint: fast for the one-buffer-per-slot case.
            let words = bits.count
            for k in 0..<words {
                let w = (hint + k) % words
                let word = bits[w]
                if word != 0 {
                    let i = w * 64 + word.trailingZeroBitCount
                    if i < total {
                        bits[w] &= ~(1 << UInt64(i & 63))
                        freeCount -= 1
                        hint = w
                        return UInt32(i)
                    }
                }
            }
            return nil
        }
        var run = 0
        var i = Int(BlockAllocator.reserved)
        while i < total {
            if bits[i >> 6] & (1 << UInt64(i & 63)) != 0 {
                run += 1
                if run == count {
                    let start = i - count + 1
                    for j in start...i { bits[j >> 6] &= ~(1 << UInt64(j & 63)) }
                    freeCount -= count
                    return UInt32(start)
                }
            } else {
                run = 0
            }
            i += 1
        }
        return nil
    }

    /// Frees one block. Returns false (and counts it) for a double free or an invalid index.
    @discardableResult
    public mutating func free(_ index: UInt32) -> Bool {
        let i = Int(index)
        guard i >= Int(BlockAllocator.reserved), i < total, bits[i >> 6] & (1 << UInt64(i & 63)) == 0 else {
            refusedFrees += 1
            return false
        }
        bits[i >> 6] |= 1 << UInt64(i & 63)
        freeCount += 1
        return true
    }

    /// Frees a run of blocks allocated with allocate(count:).
    public mutating func free(start: UInt32, count: Int) {
        for k in 0..<count { free(start + UInt32(k)) }
    }
}
