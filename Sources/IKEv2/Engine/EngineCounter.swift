/// What the engine counts for operators and tests, besides its drops (counted under `DropReason.key`).
/// The raw value is the counter's name in `IKEEngine.counters` and the metric label the daemon publishes.
public enum EngineCounter: String, Sendable, CaseIterable {
    case retransmitTimeout = "retransmit_timeout"
    case natKeepalive = "nat_keepalive"
    case retransmissionWhileCheckingRevocation = "retransmission_while_checking_revocation"
    case retransmittedRequest = "retransmitted_request"
    case requestRetriedWithCookie = "request_retried_with_cookie"
    case messagesFragmented = "messages_fragmented"
    case fragmentsReceived = "fragments_received"
    case rekeyCollisionLost = "rekey_collision_lost"
    case rekeyCollisionWon = "rekey_collision_won"
    case childRefused = "child_refused"
    case ikeRekeyFailed = "ike_rekey_failed"
    /// An IKE_INTERMEDIATE request answered INVALID_SYNTAX (unexpected, or its KE wrong): RFC 9242/9370.
    case intermediateRefused = "intermediate_refused"
    /// IKE_FOLLOWUP_KE requests answered with an error: an unknown link (STATE_NOT_FOUND) or a malformed one.
    case followUpRefused = "follow_up_refused"
    /// IKE_AUTH refused for want of a post-quantum preshared key (RFC 8784): required here and not used by the peer,
    /// or a PPK the peer used that this side does not hold with no NO_PPK_AUTH to fall back to.
    case ppkRefused = "ppk_refused"
    case initialContactRemovedIKESA = "initial_contact_removed_ike_sa"
    case signingFailed = "signing_failed"
    case childlessNotSupportedByPeer = "childless_not_supported_by_peer"
    case authenticationFailed = "authentication_failed"
    case childlessRefused = "childless_refused"
    case revocationChecks = "revocation_checks"
    case revocationGood = "revocation_good"
    case revocationRevoked = "revocation_revoked"
    case revocationUnavailable = "revocation_unavailable"
    case authenticationRefusedByPeer = "authentication_refused_by_peer"
    case noMatchingConnection = "no_matching_connection"
    /// An authenticated request that did not decode, answered INVALID_SYNTAX; its IKE SA is closed (section 2.21.3).
    case invalidSyntaxSent = "invalid_syntax_sent"
    /// An authenticated SKF fragment discarded for its numbering or its company (RFC 7383 section 2.6.1).
    case fragmentsDiscarded = "fragments_discarded"
    /// IKE_SA_INIT requests left unanswered because error answers were over `initErrorAnswerRate`.
    case answerRateLimited = "answer_rate_limited"
    /// Fragments discarded because keeping them would pass the reassembly bounds (per SA or in all).
    case reassemblyLimit = "reassembly_limit"
    /// The peer answered one of our requests INVALID_SYNTAX; the IKE SA is closed.
    case invalidSyntaxReceived = "invalid_syntax_received"
    /// An IKE_SA_INIT request missing a payload it must carry (answered INVALID_SYNTAX); the same name as the
    /// drop of an undecodable message.
    case malformed
    case cookieSent = "cookie_sent"
    case noProposalChosen = "no_proposal_chosen"
    case invalidKESent = "invalid_ke_sent"
    case invalidKEValue = "invalid_ke_value"
}
