import Foundation
import SwiftASN1
import X509

/// An X.509 CRL (RFC 5280 section 5): who issued it, when, and the serial numbers it revokes. Read
/// here because swift-certificates has no CRL type; only the fields revocation checking needs are kept.
public struct CertificateRevocationList: Sendable {
    public let issuer: DistinguishedName
    public let thisUpdate: Date
    public let nextUpdate: Date?
    public let revokedSerialNumbers: Set<Certificate.SerialNumber>
    let signedPart: [UInt8]
    let signatureAlgorithm: Certificate.SignatureAlgorithm?
    let signature: [UInt8]

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Parses a DER CertificateList.
    public init(derEncoded bytes: [UInt8]) throws {
        let root = try DER.parse(bytes)
        var issuer: DistinguishedName?
        var thisUpdate: Date?
        var nextUpdate: Date?
        var revoked = Set<Certificate.SerialNumber>()
        var signedPart: [UInt8] = []
        var algorithm: Certificate.SignatureAlgorithm?
        var signature: [UInt8] = []
        try DER.sequence(root, identifier: .sequence) { nodes in
            guard let tbs = nodes.next(), let algorithmNode = nodes.next(), let signatureNode = nodes.next() else {
                throw ParseError(description: "a CRL is tbsCertList, signatureAlgorithm, signatureValue")
            }
            signedPart = Array(tbs.encodedBytes)
            algorithm = try Self.signatureAlgorithm(algorithmNode)
            signature = Array(try ASN1BitString(derEncoded: signatureNode).bytes)
            try DER.sequence(tbs, identifier: .sequence) { fields in
                var node = fields.next()
                if node?.identifier == .integer { node = fields.next() }  // version
                node = fields.next()  // signature algorithm (again)
                guard let issuerNode = node else { throw ParseError(description: "the CRL has no issuer") }
                issuer = try DistinguishedName(derEncoded: issuerNode)
                guard let thisNode = fields.next(), let this = try Self.time(thisNode) else {
                    throw ParseError(description: "the CRL has no thisUpdate")
                }
                thisUpdate = this
                node = fields.next()
                if let candidate = node, let next = try Self.time(candidate) {
                    nextUpdate = next
                    node = fields.next()
                }
                if let list = node, list.identifier == .sequence {
                    try DER.sequence(list, identifier: .sequence) { entries in
                        while let entry = entries.next() {
                            try DER.sequence(entry, identifier: .sequence) { parts in
                                guard let serial = parts.next() else { throw ParseError(description: "a revoked entry without serial number") }
                                revoked.insert(Certificate.SerialNumber(bytes: try ArraySlice<UInt8>(derEncoded: serial)))
                                while parts.next() != nil {}
                            }
                        }
                    }
                }
                while fields.next() != nil {}  // extensions
            }
        }
        guard let issuer, let thisUpdate else { throw ParseError(description: "incomplete CRL") }
        self.issuer = issuer
        self.thisUpdate = thisUpdate
        self.nextUpdate = nextUpdate
        self.revokedSerialNumbers = revoked
        self.signedPart = signedPart
        self.signatureAlgorithm = algorithm
        self.signature = signature
    }

    /// Every CRL in a PEM text ("X509 CRL" blocks), or a single DER one.
    public static func lists(pemOrDER data: [UInt8]) throws -> [CertificateRevocationList] {
        let text = String(decoding: data, as: UTF8.self)
        if text.contains("-----BEGIN X509 CRL-----") {
            return try PEMDocument.parseMultiple(pemString: text).filter { $0.discriminator == "X509 CRL" }.map { try Self(derEncoded: $0.derBytes) }
        }
        return [try Self(derEncoded: data)]
    }

    /// Whether `issuer`'s key signed this CRL and names it as issuer.
    public func isSigned(by issuer: Certificate) -> Bool {
        guard let signatureAlgorithm, self.issuer == issuer.subject else { return false }
        return issuer.publicKey.isValidSignature(signature, for: signedPart, signatureAlgorithm: signatureAlgorithm)
    }

    static func signatureAlgorithm(_ node: ASN1Node) throws -> Certificate.SignatureAlgorithm? {
        let oid: ASN1ObjectIdentifier = try DER.sequence(node, identifier: .sequence) { parts in
            guard let first = parts.next() else { throw ParseError(description: "empty AlgorithmIdentifier") }
            while parts.next() != nil {}
            return try ASN1ObjectIdentifier(derEncoded: first)
        }
        let known: [(ASN1ObjectIdentifier, Certificate.SignatureAlgorithm)] = [
            ([1, 2, 840, 10045, 4, 3, 2], .ecdsaWithSHA256), ([1, 2, 840, 10045, 4, 3, 3], .ecdsaWithSHA384),
            ([1, 2, 840, 10045, 4, 3, 4], .ecdsaWithSHA512), ([1, 2, 840, 113549, 1, 1, 11], .sha256WithRSAEncryption),
            ([1, 2, 840, 113549, 1, 1, 12], .sha384WithRSAEncryption), ([1, 2, 840, 113549, 1, 1, 13], .sha512WithRSAEncryption),
            ([1, 3, 101, 112], .ed25519)
        ]
        return known.first { $0.0 == oid }?.1
    }

    /// UTCTime or GeneralizedTime as a date; nil for any other node.
    static func time(_ node: ASN1Node) throws -> Date? {
        let parts: (Int, Int, Int, Int, Int, Int)
        if node.identifier == .utcTime {
            let t = try UTCTime(derEncoded: node)
            parts = (t.year, t.month, t.day, t.hours, t.minutes, t.seconds)
        } else if node.identifier == .generalizedTime {
            let t = try GeneralizedTime(derEncoded: node)
            parts = (t.year, t.month, t.day, t.hours, t.minutes, t.seconds)
        } else {
            return nil
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: DateComponents(year: parts.0, month: parts.1, day: parts.2, hour: parts.3, minute: parts.4, second: parts.5))
    }
}

extension Certificate.SerialNumber {
    /// Two hex digits per octet, colon-separated, as openssl and strongSwan print serial numbers (the
    /// library's own description drops leading zeros of each octet).
    public var hexDescription: String { bytes.map { String(format: "%02x", $0) }.joined(separator: ":") }
}
