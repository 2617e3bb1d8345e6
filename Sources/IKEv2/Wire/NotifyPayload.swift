/// Notify payload (section 3.10).
public struct NotifyPayload: Equatable, Sendable {
    public var protocolID: ProtocolID
    public var spi: [UInt8]
    public var type: NotifyType
    public var data: [UInt8]

    public init(protocolID: ProtocolID = .none, spi: [UInt8] = [], type: NotifyType, data: [UInt8] = []) {
        self.protocolID = protocolID; self.spi = spi; self.type = type; self.data = data
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
        writer.write(protocolID.rawValue); writer.write(UInt8(spi.count)); writer.write(type.rawValue)
        writer.write(bytes: spi); writer.write(bytes: data)
    }
}
