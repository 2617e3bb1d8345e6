import ESP
import IKEv2
import KeyDelivery

/// Turns a CHILD SA the engine negotiated in a terminal's name into the two SAD entries the terminal
/// must hold: inbound (peer to terminal) and outbound (terminal to peer), keys and selectors included.
public enum SAHandover {
    public static func parameters(for event: SAEvent, child: ChildSAEventDetails, lifetime: ESPLifetime)
        -> (inbound: SecurityAssociationParameters, outbound: SecurityAssociationParameters)
    {
        let local = event.local
        let remote = event.remote
        // ESP-in-UDP uses the ports the IKE SA ended up on (4500 after NAT-T or forced encapsulation).
        let inbound = SecurityAssociationParameters(
            spi: child.spiInbound, direction: .inbound, suite: child.suite,
            encryptionKey: child.keys.encryptionInbound, integrityKey: child.keys.integrityInbound, mode: child.mode,
            tunnelSource: remote.address, tunnelDestination: local.address,
            encapsulation: child.encapsulated ? UDPEncapsulation(sourcePort: remote.port, destinationPort: local.port) : nil,
            sourceSelectors: child.remoteTrafficSelectors, destinationSelectors: child.localTrafficSelectors, lifetime: lifetime)
        let outbound = SecurityAssociationParameters(
            spi: child.spiOutbound, direction: .outbound, suite: child.suite,
            encryptionKey: child.keys.encryptionOutbound, integrityKey: child.keys.integrityOutbound, mode: child.mode,
            tunnelSource: local.address, tunnelDestination: remote.address,
            encapsulation: child.encapsulated ? UDPEncapsulation(sourcePort: local.port, destinationPort: remote.port) : nil,
            sourceSelectors: child.localTrafficSelectors, destinationSelectors: child.remoteTrafficSelectors, lifetime: lifetime)
        return (inbound, outbound)
    }
}
