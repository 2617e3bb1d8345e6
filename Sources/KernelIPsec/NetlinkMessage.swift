/// One netlink message (RFC 3549; the header of <linux/netlink.h>): a 16-octet header, then a fixed
/// structure of the message type, then attributes, each 4-octet aligned. Integers in the header and the
/// attribute headers are in host order (little-endian on every machine IKEProxy runs on).
public struct NetlinkMessage: Equatable, Sendable {
    public var type: UInt16
    public var flags: UInt16
    public var sequence: UInt32
    public var port: UInt32
    /// What follows the header: the fixed structure and the attributes.
    public var payload: [UInt8]

    public static let headerLength = 16
    public static let flagRequest: UInt16 = 0x1
    public static let flagMulti: UInt16 = 0x2
    public static let flagAcknowledge: UInt16 = 0x4
    /// For a new entry: fail if it exists (NLM_F_EXCL) or create it (NLM_F_CREATE).
    public static let flagExclusive: UInt16 = 0x200
    public static let flagCreate: UInt16 = 0x400
    public static let typeError: UInt16 = 2
    public static let typeDone: UInt16 = 3

    public init(type: UInt16, flags: UInt16, sequence: UInt32 = 0, port: UInt32 = 0, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.port = port
        self.payload = payload
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerLength + payload.count)
        out.appendHost(UInt32(Self.headerLength + payload.count))
        out.appendHost(type)
        out.appendHost(flags)
        out.appendHost(sequence)
        out.appendHost(port)
        out += payload
        return out
    }

    /// Splits a datagram read from a netlink socket into its messages; a message whose length runs past
    /// the datagram ends the list (the kernel never sends one, so it is a caller's bug, not a peer's).
    public static func split(_ datagram: [UInt8]) -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        var offset = 0
        while offset + headerLength <= datagram.count {
            let length = Int(datagram.readHostUInt32(at: offset))
            guard length >= headerLength, offset + length <= datagram.count else { break }
            messages.append(
                NetlinkMessage(
                    type: datagram.readHostUInt16(at: offset + 4), flags: datagram.readHostUInt16(at: offset + 6),
                    sequence: datagram.readHostUInt32(at: offset + 8), port: datagram.readHostUInt32(at: offset + 12),
                    payload: Array(datagram[(offset + headerLength)..<(offset + length)])))
            offset += aligned(length)
        }
        return messages
    }

    /// For an NLMSG_ERROR message: the errno it carries (0 is the acknowledgement of a request).
    public var errorCode: Int32? {
        guard type == Self.typeError, payload.count >= 4 else { return nil }
        return -Int32(bitPattern: payload.readHostUInt32(at: 0))
    }

    static func aligned(_ length: Int) -> Int { (length + 3) & ~3 }
}

/// A netlink attribute: type and value (struct nlattr and what follows it).
public struct NetlinkAttribute: Equatable, Sendable {
    public var type: UInt16
    public var value: [UInt8]

    public init(type: UInt16, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    /// Appends the attribute, padded to 4 octets.
    public func append(to out: inout [UInt8]) {
        out.appendHost(UInt16(4 + value.count))
        out.appendHost(type)
        out += value
        out += [UInt8](repeating: 0, count: NetlinkMessage.aligned(value.count) - value.count)
    }

    /// The attributes in `bytes` from `offset` on; a truncated one ends the list.
    public static func parse(_ bytes: [UInt8], from offset: Int) -> [NetlinkAttribute] {
        var attributes: [NetlinkAttribute] = []
        var position = offset
        while position + 4 <= bytes.count {
            let length = Int(bytes.readHostUInt16(at: position))
            guard length >= 4, position + length <= bytes.count else { break }
            // The top two bits of the type are flags (nested, network order); the type is the rest.
            attributes.append(
                NetlinkAttribute(type: bytes.readHostUInt16(at: position + 2) & 0x3fff, value: Array(bytes[(position + 4)..<(position + length)])))
            position += NetlinkMessage.aligned(length)
        }
        return attributes
    }
}

extension [UInt8] {
    mutating func appendHost(_ value: UInt16) { Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) } }
    mutating func appendHost(_ value: UInt32) { Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) } }
    func readHostUInt16(at offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func readHostUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3]) << 24
    }
}

/// The bytes of a C structure as the kernel reads them, and a structure back from bytes it wrote.
enum KernelStructure {
    static func bytes<T>(of value: T) -> [UInt8] {
        var copy = value
        return Swift.withUnsafeBytes(of: &copy) { Array($0) }
    }

    /// Nil when `bytes` from `offset` on are too short for a `T`.
    static func read<T>(_: T.Type, from bytes: [UInt8], at offset: Int = 0, zero: T) -> T? {
        guard offset >= 0, bytes.count - offset >= MemoryLayout<T>.size else { return nil }
        var value = zero
        Swift.withUnsafeMutableBytes(of: &value) { raw in
            bytes.withUnsafeBytes { source in raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + MemoryLayout<T>.size)]))
            }
        }
        return value
    }
}
