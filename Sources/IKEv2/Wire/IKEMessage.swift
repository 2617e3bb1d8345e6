/// A whole IKE message: header and payload chain (RFC 7296 section 3). Encrypted contents stay sealed
/// in `.encrypted` until `ProtectedMessage.open` verifies and decrypts them.
public struct IKEMessage: Equatable, Sendable {
    public var header: IKEHeader
    public var payloads: [Payload]

    public init(header: IKEHeader, payloads: [Payload]) {
        self.header = header
        self.payloads = payloads
    }

    public static func decode(_ bytes: [UInt8]) throws(IKEDecodingError) -> IKEMessage {
        var reader = ByteReader(bytes)
        let header = try IKEHeader.decode(&reader)
        guard Int(header.length) == bytes.count else {
            throw .messageLengthMismatch(declared: Int(header.length), actual: bytes.count)
        }
        let payloads = try Payload.decodeChain(bytes[IKEHeader.size...], first: header.nextPayload)
        return IKEMessage(header: header, payloads: payloads)
    }

    public func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: 512)
        var header = self.header
        header.nextPayload = payloads.first?.type ?? .none
        header.encode(into: &writer)
        Payload.encodeChain(payloads, into: &writer)
        writer.bytes.withUnsafeMutableBytes { raw in
            let length = UInt32(raw.count)
            raw[24] = UInt8(length >> 24)
            raw[25] = UInt8((length >> 16) & 0xff)
            raw[26] = UInt8((length >> 8) & 0xff)
            raw[27] = UInt8(length & 0xff)
        }
        return writer.bytes
    }
}

extension Array where Element == Payload {
    public var notifies: [NotifyPayload] { compactMap { if case .notify(let n) = $0 { return n } else { return nil } } }
    public func notify(_ type: NotifyType) -> NotifyPayload? { notifies.first { $0.type == type } }
    public var securityAssociation: SecurityAssociationPayload? {
        for case .securityAssociation(let p) in self { return p }
        return nil
    }
    public var keyExchange: KeyExchangePayload? {
        for case .keyExchange(let p) in self { return p }
        return nil
    }
    public var nonce: NoncePayload? {
        for case .nonce(let p) in self { return p }
        return nil
    }
    public var identificationInitiator: IdentificationPayload? {
        for case .identificationInitiator(let p) in self { return p }
        return nil
    }
    public var identificationResponder: IdentificationPayload? {
        for case .identificationResponder(let p) in self { return p }
        return nil
    }
    public var authentication: AuthenticationPayload? {
        for case .authentication(let p) in self { return p }
        return nil
    }
    public var trafficSelectorInitiator: TrafficSelectorPayload? {
        for case .trafficSelectorInitiator(let p) in self { return p }
        return nil
    }
    public var trafficSelectorResponder: TrafficSelectorPayload? {
        for case .trafficSelectorResponder(let p) in self { return p }
        return nil
    }
    public var deletes: [DeletePayload] { compactMap { if case .delete(let d) = $0 { return d } else { return nil } } }
    public var encrypted: EncryptedPayload? {
        for case .encrypted(let p) in self { return p }
        return nil
    }
}
