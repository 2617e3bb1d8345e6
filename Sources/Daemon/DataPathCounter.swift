import Proxy

/// What the daemon's data path counts, per port side; the name is the key in `DaemonRunner.portCounters`
/// and in the `data_path` group of `ikeproxy status`.
enum DataPathCounter: Hashable {
    case framesIn(LinkSide)
    case framesForwarded(to: LinkSide)
    case framesBuilt(to: LinkSide)
    case transmitRefused(LinkSide)
    case receiveErrors(LinkSide)
    case truncatedFrameDropped(LinkSide)
    case framesSwitchedBetweenTerminalPorts
    case framesFilteredSameSegment
    case framesFloodedToTerminalPorts
    /// A standby of a pair reads its ports' frames and drops them.
    case framesIgnoredAsStandby(LinkSide)
    /// Times this daemon of a pair became active.
    case takeovers

    var name: String {
        switch self {
        case .framesIn(let side): "frames_in_" + side.rawValue
        case .framesForwarded(let side): "frames_forwarded_to_" + side.rawValue
        case .framesBuilt(let side): "frames_built_to_" + side.rawValue
        case .transmitRefused(let side): "tx_refused_" + side.rawValue
        case .receiveErrors(let side): "rx_errors_" + side.rawValue
        case .truncatedFrameDropped(let side): "drop_truncated_frame_" + side.rawValue
        case .framesSwitchedBetweenTerminalPorts: "frames_switched_between_terminal_ports"
        case .framesFilteredSameSegment: "frames_filtered_same_segment"
        case .framesFloodedToTerminalPorts: "frames_flooded_to_terminal_ports"
        case .framesIgnoredAsStandby(let side): "frames_ignored_as_standby_" + side.rawValue
        case .takeovers: "high_availability_takeovers"
        }
    }
}
