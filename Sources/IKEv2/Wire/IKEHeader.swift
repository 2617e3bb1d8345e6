/// The fixed 28-octet IKE header, RFC 7296 section 3.1.
public struct IKEHeader: Equatable, Sendable {
    public static let size = 28

    public struct Flags: OptionSet, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let initiator = Flags(rawValue: 0x08)
        public static let version = Flags(rawValue: 0x10)
        public static let response = Flags(rawValue: 0x20)
    }

    public var spiInitiator: IKESPI
    public var spiResponder: IKESPI
    public var nextPayload: PayloadType
    public var majorVersion: UInt8 = 2
    public var minorVersion: UInt8 = 0
    public var exchangeType: ExchangeType
    public var flags: Flags
    public var messageID: UInt32
    public var length: UInt32

    public init(
        spiInitiator: IKESPI, spiResponder: IKESPI, nextPayload: PayloadType, exchangeType: ExchangeType,
        flags: Flags, messageID: UInt32, length: UInt32 = 0
    ) {
        self.spiInitiator = spiInitiator
        self.spiResponder = spiResponder
        self.nextPayload = nextPayload
        self.exchangeType = exchangeType
        self.flags = flags
        self.messageID = messageID
        self.length = length
    }

    public var isResponse: Bool { flags.contains(.response) }
    public var isFromOriginalInitiator: Bool { flags.contains(.initiator) }

    static func decode(_ reader: inout ByteReader) throws(IKEDecodingError) -> IKEHeader {
        let spiI = try reader.readUInt64("header.spiInitiator")
        let spiR = try reader.readUInt64("header.spiResponder")
        let next = try reader.readUInt8("header.nextPayload")
        let version = try reader.readUInt8("header.version")
        let exchange = try reader.readUInt8("header.exchangeType")
        let flags = try reader.readUInt8("header.flags")
        let messageID = try reader.readUInt32("header.messageID")
        let length = try reader.readUInt32("header.length")
        guard version >> 4 == 2 else { throw .invalidMajorVersion(version >> 4) }
        var header = IKEHeader(
            spiInitiator: IKESPI(spiI), spiResponder: IKESPI(spiR), nextPayload: PayloadType(rawValue: next),
            exchangeType: ExchangeType(rawValue: exchange), flags: Flags(rawValue: flags),
            messageID: messageID, length: length)
        header.minorVersion = version & 0x0f
        return header
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(spiInitiator.rawValue)
        writer.write(spiResponder.rawValue)
        writer.write(nextPayload.rawValue)
        writer.write(majorVersion << 4 | minorVersion)
        writer.write(exchangeType.rawValue)
        writer.write(flags.rawValue)
        writer.write(messageID)
        writer.write(length)
    }
}
