import SwiftASN1

/// RSASSA-PSS as an RFC 7427 AUTH payload names it: the id-RSASSA-PSS AlgorithmIdentifier with its
/// RSASSA-PSS-params (RFC 4055 section 3.1). Only the form swift-crypto signs and verifies is accepted:
/// a SHA-2 hash, MGF1 over the same hash, a salt as long as the hash, trailer field 1.
struct RSAPSSParameters: Equatable {
    enum Hash: CaseIterable {
        case sha256, sha384, sha512

        var length: Int { self == .sha256 ? 32 : self == .sha384 ? 48 : 64 }
        var oid: ASN1ObjectIdentifier {
            switch self {
            case .sha256: return [2, 16, 840, 1, 101, 3, 4, 2, 1]
            case .sha384: return [2, 16, 840, 1, 101, 3, 4, 2, 2]
            case .sha512: return [2, 16, 840, 1, 101, 3, 4, 2, 3]
            }
        }
    }

    static let pssOID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 10]
    static let mgf1OID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 8]
    static let sha1OID: ASN1ObjectIdentifier = [1, 3, 14, 3, 2, 26]

    var hash: Hash

    /// The DER we send: every parameter explicit, hash identifiers with NULL parameters.
    var algorithmIdentifier: [UInt8] {
        var serializer = DER.Serializer()
        try! serializer.appendConstructedNode(identifier: .sequence) { outer in
            try outer.serialize(Self.pssOID)
            try outer.appendConstructedNode(identifier: .sequence) { params in
                try params.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { tagged in
                    try Self.appendHashIdentifier(hash, to: &tagged)
                }
                try params.serialize(explicitlyTaggedWithTagNumber: 1, tagClass: .contextSpecific) { tagged in
                    try tagged.appendConstructedNode(identifier: .sequence) { mgf in
                        try mgf.serialize(Self.mgf1OID)
                        try Self.appendHashIdentifier(hash, to: &mgf)
                    }
                }
                try params.serialize(explicitlyTaggedWithTagNumber: 2, tagClass: .contextSpecific) { tagged in
                    try tagged.serialize(hash.length)
                }
            }
        }
        return serializer.serializedBytes
    }

    private static func appendHashIdentifier(_ hash: Hash, to serializer: inout DER.Serializer) throws {
        try serializer.appendConstructedNode(identifier: .sequence) { id in
            try id.serialize(hash.oid)
            try id.serialize(ASN1Null())
        }
    }

    /// nil when `der` is not an id-RSASSA-PSS AlgorithmIdentifier at all; else the parameters, or why
    /// they are malformed or a form we cannot verify.
    static func parse(algorithmIdentifier der: [UInt8]) -> Result<RSAPSSParameters, AuthenticationFailure>? {
        guard let root = try? DER.parse(der) else { return nil }
        do {
            return try DER.sequence(root, identifier: .sequence) { nodes -> Result<RSAPSSParameters, AuthenticationFailure>? in
                guard try ASN1ObjectIdentifier(derEncoded: &nodes) == pssOID else { return nil }
                guard let paramsNode = nodes.next(), nodes.next() == nil else {
                    return .failure(AuthenticationFailure("RSASSA-PSS AlgorithmIdentifier has no parameters (SHA-1 defaults are not supported)"))
                }
                return try DER.sequence(paramsNode, identifier: .sequence) { params in
                    let hash = try DER.optionalExplicitlyTagged(&params, tagNumber: 0, tagClass: .contextSpecific) { try hashOID($0) } ?? sha1OID
                    let mgf =
                        try DER.optionalExplicitlyTagged(&params, tagNumber: 1, tagClass: .contextSpecific) { node in
                            try DER.sequence(node, identifier: .sequence) { m -> (ASN1ObjectIdentifier, ASN1ObjectIdentifier) in
                                let function = try ASN1ObjectIdentifier(derEncoded: &m)
                                guard let inner = m.next(), m.next() == nil else { throw ASN1Error.invalidASN1Object(reason: "MGF without a hash") }
                                return (function, try hashOID(inner))
                            }
                        } ?? (mgf1OID, sha1OID)
                    let salt = try DER.optionalExplicitlyTagged(&params, tagNumber: 2, tagClass: .contextSpecific) { try Int(derEncoded: $0) } ?? 20
                    let trailer = try DER.optionalExplicitlyTagged(&params, tagNumber: 3, tagClass: .contextSpecific) { try Int(derEncoded: $0) } ?? 1
                    guard params.next() == nil else { return .failure(AuthenticationFailure("RSASSA-PSS parameters have trailing fields")) }
                    guard let known = Hash.allCases.first(where: { $0.oid == hash }) else {
                        return .failure(AuthenticationFailure("RSASSA-PSS with hash \(hash) is not supported (SHA-256, SHA-384, SHA-512)"))
                    }
                    guard mgf.0 == mgf1OID, mgf.1 == hash else {
                        return .failure(
                            AuthenticationFailure(
                                "RSASSA-PSS with mask generation \(mgf.0) over \(mgf.1) is not supported (MGF1 over the signature's hash)"))
                    }
                    guard salt == known.length else {
                        return .failure(
                            AuthenticationFailure(
                                "RSASSA-PSS with a \(salt)-octet salt is not supported (the salt must be as long as the hash, \(known.length))"))
                    }
                    guard trailer == 1 else { return .failure(AuthenticationFailure("RSASSA-PSS trailer field \(trailer) is not supported")) }
                    return .success(RSAPSSParameters(hash: known))
                }
            }
        } catch {
            return .failure(AuthenticationFailure("RSASSA-PSS parameters are malformed: \(error)"))
        }
    }

    /// The OID of a hash AlgorithmIdentifier whose parameters are NULL or absent (RFC 4055 section 2.1).
    private static func hashOID(_ node: ASN1Node) throws -> ASN1ObjectIdentifier {
        try DER.sequence(node, identifier: .sequence) { nodes in
            let oid = try ASN1ObjectIdentifier(derEncoded: &nodes)
            if let parameters = nodes.next() { _ = try ASN1Null(derEncoded: parameters) }
            guard nodes.next() == nil else { throw ASN1Error.invalidASN1Object(reason: "hash AlgorithmIdentifier has extra fields") }
            return oid
        }
    }
}
