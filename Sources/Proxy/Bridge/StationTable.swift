import IKEv2
import Packets

/// Where an IP address sits on the wire: the MAC its frames carry, their VLAN tags, and on which side.
public struct Station: Equatable, Sendable {
    public var mac: MACAddress
    public var vlanIDs: [UInt16]
    public var side: LinkSide
    public init(mac: MACAddress, vlanIDs: [UInt16], side: LinkSide) {
        self.mac = mac
        self.vlanIDs = vlanIDs
        self.side = side
    }
}

/// The link-layer addresses the proxy needs to send in a terminal's name: learnt from the frames that
/// cross it, since it owns no address and runs no ARP of its own. A station seen as a frame's source is
/// trusted over one inferred from the destination MAC another host used for it (a gateway, say).
public struct StationTable: Sendable {
    public private(set) var seen: [IPAddress: Station] = [:]
    public private(set) var inferred: [IPAddress: Station] = [:]
    /// The proxy's own port MAC: never a host's link address. A frame sent to it (or forged from it) says
    /// nothing about where a host is, and learning it would make the proxy speak for a terminal from its own MAC.
    public let proxyMAC: MACAddress?

    public init(proxyMAC: MACAddress? = nil) { self.proxyMAC = proxyMAC }

    /// Learns from one frame that crossed from `side`: its source, and where its sender sends the destination.
    public mutating func learn(from side: LinkSide, ethernet: EthernetFrameView, source: IPAddress?, destination: IPAddress?) {
        if let source, !ethernet.source.isMulticast, ethernet.source != proxyMAC {
            seen[source] = Station(mac: ethernet.source, vlanIDs: ethernet.vlanIDs, side: side)
        }
        if let destination, !ethernet.destination.isMulticast, ethernet.destination != proxyMAC {
            inferred[destination] = Station(mac: ethernet.destination, vlanIDs: ethernet.vlanIDs, side: side == .internet ? .terminal : .internet)
        }
    }

    public mutating func learn(_ address: IPAddress, at station: Station) {
        guard station.mac != proxyMAC else { return }
        seen[address] = station
    }

    public func station(for address: IPAddress) -> Station? { seen[address] ?? inferred[address] }
}
