/// Authentication methods, section 3.8.
public struct AuthenticationMethod: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let rsaDigitalSignature = AuthenticationMethod(rawValue: 1)
    public static let sharedKeyMessageIntegrityCode = AuthenticationMethod(rawValue: 2)
    public static let dssDigitalSignature = AuthenticationMethod(rawValue: 3)
    /// ECDSA with SHA-256 on P-256, SHA-384 on P-384, SHA-512 on P-521 (RFC 4754): the signature is r | s.
    public static let ecdsaSHA256P256 = AuthenticationMethod(rawValue: 9)
    public static let ecdsaSHA384P384 = AuthenticationMethod(rawValue: 10)
    public static let ecdsaSHA512P521 = AuthenticationMethod(rawValue: 11)
    public static let digitalSignature = AuthenticationMethod(rawValue: 14)

    /// How logs name it.
    public var name: String {
        switch rawValue {
        case 1: return "RSA signature with SHA-1"
        case 2: return "shared key"
        case 9: return "ECDSA P-256 with SHA-256"
        case 10: return "ECDSA P-384 with SHA-384"
        case 11: return "ECDSA P-521 with SHA-512"
        case 14: return "RFC 7427 digital signature"
        default: return "method \(rawValue)"
        }
    }
}

/// AUTH payload (section 3.8).
public struct AuthenticationPayload: Equatable, Sendable {
    public var method: AuthenticationMethod
    public var data: [UInt8]
    public init(method: AuthenticationMethod, data: [UInt8]) {
        self.method = method
        self.data = data
    }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let method = try reader.readUInt8("auth.method")
        _ = try reader.readBytes(3, "auth.reserved")
        return Self(method: AuthenticationMethod(rawValue: method), data: reader.readRest())
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(method.rawValue)
        writer.write(bytes: [0, 0, 0])
        writer.write(bytes: data)
    }
}
