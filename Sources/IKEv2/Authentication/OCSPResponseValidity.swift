import Foundation
import SwiftASN1

/// How long an OCSP answer may be used (RFC 6960 section 4.2.2.1): the earliest nextUpdate of its single
/// responses. Read here, from the DER, because swift-certificates keeps its OCSP types internal; the
/// answer itself is judged there, this only tells a cache when to forget it.
public enum OCSPResponseValidity {
    /// The earliest nextUpdate in a DER OCSPResponse, or nil when it has none or cannot be read.
    public static func nextUpdate(of response: [UInt8]) -> Date? {
        // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
        let tagZero = ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
        guard let root = try? DER.parse(response), case .constructed(let top) = root.content,
            let explicit = Array(top).first(where: { $0.identifier == tagZero }),
            case .constructed(let wrapped) = explicit.content, let bytesNode = Array(wrapped).first,
            // ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
            case .constructed(let responseBytes) = bytesNode.content,
            let octets = Array(responseBytes).last, let basicDER = try? ASN1OctetString(derEncoded: octets),
            // BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, ... }
            let basic = try? DER.parse(basicDER.bytes), case .constructed(let basicFields) = basic.content,
            let data = Array(basicFields).first, case .constructed(let dataFields) = data.content,
            // ResponseData ::= SEQUENCE { version [0], responderID [1] | [2], producedAt, responses SEQUENCE OF SingleResponse, ... }
            let responses = Array(dataFields).first(where: { $0.identifier == .sequence }),
            case .constructed(let singles) = responses.content
        else { return nil }
        var earliest: Date?
        for single in singles {
            // SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate, nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, ... }
            guard case .constructed(let fields) = single.content else { return nil }
            let parts = Array(fields)
            guard parts.count >= 3 else { return nil }
            guard let tagged = parts.dropFirst(3).first(where: { $0.identifier == tagZero }),
                case .constructed(let inner) = tagged.content, let timeNode = Array(inner).first,
                let date = (try? CertificateRevocationList.time(timeNode)) ?? nil
            else {
                return nil  // a single response without nextUpdate may not be kept at all
            }
            earliest = min(earliest ?? date, date)
        }
        return earliest
    }
}
