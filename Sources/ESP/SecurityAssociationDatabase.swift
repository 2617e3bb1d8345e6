import IKEv2
import Packets

/// The SAD of a host (RFC 4301 section 4.4.2): inbound SAs found by SPI, outbound SAs by the selectors
/// of the packet to send. With two outbound SAs for one flow (a rekey in progress) the newer one wins, so
/// a replacement takes over as soon as it is installed and the old one can then be deleted.
public struct SecurityAssociationDatabase: Sendable {
    public private(set) var inbound: [ChildSPI: InboundSecurityAssociation] = [:]
    public private(set) var outbound: [OutboundSecurityAssociation] = []
    public private(set) var drops = ESPDropCounters()

    public init() {}

    public mutating func install(inbound sa: InboundSecurityAssociation) { inbound[sa.parameters.spi] = sa }
    public mutating func install(outbound sa: OutboundSecurityAssociation) {
        outbound.removeAll { $0.parameters.spi == sa.parameters.spi && $0.parameters.tunnelDestination == sa.parameters.tunnelDestination }
        outbound.append(sa)
    }

    /// Removes the SA with this SPI in either direction; true when one existed.
    @discardableResult
    public mutating func remove(spi: ChildSPI, direction: ESPDirection) -> Bool {
        switch direction {
        case .inbound: return inbound.removeValue(forKey: spi) != nil
        case .outbound:
            let before = outbound.count
            outbound.removeAll { $0.parameters.spi == spi }
            return outbound.count != before
        }
    }

    public mutating func flush() {
        inbound.removeAll()
        outbound.removeAll()
    }

    public mutating func countDrop(_ reason: ESPDropReason) { drops.count(reason) }

    /// The outbound SA whose selectors cover this packet, newest first; nil when the flow has none.
    public func outboundSA(for packet: [UInt8]) -> OutboundSecurityAssociation? {
        guard let view = try? IPPacketView(packet) else { return nil }
        return outboundSA(for: packet, view: view)
    }

    /// The same, for a packet the caller has already parsed.
    public func outboundSA(for packet: [UInt8], view: IPPacketView) -> OutboundSecurityAssociation? {
        let ports = view.ports(in: packet)
        let source = packet[view.sourceRange]
        let destination = packet[view.destinationRange]
        return outbound.last {
            $0.parameters.covers(
                source: source, destination: destination, ipProtocol: view.upperProtocol,
                ports: ports.map { ($0.source, $0.destination) })
        }
    }

    /// Decapsulates an ESP packet with the inbound SA its SPI names, counting any drop.
    public mutating func decapsulate(_ esp: ArraySlice<UInt8>) -> Result<[UInt8], ESPDropReason> {
        guard esp.count >= 8 else {
            drops.count(.truncated)
            return .failure(.truncated)
        }
        let s = esp.startIndex
        let spi = ChildSPI(bytes: Array(esp[s..<(s + 4)]))
        guard let sa = inbound[spi] else {
            drops.count(.unknownSPI)
            return .failure(.unknownSPI)
        }
        do { return .success(try sa.decapsulate(esp)) } catch {
            drops.count(error)
            return .failure(error)
        }
    }
}
