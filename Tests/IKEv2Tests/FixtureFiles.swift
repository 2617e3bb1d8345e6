import Foundation
import X509
import XCTest

@testable import IKEv2

/// The committed fixtures (Tests/IKEv2Tests/Fixtures, whose README says where each came from), read from
/// the test bundle by their path under that folder.
enum FixtureFiles {
    static func bytes(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/" + path, withExtension: nil), "no fixture \(path)")))
    }

    /// The first certificate of a PEM fixture, named without its ".pem".
    static func certificate(_ path: String) throws -> Certificate {
        try XCTUnwrap(
            CertificateCredential.certificates(pem: String(decoding: try bytes(path + ".pem"), as: UTF8.self)).first, "no certificate in \(path)")
    }
}
