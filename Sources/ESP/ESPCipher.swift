import Crypto
import _CryptoExtras
import IKEv2

/// The per-SA cipher with its keys prepared once: AES-GCM-16 (RFC 4106), ChaCha20-Poly1305 (RFC 7634)
/// or AES-CBC (RFC 3602) with an HMAC-SHA2 ICV (RFC 4868). Key layout is the IKE KEYMAT's: for AEAD
/// ciphers the last four octets of the encryption key are the salt.
struct ESPCipher: Sendable {
    enum Kind: Sendable {
        case aesGCM(SymmetricKey)
        case chacha(SymmetricKey)
        case aesCBC(SymmetricKey, integrity: IntegrityAlgorithm, integrityKey: [UInt8])
    }

    let kind: Kind
    let salt: [UInt8]
    let ivLength: Int
    let icvLength: Int
    /// Payload, padding and trailer together are a multiple of this (RFC 4303 section 2.4).
    let alignment: Int

    enum SetupError: Error, Equatable { case keyLength(expected: Int, got: Int), integrityRequired, integrityKeyLength }

    init(suite: ChildCipherSuite, encryptionKey: KeyMaterial, integrityKey: KeyMaterial) throws(SetupError) {
        let encryption = suite.encryption
        guard encryptionKey.count == encryption.keyLength else {
            throw .keyLength(expected: encryption.keyLength, got: encryptionKey.count)
        }
        switch encryption {
        case .aesGCM16:
            kind = .aesGCM(SymmetricKey(data: encryptionKey.bytes.dropLast(4)))
            salt = Array(encryptionKey.bytes.suffix(4)); ivLength = 8; icvLength = 16; alignment = 4
        case .chacha20Poly1305:
            kind = .chacha(SymmetricKey(data: encryptionKey.bytes.dropLast(4)))
            salt = Array(encryptionKey.bytes.suffix(4)); ivLength = 8; icvLength = 16; alignment = 4
        case .aesCBC:
            guard let integrity = suite.integrity else { throw .integrityRequired }
            guard integrityKey.count == integrity.keyLength else { throw .integrityKeyLength }
            kind = .aesCBC(SymmetricKey(data: encryptionKey.bytes), integrity: integrity, integrityKey: integrityKey.bytes)
            salt = []; ivLength = 16; icvLength = integrity.outputLength; alignment = 16
        }
    }

    /// Encrypts `plaintext` (payload, padding, trailer) and appends IV, ciphertext and ICV to `out`, which
    /// already holds the ESP header starting at `headerStart`. `sequenceHigh` is the implicit ESN half.
    func seal(plaintext: [UInt8], iv: [UInt8], out: inout [UInt8], headerStart: Int, sequenceHigh: UInt32?) {
        let header = out[headerStart..<(headerStart + 8)]
        switch kind {
        case .aesGCM(let key):
            let box = try! AES.GCM.seal(plaintext, using: key, nonce: try! AES.GCM.Nonce(data: salt + iv),
                                        authenticating: Self.aeadAdditionalData(header: header, sequenceHigh: sequenceHigh))
            out.append(contentsOf: iv); out.append(contentsOf: box.ciphertext); out.append(contentsOf: box.tag)
        case .chacha(let key):
            let box = try! ChaChaPoly.seal(plaintext, using: key, nonce: try! ChaChaPoly.Nonce(data: salt + iv),
                                           authenticating: Self.aeadAdditionalData(header: header, sequenceHigh: sequenceHigh))
            out.append(contentsOf: iv); out.append(contentsOf: box.ciphertext); out.append(contentsOf: box.tag)
        case .aesCBC(let key, let integrity, let integrityKey):
            let ciphertext = try! AES._CBC.encrypt(plaintext, using: key, iv: AES._CBC.IV(ivBytes: iv), noPadding: true)
            out.append(contentsOf: iv); out.append(contentsOf: ciphertext)
            var authenticated = Array(out[headerStart...])
            if let sequenceHigh { authenticated += Self.bigEndian(sequenceHigh) }
            out.append(contentsOf: integrity.checksum(key: integrityKey, data: authenticated))
        }
    }

    /// Verifies and decrypts an ESP packet (`esp` starts at the SPI); returns payload, padding and trailer.
    func open(esp: ArraySlice<UInt8>, sequenceHigh: UInt32?) throws(ESPDropReason) -> [UInt8] {
        let start = esp.startIndex
        let header = esp[start..<(start + 8)]
        let iv = esp[(start + 8)..<(start + 8 + ivLength)]
        let body = esp[(start + 8 + ivLength)..<(esp.endIndex - icvLength)]
        let icv = esp.suffix(icvLength)
        do {
            switch kind {
            case .aesGCM(let key):
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: salt + iv), ciphertext: body, tag: icv)
                return Array(try AES.GCM.open(box, using: key,
                                              authenticating: Self.aeadAdditionalData(header: header, sequenceHigh: sequenceHigh)))
            case .chacha(let key):
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: salt + iv), ciphertext: body, tag: icv)
                return Array(try ChaChaPoly.open(box, using: key,
                                                 authenticating: Self.aeadAdditionalData(header: header, sequenceHigh: sequenceHigh)))
            case .aesCBC(let key, let integrity, let integrityKey):
                guard body.count % 16 == 0, !body.isEmpty else { throw ESPDropReason.truncated }
                var authenticated = Array(esp[start..<(esp.endIndex - icvLength)])
                if let sequenceHigh { authenticated += Self.bigEndian(sequenceHigh) }
                let expected = integrity.checksum(key: integrityKey, data: authenticated)
                guard Self.constantTimeEqual(expected, icv) else { throw ESPDropReason.authenticationFailed }
                return Array(try AES._CBC.decrypt(body, using: key, iv: AES._CBC.IV(ivBytes: iv), noPadding: true))
            }
        } catch let reason as ESPDropReason {
            throw reason
        } catch {
            throw .authenticationFailed
        }
    }

    /// AAD of RFC 4106 section 5 / RFC 7634 section 2.1: SPI and sequence number, the ESN high half
    /// between them when extended sequence numbers are used.
    static func aeadAdditionalData(header: ArraySlice<UInt8>, sequenceHigh: UInt32?) -> [UInt8] {
        guard let sequenceHigh else { return Array(header) }
        let h = header.startIndex
        return Array(header[h..<(h + 4)]) + bigEndian(sequenceHigh) + Array(header[(h + 4)..<(h + 8)])
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
