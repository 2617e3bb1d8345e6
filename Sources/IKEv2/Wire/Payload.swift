/// The SK payload as carried on the wire (section 3.14): IV, ciphertext with padding, and ICV.
/// Its contents are decoded only after `ProtectedMessage` has verified and decrypted it.
public struct EncryptedPayload: Equatable, Sendable {
    public var firstInnerPayload: PayloadType
    public var data: [UInt8]
    public init(firstInnerPayload: PayloadType, data: [UInt8]) {
        self.firstInnerPayload = firstInnerPayload
        self.data = data
    }
}

/// SKF (RFC 7383 section 2.5): one fragment of a message's protected payloads, protected on its own.
/// `data` is what follows Total Fragments: IV, ciphertext, ICV.
public struct EncryptedFragmentPayload: Equatable, Sendable {
    public var firstInnerPayload: PayloadType
    public var number: UInt16
    public var total: UInt16
    public var data: [UInt8]
    public init(firstInnerPayload: PayloadType, number: UInt16, total: UInt16, data: [UInt8]) {
        self.firstInnerPayload = firstInnerPayload
        self.number = number
        self.total = total
        self.data = data
    }
}

/// A payload the codec does not know; kept so that re-encoding is exact.
public struct UnknownPayload: Equatable, Sendable {
    public var type: PayloadType
    public var critical: Bool
    public var body: [UInt8]
}

/// Every payload of RFC 7296 section 3, as a typed value.
public enum Payload: Equatable, Sendable {
    case securityAssociation(SecurityAssociationPayload)
    case keyExchange(KeyExchangePayload)
    case identificationInitiator(IdentificationPayload)
    case identificationResponder(IdentificationPayload)
    case certificate(CertificatePayload)
    case certificateRequest(CertificatePayload)
    case authentication(AuthenticationPayload)
    case nonce(NoncePayload)
    case notify(NotifyPayload)
    case delete(DeletePayload)
    case vendorID([UInt8])
    case trafficSelectorInitiator(TrafficSelectorPayload)
    case trafficSelectorResponder(TrafficSelectorPayload)
    case encrypted(EncryptedPayload)
    case encryptedFragment(EncryptedFragmentPayload)
    case configuration(ConfigurationPayload)
    /// EAP messages are carried opaque (section 3.16).
    case extensibleAuthentication([UInt8])
    case unknown(UnknownPayload)

    public var type: PayloadType {
        switch self {
        case .securityAssociation: return .securityAssociation
        case .keyExchange: return .keyExchange
        case .identificationInitiator: return .identificationInitiator
        case .identificationResponder: return .identificationResponder
        case .certificate: return .certificate
        case .certificateRequest: return .certificateRequest
        case .authentication: return .authentication
        case .nonce: return .nonce
        case .notify: return .notify
        case .delete: return .delete
        case .vendorID: return .vendorID
        case .trafficSelectorInitiator: return .trafficSelectorInitiator
        case .trafficSelectorResponder: return .trafficSelectorResponder
        case .encrypted: return .encrypted
        case .encryptedFragment: return .encryptedFragment
        case .configuration: return .configuration
        case .extensibleAuthentication: return .extensibleAuthentication
        case .unknown(let unknown): return unknown.type
        }
    }

    /// Decodes a chain of payloads starting with `first`, as found in a message or inside SK.
    public static func decodeChain(_ bytes: ArraySlice<UInt8>, first: PayloadType) throws(IKEDecodingError) -> [Payload] {
        var reader = ByteReader(bytes)
        var payloads: [Payload] = []
        var type = first
        while type != .none {
            let next = PayloadType(rawValue: try reader.readUInt8("payload.nextPayload"))
            let critical = try reader.readUInt8("payload.critical") & 0x80 != 0
            let length = Int(try reader.readUInt16("payload.length"))
            guard length >= 4 else { throw .lengthTooShort(field: "payload(\(type)).length", declared: length, minimum: 4) }
            let body = try reader.subReader(length - 4, "payload(\(type)).length")
            if type == .encrypted {
                guard reader.isAtEnd else { throw .encryptedPayloadNotLast }
                var copy = body
                payloads.append(.encrypted(EncryptedPayload(firstInnerPayload: next, data: copy.readRest())))
                return payloads
            }
            if type == .encryptedFragment {
                guard reader.isAtEnd else { throw .encryptedPayloadNotLast }
                var copy = body
                let number = try copy.readUInt16("skf.fragmentNumber")
                let total = try copy.readUInt16("skf.totalFragments")
                guard number >= 1, number <= total else { throw .invalidField(field: "skf.fragmentNumber", value: Int(number)) }
                payloads.append(
                    .encryptedFragment(EncryptedFragmentPayload(firstInnerPayload: next, number: number, total: total, data: copy.readRest())))
                return payloads
            }
            payloads.append(try decodeBody(type: type, critical: critical, body: body))
            type = next
        }
        guard reader.isAtEnd else { throw .trailingBytes(field: "payload chain", count: reader.remaining) }
        return payloads
    }

    private static func decodeBody(type: PayloadType, critical: Bool, body: ByteReader) throws(IKEDecodingError) -> Payload {
        var rest = body
        switch type {
        case .securityAssociation: return .securityAssociation(try .decode(body))
        case .keyExchange: return .keyExchange(try .decode(body))
        case .identificationInitiator: return .identificationInitiator(try .decode(body))
        case .identificationResponder: return .identificationResponder(try .decode(body))
        case .certificate: return .certificate(try .decode(body))
        case .certificateRequest: return .certificateRequest(try .decode(body))
        case .authentication: return .authentication(try .decode(body))
        case .nonce: return .nonce(try .decode(body))
        case .notify: return .notify(try .decode(body))
        case .delete: return .delete(try .decode(body))
        case .vendorID: return .vendorID(rest.readRest())
        case .trafficSelectorInitiator: return .trafficSelectorInitiator(try .decode(body))
        case .trafficSelectorResponder: return .trafficSelectorResponder(try .decode(body))
        case .configuration: return .configuration(try .decode(body))
        case .extensibleAuthentication: return .extensibleAuthentication(rest.readRest())
        default:
            if critical { throw .unsupportedCriticalPayload(type) }
            return .unknown(UnknownPayload(type: type, critical: false, body: rest.readRest()))
        }
    }

    /// The octets of a chain, as carried inside SK.
    public static func encodeChain(_ payloads: [Payload]) -> [UInt8] {
        var writer = ByteWriter(capacity: 512)
        encodeChain(payloads, into: &writer)
        return writer.bytes
    }

    /// Encodes a chain; the SK payload, if present, must be last and names its first inner payload.
    static func encodeChain(_ payloads: [Payload], into writer: inout ByteWriter) {
        for (index, payload) in payloads.enumerated() {
            let next: PayloadType
            if case .encrypted(let sk) = payload {
                next = sk.firstInnerPayload
            } else if case .encryptedFragment(let skf) = payload {
                next = skf.firstInnerPayload
            } else {
                next = index + 1 < payloads.count ? payloads[index + 1].type : .none
            }
            writer.write(next.rawValue)
            if case .unknown(let unknown) = payload, unknown.critical { writer.write(UInt8(0x80)) } else { writer.write(UInt8(0)) }
            let lengthOffset = writer.bytes.count
            writer.write(UInt16(0))
            payload.encodeBody(into: &writer)
            writer.patchUInt16(at: lengthOffset, UInt16(writer.bytes.count - lengthOffset + 2))
        }
    }

    func encodeBody(into writer: inout ByteWriter) {
        switch self {
        case .securityAssociation(let p): p.encode(into: &writer)
        case .keyExchange(let p): p.encode(into: &writer)
        case .identificationInitiator(let p), .identificationResponder(let p): p.encode(into: &writer)
        case .certificate(let p), .certificateRequest(let p): p.encode(into: &writer)
        case .authentication(let p): p.encode(into: &writer)
        case .nonce(let p): p.encode(into: &writer)
        case .notify(let p): p.encode(into: &writer)
        case .delete(let p): p.encode(into: &writer)
        case .vendorID(let bytes), .extensibleAuthentication(let bytes): writer.write(bytes: bytes)
        case .trafficSelectorInitiator(let p), .trafficSelectorResponder(let p): p.encode(into: &writer)
        case .encrypted(let p): writer.write(bytes: p.data)
        case .encryptedFragment(let p):
            writer.write(p.number)
            writer.write(p.total)
            writer.write(bytes: p.data)
        case .configuration(let p): p.encode(into: &writer)
        case .unknown(let p): writer.write(bytes: p.body)
        }
    }
}
