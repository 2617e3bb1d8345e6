import IKEv2
import Packets

/// An ESP packet ready to leave: the whole outer IP packet, and where the UDP payload (the part a UDP
/// socket sends) and the ESP header begin in it.
public struct ESPOutboundPacket: Sendable {
    public var bytes: [UInt8]
    /// Offset of the ESP header (the SPI): the start of the UDP payload when encapsulated.
    public var espOffset: Int
    public var espBytes: ArraySlice<UInt8> { bytes[espOffset...] }
}

/// The sending half of an ESP SA (RFC 4303 section 3.3): assigns sequence numbers, pads, encrypts and
/// builds the outer headers for tunnel or transport mode, IPv4 or IPv6, with or without UDP encapsulation.
public final class OutboundSecurityAssociation: @unchecked Sendable {
    public let parameters: SecurityAssociationParameters
    public private(set) var counters = ESPCounters()
    /// Last sequence number sent (RFC 4303: the first packet carries 1).
    public private(set) var sequence: UInt64
    public let createdAt: Double
    let cipher: ESPCipher
    private var randomIVs = RandomIVPool()

    public init(_ parameters: SecurityAssociationParameters, createdAt: Double = 0, startingSequence: UInt64? = nil) throws {
        self.parameters = parameters
        self.createdAt = createdAt
        self.sequence = startingSequence ?? parameters.sequenceStart
        cipher = try ESPCipher(
            suite: parameters.suite, encryptionKey: parameters.encryptionKey,
            integrityKey: parameters.integrityKey)
    }

    private var sequenceLimit: UInt64 { parameters.suite.extendedSequenceNumbers ? UInt64.max : UInt64(UInt32.max) }

    /// Protects one IP packet. In tunnel mode `packet` is the whole inner packet; in transport mode its IP
    /// header is replaced by the outer one, IPv4 options and IPv6 hop-by-hop and routing headers stay in front
    /// of ESP, and the rest (final destination options and the upper-layer payload) is encrypted.
    public func encapsulate(_ packet: [UInt8], now: Double? = nil) throws(ESPDropReason) -> ESPOutboundPacket {
        guard sequence < sequenceLimit else { throw .sequenceExhausted }
        // Without a clock reading only the byte and packet limits can be judged.
        if parameters.lifetime.state(counters: counters, age: now.map { $0 - createdAt } ?? 0) == .hard { throw .hardLifetimeReached }

        let payload: ArraySlice<UInt8>
        let nextHeader: UInt8
        var outerExtensions: ArraySlice<UInt8> = []
        var lastOuterHeader: Int?
        var ipv4Options: ArraySlice<UInt8> = []
        switch parameters.mode {
        case .tunnel:
            guard let first = packet.first else { throw .badInnerPacket }
            switch first >> 4 {
            case 4: nextHeader = IPProtocolNumber.ipv4
            case 6: nextHeader = IPProtocolNumber.ipv6
            default: throw .badInnerPacket
            }
            payload = packet[...]
        case .transport:
            guard let view = try? IPPacketView(packet) else { throw .badInnerPacket }
            let layout = try TransportModeLayout(packet, view: view)
            nextHeader = layout.protectedNextHeader
            payload = packet[layout.protectedRange]
            if view.version == 6, parameters.tunnelSource.bytes.count == 16 {
                outerExtensions = packet[layout.outerExtensionHeaders]
                lastOuterHeader = layout.lastOuterHeaderStart.map { $0 - layout.outerExtensionHeaders.lowerBound }
            } else if !layout.outerExtensionHeaders.isEmpty {
                // Hop-by-hop or routing headers cannot ride in an IPv4 outer header.
                throw .badInnerPacket
            } else if view.version == 4, parameters.tunnelSource.bytes.count == 4 {
                // IPv4 options stay in the header, in front of ESP, as the packet's own header would keep them.
                ipv4Options = packet[20..<view.headerLength]
            }
        }

        sequence += 1
        let alignment = cipher.alignment
        let padLength = (alignment - (payload.count + 2) % alignment) % alignment
        var plaintext = [UInt8]()
        plaintext.reserveCapacity(payload.count + padLength + 2)
        plaintext.append(contentsOf: payload)
        for index in 0..<padLength { plaintext.append(UInt8(index + 1)) }
        plaintext.append(UInt8(padLength))
        plaintext.append(nextHeader)

        let espLength = 8 + cipher.ivLength + plaintext.count + cipher.icvLength
        let udpLength = parameters.encapsulation == nil ? 0 : 8
        let source = parameters.tunnelSource.bytes
        let destination = parameters.tunnelDestination.bytes
        var out = [UInt8]()
        out.reserveCapacity(40 + outerExtensions.count + udpLength + espLength)
        let carrier = udpLength == 0 ? IPProtocolNumber.esp : IPProtocolNumber.udp
        if let lastOuterHeader {
            IPHeaderBuilder.appendIPv6(
                to: &out, source: source, destination: destination, nextHeader: packet[6],
                payloadLength: outerExtensions.count + udpLength + espLength)
            let extensionsStart = out.count
            out.append(contentsOf: outerExtensions)
            out[extensionsStart + lastOuterHeader] = carrier
        } else if source.count == 4 {
            IPHeaderBuilder.appendIPv4(
                to: &out, source: source, destination: destination, protocolNumber: carrier,
                payloadLength: udpLength + espLength, options: ipv4Options)
        } else {
            IPHeaderBuilder.appendIP(
                to: &out, source: source, destination: destination, protocolNumber: carrier,
                payloadLength: udpLength + espLength)
        }
        let udpStart = out.count
        if let encapsulation = parameters.encapsulation {
            let length = 8 + espLength
            out.appendBigEndian(encapsulation.sourcePort)
            out.appendBigEndian(encapsulation.destinationPort)
            out.appendBigEndian(UInt16(length))
            out.appendBigEndian(UInt16(0))
        }
        let espStart = out.count
        let spi = parameters.spi.rawValue
        let low = UInt32(truncatingIfNeeded: sequence)
        out.appendBigEndian(spi)
        out.appendBigEndian(low)
        // AEAD: the IV is the sequence number, unique per key, which is all GCM and ChaCha20-Poly1305 require
        // (RFC 4106 section 3.1). CBC needs an unpredictable IV (RFC 3602 section 3).
        let cbcIV = cipher.ivLength == 16 ? randomIVs.next() : []
        cipher.seal(
            plaintext: plaintext, cbcIV: cbcIV, out: &out, headerStart: espStart, spi: spi, sequence: sequence,
            extended: parameters.suite.extendedSequenceNumbers)
        if udpLength > 0 && source.count == 16 {
            // UDP over IPv6 must carry a checksum (RFC 8200 section 8.1).
            let checksum = IPHeaderBuilder.udpChecksum(source: source, destination: destination, udp: out[udpStart...])
            out[udpStart + 6] = UInt8(checksum >> 8)
            out[udpStart + 7] = UInt8(checksum & 0xff)
        }
        counters.packets += 1
        counters.bytes += UInt64(payload.count)
        return ESPOutboundPacket(bytes: out, espOffset: espStart)
    }

    public func lifetimeState(now: Double) -> LifetimeState {
        parameters.lifetime.state(counters: counters, age: now - createdAt)
    }
}

/// Unpredictable 16-octet IVs for CBC, drawn from the system generator 64 at a time so that a packet
/// does not cost a system call.
struct RandomIVPool {
    private var pool: [UInt8] = []
    private var offset = 0

    mutating func next() -> [UInt8] {
        if offset + 16 > pool.count {
            var generator = SystemRandomNumberGenerator()
            pool = []
            pool.reserveCapacity(1024)
            for _ in 0..<128 { pool.appendBigEndian(generator.next() as UInt64) }
            offset = 0
        }
        defer { offset += 16 }
        return Array(pool[offset..<(offset + 16)])
    }
}
