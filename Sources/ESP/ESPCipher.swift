import Crypto
import Foundation
import IKEv2
import Packets
import _CryptoExtras

/// The per-SA cipher with its keys prepared once: AES-GCM-16 (RFC 4106), ChaCha20-Poly1305 (RFC 7634)
/// or AES-CBC (RFC 3602) with an HMAC-SHA2 ICV (RFC 4868). Key layout is the IKE KEYMAT's: for AEAD
/// ciphers the last four octets of the encryption key are the salt.
struct ESPCipher: Sendable {
    enum Kind: Sendable {
        case aesGCM(SymmetricKey)
        case chacha(SymmetricKey)
        case aesCBC(SymmetricKey, integrity: IntegrityAlgorithm, integrityKey: SymmetricKey)
    }

    let kind: Kind
    let salt: [UInt8]
    let ivLength: Int
    let icvLength: Int
    /// Payload, padding and trailer together are a multiple of this (RFC 4303 section 2.4).
    let alignment: Int

    enum SetupError: Error, Equatable {
        case keyLength(expected: Int, got: Int)
        case integrityRequired, integrityKeyLength
    }

    init(suite: ChildCipherSuite, encryptionKey: KeyMaterial, integrityKey: KeyMaterial) throws(SetupError) {
        let encryption = suite.encryption
        guard encryptionKey.count == encryption.keyLength else {
            throw .keyLength(expected: encryption.keyLength, got: encryptionKey.count)
        }
        switch encryption {
        case .aesGCM16:
            kind = .aesGCM(SymmetricKey(data: encryptionKey.bytes.dropLast(4)))
            salt = Array(encryptionKey.bytes.suffix(4))
            ivLength = 8
            icvLength = 16
            alignment = 4
        case .chacha20Poly1305:
            kind = .chacha(SymmetricKey(data: encryptionKey.bytes.dropLast(4)))
            salt = Array(encryptionKey.bytes.suffix(4))
            ivLength = 8
            icvLength = 16
            alignment = 4
        case .aesCBC:
            guard let integrity = suite.integrity else { throw .integrityRequired }
            guard integrityKey.count == integrity.keyLength else { throw .integrityKeyLength }
            kind = .aesCBC(SymmetricKey(data: encryptionKey.bytes), integrity: integrity, integrityKey: SymmetricKey(data: integrityKey.bytes))
            salt = []
            ivLength = 16
            icvLength = integrity.outputLength
            alignment = 16
        }
    }

    /// Encrypts `plaintext` (payload, padding, trailer) and appends IV, ciphertext and ICV to `out`, which
    /// already holds the ESP header (SPI, low sequence half) starting at `headerStart`. Nonce and AAD are
    /// built in stack buffers: per-packet heap allocations are what separate ESP from raw AEAD speed.
    /// For the AEAD ciphers the IV is the 64-bit sequence number; CBC takes `cbcIV`.
    func seal(plaintext: [UInt8], cbcIV: [UInt8], out: inout [UInt8], headerStart: Int, spi: UInt32, sequence: UInt64, extended: Bool) {
        switch kind {
        case .aesGCM(let key):
            let box = withNonce(counter: sequence) { nonce in
                withAdditionalData(spi: spi, sequence: sequence, extended: extended) { aad in
                    try! AES.GCM.seal(plaintext, using: key, nonce: try! AES.GCM.Nonce(data: nonce), authenticating: aad)
                }
            }
            out.appendBigEndian(sequence)
            Self.append(box.ciphertext, to: &out)
            Self.append(box.tag, to: &out)
        case .chacha(let key):
            let box = withNonce(counter: sequence) { nonce in
                withAdditionalData(spi: spi, sequence: sequence, extended: extended) { aad in
                    try! ChaChaPoly.seal(plaintext, using: key, nonce: try! ChaChaPoly.Nonce(data: nonce), authenticating: aad)
                }
            }
            out.appendBigEndian(sequence)
            Self.append(box.ciphertext, to: &out)
            Self.append(box.tag, to: &out)
        case .aesCBC(let key, let integrity, let integrityKey):
            let ciphertext = try! AES._CBC.encrypt(plaintext, using: key, iv: AES._CBC.IV(ivBytes: cbcIV), noPadding: true)
            out.append(contentsOf: cbcIV)
            Self.append(ciphertext, to: &out)
            let icv = Self.icv(
                integrity, key: integrityKey, data: out[headerStart...],
                sequenceHigh: extended ? UInt32(truncatingIfNeeded: sequence >> 32) : nil)
            out.append(contentsOf: icv)
        }
    }

    /// The truncated HMAC over ESP header, IV and ciphertext, plus the implicit ESN high half (RFC 4303 2.2.1).
    static func icv(_ integrity: IntegrityAlgorithm, key: SymmetricKey, data: ArraySlice<UInt8>, sequenceHigh: UInt32?) -> [UInt8] {
        func run<H: HashFunction>(_: H.Type) -> [UInt8] {
            var mac = HMAC<H>(key: key)
            mac.update(data: data)
            if let sequenceHigh {
                var high: [UInt8] = []
                high.appendBigEndian(sequenceHigh)
                mac.update(data: high)
            }
            return Array(Array(mac.finalize()).prefix(integrity.outputLength))
        }
        switch integrity {
        case .hmacSHA256_128: return run(SHA256.self)
        case .hmacSHA384_192: return run(SHA384.self)
        case .hmacSHA512_256: return run(SHA512.self)
        }
    }

    /// Calls `body` with salt | sequence number, the AEAD nonce when the IV is the counter.
    @inline(__always)
    func withNonce<R>(counter: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 12) { buffer in
            for index in 0..<4 { buffer[index] = salt[index] }
            for index in 0..<8 { buffer[4 + index] = UInt8(truncatingIfNeeded: counter >> (56 - 8 * index)) }
            return try body(UnsafeRawBufferPointer(buffer))
        }
    }

    /// Calls `body` with salt | IV, the 12-octet AEAD nonce (RFC 4106 section 4, RFC 7634 section 2).
    @inline(__always)
    func withNonce<R>(iv: ArraySlice<UInt8>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 12) { buffer in
            for index in 0..<4 { buffer[index] = salt[index] }
            var offset = 4
            for byte in iv {
                buffer[offset] = byte
                offset += 1
            }
            return try body(UnsafeRawBufferPointer(buffer))
        }
    }

    /// Calls `body` with the AAD of RFC 4106 section 5 / RFC 7634 section 2.1: SPI and sequence number,
    /// the ESN high half between them when extended sequence numbers are used.
    @inline(__always)
    func withAdditionalData<R>(spi: UInt32, sequence: UInt64, extended: Bool, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 12) { buffer in
            @inline(__always) func put(_ word: UInt32, at offset: Int) {
                buffer[offset] = UInt8(word >> 24)
                buffer[offset + 1] = UInt8((word >> 16) & 0xff)
                buffer[offset + 2] = UInt8((word >> 8) & 0xff)
                buffer[offset + 3] = UInt8(word & 0xff)
            }
            put(spi, at: 0)
            if extended {
                put(UInt32(truncatingIfNeeded: sequence >> 32), at: 4)
                put(UInt32(truncatingIfNeeded: sequence), at: 8)
            } else {
                put(UInt32(truncatingIfNeeded: sequence), at: 4)
            }
            return try body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<(extended ? 12 : 8)]))
        }
    }

    /// Appends contiguous bytes (swift-crypto returns `Data`) with one copy rather than element by element.
    @inline(__always)
    static func append<D: ContiguousBytes>(_ bytes: D, to out: inout [UInt8]) {
        bytes.withUnsafeBytes { raw in out.append(contentsOf: raw.bindMemory(to: UInt8.self)) }
    }

    @inline(__always)
    static func array<D: ContiguousBytes>(_ bytes: D) -> [UInt8] {
        bytes.withUnsafeBytes { Array($0.bindMemory(to: UInt8.self)) }
    }

    /// Verifies and decrypts an ESP packet (`esp` starts at the SPI); returns payload, padding and trailer.
    func open(esp: ArraySlice<UInt8>, spi: UInt32, sequence: UInt64, extended: Bool) throws(ESPDropReason) -> [UInt8] {
        let start = esp.startIndex
        let iv = esp[(start + 8)..<(start + 8 + ivLength)]
        let body = esp[(start + 8 + ivLength)..<(esp.endIndex - icvLength)]
        let icv = esp.suffix(icvLength)
        do {
            switch kind {
            case .aesGCM(let key):
                return try withNonce(iv: iv) { nonce in
                    try withAdditionalData(spi: spi, sequence: sequence, extended: extended) { aad in
                        let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: body, tag: icv)
                        return Self.array(try AES.GCM.open(box, using: key, authenticating: aad))
                    }
                }
            case .chacha(let key):
                return try withNonce(iv: iv) { nonce in
                    try withAdditionalData(spi: spi, sequence: sequence, extended: extended) { aad in
                        let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: body, tag: icv)
                        return Self.array(try ChaChaPoly.open(box, using: key, authenticating: aad))
                    }
                }
            case .aesCBC(let key, let integrity, let integrityKey):
                guard body.count % 16 == 0, !body.isEmpty else { throw ESPDropReason.truncated }
                let expected = Self.icv(
                    integrity, key: integrityKey, data: esp[start..<(esp.endIndex - icvLength)],
                    sequenceHigh: extended ? UInt32(truncatingIfNeeded: sequence >> 32) : nil)
                guard Self.constantTimeEqual(expected, icv) else { throw ESPDropReason.authenticationFailed }
                return Self.array(try AES._CBC.decrypt(body, using: key, iv: AES._CBC.IV(ivBytes: iv), noPadding: true))
            }
        } catch let reason as ESPDropReason {
            throw reason
        } catch {
            throw .authenticationFailed
        }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
