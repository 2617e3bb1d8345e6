/// Bounds-checked cursor over received bytes. Every read that would run past the end throws,
/// so a malformed datagram can never trap the process.
struct ByteReader {
    let bytes: ArraySlice<UInt8>
    private(set) var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    var remaining: Int { bytes.endIndex - index }
    var isAtEnd: Bool { index >= bytes.endIndex }

    mutating func readUInt8(_ field: String) throws(IKEDecodingError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(field: field, needed: 1, available: remaining) }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func readUInt16(_ field: String) throws(IKEDecodingError) -> UInt16 {
        guard remaining >= 2 else { throw .truncated(field: field, needed: 2, available: remaining) }
        defer { index += 2 }
        return UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
    }

    mutating func readUInt32(_ field: String) throws(IKEDecodingError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated(field: field, needed: 4, available: remaining) }
        var value: UInt32 = 0
        for offset in 0..<4 { value = value << 8 | UInt32(bytes[index + offset]) }
        index += 4
        return value
    }

    mutating func readUInt64(_ field: String) throws(IKEDecodingError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated(field: field, needed: 8, available: remaining) }
        var value: UInt64 = 0
        for offset in 0..<8 { value = value << 8 | UInt64(bytes[index + offset]) }
        index += 8
        return value
    }

    mutating func readBytes(_ count: Int, _ field: String) throws(IKEDecodingError) -> [UInt8] {
        guard count >= 0, remaining >= count else {
            throw .truncated(field: field, needed: count, available: remaining)
        }
        defer { index += count }
        return Array(bytes[index..<index + count])
    }

    mutating func readRest() -> [UInt8] {
        defer { index = bytes.endIndex }
        return Array(bytes[index...])
    }

    /// Splits off a sub-reader of exactly `count` bytes, used for length-prefixed containers. The field's
    /// name is made only for an error: a payload's names it with its type, once per payload of every message.
    mutating func subReader(_ count: Int, _ field: @autoclosure () -> String) throws(IKEDecodingError) -> ByteReader {
        guard count >= 0, remaining >= count else {
            throw .lengthExceedsContainer(field: field(), declared: count, available: remaining)
        }
        defer { index += count }
        return ByteReader(bytes[index..<index + count])
    }
}

/// Append-only encoder for big-endian wire fields.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func write(_ value: UInt8) { bytes.append(value) }
    mutating func write(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xff))
    }
    mutating func write(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((value >> UInt32(shift)) & 0xff)) }
    }
    mutating func write(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((value >> UInt64(shift)) & 0xff)) }
    }
    mutating func write<C: Collection>(bytes other: C) where C.Element == UInt8 { bytes.append(contentsOf: other) }

    /// Overwrites a 16-bit length placeholder once the container size is known.
    mutating func patchUInt16(at offset: Int, _ value: UInt16) {
        bytes[offset] = UInt8(value >> 8)
        bytes[offset + 1] = UInt8(value & 0xff)
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hex, used in logs and JSON output.
    /// Written as ASCII octets into the string's own storage: SPIs are formatted for every log line and event.
    public var hexString: String {
        String(unsafeUninitializedCapacity: count * 2) { text in
            func digit(_ value: UInt8) -> UInt8 { value < 10 ? 0x30 + value : 0x57 + value }
            var index = 0
            for byte in self {
                text[index] = digit(byte >> 4)
                text[index + 1] = digit(byte & 0x0f)
                index += 2
            }
            return index
        }
    }

    /// Parses hex (whitespace and colons ignored); nil on any other character or odd length.
    public init?(hexString: String) {
        let cleaned = hexString.filter { !$0.isWhitespace && $0 != ":" }
        let hex = cleaned.hasPrefix("0x") ? String(cleaned.dropFirst(2)) : cleaned
        guard hex.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(hex.count / 2)
        var iterator = hex.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let h = high.hexDigitValue, let l = low.hexDigitValue else { return nil }
            out.append(UInt8(h << 4 | l))
        }
        self = out
    }
}
