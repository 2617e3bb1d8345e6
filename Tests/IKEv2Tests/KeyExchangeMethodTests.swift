import Foundation
import XCTest

@testable import IKEv2

/// Key exchange methods as the two roles use them (KeyExchangeMethod): Diffie-Hellman groups and ML-KEM
/// (draft-ietf-ipsecme-ikev2-mlkem) through one interface, ML-KEM checked against Python's `cryptography`.
final class KeyExchangeMethodTests: XCTestCase {
    let methods: [KeyExchangeMethod] = [.mlkem768, .mlkem1024, .group(.curve25519), .group(.ecp256), .group(.modp2048)]

    func testBothRolesReachTheSameSecretWithSharesOfTheRegisteredLengths() throws {
        for method in methods {
            let initiation = method.initiate()
            XCTAssertEqual(initiation.share.count, method.initiatorShareLength, "\(method)")
            let (share, responderSecret) = try method.respond(to: initiation.share)
            XCTAssertEqual(share.count, method.responderShareLength, "\(method)")
            XCTAssertEqual(try initiation.complete(responderShare: share), responderSecret, "\(method)")
            XCTAssertEqual(KeyExchangeMethod(identifier: method.identifier), method)
        }
        // The lengths of FIPS 203 table 3, and the IANA numbers of the draft.
        XCTAssertEqual(
            [KeyExchangeMethod.mlkem768, .mlkem1024].map { [$0.identifier, UInt16($0.initiatorShareLength), UInt16($0.responderShareLength)] },
            [[36, 1184, 1088], [37, 1568, 1568]])
        XCTAssertEqual(try KeyExchangeMethod.mlkem768.respond(to: KeyExchangeMethod.mlkem768.initiate().share).secret.count, 32)
    }

    func testMalformedSharesAreRefusedAndATamperedCiphertextGivesAnotherSecret() throws {
        for method in [KeyExchangeMethod.mlkem768, .mlkem1024] {
            let refused = KeyExchangeError.invalidPublicValue(group: method.identifier)
            let initiation = method.initiate()
            // Lengths off by one either way, on both sides.
            XCTAssertThrowsError(try method.respond(to: Array(initiation.share.dropLast()))) { XCTAssertEqual($0 as? KeyExchangeError, refused) }
            XCTAssertThrowsError(try method.respond(to: initiation.share + [0])) { XCTAssertEqual($0 as? KeyExchangeError, refused) }
            // An encapsulation key whose coefficients are not below q fails FIPS 203's modulus check.
            XCTAssertThrowsError(try method.respond(to: Array(repeating: 0xff, count: method.initiatorShareLength))) {
                XCTAssertEqual($0 as? KeyExchangeError, refused)
            }
            let (ciphertext, secret) = try method.respond(to: initiation.share)
            XCTAssertThrowsError(try initiation.complete(responderShare: Array(ciphertext.dropLast()))) {
                XCTAssertEqual($0 as? KeyExchangeError, refused)
            }
            var tampered = ciphertext
            tampered[100] ^= 0x01
            XCTAssertNotEqual(try initiation.complete(responderShare: tampered), secret, "implicit rejection: a secret the responder does not hold")
        }
    }

    func testASeededSourceMakesTheSameEncapsulationKey() {
        for method in [KeyExchangeMethod.mlkem768, .mlkem1024] {
            XCTAssertEqual(method.initiate(random: SeededRandom(seed: 7)).share, method.initiate(random: SeededRandom(seed: 7)).share)
            XCTAssertNotEqual(method.initiate(random: SeededRandom(seed: 7)).share, method.initiate(random: SeededRandom(seed: 8)).share)
        }
    }

    /// swift-crypto's ML-KEM against an independent implementation (Python's `cryptography`, OpenSSL's ML-KEM):
    /// the same encapsulation key from the same 64-octet seed, and each side decapsulates what the other
    /// encapsulated to the same secret.
    func testMLKEMAgreesWithPythonsCryptography() throws {
        for (method, python) in [(KeyExchangeMethod.mlkem768, "MLKEM768"), (.mlkem1024, "MLKEM1024")] {
            let seed = SeededRandom(seed: 42).bytes(64)
            let ours = method.initiate(random: SeededRandom(seed: 42))
            let (ourCiphertext, ourSecret) = try method.respond(to: pythonEncapsulationKey(python, seed: seed))
            let script = """
                import sys
                from cryptography.hazmat.primitives.asymmetric import mlkem
                from cryptography.hazmat.primitives import serialization
                key = mlkem.\(python)PrivateKey.from_seed_bytes(bytes.fromhex(sys.argv[1]))
                raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
                print(key.public_key().public_bytes(*raw).hex())
                print(key.decapsulate(bytes.fromhex(sys.argv[2])).hex())
                secret, ciphertext = mlkem.\(python)PublicKey.from_public_bytes(bytes.fromhex(sys.argv[3])).encapsulate()
                print(ciphertext.hex())
                print(secret.hex())
                """
            let lines = try runPython(
                script, arguments: [seed.hexString, ourCiphertext.hexString, ours.share.hexString], needs: "cryptography's ML-KEM")
            XCTAssertEqual(lines.count, 4, "\(lines)")
            guard lines.count == 4 else { continue }
            XCTAssertEqual(lines[0], ours.share.hexString, "\(method): the encapsulation key from the seed")
            XCTAssertEqual(lines[1], ourSecret.bytes.hexString, "\(method): Python decapsulates what we encapsulated")
            let theirCiphertext = try XCTUnwrap(Array(hexString: lines[2]))
            XCTAssertEqual(try ours.complete(responderShare: theirCiphertext).bytes.hexString, lines[3], "\(method): we decapsulate theirs")
        }
    }

    func pythonEncapsulationKey(_ python: String, seed: [UInt8]) throws -> [UInt8] {
        let script = """
            import sys
            from cryptography.hazmat.primitives.asymmetric import mlkem
            from cryptography.hazmat.primitives import serialization
            key = mlkem.\(python)PrivateKey.from_seed_bytes(bytes.fromhex(sys.argv[1]))
            print(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex())
            """
        let lines = try runPython(script, arguments: [seed.hexString], needs: "cryptography's ML-KEM")
        return try XCTUnwrap(lines.first.flatMap { Array(hexString: $0) })
    }
}
