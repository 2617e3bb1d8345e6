/// CERT and CERTREQ payloads (sections 3.6, 3.7): an encoding type and opaque data.
public struct CertificatePayload: Equatable, Sendable {
    public var encoding: UInt8
    public var data: [UInt8]
    public init(encoding: UInt8, data: [UInt8]) {
        self.encoding = encoding
        self.data = data
    }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let encoding = try reader.readUInt8("cert.encoding")
        return Self(encoding: encoding, data: reader.readRest())
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(encoding)
        writer.write(bytes: data)
    }
}
