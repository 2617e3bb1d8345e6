import Foundation
import IKEv2
import Packets

@testable import ESP

func hex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = text.filter { !$0.isWhitespace }.makeIterator()
    while let a = chars.next(), let b = chars.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

let gcm128 = ChildCipherSuite(encryption: .aesGCM16(keyBits: 128), integrity: nil, group: nil, extendedSequenceNumbers: false)
let gcm256 = ChildCipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: false)
let chacha = ChildCipherSuite(encryption: .chacha20Poly1305, integrity: nil, group: nil, extendedSequenceNumbers: false)
let cbc128 = ChildCipherSuite(encryption: .aesCBC(keyBits: 128), integrity: .hmacSHA256_128, group: nil, extendedSequenceNumbers: false)
let cbc256 = ChildCipherSuite(encryption: .aesCBC(keyBits: 256), integrity: .hmacSHA256_128, group: nil, extendedSequenceNumbers: false)
let allSuites = [gcm128, gcm256, chacha, cbc128, cbc256]

/// A matching outbound/inbound pair, as the two ends of one SA would hold it.
func saPair(
    suite: ChildCipherSuite, mode: ChildMode = .tunnel, ipv6Outer: Bool = false, encapsulated: Bool = true,
    spi: UInt32 = 0x1000_0001, lifetime: ESPLifetime = ESPLifetime(),
    sourceSelectors: [TrafficSelector]? = nil, destinationSelectors: [TrafficSelector]? = nil,
    startingSequence: UInt64 = 0
) throws -> (OutboundSecurityAssociation, InboundSecurityAssociation) {
    let encryptionKey = KeyMaterial((0..<suite.encryption.keyLength).map { UInt8($0 &* 7 &+ 3) })
    let integrityKey = KeyMaterial((0..<(suite.integrity?.keyLength ?? 0)).map { UInt8($0 &* 5 &+ 1) })
    let local = IPAddress(ipv6Outer ? "2001:db8::2" : "192.0.2.2")!
    let remote = IPAddress(ipv6Outer ? "2001:db8::1" : "192.0.2.1")!
    let anyV4 = TrafficSelector(cidr: "0.0.0.0/0")!
    let anyV6 = TrafficSelector(cidr: "::/0")!
    let parameters = SecurityAssociationParameters(
        spi: ChildSPI(spi), direction: .outbound, suite: suite, encryptionKey: encryptionKey, integrityKey: integrityKey,
        mode: mode, tunnelSource: local, tunnelDestination: remote, encapsulation: encapsulated ? UDPEncapsulation() : nil,
        sourceSelectors: sourceSelectors ?? [anyV4, anyV6], destinationSelectors: destinationSelectors ?? [anyV4, anyV6],
        lifetime: lifetime)
    var inbound = parameters
    inbound.direction = .inbound
    inbound.tunnelSource = local
    inbound.tunnelDestination = remote
    return (try OutboundSecurityAssociation(parameters, startingSequence: startingSequence), try InboundSecurityAssociation(inbound))
}

/// An IPv4 or IPv6 UDP packet with a valid header, for use as inner traffic.
func udpPacket(ipv6: Bool = false, payloadLength: Int = 64, sourcePort: UInt16 = 40000, destinationPort: UInt16 = 7) -> [UInt8] {
    let source = ipv6 ? IPAddress("2001:db8:2::2")!.bytes : [10, 2, 0, 2]
    let destination = ipv6 ? IPAddress("2001:db8:1::1")!.bytes : [10, 1, 0, 1]
    var udp: [UInt8] = [
        UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xff),
        UInt8((8 + payloadLength) >> 8), UInt8((8 + payloadLength) & 0xff), 0, 0
    ]
    udp += (0..<payloadLength).map { UInt8($0 & 0xff) }
    var packet: [UInt8] = []
    IPHeaderBuilder.appendIP(
        to: &packet, source: source, destination: destination, protocolNumber: IPProtocolNumber.udp,
        payloadLength: udp.count)
    return packet + udp
}
