/// The direction-specific keys that protect one side's messages (SK_ei/SK_ai or SK_er/SK_ar).
public struct MessageProtection: Sendable {
    public var encryption: EncryptionAlgorithm
    public var integrity: IntegrityAlgorithm?
    public var encryptionKey: KeyMaterial
    public var integrityKey: KeyMaterial

    public init(encryption: EncryptionAlgorithm, integrity: IntegrityAlgorithm?, encryptionKey: KeyMaterial, integrityKey: KeyMaterial) {
        self.encryption = encryption
        self.integrity = integrity
        self.encryptionKey = encryptionKey
        self.integrityKey = integrityKey
    }

    var checksumLength: Int { encryption.isAEAD ? encryption.icvLength : (integrity?.outputLength ?? 0) }
}

/// Building and opening messages whose payloads travel inside SK (RFC 7296 section 3.14, RFC 5282 for AEAD).
public enum ProtectedMessage {
    /// Encodes `header` with `payloads` sealed in an SK payload.
    public static func seal(
        header: IKEHeader, payloads: [Payload], protection: MessageProtection,
        random: RandomSource
    ) throws(CipherError) -> [UInt8] {
        var inner = ByteWriter(capacity: 512)
        Payload.encodeChain(payloads, into: &inner)
        return try sealPart(
            header: header, payloadType: .encrypted, next: payloads.first?.type ?? .none, fragment: nil,
            inner: inner.bytes, protection: protection, random: random)
    }

    /// Seals `innerOctets` as they are, first inner payload named by `firstInnerPayload`: for tests and
    /// fuzzing that must hand an engine authentic but malformed protected contents.
    public static func seal(
        header: IKEHeader, firstInnerPayload: PayloadType, innerOctets: [UInt8], protection: MessageProtection,
        random: RandomSource
    ) throws(CipherError) -> [UInt8] {
        try sealPart(
            header: header, payloadType: .encrypted, next: firstInnerPayload, fragment: nil,
            inner: innerOctets, protection: protection, random: random)
    }

    /// The same message as SKF fragments (RFC 7383 section 2.5), none longer than `maximumMessageSize`
    /// octets, each protected on its own; one fragment if the message fits.
    public static func sealFragments(
        header: IKEHeader, payloads: [Payload], protection: MessageProtection, random: RandomSource,
        maximumMessageSize: Int
    ) throws(CipherError) -> [[UInt8]] {
        var inner = ByteWriter(capacity: 2048)
        Payload.encodeChain(payloads, into: &inner)
        let encryption = protection.encryption
        // Header, SKF header with fragment numbers, IV, ICV, and the worst padding plus its length octet.
        let overhead = IKEHeader.size + 8 + encryption.ivLength + protection.checksumLength + encryption.blockSize
        let chunk = max(64, maximumMessageSize - overhead)
        let pieces = stride(from: 0, to: max(inner.bytes.count, 1), by: chunk).map { Array(inner.bytes[$0..<min($0 + chunk, inner.bytes.count)]) }
        var out: [[UInt8]] = []
        for (index, piece) in pieces.enumerated() {
            out.append(
                try sealPart(
                    header: header, payloadType: .encryptedFragment, next: index == 0 ? (payloads.first?.type ?? .none) : .none,
                    fragment: (UInt16(index + 1), UInt16(pieces.count)), inner: piece, protection: protection, random: random))
        }
        return out
    }

    /// One protected message: the IKE header, an SK or SKF payload header (with fragment numbers for SKF)
    /// and the padded, encrypted and authenticated `inner` octets. Internal so that tests can protect
    /// fragments numbered as a broken or hostile peer would.
    static func sealPart(
        header: IKEHeader, payloadType: PayloadType, next: PayloadType, fragment: (number: UInt16, total: UInt16)?,
        inner: [UInt8], protection: MessageProtection, random: RandomSource
    ) throws(CipherError) -> [UInt8] {
        let block = protection.encryption.blockSize
        let padLength = (block - (inner.count + 1) % block) % block
        var plaintext = inner
        plaintext += [UInt8](repeating: 0, count: padLength)
        plaintext.append(UInt8(padLength))

        let iv = random.bytes(protection.encryption.ivLength)
        let icvLength = protection.checksumLength
        let ciphertextLength = plaintext.count + protection.encryption.icvLength
        let payloadLength = 4 + (fragment == nil ? 0 : 4) + iv.count + ciphertextLength + (protection.encryption.isAEAD ? 0 : icvLength)

        var writer = ByteWriter(capacity: IKEHeader.size + payloadLength)
        var outer = header
        outer.nextPayload = payloadType
        outer.length = UInt32(IKEHeader.size + payloadLength)
        outer.encode(into: &writer)
        writer.write(next.rawValue)
        writer.write(UInt8(0))
        writer.write(UInt16(payloadLength))
        if let fragment {
            writer.write(fragment.number)
            writer.write(fragment.total)
        }
        let additionalData = writer.bytes
        writer.write(bytes: iv)
        let sealed = try protection.encryption.seal(
            plaintext, key: protection.encryptionKey.bytes, iv: iv,
            additionalData: protection.encryption.isAEAD ? additionalData : [])
        writer.write(bytes: sealed)
        if !protection.encryption.isAEAD, let integrity = protection.integrity {
            writer.write(bytes: integrity.checksum(key: protection.integrityKey.bytes, data: writer.bytes))
        }
        return writer.bytes
    }

    /// Verifies and decrypts one SKF fragment of a decoded `message`; returns the fragment and its share of
    /// the inner payload octets (to be joined in fragment order).
    public static func openFragment(
        _ bytes: [UInt8], message: IKEMessage,
        protection: MessageProtection
    ) throws(IKEDecodingError) -> (EncryptedFragmentPayload, [UInt8]) {
        guard case .encryptedFragment(let fragment)? = message.payloads.last else { throw .invalidField(field: "skf.missing", value: 0) }
        return (fragment, Array(try openProtected(bytes, dataCount: fragment.data.count, protection: protection)))
    }

    /// Verifies and decrypts the SK payload of a decoded `message` whose raw octets are `bytes`.
    public static func open(_ bytes: [UInt8], message: IKEMessage, protection: MessageProtection) throws(IKEDecodingError) -> [Payload] {
        let (first, plaintext) = try openPlaintext(bytes, message: message, protection: protection)
        return try Payload.decodeChain(plaintext, first: first)
    }

    /// As `open`, the inner payloads' octets as they came and the type of the first (what IKE_INTERMEDIATE's
    /// IntAuth is computed over, RFC 9242 section 3.3.2).
    public static func openPlaintext(
        _ bytes: [UInt8], message: IKEMessage, protection: MessageProtection
    ) throws(IKEDecodingError) -> (first: PayloadType, plaintext: ArraySlice<UInt8>) {
        guard let sk = message.payloads.encrypted else { throw .invalidField(field: "sk.missing", value: 0) }
        return (sk.firstInnerPayload, try openProtected(bytes, dataCount: sk.data.count, protection: protection))
    }

    /// The inner octets of an SK or SKF payload whose protected part (IV, ciphertext, ICV) is the last
    /// `dataCount` octets of `bytes`: integrity checked, decrypted, padding removed.
    private static func openProtected(_ bytes: [UInt8], dataCount: Int, protection: MessageProtection) throws(IKEDecodingError) -> ArraySlice<UInt8> {
        let encryption = protection.encryption
        let icvLength = protection.checksumLength
        let skDataStart = bytes.count - dataCount
        guard dataCount >= encryption.ivLength + icvLength + (encryption.isAEAD ? 1 : 16) else {
            throw .lengthTooShort(field: "sk.length", declared: dataCount, minimum: encryption.ivLength + icvLength + 1)
        }
        let iv = Array(bytes[skDataStart..<skDataStart + encryption.ivLength])
        let plaintext: [UInt8]
        do {
            if encryption.isAEAD {
                plaintext = try encryption.open(
                    bytes[(skDataStart + encryption.ivLength)...], key: protection.encryptionKey.bytes,
                    iv: iv, additionalData: Array(bytes[..<skDataStart]))
            } else {
                guard let integrity = protection.integrity else { throw IKEDecodingError.integrityCheckFailed }
                let expected = integrity.checksum(key: protection.integrityKey.bytes, data: bytes[..<(bytes.count - icvLength)])
                guard constantTimeEqual(expected, bytes[(bytes.count - icvLength)...]) else { throw IKEDecodingError.integrityCheckFailed }
                plaintext = try encryption.open(
                    bytes[(skDataStart + encryption.ivLength)..<(bytes.count - icvLength)],
                    key: protection.encryptionKey.bytes, iv: iv, additionalData: [])
            }
        } catch let error as IKEDecodingError {
            throw error
        } catch {
            throw .integrityCheckFailed
        }
        guard let padLength = plaintext.last, Int(padLength) < plaintext.count else { throw .invalidPadding }
        return plaintext[..<(plaintext.count - 1 - Int(padLength))]
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
