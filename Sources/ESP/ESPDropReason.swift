/// Why an ESP packet was not sent or not accepted. Every drop is counted under one of these.
public enum ESPDropReason: String, Error, Sendable, CaseIterable {
    case truncated
    case unknownSPI = "unknown_spi"
    case replayed
    case behindWindow = "behind_replay_window"
    case authenticationFailed = "authentication_failed"
    case badPadding = "bad_padding"
    case badNextHeader = "bad_next_header"
    case badInnerPacket = "bad_inner_packet"
    /// A fragment offered for transport mode: only whole datagrams can be protected without a tunnel.
    case fragmentInTransportMode = "fragment_in_transport_mode"
    case selectorMismatch = "selector_mismatch"
    case dummyPacket = "dummy_packet"
    case sequenceExhausted = "sequence_number_exhausted"
    case hardLifetimeReached = "hard_lifetime_reached"
    case noSecurityAssociation = "no_sa"
}

/// Counts per drop reason, for logs and metrics.
public struct ESPDropCounters: Sendable, Equatable {
    public private(set) var counts: [ESPDropReason: UInt64] = [:]
    public init() {}
    public mutating func count(_ reason: ESPDropReason) { counts[reason, default: 0] += 1 }
    public subscript(_ reason: ESPDropReason) -> UInt64 { counts[reason] ?? 0 }
    public var total: UInt64 { counts.values.reduce(0, +) }
}
