/// Delete payload (section 3.11): the IKE SA itself (no SPIs) or a list of CHILD SA SPIs.
public struct DeletePayload: Equatable, Sendable {
    public var protocolID: ProtocolID
    public var spiSize: UInt8
    public var spis: [[UInt8]]

    public init(protocolID: ProtocolID, spiSize: UInt8, spis: [[UInt8]]) {
        self.protocolID = protocolID
        self.spiSize = spiSize
        self.spis = spis
    }
    public static let ikeSA = DeletePayload(protocolID: .ike, spiSize: 0, spis: [])
    public static func child(_ spis: [ChildSPI]) -> DeletePayload {
        DeletePayload(protocolID: .esp, spiSize: 4, spis: spis.map(\.bytes))
    }
    public var childSPIs: [ChildSPI] {
        guard spiSize == 4 else { return [] }
        return spis.map(ChildSPI.init(bytes:))
    }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let protocolID = try reader.readUInt8("delete.protocolID")
        let spiSize = try reader.readUInt8("delete.spiSize")
        let count = try reader.readUInt16("delete.spiCount")
        if protocolID == ProtocolID.ike.rawValue, spiSize != 0 {
            throw .invalidField(field: "delete.spiSize", value: Int(spiSize))
        }
        if protocolID != ProtocolID.ike.rawValue, spiSize != 4 {
            throw .invalidField(field: "delete.spiSize", value: Int(spiSize))
        }
        var spis: [[UInt8]] = []
        for _ in 0..<count { spis.append(try reader.readBytes(Int(spiSize), "delete.spi")) }
        guard reader.isAtEnd else { throw .trailingBytes(field: "delete", count: reader.remaining) }
        return Self(protocolID: ProtocolID(rawValue: protocolID), spiSize: spiSize, spis: spis)
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(protocolID.rawValue)
        writer.write(spiSize)
        writer.write(UInt16(spis.count))
        for spi in spis { writer.write(bytes: spi) }
    }
}
