import KeyDelivery

/// What the terminal agent counts; the raw value is the name in `TerminalAgent.counters`, printed when the
/// agent stops. Key-delivery rejections are counted as `key_delivery_rejected_` + the rejection.
public enum TerminalAgentCounter: Hashable, Sendable {
    case acquiresSent
    case ikeOnTerminal
    case kernelAcquires
    case keyDeliveryDuplicates
    case keyDeliveryDuplicatesUnanswered
    case keyDeliveryUnexpected
    case natKeepalivesReceived
    case passedWithoutSA
    case plainESPReceived
    case saAdded
    case saDeleted
    case saInstallFailed
    case staleDeleteIgnored
    case staleFlushLimited
    case tunLinkScopeIgnored
    case tunMalformed
    case keyDeliveryRejected(KeyDeliveryRejection)

    public var name: String {
        switch self {
        case .acquiresSent: "acquires_sent"
        case .ikeOnTerminal: "ike_on_terminal"
        case .kernelAcquires: "kernel_acquires"
        case .keyDeliveryDuplicates: "key_delivery_duplicates"
        case .keyDeliveryDuplicatesUnanswered: "key_delivery_duplicates_unanswered"
        case .keyDeliveryUnexpected: "key_delivery_unexpected"
        case .natKeepalivesReceived: "nat_keepalives_received"
        case .passedWithoutSA: "passed_without_sa"
        case .plainESPReceived: "plain_esp_received"
        case .saAdded: "sa_added"
        case .saDeleted: "sa_deleted"
        case .saInstallFailed: "sa_install_failed"
        case .staleDeleteIgnored: "stale_delete_ignored"
        case .staleFlushLimited: "stale_flush_limited"
        case .tunLinkScopeIgnored: "tun_link_scope_ignored"
        case .tunMalformed: "tun_malformed"
        case .keyDeliveryRejected(let reason): "key_delivery_rejected_" + reason.rawValue
        }
    }
}
