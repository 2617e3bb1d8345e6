/// Simultaneous rekeying (RFC 7296 sections 2.8.1 and 2.8.2): when both ends rekey the same SA at the
/// same moment, two replacements are made. Both ends must agree, without talking, on which one goes:
/// the one made by the exchange that carried the lowest of the four nonces, closed by the end that
/// started that exchange. The end whose replacement survives deletes the SA both replaced.

/// The peer's rekey of an SA we were rekeying ourselves: its nonces and what it made, kept until our
/// own exchange ends and the tie can be broken.
struct PeerRekeyRecord {
    /// Ni and Nr of the peer's exchange.
    var nonces: [Nonce]
    /// Our inbound SPI of the CHILD SA the peer's exchange made (CHILD SA rekey).
    var childReplacement: ChildSPI?
    /// Our SPI of the IKE SA the peer's exchange made (IKE SA rekey).
    var ikeReplacement: IKESPI?
}

public enum RekeyCollision {
    /// Whether the SA our exchange made is the redundant one: the lowest of the four nonces is in our
    /// exchange. Nonces compare octet by octet, and a nonce that is a prefix of another is the lower.
    public static func ourReplacementIsRedundant(ourNonces: [Nonce], peerNonces: [Nonce]) -> Bool {
        let lowest = { (nonces: [Nonce]) in nonces.min() ?? Nonce([]) }
        return lowest(ourNonces) < lowest(peerNonces)
    }
}

/// Our rekey of an IKE SA and the peer's that crossed it (RFC 7296 section 2.8.2), kept on the SA being rekeyed.
struct IKESARekeyState {
    /// Our rekey request is queued or in flight: no second one is started.
    var oursPending = false
    /// The peer's rekey of this IKE SA while ours was in flight; kept until ours is answered.
    var crossedBy: PeerRekeyRecord?
}
