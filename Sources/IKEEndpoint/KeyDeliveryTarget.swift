import ConfigurationFiles
import ESP
import Foundation
import IKEv2
import Packets

/// The terminal a connection's CHILD SAs are handed to over the key-delivery channel: the endpoint then
/// negotiates in the terminal's name and the terminal runs the ESP (docs/endpoint.md, "terminal").
public struct KeyDeliveryTarget: Sendable {
    public var terminalID: UInt64
    public var enrollmentKey: KeyMaterial
    public var address: IPAddress
    public var port: UInt16
    /// Our source for key-delivery datagrams; need not be an address this host owns (see `transparent`).
    public var source: IPAddress
    public var sourcePort: UInt16
    /// Hard lifetime handed to the terminal with each SA, in seconds.
    public var hardLifetime: UInt32?
    /// Volume lifetimes handed with each SA (the terminal reports the soft ones; we rekey).
    public var volumeLifetime = ESPLifetime()

    /// What the terminal gets with each SA.
    public var lifetime: ESPLifetime {
        var lifetime = volumeLifetime
        lifetime.hardSeconds = hardLifetime
        return lifetime
    }

    struct File: Decodable {
        var terminal_id: UInt64
        var enrollment_key_hex: String
        var address: String
        var port: UInt16?
        var source: String
        var source_port: UInt16?
        var hard_lifetime: UInt32?
        var rekey_bytes: UInt64?
        var life_bytes: UInt64?
        var rekey_packets: UInt64?
        var life_packets: UInt64?
    }
    struct Root: Decodable {
        struct Connection: Decodable {
            var name: String
            var terminal: File?
        }
        var connections: [Connection]
        var transparent: Bool?
    }

    /// The `terminal` sections of an endpoint configuration, by connection name, and whether IKE sockets
    /// bind transparently (IP_TRANSPARENT) to addresses this host does not own.
    public static func load(data: Data) throws -> (targets: [String: KeyDeliveryTarget], transparent: Bool) {
        let root = try JSONDecoder().decode(Root.self, from: data)
        var targets: [String: KeyDeliveryTarget] = [:]
        for connection in root.connections {
            guard let t = connection.terminal else { continue }
            let at = "connection '\(connection.name)', terminal"
            guard let key = [UInt8](hexString: t.enrollment_key_hex), key.count >= 16 else {
                throw ConfigurationError("\(at): enrollment_key_hex must be at least 16 octets of hexadecimal")
            }
            guard let address = IPAddress(t.address) else { throw ConfigurationError("\(at): address '\(t.address)' is not an IP address") }
            guard let source = IPAddress(t.source), source.isIPv6 == address.isIPv6 else {
                throw ConfigurationError("\(at): source '\(t.source)' is not an address of the terminal's family")
            }
            var target = KeyDeliveryTarget(
                terminalID: t.terminal_id, enrollmentKey: KeyMaterial(key), address: address,
                port: t.port ?? WellKnownPort.keyDelivery, source: source, sourcePort: t.source_port ?? WellKnownPort.keyDelivery,
                hardLifetime: t.hard_lifetime)
            do {
                target.volumeLifetime = try ESPLifetime.volume(
                    rekeyBytes: t.rekey_bytes, lifeBytes: t.life_bytes,
                    rekeyPackets: t.rekey_packets, lifePackets: t.life_packets)
            } catch { throw ConfigurationError("\(at): \(error)") }
            targets[connection.name] = target
        }
        return (targets, root.transparent ?? false)
    }
}
