/// An IPv4 or IPv6 address as network-order octets, parsed from and printed as text.
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    public var bytes: [UInt8] {
        switch self {
        case .v4(let b), .v6(let b): return b
        }
    }
    public var isIPv6: Bool { if case .v6 = self { return true } else { return false } }
    /// fe80::/10 or 169.254.0.0/16: meaningful on one link only.
    public var isLinkLocal: Bool {
        switch self {
        case .v4(let b): return b[0] == 169 && b[1] == 254
        case .v6(let b): return b[0] == 0xfe && b[1] & 0xc0 == 0x80
        }
    }

    /// 224.0.0.0/4 (and the limited broadcast) or ff00::/8: a group, never one host.
    public var isMulticast: Bool {
        switch self {
        case .v4(let b): return b[0] & 0xf0 == 0xe0 || b == [255, 255, 255, 255]
        case .v6(let b): return b[0] == 0xff
        }
    }
    /// 0.0.0.0 or ::, "no address".
    public var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }

    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = .v4(bytes)
        case 16: self = .v6(bytes)
        default: return nil
        }
    }

    public init?(_ text: String) {
        if text.contains(":") {
            guard let bytes = IPAddress.parseIPv6(text) else { return nil }
            self = .v6(bytes)
        } else {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var bytes: [UInt8] = []
            for part in parts {
                // Digits only: Swift's integer parsing would also take a sign ("+1").
                guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt8(part) else { return nil }
                bytes.append(value)
            }
            self = .v4(bytes)
        }
    }

    private static func parseIPv6(_ text: String) -> [UInt8]? {
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains("."), case .v4(let v4)? = IPAddress(String(piece)) {
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard !piece.isEmpty, piece.count <= 4, piece.allSatisfy(\.isHexDigit), let value = UInt16(piece, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    public var description: String {
        switch self {
        case .v4(let b):
            // Digits written straight into the string's storage: an address is formatted for every log line.
            return String(unsafeUninitializedCapacity: 4 * b.count) { text in
                var index = 0
                for (position, octet) in b.enumerated() {
                    if position > 0 {
                        text[index] = UInt8(ascii: ".")
                        index += 1
                    }
                    if octet >= 100 {
                        text[index] = 0x30 + octet / 100
                        index += 1
                    }
                    if octet >= 10 {
                        text[index] = 0x30 + octet / 10 % 10
                        index += 1
                    }
                    text[index] = 0x30 + octet % 10
                    index += 1
                }
                return index
            }
        case .v6(let b):
            let groups = stride(from: 0, to: 16, by: 2).map { UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]) }
            // Compress the longest run of two or more zero groups (RFC 5952).
            var bestStart = -1
            var bestLength = 0
            var index = 0
            while index < 8 {
                if groups[index] == 0 {
                    var end = index
                    while end < 8 && groups[end] == 0 { end += 1 }
                    if end - index > bestLength {
                        bestStart = index
                        bestLength = end - index
                    }
                    index = end
                } else {
                    index += 1
                }
            }
            let hex = groups.map { String($0, radix: 16) }
            if bestLength < 2 { return hex.joined(separator: ":") }
            let head = hex[0..<bestStart].joined(separator: ":")
            let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
            return head + "::" + tail
        }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        if a.bytes.count != b.bytes.count { return a.bytes.count < b.bytes.count }
        return a.bytes.lexicographicallyPrecedes(b.bytes)
    }

    /// The first and last address of `self/prefixLength`.
    public func range(prefixLength: Int) -> (IPAddress, IPAddress) {
        var low = bytes
        var high = bytes
        for bit in prefixLength..<(bytes.count * 8) {
            low[bit / 8] &= ~(0x80 >> UInt8(bit % 8))
            high[bit / 8] |= (0x80 >> UInt8(bit % 8))
        }
        return (IPAddress(bytes: low)!, IPAddress(bytes: high)!)
    }
}
