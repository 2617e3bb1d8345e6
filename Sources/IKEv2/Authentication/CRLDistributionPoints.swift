import SwiftASN1
import X509

/// Where a certificate's issuer publishes its CRL: the URIs of the CRL Distribution Points extension
/// (RFC 5280 section 4.2.1.13, OID 2.5.29.31). Read here because swift-certificates has no type for it;
/// only full names that are URIs are kept (the only form a fetcher can use).
public enum CRLDistributionPoints {
    static let oid: ASN1ObjectIdentifier = [2, 5, 29, 31]

    /// The distribution point URIs of `certificate`, in order; empty without the extension or when it
    /// cannot be read.
    public static func uris(of certificate: Certificate) -> [String] {
        guard let value = certificate.extensions.first(where: { $0.oid == oid })?.value,
            let root = try? DER.parse(value), case .constructed(let points) = root.content
        else { return [] }
        var found: [String] = []
        for point in points {
            // DistributionPoint ::= SEQUENCE { distributionPoint [0] EXPLICIT DistributionPointName OPTIONAL, ... }
            guard case .constructed(let fields) = point.content,
                let wrapper = fields.first(where: { $0.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) }),
                case .constructed(let choice) = wrapper.content,
                // DistributionPointName ::= CHOICE { fullName [0] IMPLICIT GeneralNames, ... }
                let fullName = choice.first(where: { $0.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) }),
                case .constructed(let names) = fullName.content
            else { continue }
            for node in names {
                if case .uniformResourceIdentifier(let uri)? = try? GeneralName(derEncoded: node) { found.append(uri) }
            }
        }
        return found
    }
}
