/// Notify payload (section 3.10).
public struct NotifyPayload: Equatable, Sendable {
    public var protocolID: ProtocolID
    public var spi: [UInt8]
    public var type: NotifyType
    public var data: [UInt8]

    public init(protocolID: ProtocolID = .none, spi: [UInt8] = [], type: NotifyType, data: [UInt8] = []) {
        self.protocolID = protocolID
        self.spi = spi
        self.type = type
        self.data = data
    }

    /// INVALID_KE_PAYLOAD naming the group the responder wants (section 3.10.1).
    public static func invalidKEPayload(group: UInt16) -> NotifyPayload {
        NotifyPayload(type: .invalidKEPayload, data: [UInt8(group >> 8), UInt8(group & 0xff)])
    }

    /// The group an INVALID_KE_PAYLOAD asks for, nil for other notifies or a malformed one.
    public var requestedGroup: UInt16? {
        guard type == .invalidKEPayload, data.count == 2 else { return nil }
        return UInt16(data[0]) << 8 | UInt16(data[1])
    }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let protocolID = try reader.readUInt8("notify.protocolID")
        let spiSize = try reader.readUInt8("notify.spiSize")
        let type = try reader.readUInt16("notify.type")
        let spi = try reader.readBytes(Int(spiSize), "notify.spi")
        return Self(protocolID: ProtocolID(rawValue: protocolID), spi: spi, type: NotifyType(type), data: reader.readRest())
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(protocolID.rawValue)
        writer.write(UInt8(spi.count))
        writer.write(type.rawValue)
        writer.write(bytes: spi)
        writer.write(bytes: data)
    }
}
