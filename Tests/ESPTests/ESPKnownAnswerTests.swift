import Foundation
import IKEv2
import XCTest

@testable import ESP

/// ESP packets built by an independent implementation (pyca/cryptography, see tests/esp/make_esp_vectors.py):
/// ours must produce the same octets (AEAD: deterministic IV) and open theirs.
final class ESPKnownAnswerTests: XCTestCase {
    struct Vector: Decodable {
        var name: String, encryptionKey: String, integrityKey: String, spi: UInt32, sequence: UInt64, esn: Bool
        var inner: String, esp: String
    }
    struct File: Decodable {
        var origin: String
        var vectors: [Vector]
    }

    func loadVectors() throws -> [Vector] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "esp-vectors", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).vectors
    }

    func suite(for vector: Vector) throws -> ChildCipherSuite {
        switch vector.name {
        case "aes128gcm16": return gcm128
        case "aes256gcm16": return gcm256
        case "aes256gcm16-esn":
            return ChildCipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: true)
        case "chacha20poly1305": return chacha
        case "aes256-sha256": return cbc256
        default:
            struct UnknownSuite: Error { var name: String }
            throw UnknownSuite(name: vector.name)
        }
    }

    func testVectorsMatchAnIndependentImplementation() throws {
        let vectors = try loadVectors()
        XCTAssertEqual(vectors.count, 5)
        for vector in vectors {
            let suite = try suite(for: vector)
            let parameters = SecurityAssociationParameters(
                spi: ChildSPI(vector.spi), direction: .outbound, suite: suite, encryptionKey: KeyMaterial(hex(vector.encryptionKey)),
                integrityKey: KeyMaterial(hex(vector.integrityKey)), mode: .tunnel, tunnelSource: IPAddress("192.0.2.2")!,
                tunnelDestination: IPAddress("192.0.2.1")!, encapsulation: UDPEncapsulation(),
                sourceSelectors: [TrafficSelector(cidr: "10.2.0.0/16")!], destinationSelectors: [TrafficSelector(cidr: "10.1.0.0/16")!])
            if suite.encryption.isAEAD {
                let outbound = try OutboundSecurityAssociation(parameters, startingSequence: vector.sequence - 1)
                let packet = try outbound.encapsulate(hex(vector.inner))
                XCTAssertEqual(Array(packet.espBytes).hexString, vector.esp, vector.name)
            }
            var inboundParameters = parameters
            inboundParameters.direction = .inbound
            let inbound = try InboundSecurityAssociation(inboundParameters)
            if vector.esn { inbound.window.accept(vector.sequence - 1) }
            XCTAssertEqual(try inbound.decapsulate(hex(vector.esp)[...]).hexString, vector.inner, vector.name)
        }
    }
}
