/// The direction-specific keys that protect one side's messages (SK_ei/SK_ai or SK_er/SK_ar).
public struct MessageProtection: Sendable {
    public var encryption: EncryptionAlgorithm
    public var integrity: IntegrityAlgorithm?
    public var encryptionKey: KeyMaterial
    public var integrityKey: KeyMaterial

    public init(encryption: EncryptionAlgorithm, integrity: IntegrityAlgorithm?, encryptionKey: KeyMaterial, integrityKey: KeyMaterial) {
        self.encryption = encryption; self.integrity = integrity
        self.encryptionKey = encryptionKey; self.integrityKey = integrityKey
    }

    var checksumLength: Int { encryption.isAEAD ? encryption.icvLength : (integrity?.outputLength ?? 0) }
}

/// Building and opening messages whose payloads travel inside SK (RFC 7296 section 3.14, RFC 5282 for AEAD).
public enum ProtectedMessage {
    /// Encodes `header` with `payloads` sealed in an SK payload.
    public static func seal(header: IKEHeader, payloads: [Payload], protection: MessageProtection,
                            random: RandomSource) throws(CipherError) -> [UInt8] {
        var inner = ByteWriter(capacity: 512)
        Payload.encodeChain(payloads, into: &inner)
        let block = protection.encryption.blockSize
        let padLength = (block - (inner.bytes.count + 1) % block) % block
        var plaintext = inner.bytes
        plaintext += [UInt8](repeating: 0, count: padLength)
        plaintext.append(UInt8(padLength))

        let iv = random.bytes(protection.encryption.ivLength)
        let icvLength = protection.checksumLength
        let ciphertextLength = plaintext.count + protection.encryption.icvLength
        let skLength = 4 + iv.count + ciphertextLength + (protection.encryption.isAEAD ? 0 : icvLength)

        var writer = ByteWriter(capacity: IKEHeader.size + skLength)
        var outer = header
        outer.nextPayload = .encrypted
        outer.length = UInt32(IKEHeader.size + skLength)
        outer.encode(into: &writer)
        writer.write(payloads.first?.type.rawValue ?? 0)
        writer.write(UInt8(0))
        writer.write(UInt16(skLength))
        let additionalData = writer.bytes
        writer.write(bytes: iv)
        let sealed = try protection.encryption.seal(plaintext, key: protection.encryptionKey.bytes, iv: iv,
                                                    additionalData: protection.encryption.isAEAD ? additionalData : [])
        writer.write(bytes: sealed)
        if !protection.encryption.isAEAD, let integrity = protection.integrity {
            writer.write(bytes: integrity.checksum(key: protection.integrityKey.bytes, data: writer.bytes))
        }
        return writer.bytes
    }

    /// Verifies and decrypts the SK payload of a decoded `message` whose raw octets are `bytes`.
    public static func open(_ bytes: [UInt8], message: IKEMessage, protection: MessageProtection) throws(IKEDecodingError) -> [Payload] {
        guard let sk = message.payloads.encrypted else { throw .invalidField(field: "sk.missing", value: 0) }
        let encryption = protection.encryption
        let icvLength = protection.checksumLength
        let skDataStart = bytes.count - sk.data.count
        guard sk.data.count >= encryption.ivLength + icvLength + (encryption.isAEAD ? 1 : 16) else {
            throw .lengthTooShort(field: "sk.length", declared: sk.data.count, minimum: encryption.ivLength + icvLength + 1)
        }
        let iv = Array(bytes[skDataStart..<skDataStart + encryption.ivLength])
        let plaintext: [UInt8]
        do {
            if encryption.isAEAD {
                plaintext = try encryption.open(bytes[(skDataStart + encryption.ivLength)...], key: protection.encryptionKey.bytes,
                                                iv: iv, additionalData: Array(bytes[..<skDataStart]))
            } else {
                guard let integrity = protection.integrity else { throw IKEDecodingError.integrityCheckFailed }
                let expected = integrity.checksum(key: protection.integrityKey.bytes, data: bytes[..<(bytes.count - icvLength)])
                guard constantTimeEqual(expected, bytes[(bytes.count - icvLength)...]) else { throw IKEDecodingError.integrityCheckFailed }
                plaintext = try encryption.open(bytes[(skDataStart + encryption.ivLength)..<(bytes.count - icvLength)],
                                                key: protection.encryptionKey.bytes, iv: iv, additionalData: [])
            }
        } catch let error as IKEDecodingError {
            throw error
        } catch {
            throw .integrityCheckFailed
        }
        guard let padLength = plaintext.last, Int(padLength) < plaintext.count else { throw .invalidPadding }
        let payloadBytes = plaintext[..<(plaintext.count - 1 - Int(padLength))]
        return try Payload.decodeChain(payloadBytes, first: sk.firstInnerPayload)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
