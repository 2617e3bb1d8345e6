import IKEv2
import Packets

/// Tunables of the proxy core.
public struct ProxySettings: Sendable {
    /// Source of key-delivery datagrams: the proxy owns no address, these are only labels on the link.
    public var keyDeliverySourceIPv4 = IPAddress("169.254.0.1")!
    public var keyDeliverySourceIPv6 = IPAddress("fe80::1")!
    public var keyDeliveryPort: UInt16 = WellKnownPort.keyDelivery
    /// A stored SA is handed again to a terminal that asks for it at most this often, per terminal and peer.
    public var reuseInterval: Double = 1
    /// After a negotiation for a terminal and a peer failed, start requests for them wait this long, so that
    /// a terminal that keeps sending does not make an IKE exchange of every packet.
    public var retryAfterFailure: Double = 10
    /// At most this many negotiations run at once in one terminal's name; start requests beyond it are dropped
    /// and counted, so that a terminal (or a host on its link posing as one) cannot make the proxy start IKE
    /// with every address a broad protect rule covers.
    public var maxNegotiationsPerTerminal = 16
    /// And at most this many at once in all, whichever terminals they are for.
    public var maxNegotiations = 256
    /// Seconds an answer to a peer's request that made a CHILD SA waits for the terminal to acknowledge the new
    /// inbound SA (`AnswersAwaitingKeys`) before it is sent anyway.
    public var answerHoldLimit: Double = 1
    public init() {}
}
