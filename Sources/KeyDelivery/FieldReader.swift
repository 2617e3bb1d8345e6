/// Why a key-delivery message body could not be read.
public enum KeyDeliveryDecodingError: Error, Equatable, Sendable {
    case truncated(field: String)
    case invalid(field: String)
}

/// Reads big-endian fields from a message body, every read bounds-checked.
struct FieldReader {
    private let bytes: [UInt8]
    private(set) var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var isAtEnd: Bool { offset == bytes.count }

    mutating func bytes(_ count: Int, _ field: String) throws(KeyDeliveryDecodingError) -> [UInt8] {
        guard count >= 0, offset + count <= bytes.count else { throw .truncated(field: field) }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }
    mutating func uint8(_ field: String) throws(KeyDeliveryDecodingError) -> UInt8 { try bytes(1, field)[0] }
    mutating func uint16(_ field: String) throws(KeyDeliveryDecodingError) -> UInt16 {
        try bytes(2, field).reduce(0) { $0 << 8 | UInt16($1) }
    }
    mutating func uint32(_ field: String) throws(KeyDeliveryDecodingError) -> UInt32 {
        try bytes(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }
    mutating func uint64(_ field: String) throws(KeyDeliveryDecodingError) -> UInt64 {
        try bytes(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }
    /// A one-octet length followed by that many octets.
    mutating func shortBytes(_ field: String) throws(KeyDeliveryDecodingError) -> [UInt8] {
        try bytes(Int(try uint8(field)), field)
    }
}
