/// The ones'-complement sum of RFC 1071, used by the IPv4 header, UDP, TCP and ICMP checksums.
public enum InternetChecksum {
    /// Adds `bytes` to a running 32-bit sum (odd lengths padded with a zero octet).
    @inlinable
    public static func add<C: Collection>(_ bytes: C, to sum: UInt32 = 0) -> UInt32 where C.Element == UInt8, C.Index == Int {
        var total = sum
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            total &+= UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.endIndex { total &+= UInt32(bytes[index]) << 8 }
        return total
    }

    /// Folds a running sum to the final 16-bit checksum value.
    @inlinable
    public static func finish(_ sum: UInt32) -> UInt16 {
        var total = sum
        while total > 0xffff { total = (total & 0xffff) &+ (total >> 16) }
        return ~UInt16(total)
    }
}
