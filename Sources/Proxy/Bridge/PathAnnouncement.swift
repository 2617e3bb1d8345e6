import IKEv2
import Packets

/// What a daemon that takes over from the other of a pair sends so that the switches on both segments learn the
/// new path at once, instead of sending frames toward the dead one until their tables age (minutes): for every
/// host it knows, a gratuitous ARP (RFC 5227 section 2.4, an ARP request for the host's own address) or an
/// unsolicited neighbour advertisement (RFC 4861 section 7.2.6, to all nodes, override flag set) from that host's
/// MAC address, out of the port facing the *other* segment, where the switch must learn that the host is now
/// reached through this daemon.
public enum PathAnnouncement {
    public static func frames(for stations: [IPAddress: Station]) -> [(side: LinkSide, frame: [UInt8])] {
        stations.sorted { $0.key.description < $1.key.description }.map { address, station in
            let out: LinkSide = station.side == .internet ? .terminal : .internet
            if address.isIPv6 {
                let allNodes: [UInt8] = [0xff, 0x02] + Array(repeating: 0, count: 13) + [1]
                var icmp: [UInt8] = [NeighborSolicitation.advertisementType, 0, 0, 0, 0x20, 0, 0, 0]  // O, not S
                icmp += address.bytes
                icmp += [2, 1] + station.mac.octets  // target link-layer address option
                let packet = NeighborSolicitation.packet(source: address.bytes, destination: allNodes, icmp: icmp)
                return (
                    out,
                    EthernetFrameView.build(
                        destination: MACAddress([0x33, 0x33, 0, 0, 0, 1]), source: station.mac, vlanIDs: station.vlanIDs,
                        etherType: EtherType.ipv6, payload: packet)
                )
            }
            let arp = ARPPacket(
                operation: .request, senderMAC: station.mac, senderIP: address.bytes, targetMAC: MACAddress([0, 0, 0, 0, 0, 0]),
                targetIP: address.bytes)
            return (
                out,
                EthernetFrameView.build(
                    destination: MACAddress.broadcast, source: station.mac, vlanIDs: station.vlanIDs, etherType: EtherType.arp,
                    payload: arp.encode())
            )
        }
    }
}
