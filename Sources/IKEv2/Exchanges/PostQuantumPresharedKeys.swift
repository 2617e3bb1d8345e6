/// Post-quantum preshared keys in IKE_SA_INIT and IKE_AUTH (RFC 8784 section 3), both roles. USE_PPK in both
/// IKE_SA_INIT messages says both ends would use one; the initiator's IKE_AUTH then names its PPK
/// (PPK_IDENTITY), proves itself with SK_pi mixed with it, and, when the PPK is optional for it, adds the proof
/// without it (NO_PPK_AUTH). A responder that holds the named PPK answers with PPK_IDENTITY and both ends take
/// the mixed SK_d, SK_pi, SK_pr; one that does not, and may go without, checks NO_PPK_AUTH instead and both keep
/// the keys unmixed. Where the PPK is required and not used, IKE_AUTH fails.

/// What a responder does about a PPK with the initiator's IKE_AUTH request.
enum ResponderPPKDecision {
    /// No PPK on either side: the usual IKE_AUTH.
    case none
    /// The initiator named our PPK: its AUTH is checked with, and the IKE SA takes, the mixed keys.
    case use(IKESAKeys, PostQuantumPresharedKey)
    /// The initiator used a PPK we do not hold and may go without: its NO_PPK_AUTH is the AUTH to check.
    case fallBack(AuthenticationPayload, reason: String)
    /// AUTHENTICATION_FAILED, for this reason.
    case refuse(String)
}

extension IKEEngine {
    /// Initiator, before IKE_AUTH: the PPK to use, none, or why the IKE SA cannot go on (ours is required and the
    /// responder did not announce USE_PPK).
    func ppkForOurAuthentication(session: IKESession) -> Result<PostQuantumPresharedKey?, AuthenticationFailure> {
        guard let ppk = session.connection.postQuantumPresharedKey else { return .success(nil) }
        if session.peerAnnouncedPPK { return .success(ppk) }
        guard !ppk.required else {
            return .failure(
                AuthenticationFailure(
                    "connection '\(session.connection.name)' requires the post-quantum preshared key '\(ppk.identityDescription)' "
                        + "and the responder did not announce USE_PPK (RFC 8784)"))
        }
        return .success(nil)
    }

    /// Initiator, IKE_AUTH response: the keys the responder's AUTH is checked with and the IKE SA keeps; the PPK
    /// when the responder used it (PPK_IDENTITY), or why the IKE SA fails (ours is required and it did not).
    /// Our request used the PPK exactly when `ppkForOurAuthentication` gave it: a PPK here, USE_PPK there.
    func ppkInResponse(session: IKESession, suite: IKECipherSuite, keys: IKESAKeys, payloads: [Payload]) -> Result<
        (IKESAKeys, PostQuantumPresharedKey?), AuthenticationFailure
    > {
        guard session.peerAnnouncedPPK, let ppk = session.connection.postQuantumPresharedKey else { return .success((keys, nil)) }
        if payloads.notify(.ppkIdentity) != nil { return .success((KeyDerivation.mixing(ppk.key, into: keys, prf: suite.prf), ppk)) }
        guard !ppk.required else {
            return .failure(
                AuthenticationFailure("the responder did not use the post-quantum preshared key '\(ppk.identityDescription)', which is required here")
            )
        }
        return .success((keys, nil))
    }

    /// Responder: what the initiator's IKE_AUTH request says about a PPK, set against the connection's.
    func responderPPKDecision(
        session: IKESession, connection: ConnectionConfiguration, suite: IKECipherSuite, keys: IKESAKeys, auth: AuthenticationPayload,
        payloads: [Payload]
    ) -> ResponderPPKDecision {
        let ours = connection.postQuantumPresharedKey
        let named = payloads.notify(.ppkIdentity)?.data
        if session.peerAnnouncedPPK, let named, let ours, ours.isNamed(by: named) {
            return .use(KeyDerivation.mixing(ours.key, into: keys, prf: suite.prf), ours)
        }
        let theirs = named.map { PostQuantumPresharedKey.describe(identity: Array($0.dropFirst())) }
        if let ours, ours.required {
            let why = theirs.map { "the initiator's PPK_ID '\($0)' is not ours" } ?? "the initiator used none"
            return .refuse("connection '\(connection.name)' requires the post-quantum preshared key '\(ours.identityDescription)'; \(why)")
        }
        guard let theirs else { return .none }
        guard let fallback = payloads.notify(.noPPKAuth) else {
            return .refuse("the initiator used the post-quantum preshared key '\(theirs)', which this side does not hold, and sent no NO_PPK_AUTH")
        }
        // NO_PPK_AUTH holds the Authentication Data of an AUTH payload of the same method (RFC 8784 section 3).
        return .fallBack(
            AuthenticationPayload(method: auth.method, data: fallback.data),
            reason: "its PPK '\(theirs)' is not one this side holds (NO_PPK_AUTH)")
    }
}
