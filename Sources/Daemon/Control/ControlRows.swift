import Foundation

// The rows `ikeproxy terminals`, `ikeproxy sas`, `ikeproxy profiles` and `ikeproxy status` print, as the control socket and the
// management API send them: the schemas Terminal, SA and Status of docs/openapi.yaml, field for field.

/// A value that is written as JSON null when absent, as the OpenAPI document's nullable fields are (an
/// optional property would be left out instead).
struct Nullable<Value: Encodable>: Encodable {
    var value: Value?
    init(_ value: Value?) { self.value = value }
    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
}

/// A host the daemon knows of: discovered on the terminal link, enrolled, or both (schema Terminal).
struct TerminalRow: Encodable {
    var mac: Nullable<String>
    var ipv4: [String]
    var ipv6: [String]
    var status: Status
    var terminalID: Nullable<UInt64>
    var learntFrom: [String]
    var lastSeenSecondsAgo: Nullable<Int>
    var port: Nullable<String>
    var sas = 0
    var keyDeliveryUnacknowledged = Nullable<Int>(nil)

    enum Status: String, Encodable {
        case registered, unenrolled, pending, removed
        case outsidePrefixes = "outside prefixes"
    }

    var addresses: [String] { ipv4 + ipv6 }

    enum CodingKeys: String, CodingKey {
        case mac, ipv4, ipv6, status, sas, port
        case terminalID = "terminal_id"
        case learntFrom = "learnt_from"
        case lastSeenSecondsAgo = "last_seen_seconds_ago"
        case keyDeliveryUnacknowledged = "key_delivery_unacknowledged"
    }
}

/// A CHILD SA the proxy holds for a terminal (schema SA).
struct SARow: Encodable {
    var terminal: String
    var peer: String
    var connection: String
    var child: String
    var spiIn: String
    var spiOut: String
    var ageSeconds: Int
    var cipherSuite: String
    /// Every key exchange of the IKE SA the CHILD SA came from, in order: its group, then RFC 9370's additional
    /// ones (the CHILD SA's own, with PFS, are in `cipherSuite`).
    var ikeKeyExchanges: [String]
    /// The post-quantum preshared key in that IKE SA's keys (RFC 8784); nil without one.
    var ppkID: Nullable<String>
    var mode: String
    var udpEncapsulation: Bool
    var localSelectors: [String]
    var remoteSelectors: [String]
    var expiresInSeconds: Nullable<Int>
    var rekeyInSeconds: Nullable<Int>
    var packetsIn: Nullable<UInt64>
    var octetsIn: Nullable<UInt64>
    var packetsOut: Nullable<UInt64>
    var octetsOut: Nullable<UInt64>
    var usageReportedSecondsAgo: Nullable<Int>

    enum CodingKeys: String, CodingKey {
        case terminal, peer, connection, child, mode
        case spiIn = "spi_in"
        case spiOut = "spi_out"
        case ageSeconds = "age_seconds"
        case cipherSuite = "cipher_suite"
        case ikeKeyExchanges = "ike_key_exchanges"
        case ppkID = "ppk_id"
        case udpEncapsulation = "udp_encapsulation"
        case localSelectors = "local_selectors"
        case remoteSelectors = "remote_selectors"
        case expiresInSeconds = "expires_in_seconds"
        case rekeyInSeconds = "rekey_in_seconds"
        case packetsIn = "packets_in"
        case octetsIn = "octets_in"
        case packetsOut = "packets_out"
        case octetsOut = "octets_out"
        case usageReportedSecondsAgo = "usage_reported_seconds_ago"
    }
}

/// The daemon at a glance (schema Status).
struct StatusRow: Encodable {
    struct Interfaces: Encodable {
        var internet: String
        var terminal: String
        var terminalPorts: [String]
        enum CodingKeys: String, CodingKey {
            case internet, terminal
            case terminalPorts = "terminal_ports"
        }
    }
    var uptimeSeconds: Int
    var interfaces: Interfaces
    var dataPath: [String: Int]
    var proxy: [String: Int]
    var bridge: [String: Int]
    var engine: [String: Int]
    var sas: Int
    var negotiating: Bool
    var ikeSAs: Int
    var negotiationsInFlight: Int
    /// Whether the token (or key file) that seals the store's secrets is there; null without a store.
    var secretsAvailable: Nullable<Bool>
    var recentFailures: [FailureRow]
    /// A daemon of a pair: its role and the lease; absent for a daemon alone.
    var highAvailability: HighAvailabilityRow?

    enum CodingKeys: String, CodingKey {
        case interfaces, proxy, bridge, engine, sas, negotiating
        case highAvailability = "high_availability"
        case uptimeSeconds = "uptime_seconds"
        case dataPath = "data_path"
        case ikeSAs = "ike_sas"
        case negotiationsInFlight = "negotiations_in_flight"
        case secretsAvailable = "secrets_available"
        case recentFailures = "recent_failures"
    }
}

/// The pair's part of `ikeproxy status` (schema Status, high_availability).
struct HighAvailabilityRow: Encodable {
    var node: String
    var role: String
    var leaseHolder: String?
    var leaseAgeSeconds: Double?
    var fencing: Int64?
    var takeovers: Int
    enum CodingKeys: String, CodingKey {
        case node, role, fencing, takeovers
        case leaseHolder = "lease_holder"
        case leaseAgeSeconds = "lease_age_seconds"
    }
}

/// A failed negotiation (schema Failure).
struct FailureRow: Encodable {
    var secondsAgo: Int
    var kind: String
    var connection: String
    var peer: String
    var reason: String
    enum CodingKeys: String, CodingKey {
        case kind, connection, peer, reason
        case secondsAgo = "seconds_ago"
    }
}

/// A terminal's traffic over the last hour (schema Traffic): running totals of octets each way, oldest first.
struct TrafficRow: Encodable {
    struct Sample: Encodable {
        var secondsAgo: Int
        var octetsIn: UInt64
        var octetsOut: UInt64
        enum CodingKeys: String, CodingKey {
            case secondsAgo = "seconds_ago"
            case octetsIn = "octets_in"
            case octetsOut = "octets_out"
        }
    }
    var terminal: String
    var samples: [Sample]
}

/// A protection profile as the API lists it (schema Profile).
struct ProfileRow: Encodable {
    var name: String
    var ikeProposals: [String]
    var espProposals: [String]
    var mode: String
    var udpEncapsulation: String
    var localAuthentication: String
    var peerAuthentication: String
    var peerIdentity: String
    var childless: String
    /// Positions of the policy rules that name the profile.
    var rules: [Int]
    var rekeyTime: Nullable<Double>
    var ikeRekeyTime: Nullable<Double>
    var randTime: Double
    var ikeRandTime: Double
    var hardLifetime: Nullable<UInt32>
    var livenessInterval: Nullable<Double>

    enum CodingKeys: String, CodingKey {
        case name, mode, childless, rules
        case ikeProposals = "ike_proposals"
        case espProposals = "esp_proposals"
        case udpEncapsulation = "udp_encapsulation"
        case localAuthentication = "local_authentication"
        case peerAuthentication = "peer_authentication"
        case peerIdentity = "peer_identity"
        case rekeyTime = "rekey_time"
        case ikeRekeyTime = "ike_rekey_time"
        case randTime = "rand_time"
        case ikeRandTime = "ike_rand_time"
        case hardLifetime = "hard_lifetime"
        case livenessInterval = "liveness_interval"
    }
}

/// The policy as the API lists it (schema Policy): the default action and the rules in order, each with its
/// position.
struct PolicyRow: Encodable {
    struct Rule: Encodable {
        var rule: DaemonConfiguration.RuleText
        var position: Int

        enum CodingKeys: String, CodingKey { case position }

        func encode(to encoder: Encoder) throws {
            try rule.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(position, forKey: .position)
        }
    }
    var `default`: String
    var rules: [Rule]
}

/// The audit log's latest entries as the API lists them.
struct AuditRow: Encodable {
    struct Entry: Encodable {
        var time: String
        var who: String
        var action: String
        var detail: String
    }
    var entries: [Entry]
    var total: Int
    var stored: Bool
}

/// A row (or any Encodable) as the JSON object the control socket and `ManagementResponse.json` serialize.
func jsonObject<Value: Encodable>(_ value: Value) -> Any {
    guard let data = try? JSONEncoder().encode(value), let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
        return [String: Any]()
    }
    return object
}
