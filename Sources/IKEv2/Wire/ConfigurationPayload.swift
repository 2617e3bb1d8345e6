/// CP payload (section 3.15): a configuration type and attributes carried as type/value pairs.
public struct ConfigurationPayload: Equatable, Sendable {
    public struct Attribute: Equatable, Sendable {
        public var type: UInt16
        public var value: [UInt8]
        public init(type: UInt16, value: [UInt8]) {
            self.type = type
            self.value = value
        }
    }
    public var type: UInt8
    public var attributes: [Attribute]
    public init(type: UInt8, attributes: [Attribute]) {
        self.type = type
        self.attributes = attributes
    }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let type = try reader.readUInt8("cp.type")
        _ = try reader.readBytes(3, "cp.reserved")
        var attributes: [Attribute] = []
        while !reader.isAtEnd {
            let attributeType = try reader.readUInt16("cp.attribute.type") & 0x7fff
            let length = try reader.readUInt16("cp.attribute.length")
            attributes.append(Attribute(type: attributeType, value: try reader.readBytes(Int(length), "cp.attribute.value")))
        }
        return Self(type: type, attributes: attributes)
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(type)
        writer.write(bytes: [0, 0, 0])
        for attribute in attributes {
            writer.write(attribute.type)
            writer.write(UInt16(attribute.value.count))
            writer.write(bytes: attribute.value)
        }
    }
}
