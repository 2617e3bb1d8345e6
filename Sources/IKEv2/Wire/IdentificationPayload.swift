/// Identification type, section 3.5.
public struct IdentificationType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let ipv4Address = IdentificationType(rawValue: 1)
    public static let fqdn = IdentificationType(rawValue: 2)
    public static let rfc822Address = IdentificationType(rawValue: 3)
    public static let ipv6Address = IdentificationType(rawValue: 5)
    public static let derASN1DN = IdentificationType(rawValue: 9)
    public static let derASN1GN = IdentificationType(rawValue: 10)
    public static let keyID = IdentificationType(rawValue: 11)
}

/// IDi / IDr payload (section 3.5). The body after the generic header is what AUTH signs.
public struct IdentificationPayload: Equatable, Hashable, Sendable {
    public var type: IdentificationType
    public var data: [UInt8]
    public init(type: IdentificationType, data: [UInt8]) {
        self.type = type
        self.data = data
    }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let type = try reader.readUInt8("id.type")
        _ = try reader.readBytes(3, "id.reserved")
        let data = reader.readRest()
        switch type {
        case 1 where data.count != 4: throw .invalidField(field: "id.ipv4.length", value: data.count)
        case 5 where data.count != 16: throw .invalidField(field: "id.ipv6.length", value: data.count)
        default: break
        }
        return Self(type: IdentificationType(rawValue: type), data: data)
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(type.rawValue)
        writer.write(bytes: [0, 0, 0])
        writer.write(bytes: data)
    }

    /// The octets "RestOfInitIDPayload"/"RestOfRespIDPayload" of section 2.15.
    public var authenticatedBody: [UInt8] {
        var writer = ByteWriter()
        encode(into: &writer)
        return writer.bytes
    }
}
