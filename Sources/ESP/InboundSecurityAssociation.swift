import IKEv2
import Packets

/// The receiving half of an ESP SA (RFC 4303 section 3.4): replay check, integrity check and decryption,
/// padding and next-header checks, and the inner packet checked against the SA's selectors.
public final class InboundSecurityAssociation: @unchecked Sendable {
    public let parameters: SecurityAssociationParameters
    public private(set) var counters = ESPCounters()
    public internal(set) var window: ReplayWindow
    public let createdAt: Double
    let cipher: ESPCipher

    public init(_ parameters: SecurityAssociationParameters, createdAt: Double = 0, replayWindowSize: Int = 4096) throws {
        self.parameters = parameters
        self.createdAt = createdAt
        window = ReplayWindow(size: replayWindowSize)
        cipher = try ESPCipher(
            suite: parameters.suite, encryptionKey: parameters.encryptionKey,
            integrityKey: parameters.integrityKey)
    }

    /// Verifies and decrypts one ESP packet (`esp` starts at the SPI, i.e. after any UDP header) and returns
    /// the IP packet it carried. In transport mode an IP header is rebuilt from the outer addresses, followed
    /// by what ESP protected (IPv6 destination options included); extension headers that preceded ESP were for
    /// the hops and the receiving stack and are not repeated.
    public func decapsulate(_ esp: ArraySlice<UInt8>) throws(ESPDropReason) -> [UInt8] {
        guard esp.count >= 8 + cipher.ivLength + cipher.alignment + cipher.icvLength else { throw .truncated }
        let start = esp.startIndex
        let low = UInt32(esp[start + 4]) << 24 | UInt32(esp[start + 5]) << 16 | UInt32(esp[start + 6]) << 8 | UInt32(esp[start + 7])
        let extended = parameters.suite.extendedSequenceNumbers
        let sequence = extended ? window.inferExtended(low: low) : UInt64(low)
        switch window.check(sequence) {
        case .fresh: break
        case .replayed: throw .replayed
        case .behindWindow: throw .behindWindow
        }
        var plaintext = try cipher.open(esp: esp, spi: parameters.spi.rawValue, sequence: sequence, extended: extended)
        guard plaintext.count >= 2 else { throw .badPadding }
        let nextHeader = plaintext[plaintext.count - 1]
        let padLength = Int(plaintext[plaintext.count - 2])
        guard padLength + 2 <= plaintext.count else { throw .badPadding }
        let payloadEnd = plaintext.count - 2 - padLength
        for index in 0..<padLength where plaintext[payloadEnd + index] != UInt8(index + 1) { throw .badPadding }
        // Authentic: the packet now counts against replay even if its content is then refused.
        window.accept(sequence)
        if nextHeader == IPProtocolNumber.noNextHeader { throw .dummyPacket }

        let packet: [UInt8]
        switch parameters.mode {
        case .tunnel:
            guard nextHeader == IPProtocolNumber.ipv4 || nextHeader == IPProtocolNumber.ipv6 else { throw .badNextHeader }
            plaintext.removeLast(plaintext.count - payloadEnd)
            packet = plaintext
            guard let view = try? IPPacketView(packet),
                view.version == (nextHeader == IPProtocolNumber.ipv4 ? 4 : 6)
            else { throw .badInnerPacket }
            try checkSelectors(view, packet)
        case .transport:
            var rebuilt = [UInt8]()
            rebuilt.reserveCapacity(40 + payloadEnd)
            IPHeaderBuilder.appendIP(
                to: &rebuilt, source: parameters.tunnelSource.bytes,
                destination: parameters.tunnelDestination.bytes, protocolNumber: nextHeader,
                payloadLength: payloadEnd)
            rebuilt.append(contentsOf: plaintext[0..<payloadEnd])
            packet = rebuilt
            if let view = try? IPPacketView(packet) { try checkSelectors(view, packet) }
        }
        counters.packets += 1
        counters.bytes += UInt64(payloadEnd)
        return packet
    }

    private func checkSelectors(_ view: IPPacketView, _ packet: [UInt8]) throws(ESPDropReason) {
        guard
            parameters.covers(
                source: packet[view.sourceRange], destination: packet[view.destinationRange], ipProtocol: view.upperProtocol,
                ports: view.ports(in: packet))
        else { throw .selectorMismatch }
    }

    public func lifetimeState(now: Double) -> LifetimeState {
        parameters.lifetime.state(counters: counters, age: now - createdAt)
    }
}
