import X509

/// IKE_AUTH (RFC 7296 section 1.2) with pre-shared keys or certificates (section 2.15) and the first CHILD SA.
extension IKEEngine {
    /// Our AUTH payload and the CERT payloads that go with it, as the connection says we prove who we are.
    func ourAuthentication(
        session: IKESession, connection: ConnectionConfiguration, suite: IKECipherSuite, firstMessage: [UInt8], peerNonce: Nonce,
        authenticationKey: KeyMaterial, identity: IdentificationPayload
    )
        -> Result<(certificates: [Payload], auth: AuthenticationPayload), SigningFailure>
    {
        switch connection.localAuthentication {
        case .preSharedKey:
            // An empty key would prove nothing (libreswan CVE-2024-2357 was a connection whose secret was missing).
            guard !connection.preSharedKey.bytes.isEmpty else {
                return .failure(SigningFailure("connection '\(connection.name)' has no pre-shared key"))
            }
            let data = KeyDerivation.sharedKeyAuthentication(
                prf: suite.prf, padKey: sharedKeyPad(suite.prf, connection.preSharedKey), firstMessage: firstMessage,
                peerNonce: peerNonce, authenticationKey: authenticationKey, identification: identity, intAuth: session.intAuth)
            return .success(([], AuthenticationPayload(method: .sharedKeyMessageIntegrityCode, data: data)))
        case .certificate(let credential):
            let octets = SignatureAuthentication.signedOctets(
                prf: suite.prf, firstMessage: firstMessage, peerNonce: peerNonce,
                authenticationKey: authenticationKey, identification: identity, intAuth: session.intAuth)
            do {
                let auth = try credential.key.authentication(octets, peerHashes: session.peerSignatureHashes, rsaPSS: credential.rsaPSS)
                return .success((SignatureAuthentication.certificatePayloads(credential.chain), auth))
            } catch {
                return .failure(error)
            }
        }
    }

    /// prf(PSK, "Key Pad for IKEv2") from the engine's table, computed on a key's first use (two HMACs fewer per
    /// IKE_AUTH). The table is as secret as the keys it is made from, and emptied when it would grow past the
    /// candidate table's bound (reloads that change keys leave old entries behind).
    func sharedKeyPad(_ prf: PseudoRandomFunction, _ sharedKey: KeyMaterial) -> KeyMaterial {
        let entry = SharedKeyPadEntry(prf: prf, sharedKey: sharedKey.bytes)
        if let pad = sharedKeyPads[entry] { return pad }
        if sharedKeyPads.count >= Self.candidateTableLimit { sharedKeyPads.removeAll() }
        let pad = KeyDerivation.sharedKeyPad(prf: prf, sharedKey: sharedKey)
        sharedKeyPads[entry] = pad
        return pad
    }

    /// Checks the peer's AUTH as the connection says the peer must prove who it is; the failure says why,
    /// the success how (for the log). A verified chain that names OCSP responders is not yet a success: the
    /// exchange waits for their answer (`session.revocationOutcome` holds it when the message is handled again).
    func verifyPeer(
        session: IKESession, connection: ConnectionConfiguration, suite: IKECipherSuite, auth: AuthenticationPayload,
        payloads: [Payload], firstMessage: [UInt8], peerNonce: Nonce, authenticationKey: KeyMaterial,
        identity: IdentificationPayload
    ) -> PeerVerification {
        switch connection.remoteAuthentication {
        case .preSharedKey:
            guard auth.method == .sharedKeyMessageIntegrityCode else {
                return .failed(
                    AuthenticationFailure(
                        "the peer signed (AUTH method \(auth.method.rawValue)) but connection '\(connection.name)' expects a pre-shared key"))
            }
            guard !connection.preSharedKey.bytes.isEmpty else {
                return .failed(AuthenticationFailure("connection '\(connection.name)' has no pre-shared key to check the peer's AUTH with"))
            }
            let expected = KeyDerivation.sharedKeyAuthentication(
                prf: suite.prf, padKey: sharedKeyPad(suite.prf, connection.preSharedKey), firstMessage: firstMessage,
                peerNonce: peerNonce, authenticationKey: authenticationKey, identification: identity, intAuth: session.intAuth)
            guard ProtectedMessage.constantTimeEqual(expected, auth.data[...]) else {
                return .failed(AuthenticationFailure("the AUTH payload does not verify with the pre-shared key"))
            }
            return .verified("pre-shared key")
        case .certificate(let anchors, let revocationLists, let policy):
            guard auth.method != .sharedKeyMessageIntegrityCode else {
                return .failed(AuthenticationFailure("the peer used a pre-shared key but connection '\(connection.name)' expects a certificate"))
            }
            let octets = SignatureAuthentication.signedOctets(
                prf: suite.prf, firstMessage: firstMessage, peerNonce: peerNonce,
                authenticationKey: authenticationKey, identification: identity, intAuth: session.intAuth)
            let certificates = payloads.compactMap { if case .certificate(let c) = $0 { return c } else { return nil } }
            let chain: [Certificate]
            switch SignatureAuthentication.verify(
                auth: auth, certificates: certificates, identity: identity, octets: octets,
                trustAnchors: anchors, revocationLists: revocationLists, now: settings.wallClock())
            {
            case .failure(let failure): return .failed(failure)
            case .success(let verified): chain = verified
            }
            let proof = "certificate \(chain[0].subject), issued by \(chain[0].issuer) (\(SignatureAuthentication.scheme(of: auth)))"
            if let outcome = session.revocationOutcome {
                switch outcome {
                case .success(let note): return .verified(proof + "; " + note)
                case .failure(let failure): return .failed(failure)
                }
            }
            if policy == .strict {
                for index in chain.indices.dropLast()
                where RevocationSources.online(of: chain[index]) == nil
                    && !revocationLists.contains(where: { $0.isSigned(by: chain[index + 1]) })
                {
                    return .failed(
                        AuthenticationFailure(
                            "revocation is strict, but the certificate \(chain[index].subject) names no OCSP responder "
                                + "nor CRL distribution point, and no CRL of its issuer \(chain[index + 1].subject) is loaded"))
                }
            }
            let responders = RevocationSources.described(ofChain: chain)
            guard !responders.isEmpty else { return .verified(proof) }
            return .needsRevocationCheck(chain: chain, responders: responders, policy: policy)
        }
    }

    /// INITIAL_CONTACT (section 2.4): the peer says the IKE SA just made is the only one between its
    /// identity and ours, so any other we hold with it is from before its restart. Those go at once, with
    /// their CHILD SAs, without a Delete (the peer no longer knows them).
    ///
    /// Only IKE SAs that were *authenticated* with the same two identities, between the same two addresses,
    /// are stale. A half-open IKE SA has proved no identity: it still carries whichever connection the address
    /// pair matched first, so judging it by that connection's identity removed other peers' negotiations when
    /// many connections share one address pair. The addresses keep one terminal's INITIAL_CONTACT from removing
    /// another terminal's IKE SAs where the proxy speaks for many terminals under one identity.
    func forgetStaleSessions(after session: IKESession, payloads: [Payload]) -> [EngineAction] {
        guard payloads.notify(.initialContact) != nil, let identity = session.peerIdentity else { return [] }
        let match = StaleSessionMatch(
            peerIdentity: identity, localIdentity: session.connection.localIdentity, remote: session.remote.address,
            local: session.local.address, keep: session.isOriginalInitiator ? session.spiInitiator : session.spiResponder)
        return forgetStaleSessions(match) + [.initialContact(match)]
    }

    /// Removes the IKE SAs `match` makes stale: on INITIAL_CONTACT here, or in another engine of the host.
    public func forgetStaleSessions(_ match: StaleSessionMatch) -> [EngineAction] {
        let identity = match.peerIdentity
        var actions: [EngineAction] = []
        // A session brought back from a snapshot knows the peer only by the connection's configured identity.
        for stale in sessions.values
        where (stale.isOriginalInitiator ? stale.spiInitiator : stale.spiResponder) != match.keep
            && (stale.state == .established || stale.state == .deleting)
            && (stale.peerIdentity ?? stale.connection.remoteIdentity?.payload) == identity
            && stale.connection.localIdentity == match.localIdentity
            && stale.remote.address == match.remote && stale.local.address == match.local
        {
            count(.initialContactRemovedIKESA)
            actions.append(
                .log("INITIAL_CONTACT from \(Identity(payload: identity)): removing the stale IKE SA \(stale.spiInitiator)_\(stale.spiResponder)"))
            actions +=
                stale.replacedByRekey
                ? removeReplacedSession(stale)
                : closeSession(stale, kind: .ikeDeleted, reason: "the peer signalled INITIAL_CONTACT (it restarted)")
        }
        return actions
    }

    func sendAuthRequest(session: IKESession, now: Double) -> [EngineAction] {
        guard let suite = session.suite, let keys = session.keys else { return [] }
        let identity = session.connection.localIdentity.payload
        let ppk: PostQuantumPresharedKey?
        switch ppkForOurAuthentication(session: session) {
        case .success(let chosen): ppk = chosen
        case .failure(let failure):
            count(.ppkRefused)
            return closeSession(session, kind: .ikeFailed, reason: failure.description)
        }
        // RFC 8784 section 3: our AUTH is made with SK_pi mixed with the PPK; without it as NO_PPK_AUTH too, when optional.
        let mixed = ppk.map { KeyDerivation.mixing($0.key, into: keys, prf: suite.prf) }
        func authentication(_ key: KeyMaterial) -> Result<(certificates: [Payload], auth: AuthenticationPayload), SigningFailure> {
            ourAuthentication(
                session: session, connection: session.connection, suite: suite, firstMessage: session.initiatorFirstMessage,
                peerNonce: session.nonceResponder, authenticationKey: key, identity: identity)
        }
        let ours: (certificates: [Payload], auth: AuthenticationPayload)
        var ppkNotifies: [Payload] = []
        do {
            ours = try authentication((mixed ?? keys).authenticationInitiator).get()
            if let ppk {
                ppkNotifies.append(.notify(NotifyPayload(type: .ppkIdentity, data: ppk.notifyData)))
                if !ppk.required {
                    let unmixed = try authentication(keys.authenticationInitiator).get()
                    ppkNotifies.append(.notify(NotifyPayload(type: .noPPKAuth, data: unmixed.auth.data)))
                }
            }
        } catch {
            count(.signingFailed)
            return closeSession(session, kind: .ikeFailed, reason: "could not sign our AUTH payload: \(error)")
        }
        // Order: IDi, [CERT+], [N(INITIAL_CONTACT)], [CERTREQ], [IDr], AUTH, then the CHILD SA's payloads.
        var payloads: [Payload] = [.identificationInitiator(identity)] + ours.certificates
        // Section 2.4: with no other IKE SA for this connection, tell the peer that any it still holds
        // with us are stale (as after a restart without saved state).
        if !sessions.values.contains(where: {
            $0 !== session && $0.connection.name == session.connection.name
                && ($0.state == .established || $0.state == .deleting)
        }) {
            payloads.append(.notify(NotifyPayload(type: .initialContact)))
        }
        if case .certificate(let anchors, _, _) = session.connection.remoteAuthentication,
            let request = SignatureAuthentication.certificateRequest(anchors)
        {
            payloads.append(request)
        }
        if let remote = session.connection.remoteIdentity { payloads.append(.identificationResponder(remote.payload)) }
        payloads.append(.authentication(ours.auth))
        var request: ChildRequest?
        var actions: [EngineAction] = []
        if session.connection.childless == .force {
            guard session.peerSupportsChildless else {
                count(.childlessNotSupportedByPeer)
                return closeSession(
                    session, kind: .ikeFailed,
                    reason: "connection '\(session.connection.name)' is childless (force) and the "
                        + "responder did not announce CHILDLESS_IKEV2_SUPPORTED (RFC 6023)")
            }
            actions.append(
                .log("IKE_AUTH without a CHILD SA (childless, RFC 6023); \(session.pendingChildren.count) CHILD SA(s) follow with CREATE_CHILD_SA"))
        } else if !session.pendingChildren.isEmpty {
            let configuration = session.pendingChildren.removeFirst()
            // No KE is allowed in IKE_AUTH, so the first CHILD SA never uses PFS (section 1.2).
            let child = ChildRequest(configuration: configuration, spiInbound: newChildSPI(), nonce: Nonce([]), keyExchange: nil, rekeying: nil)
            payloads += childRequestPayloads(child, includeGroups: false)
            request = child
        }
        payloads += ppkNotifies
        return actions + sendRequest(session: session, exchange: .ikeAuth, payloads: payloads, context: .ikeAuth(request), now: now)
    }

    /// SA, TSi, TSr (and USE_TRANSPORT_MODE) of a CHILD SA request; nonce and KE are added by the caller.
    func childRequestPayloads(_ request: ChildRequest, includeGroups: Bool) -> [Payload] {
        var payloads: [Payload] = []
        if request.configuration.mode == .transport { payloads.append(.notify(NotifyPayload(type: .useTransportMode))) }
        let proposals = request.configuration.proposals.enumerated().map { index, spec in
            spec.proposal(number: UInt8(index + 1), protocolID: .esp, spi: request.spiInbound.bytes, includeGroups: includeGroups)
        }
        payloads.append(.securityAssociation(SecurityAssociationPayload(proposals: proposals)))
        payloads.append(.trafficSelectorInitiator(TrafficSelectorPayload(selectors: request.configuration.localTrafficSelectors)))
        payloads.append(.trafficSelectorResponder(TrafficSelectorPayload(selectors: request.configuration.remoteTrafficSelectors)))
        return payloads
    }

    /// The responder already holds the IKE SA it answered with: an INFORMATIONAL carrying
    /// AUTHENTICATION_FAILED tells it we refused its proof (section 2.21.2), sent once since we forget
    /// the SA at the same moment.
    func tellPeerAuthenticationFailed(_ session: IKESession) -> [EngineAction] {
        let header = session.header(exchange: .informational, messageID: session.nextRequestID, response: false)
        session.nextRequestID &+= 1
        guard
            let datagrams = protectedDatagrams(
                session: session, header: header,
                payloads: [.notify(NotifyPayload(type: .authenticationFailed))])
        else { return [] }
        return datagrams.map { .send($0) }
    }

    func handleAuthResponse(session: IKESession, request: ChildRequest?, payloads: [Payload], now: Double) -> [EngineAction] {
        guard let suite = session.suite, let keys = session.keys else { return [] }
        guard let identity = payloads.identificationResponder, let auth = payloads.authentication else {
            let reason = payloads.notifies.first { $0.type.isError }.map { "\($0.type)" } ?? "missing IDr or AUTH"
            count(.authenticationFailed)
            return closeSession(session, kind: .ikeFailed, reason: "IKE_AUTH refused by peer: \(reason)")
        }
        if let expected = session.connection.remoteIdentity, expected.payload != identity {
            count(.authenticationFailed)
            return tellPeerAuthenticationFailed(session)
                + closeSession(session, kind: .ikeFailed, reason: "peer identity \(Identity(payload: identity)) is not the configured \(expected)")
        }
        let finalKeys: IKESAKeys
        let ppk: PostQuantumPresharedKey?
        switch ppkInResponse(session: session, suite: suite, keys: keys, payloads: payloads) {
        case .success(let (chosen, used)): (finalKeys, ppk) = (chosen, used)
        case .failure(let failure):
            count(.ppkRefused)
            return tellPeerAuthenticationFailed(session) + closeSession(session, kind: .ikeFailed, reason: failure.description)
        }
        var proof: String
        switch verifyPeer(
            session: session, connection: session.connection, suite: suite, auth: auth, payloads: payloads,
            firstMessage: session.responderFirstMessage, peerNonce: session.nonceInitiator,
            authenticationKey: finalKeys.authenticationResponder, identity: identity)
        {
        case .failed(let failure):
            count(.authenticationFailed)
            return tellPeerAuthenticationFailed(session)
                + closeSession(session, kind: .ikeFailed, reason: "peer \(Identity(payload: identity)) not authenticated: \(failure)")
        case .verified(let how): proof = how
        case .needsRevocationCheck(let chain, let responders, let policy):
            return holdForRevocationCheck(
                session: session, chain: chain, responders: responders, policy: policy, requestHeader: nil,
                childRequest: request, payloads: payloads, now: now)
        }
        if let ppk {
            session.agreeKeys(suite: suite, keys: finalKeys)
            session.ppkUsed = ppk
            proof += ", with the post-quantum preshared key '\(ppk.identityDescription)'"
        } else if let ours = session.connection.postQuantumPresharedKey {
            proof += ", without the post-quantum preshared key '\(ours.identityDescription)' (optional; the responder does not use it)"
        }
        session.establish()
        session.peerIdentity = identity
        session.rekeyAt = RekeySchedule.ikeRekeyDelay(session.connection, random: random).map { now + $0 }
        var actions: [EngineAction] =
            forgetStaleSessions(after: session, payloads: payloads)
            + info("peer \(Identity(payload: identity)) authenticated by \(proof)")
            + info(
                "IKE SA \(session.spiInitiator)_\(session.spiResponder) '\(session.connection.name)' established with \(session.remote) (\(suite.name))"
            ) + [.event(ikeEvent(.ikeEstablished, session: session))]
        if let request {
            actions += finishChildRequest(
                session: session, request: request, payloads: payloads, nonceInitiator: session.nonceInitiator,
                nonceResponder: session.nonceResponder, now: now)
        }
        for configuration in session.pendingChildren {
            actions += requestNewChild(session: session, configuration: configuration, now: now)
        }
        session.pendingChildren = []
        return actions
    }

    func handleAuthRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        guard session.state == .authenticating, let suite = session.suite, let keys = session.keys else {
            return drop(.invalidState("IKE_AUTH request on an IKE SA that is not authenticating"))
        }
        // RFC 9370: every additional key exchange chosen runs before IKE_AUTH.
        guard session.pendingKeyExchanges.isEmpty else {
            count(.intermediateRefused)
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .invalidSyntax))])
                + closeSession(
                    session, kind: .ikeFailed,
                    reason: "IKE_AUTH before the additional key exchange \(session.pendingKeyExchanges[0]) ran in IKE_INTERMEDIATE")
        }
        guard let identity = payloads.identificationInitiator, let auth = payloads.authentication else {
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .authenticationFailed))])
                + closeSession(session, kind: .ikeFailed, reason: "IKE_AUTH without IDi or AUTH (EAP is not supported)")
        }
        // Pick the connection whose remote identity matches, among those sharing this address pair.
        func accepts(_ candidate: ConnectionConfiguration) -> Bool { candidate.remoteIdentity.map { $0.payload == identity } ?? true }
        let chosen =
            accepts(session.connection)
            ? session.connection
            : candidates(local: session.local, remote: session.remote).first(accepting: identity).map { connections[$0] }
        guard let connection = chosen else {
            count(.authenticationFailed)
            return [.log("IKE_AUTH from \(session.remote): identity \(Identity(payload: identity)) matches no connection")]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .authenticationFailed))])
                + closeSession(session, kind: .ikeFailed, reason: "unknown peer identity \(Identity(payload: identity))")
        }
        var peerAuth = auth
        var peerKeys = keys
        var ppkNote: String?
        let ppkDecision = responderPPKDecision(session: session, connection: connection, suite: suite, keys: keys, auth: auth, payloads: payloads)
        switch ppkDecision {
        case .none: break
        case .use(let mixed, let ppk):
            peerKeys = mixed
            ppkNote = ", with the post-quantum preshared key '\(ppk.identityDescription)'"
        case .fallBack(let replacement, let reason):
            peerAuth = replacement
            ppkNote = ", without a post-quantum preshared key: \(reason)"
        case .refuse(let reason):
            count(.ppkRefused)
            count(.authenticationFailed)
            return [.log("IKE_AUTH from \(session.remote) for '\(connection.name)' refused: \(reason)")]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .authenticationFailed))])
                + closeSession(session, kind: .ikeFailed, reason: reason)
        }
        var proof: String
        switch verifyPeer(
            session: session, connection: connection, suite: suite, auth: peerAuth, payloads: payloads,
            firstMessage: session.initiatorFirstMessage, peerNonce: session.nonceResponder,
            authenticationKey: peerKeys.authenticationInitiator, identity: identity)
        {
        case .needsRevocationCheck(let chain, let responders, let policy):
            return holdForRevocationCheck(
                session: session, chain: chain, responders: responders, policy: policy, requestHeader: header,
                childRequest: nil, payloads: payloads, now: now)
        case .failed(let failure):
            count(.authenticationFailed)
            let line =
                "IKE_AUTH from \(session.remote) for '\(session.connection.name)': "
                + "\(Identity(payload: identity)) not authenticated: \(failure)"
            return [.log(line)]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .authenticationFailed))])
                + closeSession(session, kind: .ikeFailed, reason: "peer \(Identity(payload: identity)) not authenticated: \(failure)")
        case .verified(let how): proof = how + (ppkNote ?? "")
        }
        session.connection = connection
        if case .use(let mixed, let ppk) = ppkDecision {
            // RFC 8784 section 3: from here on the IKE SA has SK_d, SK_pi and SK_pr mixed with the PPK.
            session.agreeKeys(suite: suite, keys: mixed)
            session.ppkUsed = ppk
        }
        // strongSwan's `childless` as responder: `never` takes no IKE_AUTH without a CHILD SA, `force` none with one.
        let carriesChild = payloads.securityAssociation != nil
        if (connection.childless == .never && !carriesChild) || (connection.childless == .force && carriesChild) {
            count(.childlessRefused)
            let reason =
                carriesChild
                ? "connection '\(connection.name)' is childless (force) and the peer's IKE_AUTH carries a CHILD SA"
                : "connection '\(connection.name)' refuses childless IKE SAs (never) and the peer's IKE_AUTH carries no CHILD SA"
            return [.log("IKE_AUTH from \(session.remote) refused with INVALID_SYNTAX: \(reason)")]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .invalidSyntax))])
                + closeSession(session, kind: .ikeFailed, reason: reason)
        }
        let ourIdentity = connection.localIdentity.payload
        let ours: (certificates: [Payload], auth: AuthenticationPayload)
        switch ourAuthentication(
            session: session, connection: connection, suite: suite, firstMessage: session.responderFirstMessage,
            peerNonce: session.nonceInitiator, authenticationKey: peerKeys.authenticationResponder, identity: ourIdentity)
        {
        case .success(let made): ours = made
        case .failure(let failure):
            count(.signingFailed)
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .authenticationFailed))])
                + closeSession(session, kind: .ikeFailed, reason: "could not sign our AUTH payload: \(failure)")
        }
        var response: [Payload] = [.identificationResponder(ourIdentity)] + ours.certificates + [.authentication(ours.auth)]
        // RFC 8784 section 3: PPK_IDENTITY, with no data, tells the initiator its PPK was used.
        if session.ppkUsed != nil { response.append(.notify(NotifyPayload(type: .ppkIdentity))) }
        session.establish()
        session.peerIdentity = identity
        session.rekeyAt = RekeySchedule.ikeRekeyDelay(connection, random: random).map { now + $0 }
        var actions: [EngineAction] =
            forgetStaleSessions(after: session, payloads: payloads)
            + info("peer \(Identity(payload: identity)) authenticated by \(proof)")
            + info("IKE SA \(session.spiInitiator)_\(session.spiResponder) '\(connection.name)' established with \(session.remote) (\(suite.name))")
            + [.event(ikeEvent(.ikeEstablished, session: session))]
        if payloads.securityAssociation != nil {
            switch negotiateChild(
                session: session, payloads: payloads, candidates: connection.children,
                nonceInitiator: session.nonceInitiator, nonceResponder: session.nonceResponder, allowPFS: false, now: now)
            {
            case .success(let (child, childPayloads, _)):
                response += childPayloads
                session.children.append(child)
                actions.append(.event(childEvent(.childEstablished, session: session, child: child)))
            case .failure(let refusal):
                actions.append(.log("first CHILD SA refused: \(refusal.notify.type)"))
                response.append(.notify(refusal.notify))
            }
        } else {
            actions.append(.log("IKE SA without a CHILD SA (childless IKE_AUTH, RFC 6023): CHILD SAs come with CREATE_CHILD_SA"))
        }
        return respond(session: session, to: header, payloads: response) + actions
    }
}

/// What a key pad is computed from: a PRF and a pre-shared key.
struct SharedKeyPadEntry: Hashable {
    var prf: PseudoRandomFunction
    var sharedKey: [UInt8]
}
