/// Nonce payload (section 3.9): 16 to 256 octets of randomness.
public struct NoncePayload: Equatable, Sendable {
    public var data: [UInt8]
    public init(data: [UInt8]) { self.data = data }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let data = reader.readRest()
        guard (16...256).contains(data.count) else { throw .invalidField(field: "nonce.length", value: data.count) }
        return Self(data: data)
    }

    func encode(into writer: inout ByteWriter) { writer.write(bytes: data) }
}
