import Crypto
import XCTest

@testable import IKEv2

/// Published vectors for every primitive the engine uses.
final class CryptoKnownAnswerTests: XCTestCase {
    func hex(_ text: String) -> [UInt8] { [UInt8](hexString: text)! }

    /// RFC 4231 test case 2 (also the PRF vectors of RFC 4868 section 2.7.1).
    func testHMACSHA2PRFs() {
        let key = Array("Jefe".utf8)
        let data = Array("what do ya want for nothing?".utf8)
        XCTAssertEqual(
            PseudoRandomFunction.hmacSHA256.compute(key: key, data: data).hexString,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        XCTAssertEqual(
            PseudoRandomFunction.hmacSHA384.compute(key: key, data: data).hexString,
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
        XCTAssertEqual(
            PseudoRandomFunction.hmacSHA512.compute(key: key, data: data).hexString,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
    }

    /// RFC 4868 truncation: the first half of the HMAC output.
    func testTruncatedIntegrity() {
        let key = Array("Jefe".utf8) + Array(repeating: 0, count: 28)
        let data = Array("what do ya want for nothing?".utf8)
        let full = PseudoRandomFunction.hmacSHA256.compute(key: key, data: data)
        XCTAssertEqual(IntegrityAlgorithm.hmacSHA256_128.checksum(key: key, data: data), Array(full.prefix(16)))
        XCTAssertEqual(IntegrityAlgorithm.hmacSHA384_192.checksum(key: Array(repeating: 1, count: 48), data: data).count, 24)
        XCTAssertEqual(IntegrityAlgorithm.hmacSHA512_256.checksum(key: Array(repeating: 1, count: 64), data: data).count, 32)
        // RFC 4231 test case 2, SHA-256, truncated to 128 bits.
        XCTAssertEqual(
            IntegrityAlgorithm.hmacSHA256_128.checksum(key: Array("Jefe".utf8), data: data).hexString,
            "5bdcc146bf60754e6a042426089575c7")
    }

    /// prf+ as defined in RFC 7296 section 2.13, checked block by block against plain HMAC.
    func testPrfPlusConcatenatesChainedBlocks() {
        let prf = PseudoRandomFunction.hmacSHA256
        let key = hex("0102030405060708")
        let seed = Array("seed".utf8)
        let t1 = prf.compute(key: key, data: seed + [1])
        let t2 = prf.compute(key: key, data: t1 + seed + [2])
        let t3 = prf.compute(key: key, data: t2 + seed + [3])
        XCTAssertEqual(prf.expand(key: key, seed: seed, length: 80), Array((t1 + t2 + t3).prefix(80)))
    }

    /// NIST CAVS (SP 800-135) IKEv2 KDF sample vector, SHA-1, DKM length 1056 bits: SKEYSEED,
    /// prf+ over Ni|Nr|SPIi|SPIr, CHILD_SA KEYMAT without and with PFS, and the rekeyed SKEYSEED.
    func testIKEv2KeyDerivationMatchesNISTCAVSVector() {
        let prf = PseudoRandomFunction.hmacSHA1
        let gir = KeyMaterial(hex("4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52"))
        let girNew = KeyMaterial(hex("863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330"))
        let ni = hex("32b50d5f4a3763f3")
        let nr = hex("9206a04b26564cb1")
        let spii = hex("34c9e7c188868785")
        let spir = hex("3ff77d760d2b2199")

        let skeyseed = KeyDerivation.skeyseed(prf: prf, nonceInitiator: Nonce(ni), nonceResponder: Nonce(nr), sharedSecret: gir)
        XCTAssertEqual(skeyseed.bytes.hexString, "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7")

        let dkm = prf.expand(key: skeyseed.bytes, seed: ni + nr + spii + spir, length: 132)
        XCTAssertEqual(
            dkm.hexString,
            "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435a7a56cc4"
        )

        let skd = Array(dkm.prefix(prf.outputLength))
        XCTAssertEqual(
            prf.expand(key: skd, seed: ni + nr, length: 132).hexString,
            "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e664994d234cb4"
        )
        XCTAssertEqual(
            prf.expand(key: skd, seed: girNew.bytes + ni + nr, length: 132).hexString,
            "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c"
        )

        let rekeyed = KeyDerivation.rekeyedSkeyseed(
            prf: prf, oldDeriving: KeyMaterial(skd), sharedSecret: girNew,
            nonceInitiator: Nonce(ni), nonceResponder: Nonce(nr))
        XCTAssertEqual(rekeyed.bytes.hexString, "63e81194946ebd05df7df5ebf5d8750056bf1f1d")
    }

    /// The GCM specification's test cases 4 (AES-128) and 16 (AES-256), split into key+salt and 8-octet IV (RFC 4106/5282).
    func testAESGCM() throws {
        let plaintext = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let salt = hex("cafebabe")
        let iv = hex("facedbaddecaf888")
        let cases: [(EncryptionAlgorithm, String, String)] = [
            (
                .aesGCM16(keyBits: 128), "feffe9928665731c6d6a8f9467308308",
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e0915bc94fbc3221a5db94fae95ae7121a47"
            ),
            (
                .aesGCM16(keyBits: 256), "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b"
            )
        ]
        for (algorithm, key, expected) in cases {
            let sealed = try algorithm.seal(plaintext, key: hex(key) + salt, iv: iv, additionalData: aad)
            XCTAssertEqual(sealed.hexString, expected)
            XCTAssertEqual(try algorithm.open(sealed[...], key: hex(key) + salt, iv: iv, additionalData: aad), plaintext)
            var forged = sealed
            forged[0] ^= 1
            XCTAssertThrowsError(try algorithm.open(forged[...], key: hex(key) + salt, iv: iv, additionalData: aad))
        }
    }

    /// RFC 8439 section 2.8.2 (the AEAD of RFC 7634), nonce = salt 07000000 | IV 4041424344454647.
    func testChaCha20Poly1305() throws {
        let key = Array(UInt8(0x80)...UInt8(0x9f)) + hex("07000000")
        let plaintext = Array(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let sealed = try EncryptionAlgorithm.chacha20Poly1305.seal(
            plaintext, key: key, iv: hex("4041424344454647"),
            additionalData: hex("50515253c0c1c2c3c4c5c6c7"))
        XCTAssertEqual(Array(sealed.prefix(16)).hexString, "d31a8d34648e60db7b86afbc53ef7ec2")
        XCTAssertEqual(Array(sealed.suffix(16)).hexString, "1ae10b594f09e26a7e902ecbd0600691")
    }

    /// RFC 3602 section 4, case 1.
    func testAESCBC() throws {
        let algorithm = EncryptionAlgorithm.aesCBC(keyBits: 128)
        let sealed = try algorithm.seal(
            Array("Single block msg".utf8), key: hex("06a9214036b8a15b512e03d534120006"),
            iv: hex("3dafba429d9eb430b422da802c9fac41"), additionalData: [])
        XCTAssertEqual(sealed.hexString, "e353779c1079aeb82708942dbe77181a")
    }

    /// RFC 7748 section 6.1.
    func testCurve25519() throws {
        let alice = KeyExchangePrivateKey.curve25519(
            try Curve25519.KeyAgreement.PrivateKey(
                rawRepresentation: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
        XCTAssertEqual(alice.publicValue.hexString, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        let shared = try alice.sharedSecret(peerPublicValue: hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        XCTAssertEqual(shared.hexString, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        XCTAssertThrowsError(try alice.sharedSecret(peerPublicValue: Array(repeating: 0, count: 32)), "small-order point refused")
    }

    /// RFC 5903 section 8.1 (ECP-256): public value x|y, shared secret x only.
    func testECP256() throws {
        let initiator = KeyExchangePrivateKey.ecp256(
            try P256.KeyAgreement.PrivateKey(
                rawRepresentation: hex("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433")))
        XCTAssertEqual(
            initiator.publicValue.hexString,
            "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180"
                + "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3")
        let shared = try initiator.sharedSecret(
            peerPublicValue: hex(
                "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
                    + "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"))
        XCTAssertEqual(shared.hexString, "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de")
        XCTAssertThrowsError(try initiator.sharedSecret(peerPublicValue: Array(repeating: 1, count: 64)), "point not on curve")
    }

    func testEveryGroupAgreesAndRejectsBadValues() throws {
        for group in KeyExchangeGroup.allCases {
            let a = group.generatePrivateKey()
            let b = group.generatePrivateKey()
            XCTAssertEqual(a.publicValue.count, group.publicValueLength, group.name)
            XCTAssertEqual(try a.sharedSecret(peerPublicValue: b.publicValue), try b.sharedSecret(peerPublicValue: a.publicValue), group.name)
            XCTAssertThrowsError(try a.sharedSecret(peerPublicValue: [1, 2, 3]), group.name)
        }
        let modp = KeyExchangeGroup.modp2048.generatePrivateKey()
        let one = Array(repeating: UInt8(0), count: 255) + [1]
        XCTAssertThrowsError(try modp.sharedSecret(peerPublicValue: one), "RFC 6989: 1 is refused")
        XCTAssertThrowsError(try modp.sharedSecret(peerPublicValue: Array(repeating: 0xff, count: 256)), "values >= p refused")
    }

    func testProposalStrings() throws {
        let spec = try ProposalSpec("aes256-sha256-modp2048", forIKE: true)
        XCTAssertEqual(spec.prf, [.hmacSHA256], "PRF follows integrity as in strongSwan")
        XCTAssertThrowsError(try ProposalSpec("aes256gcm16-sha256-x25519", forIKE: true))
        XCTAssertThrowsError(try ProposalSpec("aes256-prfsha256-x25519", forIKE: true), "CBC needs integrity")
        XCTAssertThrowsError(try ProposalSpec("rot13-sha256-x25519", forIKE: true))
        XCTAssertThrowsError(try ProposalSpec("aes256gcm16-prfsha256", forIKE: true), "IKE needs a group")
    }
}
