import Crypto
import Foundation
import _CryptoExtras

/// Why sealing or opening failed.
public enum CipherError: Error, Equatable, Sendable {
    case authenticationFailed
    case badLength
    case invalidKey
}

/// Encryption transforms (RFC 7296, RFC 3602 AES-CBC, RFC 5282 AES-GCM-16, RFC 7634 ChaCha20-Poly1305).
/// For the AEAD ciphers the key material includes the 4-octet salt that prefixes the 8-octet IV.
public enum EncryptionAlgorithm: Hashable, Sendable {
    case aesCBC(keyBits: Int)
    case aesGCM16(keyBits: Int)
    case chacha20Poly1305

    public static let aesCBCIdentifier: UInt16 = 12
    public static let aesGCM16Identifier: UInt16 = 20
    public static let chacha20Poly1305Identifier: UInt16 = 28

    public init?(transform: Transform) {
        guard transform.type == .encryption else { return nil }
        switch (transform.identifier, transform.keyLength) {
        case (Self.aesCBCIdentifier, let bits?) where [128, 192, 256].contains(bits): self = .aesCBC(keyBits: Int(bits))
        case (Self.aesGCM16Identifier, let bits?) where [128, 192, 256].contains(bits): self = .aesGCM16(keyBits: Int(bits))
        case (Self.chacha20Poly1305Identifier, nil): self = .chacha20Poly1305
        default: return nil
        }
    }

    public var transform: Transform {
        switch self {
        case .aesCBC(let bits): return Transform(type: .encryption, identifier: Self.aesCBCIdentifier, keyLength: UInt16(bits))
        case .aesGCM16(let bits): return Transform(type: .encryption, identifier: Self.aesGCM16Identifier, keyLength: UInt16(bits))
        case .chacha20Poly1305: return Transform(type: .encryption, identifier: Self.chacha20Poly1305Identifier)
        }
    }

    public var name: String {
        switch self {
        case .aesCBC(let bits): return "AES_CBC_\(bits)"
        case .aesGCM16(let bits): return "AES_GCM_16_\(bits)"
        case .chacha20Poly1305: return "CHACHA20_POLY1305"
        }
    }

    public var isAEAD: Bool { if case .aesCBC = self { return false } else { return true } }

    /// Key material length in octets, salt included for AEAD transforms.
    public var keyLength: Int {
        switch self {
        case .aesCBC(let bits): return bits / 8
        case .aesGCM16(let bits): return bits / 8 + 4
        case .chacha20Poly1305: return 36
        }
    }

    public var ivLength: Int { isAEAD ? 8 : 16 }
    public var icvLength: Int { isAEAD ? 16 : 0 }
    /// Cipher block size used for padding; AEAD modes have none but IKE keeps 4-octet alignment harmless.
    public var blockSize: Int { isAEAD ? 1 : 16 }

    private func aeadNonce(key: [UInt8], iv: [UInt8]) -> (SymmetricKey, [UInt8]) {
        let salt = key.suffix(4)
        return (SymmetricKey(data: key.prefix(key.count - 4)), Array(salt) + iv)
    }

    /// Encrypts `plaintext` (already padded by the caller). AEAD returns ciphertext followed by the tag.
    public func seal(_ plaintext: [UInt8], key: [UInt8], iv: [UInt8], additionalData: [UInt8]) throws(CipherError) -> [UInt8] {
        guard key.count == keyLength, iv.count == ivLength else { throw .badLength }
        do {
            switch self {
            case .aesCBC:
                guard plaintext.count % 16 == 0 else { throw CipherError.badLength }
                return Array(
                    try AES._CBC.encrypt(
                        plaintext, using: SymmetricKey(data: key),
                        iv: AES._CBC.IV(ivBytes: iv), noPadding: true))
            case .aesGCM16:
                let (k, nonce) = aeadNonce(key: key, iv: iv)
                let box = try AES.GCM.seal(plaintext, using: k, nonce: AES.GCM.Nonce(data: nonce), authenticating: additionalData)
                return Array(box.ciphertext) + Array(box.tag)
            case .chacha20Poly1305:
                let (k, nonce) = aeadNonce(key: key, iv: iv)
                let box = try ChaChaPoly.seal(plaintext, using: k, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: additionalData)
                return Array(box.ciphertext) + Array(box.tag)
            }
        } catch let error as CipherError {
            throw error
        } catch {
            throw .invalidKey
        }
    }

    /// Decrypts and, for AEAD, verifies the tag that ends `ciphertext`.
    public func open(_ ciphertext: ArraySlice<UInt8>, key: [UInt8], iv: [UInt8], additionalData: [UInt8]) throws(CipherError) -> [UInt8] {
        guard key.count == keyLength, iv.count == ivLength else { throw .badLength }
        switch self {
        case .aesCBC:
            guard ciphertext.count % 16 == 0, !ciphertext.isEmpty else { throw .badLength }
            do {
                return Array(
                    try AES._CBC.decrypt(
                        ciphertext, using: SymmetricKey(data: key),
                        iv: AES._CBC.IV(ivBytes: iv), noPadding: true))
            } catch { throw .authenticationFailed }
        case .aesGCM16, .chacha20Poly1305:
            guard ciphertext.count >= 16 else { throw .badLength }
            let body = ciphertext.dropLast(16)
            let tag = ciphertext.suffix(16)
            let (k, nonce) = aeadNonce(key: key, iv: iv)
            do {
                if case .aesGCM16 = self {
                    let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: body, tag: tag)
                    return Array(try AES.GCM.open(box, using: k, authenticating: additionalData))
                }
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: body, tag: tag)
                return Array(try ChaChaPoly.open(box, using: k, authenticating: additionalData))
            } catch { throw .authenticationFailed }
        }
    }
}
