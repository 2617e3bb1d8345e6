/// KE payload (section 3.4): the sender's Diffie-Hellman public value for a group.
public struct KeyExchangePayload: Equatable, Sendable {
    public var group: UInt16
    public var data: [UInt8]
    public init(group: UInt16, data: [UInt8]) {
        self.group = group
        self.data = data
    }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let group = try reader.readUInt16("ke.group")
        _ = try reader.readUInt16("ke.reserved")
        return Self(group: group, data: reader.readRest())
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(group)
        writer.write(UInt16(0))
        writer.write(bytes: data)
    }
}
