import KeyDelivery

/// Why the proxy did not pass a packet (or a frame) on. Each is counted as `drop_` + its raw value, the
/// name the daemon's `ikeproxy_drops_total{reason=...}` metric carries.
public enum PacketDropReason: String, Sendable, CaseIterable {
    case addressedToProxyPort = "addressed_to_proxy_port"
    /// A frame whose source, or whose ARP or neighbour discovery sender, is the terminal port's own MAC: looped
    /// back or forged. Learning from it would make the proxy speak for a terminal with its own MAC on the
    /// Internet side (found by the ethernet-bridge fuzz target).
    case fromProxyPortMAC = "from_proxy_port_mac"
    case arpForKeyDeliveryAddressFromInternet = "arp_for_key_delivery_address_from_internet"
    case espOfUnknownSA = "esp_of_unknown_sa"
    case ikeForUnregisteredTerminal = "ike_for_unregistered_terminal"
    case ikeFromTerminal = "ike_from_terminal"
    case ikeWithoutProtectPolicy = "ike_without_protect_policy"
    case keyDeliveryForged = "key_delivery_forged"
    case keyDeliveryFromInternet = "key_delivery_from_internet"
    case keyDeliveryFromUnknownTerminal = "key_delivery_from_unknown_terminal"
    case keyDeliveryMalformed = "key_delivery_malformed"
    case keyDeliveryReflected = "key_delivery_reflected"
    case keyDeliveryReplayed = "key_delivery_replayed"
    case keyDeliveryStale = "key_delivery_stale"
    case keyDeliveryWrongTerminal = "key_delivery_wrong_terminal"
    case malformed
    case malformedFrame = "malformed_frame"
    case malformedKeyDelivery = "malformed_key_delivery"
    case ndForKeyDeliveryAddressFromInternet = "nd_for_key_delivery_address_from_internet"
    case newNegotiationRefused = "new_negotiation_refused"
    case noCertificateForTerminal = "no_certificate_for_terminal"
    case noLinkAddress = "no_link_address"
    case plaintextOfProtectedFlow = "plaintext_of_protected_flow"
    case policyDiscard = "policy_discard"
    case startRequestFromUnregisteredTerminal = "start_request_from_unregistered_terminal"
    case startRequestOverNegotiationLimit = "start_request_over_negotiation_limit"
    case startRequestWithoutProtectPolicy = "start_request_without_protect_policy"
    case unframeablePacket = "unframeable_packet"

    /// A key-delivery datagram from a terminal that the channel refused, by why.
    public init(_ rejection: KeyDeliveryRejection) {
        switch rejection {
        case .malformed: self = .keyDeliveryMalformed
        case .wrongTerminal: self = .keyDeliveryWrongTerminal
        case .reflected: self = .keyDeliveryReflected
        case .forged: self = .keyDeliveryForged
        case .replayed: self = .keyDeliveryReplayed
        case .stale: self = .keyDeliveryStale
        }
    }

    /// The name it is counted under.
    public var counterName: String { "drop_" + rawValue }
}
