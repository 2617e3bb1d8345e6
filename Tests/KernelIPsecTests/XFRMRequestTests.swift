import CXFRM
import ESP
import IKEv2
import XCTest

@testable import KernelIPsec

final class XFRMRequestTests: XCTestCase {
    static func sa(
        spi: UInt32 = 0x1234_5678, direction: ESPDirection = .outbound,
        suite: ChildCipherSuite = .init(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: false),
        mode: ChildMode = .tunnel, encapsulated: Bool = true, source: [TrafficSelector]? = nil, destination: [TrafficSelector]? = nil
    ) -> SecurityAssociationParameters {
        let terminal = IPAddress("192.0.2.2")!
        let peer = IPAddress("192.0.2.1")!
        let outbound = direction == .outbound
        return SecurityAssociationParameters(
            spi: ChildSPI(spi), direction: direction, suite: suite,
            encryptionKey: KeyMaterial([UInt8](repeating: 0xab, count: suite.encryption.keyLength)),
            integrityKey: KeyMaterial([UInt8](repeating: 0xcd, count: suite.integrity?.keyLength ?? 0)), mode: mode,
            tunnelSource: outbound ? terminal : peer, tunnelDestination: outbound ? peer : terminal,
            encapsulation: encapsulated ? UDPEncapsulation() : nil,
            sourceSelectors: source ?? [TrafficSelector(cidr: outbound ? "192.0.2.2/32" : "192.0.2.1/32")!],
            destinationSelectors: destination ?? [TrafficSelector(cidr: outbound ? "192.0.2.1/32" : "192.0.2.2/32")!],
            lifetime: ESPLifetime(softBytes: 1000, hardBytes: 2000, softSeconds: 50, hardSeconds: 60))
    }

    func testStructuresHaveTheKernelsSizes() {
        // The x86-64 and arm64 ABI of <linux/xfrm.h>: a header that disagreed would make every request garbage.
        XCTAssertEqual(MemoryLayout<xfrm_selector>.size, 56)
        XCTAssertEqual(MemoryLayout<xfrm_usersa_info>.size, 224)
        XCTAssertEqual(MemoryLayout<xfrm_userpolicy_info>.size, 168)
        XCTAssertEqual(MemoryLayout<xfrm_user_tmpl>.size, 64)
        XCTAssertEqual(MemoryLayout<xfrm_usersa_id>.size, 24)
    }

    func testAddSACarriesSPIAddressesLifetimesAndAEADKey() throws {
        let message = try XFRMRequest.addSA(Self.sa(), reqid: 77, sequence: 9)
        XCTAssertEqual(message.type, 0x10)
        XCTAssertEqual(message.flags, 0x1 | 0x4 | 0x200 | 0x400, "request, acknowledge, exclusive, create")
        let bytes = message.bytes
        XCTAssertEqual(Int(bytes.readHostUInt32(at: 0)), bytes.count, "the header's length is the whole message")
        let info = try XCTUnwrap(KernelStructure.read(xfrm_usersa_info.self, from: message.payload, zero: xfrm_usersa_info()))
        XCTAssertEqual(UInt32(bigEndian: info.id.spi), 0x1234_5678)
        XCTAssertEqual(info.id.proto, 50)
        XCTAssertEqual(info.family, 2)
        XCTAssertEqual(info.mode, 1, "tunnel")
        XCTAssertEqual(info.reqid, 77)
        XCTAssertEqual(info.lft.soft_byte_limit, 1000)
        XCTAssertEqual(info.lft.hard_byte_limit, 2000)
        XCTAssertEqual(info.lft.soft_packet_limit, UInt64.max, "no packet limit: XFRM_INF")
        XCTAssertEqual(info.lft.hard_add_expires_seconds, 60)
        XCTAssertEqual(XFRMNotification.address(info.id.daddr, family: 2), IPAddress("192.0.2.1"))
        XCTAssertEqual(XFRMNotification.address(info.saddr, family: 2), IPAddress("192.0.2.2"))
        let attributes = NetlinkAttribute.parse(message.payload, from: MemoryLayout<xfrm_usersa_info>.size)
        XCTAssertEqual(attributes.map(\.type), [18, 4, 23], "AEAD, UDP encapsulation, replay state")
        let aead = attributes[0].value
        XCTAssertEqual(String(decoding: aead.prefix(while: { $0 != 0 }), as: UTF8.self), "rfc4106(gcm(aes))")
        XCTAssertEqual(aead.readHostUInt32(at: 64), 288, "256-bit key and the 32-bit salt")
        XCTAssertEqual(aead.readHostUInt32(at: 68), 128, "16-octet ICV")
        XCTAssertEqual(Array(aead.suffix(36)), [UInt8](repeating: 0xab, count: 36))
        let encapsulation = try XCTUnwrap(KernelStructure.read(xfrm_encap_tmpl.self, from: attributes[1].value, zero: xfrm_encap_tmpl()))
        XCTAssertEqual(encapsulation.encap_type, 2)
        XCTAssertEqual(UInt16(bigEndian: encapsulation.encap_dport), 4500)
        XCTAssertEqual(attributes[2].value.readHostUInt32(at: 20), 128, "a window even for sending: the kernel refuses an ESN SA without one")
    }

    func testInboundSAHasAReplayWindowAndESNFlag() throws {
        let suite = ChildCipherSuite(encryption: .chacha20Poly1305, integrity: nil, group: nil, extendedSequenceNumbers: true)
        let message = try XFRMRequest.addSA(Self.sa(direction: .inbound, suite: suite, encapsulated: false), reqid: 1, sequence: 1)
        let info = try XCTUnwrap(KernelStructure.read(xfrm_usersa_info.self, from: message.payload, zero: xfrm_usersa_info()))
        XCTAssertEqual(info.flags & 128, 128, "XFRM_STATE_ESN")
        let attributes = NetlinkAttribute.parse(message.payload, from: MemoryLayout<xfrm_usersa_info>.size)
        XCTAssertEqual(attributes.map(\.type), [18, 23], "no encapsulation attribute for plain ESP")
        XCTAssertEqual(String(decoding: attributes[0].value.prefix(while: { $0 != 0 }), as: UTF8.self), "rfc7539esp(chacha20,poly1305)")
        XCTAssertEqual(attributes[1].value.readHostUInt32(at: 0), 4, "bitmap of 4 words")
        XCTAssertEqual(attributes[1].value.readHostUInt32(at: 20), 128, "a 128-packet window")
    }

    func testOutboundSAHandedAgainContinuesItsSequenceNumbers() throws {
        var parameters = Self.sa()
        parameters.sequenceStart = 0x1_0000_0005
        let message = try XFRMRequest.addSA(parameters, reqid: 1, sequence: 1)
        let replay = NetlinkAttribute.parse(message.payload, from: MemoryLayout<xfrm_usersa_info>.size).first { $0.type == 23 }
        XCTAssertEqual(replay?.value.readHostUInt32(at: 4), 5, "low half of the last sequence number used")
        XCTAssertEqual(replay?.value.readHostUInt32(at: 12), 1, "high half")
    }

    func testCBCWithHMACIsCryptAndTruncatedAuthentication() throws {
        let suite = ChildCipherSuite(encryption: .aesCBC(keyBits: 128), integrity: .hmacSHA384_192, group: nil, extendedSequenceNumbers: false)
        let message = try XFRMRequest.addSA(Self.sa(suite: suite), reqid: 1, sequence: 1)
        let attributes = NetlinkAttribute.parse(message.payload, from: MemoryLayout<xfrm_usersa_info>.size)
        XCTAssertEqual(attributes.map(\.type).prefix(2), [2, 20])
        XCTAssertEqual(String(decoding: attributes[0].value.prefix(while: { $0 != 0 }), as: UTF8.self), "cbc(aes)")
        XCTAssertEqual(attributes[0].value.readHostUInt32(at: 64), 128)
        XCTAssertEqual(String(decoding: attributes[1].value.prefix(while: { $0 != 0 }), as: UTF8.self), "hmac(sha384)")
        XCTAssertEqual(attributes[1].value.readHostUInt32(at: 64), 384, "48-octet key")
        XCTAssertEqual(attributes[1].value.readHostUInt32(at: 68), 192, "truncated to 192 bits (RFC 4868)")
    }

    func testWrongKeyLengthIsRefusedWithTheReason() {
        var parameters = Self.sa()
        parameters.encryptionKey = KeyMaterial([1, 2, 3])
        XCTAssertThrowsError(try XFRMRequest.addSA(parameters, reqid: 1, sequence: 1)) { error in
            XCTAssertEqual("\(error)", "AES_GCM_16_256 needs 36 key octets, got 3")
        }
    }

    func testPolicyCarriesSelectorDirectionAndTunnelTemplate() throws {
        let selector = try XCTUnwrap(
            KernelSelector.covering(source: [TrafficSelector(cidr: "10.2.0.2/32")!], destination: [TrafficSelector(cidr: "10.1.0.0/24")!]).first)
        let message = XFRMRequest.setPolicy(
            selector, direction: .outbound, reqid: 42, tunnel: (IPAddress("192.0.2.2")!, IPAddress("192.0.2.1")!), sequence: 3)
        XCTAssertEqual(message.type, 0x19)
        let info = try XCTUnwrap(KernelStructure.read(xfrm_userpolicy_info.self, from: message.payload, zero: xfrm_userpolicy_info()))
        XCTAssertEqual(info.dir, 1)
        XCTAssertEqual(info.sel.prefixlen_s, 32)
        XCTAssertEqual(info.sel.prefixlen_d, 24)
        XCTAssertEqual(info.sel.family, 2)
        let template = try XCTUnwrap(
            KernelStructure.read(
                xfrm_user_tmpl.self, from: NetlinkAttribute.parse(message.payload, from: MemoryLayout<xfrm_userpolicy_info>.size)[0].value,
                zero: xfrm_user_tmpl()))
        XCTAssertEqual(template.reqid, 42)
        XCTAssertEqual(template.mode, 1)
        XCTAssertEqual(template.id.proto, 50)
        XCTAssertEqual(XFRMNotification.address(template.id.daddr, family: 2), IPAddress("192.0.2.1"))
    }

    func testNarrowerSelectorsGetPrecedence() throws {
        let host = try KernelSelector.covering(
            source: [TrafficSelector(cidr: "10.2.0.2/32")!], destination: [TrafficSelector(cidr: "10.1.0.1/32", ipProtocol: 6)!])
        let subnet = try KernelSelector.covering(
            source: [TrafficSelector(cidr: "10.2.0.0/24")!], destination: [TrafficSelector(cidr: "10.1.0.0/24")!])
        XCTAssertLessThan(XFRMRequest.priority(of: host[0]), XFRMRequest.priority(of: subnet[0]))
        let six = try KernelSelector.covering(
            source: [TrafficSelector(cidr: "2001:db8::2/128")!], destination: [TrafficSelector(cidr: "2001:db8::1/128")!])
        XCTAssertLessThan(XFRMRequest.priority(of: six[0]), 100_000, "two /128 prefixes do not overflow")
    }
}
