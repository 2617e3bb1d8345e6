import Foundation
import XCTest

@testable import IKEv2

/// Encode/decode of every payload, and fixtures captured from strongSwan.
final class CodecTests: XCTestCase {
    static func fixture(_ name: String) throws -> [UInt8] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/" + name, withExtension: "hex"))
        return try XCTUnwrap([UInt8](hexString: String(contentsOf: url, encoding: .utf8)))
    }

    func testStrongSwanMessagesDecodeAndReencodeByteForByte() throws {
        for name in [
            "strongswan-ike_sa_init-request", "strongswan-ike_sa_init-response",
            "strongswan-ike_auth-request", "strongswan-ike_auth-response"
        ] {
            let bytes = try Self.fixture(name)
            let message = try IKEMessage.decode(bytes)
            XCTAssertEqual(message.encode(), bytes, name)
        }
        let request = try IKEMessage.decode(Self.fixture("strongswan-ike_sa_init-request"))
        XCTAssertEqual(request.header.exchangeType, .ikeSAInit)
        XCTAssertTrue(request.header.isFromOriginalInitiator)
        XCTAssertEqual(request.payloads.keyExchange?.group, KeyExchangeGroup.curve25519.rawValue)
        XCTAssertEqual(
            request.payloads.securityAssociation?.proposals.first?.transforms.first,
            EncryptionAlgorithm.aesGCM16(keyBits: 256).transform)
        XCTAssertNotNil(request.payloads.notify(.natDetectionSourceIP))
        let auth = try IKEMessage.decode(Self.fixture("strongswan-ike_auth-request"))
        XCTAssertEqual(auth.payloads.encrypted?.firstInnerPayload, .identificationInitiator)
    }

    func testEveryPayloadRoundTrips() throws {
        let v4 = TrafficSelector(cidr: "10.0.0.0/24", ipProtocol: 6, startPort: 80, endPort: 443)!
        let v6 = TrafficSelector(cidr: "2001:db8::/64")!
        let payloads: [Payload] = [
            .securityAssociation(
                SecurityAssociationPayload(proposals: [
                    try ProposalSpec("aes256-sha256-modp2048", forIKE: true).proposal(number: 1, protocolID: .ike, spi: []),
                    try ProposalSpec("aes128gcm16-ecp256-esn", forIKE: false).proposal(number: 2, protocolID: .esp, spi: [1, 2, 3, 4])
                ])),
            .keyExchange(KeyExchangePayload(group: 31, data: Array(repeating: 7, count: 32))),
            .identificationInitiator(Identity("alice@example.org").payload),
            .identificationResponder(Identity("2001:db8::1").payload),
            .certificate(CertificatePayload(encoding: 4, data: [1, 2, 3])),
            .certificateRequest(CertificatePayload(encoding: 4, data: Array(repeating: 9, count: 20))),
            .authentication(AuthenticationPayload(method: .sharedKeyMessageIntegrityCode, data: Array(repeating: 3, count: 32))),
            .nonce(NoncePayload(data: Array(repeating: 5, count: 32))),
            .notify(NotifyPayload(protocolID: .esp, spi: [0, 0, 1, 0], type: .rekeySA)),
            .notify(NotifyPayload(type: .natDetectionSourceIP, data: Array(repeating: 1, count: 20))),
            .delete(.child([ChildSPI(0x1234_5678), ChildSPI(0x0abc_def0)])),
            .delete(.ikeSA),
            .vendorID(Array("IKEProxy".utf8)),
            .trafficSelectorInitiator(TrafficSelectorPayload(selectors: [v4])),
            .trafficSelectorResponder(TrafficSelectorPayload(selectors: [v6, v4])),
            .configuration(ConfigurationPayload(type: 1, attributes: [.init(type: 1, value: []), .init(type: 8, value: [0, 0, 0, 0])])),
            .extensibleAuthentication([1, 1, 0, 5, 1]),
            .unknown(UnknownPayload(type: PayloadType(rawValue: 200), critical: false, body: [1, 2]))
        ]
        let message = IKEMessage(
            header: IKEHeader(
                spiInitiator: IKESPI(1), spiResponder: IKESPI(2), nextPayload: .none,
                exchangeType: .informational, flags: [.initiator], messageID: 7),
            payloads: payloads)
        let bytes = message.encode()
        var decoded = try IKEMessage.decode(bytes)
        XCTAssertEqual(decoded.payloads, payloads)
        XCTAssertEqual(decoded.encode(), bytes)
        decoded.header.length = 0
        XCTAssertEqual(decoded.header.messageID, 7)
    }

    func testUnknownCriticalPayloadIsATypedError() throws {
        var bytes = IKEMessage(
            header: IKEHeader(
                spiInitiator: IKESPI(1), spiResponder: .zero, nextPayload: .none, exchangeType: .ikeSAInit,
                flags: [.initiator], messageID: 0),
            payloads: [.unknown(UnknownPayload(type: PayloadType(rawValue: 200), critical: true, body: [1]))]
        ).encode()
        XCTAssertThrowsError(try IKEMessage.decode(bytes)) {
            XCTAssertEqual($0 as? IKEDecodingError, .unsupportedCriticalPayload(PayloadType(rawValue: 200)))
            XCTAssertEqual(($0 as? IKEDecodingError)?.notify, .unsupportedCriticalPayload)
        }
        bytes[IKEHeader.size + 1] = 0  // the same payload without the critical bit is skipped
        XCTAssertEqual(try IKEMessage.decode(bytes).payloads.first?.type, PayloadType(rawValue: 200))
    }

    func testSealedMessageOpensAndDetectsTampering() throws {
        for suite in ["aes256gcm16", "aes128-sha256", "chacha20poly1305", "aes256-sha512"] {
            let spec = try ProposalSpec(suite + "-prfsha256-x25519", forIKE: true)
            let encryption = spec.encryption[0]
            let integrity = spec.integrity.first
            let protection = MessageProtection(
                encryption: encryption, integrity: integrity,
                encryptionKey: KeyMaterial(Array(repeating: 1, count: encryption.keyLength)),
                integrityKey: KeyMaterial(Array(repeating: 2, count: integrity?.keyLength ?? 0)))
            let header = IKEHeader(
                spiInitiator: IKESPI(1), spiResponder: IKESPI(2), nextPayload: .none, exchangeType: .informational,
                flags: [.initiator], messageID: 3)
            let inner: [Payload] = [.delete(.child([ChildSPI(0x1000)])), .notify(NotifyPayload(type: .initialContact))]
            var bytes = try ProtectedMessage.seal(header: header, payloads: inner, protection: protection, random: SeededRandom(seed: 9))
            let message = try IKEMessage.decode(bytes)
            XCTAssertEqual(try ProtectedMessage.open(bytes, message: message, protection: protection), inner, suite)
            bytes[bytes.count - 20] ^= 0x01
            XCTAssertThrowsError(try ProtectedMessage.open(bytes, message: try IKEMessage.decode(bytes), protection: protection)) {
                XCTAssertEqual($0 as? IKEDecodingError, .integrityCheckFailed, suite)
            }
        }
    }

    /// Addresses and hex are written octet by octet into the string (they are formatted for every log line):
    /// every octet value, in every position, reads as the plain decimal and hexadecimal forms say.
    func testEveryOctetValueIsWrittenAsItsDecimalAndHexadecimalForm() {
        for value in 0...255 {
            let octet = UInt8(value)
            for position in 0..<4 {
                var bytes: [UInt8] = [192, 0, 2, 1]
                bytes[position] = octet
                let text = IPAddress.v4(bytes).description
                XCTAssertEqual(text, bytes.map { String($0) }.joined(separator: "."))
                XCTAssertEqual(IPAddress(text), IPAddress.v4(bytes))
            }
            XCTAssertEqual([octet, 0xa5].hexString, String(format: "%02x", value) + "a5")
        }
        XCTAssertEqual([UInt8]().hexString, "")
    }

    func testAddressesAndSelectors() {
        XCTAssertEqual(IPAddress("2001:db8::1")?.description, "2001:db8::1")
        XCTAssertEqual(IPAddress("::")?.description, "::")
        XCTAssertNil(IPAddress("1.2.3"))
        // Found by fuzzing (configuration-text): Swift's integer parsing takes a sign, the address parser must not.
        XCTAssertNil(IPAddress("::+0"))
        XCTAssertNil(IPAddress("+1.2.3.4"))
        XCTAssertNil(IPAddress("1.2.3.-0"))
        XCTAssertNil(IPAddress("2001:::1"))
        let wide = TrafficSelector(cidr: "10.0.0.0/8")!
        let narrow = TrafficSelector(cidr: "10.1.2.0/24", ipProtocol: 17)!
        XCTAssertEqual(wide.intersection(narrow), narrow)
        XCTAssertTrue(wide.contains(narrow))
        XCTAssertNil(TrafficSelector(cidr: "192.168.0.0/16")!.intersection(narrow))
        XCTAssertNil(TrafficSelector(cidr: "10.0.0.0/33"))
    }
}
