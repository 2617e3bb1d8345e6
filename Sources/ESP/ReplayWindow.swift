/// The receiver's anti-replay window over 64-bit sequence numbers (RFC 4303 section 3.4.3 and
/// Appendix A): a bitmap of the last `size` numbers below the highest one accepted.
public struct ReplayWindow: Sendable {
    public enum Verdict: Equatable, Sendable { case fresh, replayed, behindWindow }

    public let size: UInt64
    /// Highest sequence number accepted so far (0 before the first packet; 0 is never valid).
    public private(set) var highest: UInt64 = 0
    private var words: [UInt64]

    /// `size` is rounded up to a multiple of 64; at least 1024 is expected of this data plane.
    public init(size: Int = 4096) {
        let rounded = max(64, (size + 63) / 64 * 64)
        self.size = UInt64(rounded)
        words = Array(repeating: 0, count: rounded / 64)
    }

    private func bit(_ sequence: UInt64) -> (word: Int, mask: UInt64) {
        let position = sequence % size
        return (Int(position / 64), 1 << (position % 64))
    }

    /// Checks a number without changing the window; done before the integrity check, accepted after it.
    public func check(_ sequence: UInt64) -> Verdict {
        if sequence > highest { return .fresh }
        if sequence == 0 || highest - sequence >= size { return .behindWindow }
        let (word, mask) = bit(sequence)
        return words[word] & mask != 0 ? .replayed : .fresh
    }

    /// Marks a number seen, sliding the window forward when it is the new highest.
    public mutating func accept(_ sequence: UInt64) {
        if sequence > highest {
            let advance = sequence - highest
            if advance >= size {
                for index in words.indices { words[index] = 0 }
            } else {
                var clear = highest + 1
                while clear <= sequence {
                    let (word, mask) = bit(clear)
                    if mask == 1 && sequence - clear >= 63 {
                        words[word] = 0
                        clear += 64
                        continue
                    }
                    words[word] &= ~mask
                    clear += 1
                }
            }
            highest = sequence
        }
        let (word, mask) = bit(sequence)
        words[word] |= mask
    }

    /// Reconstructs the full 64-bit number from the 32 bits on the wire when extended sequence numbers
    /// are in use (RFC 4303 Appendix A2.2): the high half is the one that puts it nearest the window.
    public func inferExtended(low: UInt32) -> UInt64 {
        let topLow = UInt32(truncatingIfNeeded: highest)
        let topHigh = UInt32(truncatingIfNeeded: highest >> 32)
        let windowSpan = UInt32(truncatingIfNeeded: size - 1)
        let high: UInt32
        if topLow >= windowSpan {
            // Window lies within one 2^32 block.
            high = low >= topLow - windowSpan ? topHigh : topHigh &+ 1
        } else {
            // Window straddles a block boundary: large low values belong to the previous block.
            let bottom = topLow &- windowSpan
            high = (low >= bottom && topHigh > 0) ? topHigh - 1 : topHigh
        }
        return UInt64(high) << 32 | UInt64(low)
    }
}
