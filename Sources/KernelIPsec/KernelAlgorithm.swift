import IKEv2

/// Why an SA cannot go into the kernel as it is.
public enum KernelSAError: Error, Equatable, Sendable, CustomStringConvertible {
    case keyLength(algorithm: String, expected: Int, got: Int)
    case integrityMissing(String)
    case selectorsUnusable(String)
    case tooManyPolicies(Int)

    public var description: String {
        switch self {
        case .keyLength(let algorithm, let expected, let got): return "\(algorithm) needs \(expected) key octets, got \(got)"
        case .integrityMissing(let algorithm): return "\(algorithm) needs an integrity algorithm"
        case .selectorsUnusable(let why): return "traffic selectors unusable in the kernel: \(why)"
        case .tooManyPolicies(let count): return "the traffic selectors need \(count) kernel policies, more than 64"
        }
    }
}

/// The kernel's names for IKEv2's ESP transforms (the crypto API templates the XFRM layer instantiates):
/// AES-GCM-16 as RFC 4106's `rfc4106(gcm(aes))`, ChaCha20-Poly1305 as RFC 7634's
/// `rfc7539esp(chacha20,poly1305)`, both with the 4-octet salt at the end of the key as IKE's KEYMAT
/// gives it; AES-CBC as `cbc(aes)` with an HMAC-SHA2 truncated as RFC 4868 says.
enum KernelAlgorithm {
    static let attributeAEAD: UInt16 = 18  // XFRMA_ALG_AEAD
    static let attributeCrypt: UInt16 = 2  // XFRMA_ALG_CRYPT
    static let attributeAuthTruncated: UInt16 = 20  // XFRMA_ALG_AUTH_TRUNC

    static func attributes(suite: ChildCipherSuite, encryptionKey: KeyMaterial, integrityKey: KeyMaterial) throws(KernelSAError) -> [NetlinkAttribute]
    {
        let encryption = suite.encryption
        guard encryptionKey.count == encryption.keyLength else {
            throw .keyLength(algorithm: encryption.name, expected: encryption.keyLength, got: encryptionKey.count)
        }
        switch encryption {
        case .aesGCM16:
            return [aead(name: "rfc4106(gcm(aes))", key: encryptionKey.bytes, icvBits: 128)]
        case .chacha20Poly1305:
            return [aead(name: "rfc7539esp(chacha20,poly1305)", key: encryptionKey.bytes, icvBits: 128)]
        case .aesCBC:
            guard let integrity = suite.integrity else { throw .integrityMissing(encryption.name) }
            guard integrityKey.count == integrity.keyLength else {
                throw .keyLength(algorithm: integrity.name, expected: integrity.keyLength, got: integrityKey.count)
            }
            let hash: String
            switch integrity {
            case .hmacSHA256_128: hash = "hmac(sha256)"
            case .hmacSHA384_192: hash = "hmac(sha384)"
            case .hmacSHA512_256: hash = "hmac(sha512)"
            }
            var crypt = name("cbc(aes)")
            crypt.appendHost(UInt32(encryptionKey.count * 8))
            crypt += encryptionKey.bytes
            var auth = name(hash)
            auth.appendHost(UInt32(integrityKey.count * 8))
            auth.appendHost(UInt32(integrity.outputLength * 8))
            auth += integrityKey.bytes
            return [NetlinkAttribute(type: attributeCrypt, value: crypt), NetlinkAttribute(type: attributeAuthTruncated, value: auth)]
        }
    }

    /// struct xfrm_algo_aead: name, key length in bits, ICV length in bits, key.
    private static func aead(name algorithm: String, key: [UInt8], icvBits: UInt32) -> NetlinkAttribute {
        var value = name(algorithm)
        value.appendHost(UInt32(key.count * 8))
        value.appendHost(icvBits)
        value += key
        return NetlinkAttribute(type: attributeAEAD, value: value)
    }

    /// The 64-octet, zero-filled algorithm name field of the xfrm_algo structures.
    private static func name(_ text: String) -> [UInt8] {
        let octets = Array(text.utf8.prefix(63))
        return octets + [UInt8](repeating: 0, count: 64 - octets.count)
    }
}
