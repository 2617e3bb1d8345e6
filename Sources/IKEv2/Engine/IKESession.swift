/// An established or half-established CHILD SA as the engine tracks it.
struct ChildSA {
    var configuration: ChildConfiguration
    var spiInbound: ChildSPI
    var spiOutbound: ChildSPI
    var suite: ChildCipherSuite
    var keys: DirectionalChildKeys
    var localTrafficSelectors: [TrafficSelector]
    var remoteTrafficSelectors: [TrafficSelector]
    var mode: ChildMode
    var createdAt: Double
    var lifecycle = ChildSALifecycle.active
    /// No rekey attempt before this time (set after the peer refused one).
    var rekeyNotBefore: Double = 0
    /// The peer's rekey of this SA while ours was in flight (section 2.8.1).
    var peerRekey: PeerRekeyRecord?

    /// Whether a replacement exists (replaced, or a redundant replacement itself): it only waits for its Delete.
    var rekeyed: Bool { lifecycle != .active }
    /// When it stopped being active, so that an old SA whose Delete never comes is dropped eventually.
    var rekeyedAt: Double? {
        switch lifecycle {
        case .active: nil
        case .replaced(let at): at
        case .redundant(let at): at
        }
    }
    /// Whether the embedding program was told about this SA; a redundant one from a rekey collision is not.
    var announced: Bool { if case .redundant = lifecycle { false } else { true } }
}

/// A CHILD SA this side has asked for and awaits the answer to.
struct ChildRequest {
    var configuration: ChildConfiguration
    var spiInbound: ChildSPI
    var nonce: Nonce
    var keyExchange: KeyExchangePrivateKey?
    var rekeying: ChildSPI?
}

/// What an outstanding request of ours was for, so its response can be handled.
enum RequestContext: CustomStringConvertible {
    case ikeSAInit
    case ikeAuth(ChildRequest?)
    /// An additional key exchange of RFC 9370 in IKE_INTERMEDIATE (RFC 9242), with the initiator's secret.
    case ikeIntermediate(KeyExchangeInitiation)
    case createChild(ChildRequest)
    case rekeyIKE(spi: IKESPI, nonce: Nonce, keyExchange: KeyExchangePrivateKey)
    /// An additional key exchange of RFC 9370 in IKE_FOLLOWUP_KE, after a CREATE_CHILD_SA of ours.
    case followUpKE(FollowUpInitiation)
    case deleteChildren([ChildSPI])
    case deleteIKE
    case liveness

    /// What the request is for, in a log line (never its keys or nonces).
    var description: String {
        switch self {
        case .ikeSAInit: "IKE_SA_INIT"
        case .ikeAuth: "IKE_AUTH"
        case .ikeIntermediate(let initiation): "IKE_INTERMEDIATE (additional key exchange \(initiation.method))"
        case .createChild(let request):
            request.rekeying.map { "CREATE_CHILD_SA (rekey of CHILD SA \($0))" } ?? "CREATE_CHILD_SA (new CHILD SA \(request.configuration.name))"
        case .rekeyIKE: "CREATE_CHILD_SA (IKE SA rekey)"
        case .followUpKE(let initiation): "IKE_FOLLOWUP_KE (additional key exchange \(initiation.current.method))"
        case .deleteChildren(let spis): "INFORMATIONAL (delete of CHILD SA \(spis.map(\.description).joined(separator: ", ")))"
        case .deleteIKE: "INFORMATIONAL (delete of the IKE SA)"
        case .liveness: "INFORMATIONAL (liveness check)"
        }
    }
}

extension RequestContext {
    /// The CHILD SA (our inbound SPI) this request rekeys: a CREATE_CHILD_SA with REKEY_SA, or one of its
    /// IKE_FOLLOWUP_KE exchanges.
    var childRekeyed: ChildSPI? {
        switch self {
        case .createChild(let request): request.rekeying
        case .followUpKE(let initiation): if case .child(_, let rekeying) = initiation.exchanges.target { rekeying } else { nil }
        default: nil
        }
    }

    var isLiveness: Bool { if case .liveness = self { true } else { false } }
    /// Our CREATE_CHILD_SA that rekeys the IKE SA, not yet answered.
    var isRekeyIKERequest: Bool { if case .rekeyIKE = self { true } else { false } }

    /// Whether this request belongs to our rekey of the IKE SA: the CREATE_CHILD_SA or one of its IKE_FOLLOWUP_KE.
    var isIKERekey: Bool {
        switch self {
        case .rekeyIKE: true
        case .followUpKE(let initiation): if case .ikeSA = initiation.exchanges.target { true } else { false }
        default: false
        }
    }
}

/// A request waiting for the one in flight to be answered (window size one).
typealias QueuedRequest = (payloads: [Payload], exchange: ExchangeType, context: RequestContext)

struct OutstandingRequest {
    var messageID: UInt32
    /// One datagram, or the fragments of a fragmented message (all sent again on retransmission).
    var datagrams: [Datagram]
    var context: RequestContext
    var attempts: Int
    var nextRetransmitAt: Double
}

/// One IKE SA (RFC 7296 section 2): identities of both sides, keys, message-ID windows and CHILD SAs.
final class IKESession {
    typealias State = IKESALifecycle.Stage

    var connection: ConnectionConfiguration
    let isOriginalInitiator: Bool
    var spiInitiator: IKESPI
    var spiResponder: IKESPI
    var local: Endpoint
    var remote: Endpoint
    var lifecycle = IKESALifecycle.initiating
    var createdAt: Double
    var lastReceivedAt: Double

    var nonceInitiator = Nonce([])
    var nonceResponder = Nonce([])
    var keyExchange: KeyExchangePrivateKey?
    var initiatorFirstMessage: [UInt8] = []
    var responderFirstMessage: [UInt8] = []
    var cookie: [UInt8]?
    var natDetected = false
    /// What the peer listed in SIGNATURE_HASH_ALGORITHMS: with SHA-2, signatures use RFC 7427's method;
    /// with Identity, an Ed25519 key may sign (RFC 8420).
    var peerSignatureHashes = SignatureHashAlgorithms([])
    /// The identity the peer proved in IKE_AUTH.
    var peerIdentity: IdentificationPayload?
    /// The responder announced CHILDLESS_IKEV2_SUPPORTED (RFC 6023): IKE_AUTH may go without a CHILD SA.
    var peerSupportsChildless = false
    /// Both ends announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
    var fragmentation = false
    /// Fragments received so far, by message ID: the total, the first inner payload type, the pieces.
    var incomingFragments: [UInt32: (total: UInt16, first: PayloadType?, pieces: [UInt16: [UInt8]])] = [:]
    /// Octets of fragments held for reassembly.
    var fragmentOctets: Int { incomingFragments.values.reduce(0) { $0 + Self.octets(of: $1) } }
    static func octets(of assembly: (total: UInt16, first: PayloadType?, pieces: [UInt16: [UInt8]])) -> Int {
        assembly.pieces.values.reduce(0) { $0 + $1.count }
    }

    var nextRequestID: UInt32 = 0
    var outstanding: OutstandingRequest?
    var queued: [QueuedRequest] = []
    var expectedRequestID: UInt32 = 0
    var lastResponse: (messageID: UInt32, datagrams: [Datagram])?

    var children: [ChildSA] = []
    /// The first CHILD SA a responder was asked for in IKE_AUTH, or an initiator's queued extra children.
    var pendingChildren: [ChildConfiguration] = []
    var rekeyAt: Double?
    /// Our rekey of this IKE SA (queued or in flight), and the peer's that crossed it: IKESARekey.swift.
    var rekey = IKESARekeyState()
    /// Inbound SPIs of CHILD SAs both ends were rekeying that the peer deleted before our rekey was answered:
    /// the peer won, so our replacement is redundant when it comes.
    var supersededRekeys: Set<ChildSPI> = []
    /// The peer's CREATE_CHILD_SA exchanges we answered whose IKE_FOLLOWUP_KE exchanges are still to come
    /// (RFC 9370 section 2.2.4), by their link data.
    var followUps: [FollowUpKeyExchanges] = []

    /// RFC 9370: the additional key exchanges still to run in IKE_INTERMEDIATE exchanges before IKE_AUTH, in
    /// the order of their transform types.
    var pendingKeyExchanges: [KeyExchangeMethod] = []
    /// IntAuth_iN and IntAuth_rN so far (RFC 9242 section 3.3.2), and how many IKE_INTERMEDIATE exchanges ran.
    var intAuthInitiator: [UInt8] = []
    var intAuthResponder: [UInt8] = []
    var intermediateExchanges = 0
    /// RFC 8784: both ends sent USE_PPK in IKE_SA_INIT, so IKE_AUTH may use a post-quantum preshared key.
    var peerAnnouncedPPK = false
    /// The PPK_ID of the post-quantum preshared key in this IKE SA's keys, once IKE_AUTH used one.
    var ppkUsed: PostQuantumPresharedKey?
    /// What IKE_AUTH's signed octets end with: nothing without IKE_INTERMEDIATE; else IntAuth, the first IKE_AUTH
    /// request's message ID being the one after the last IKE_INTERMEDIATE's.
    var intAuth: [UInt8] {
        guard intermediateExchanges > 0 else { return [] }
        return IntermediateAuthentication.intAuth(
            initiator: intAuthInitiator, responder: intAuthResponder, authMessageID: UInt32(intermediateExchanges + 1))
    }

    /// IKE_AUTH held while the I/O layer asks OCSP responders about the peer's certificates.
    var pendingRevocation: PendingRevocationCheck?
    /// What that check decided, for the IKE_AUTH handler run again with the same message.
    var revocationOutcome: Result<String, AuthenticationFailure>?

    init(
        connection: ConnectionConfiguration, isOriginalInitiator: Bool, spiInitiator: IKESPI, spiResponder: IKESPI,
        local: Endpoint, remote: Endpoint, now: Double
    ) {
        self.connection = connection
        self.isOriginalInitiator = isOriginalInitiator
        self.spiInitiator = spiInitiator
        self.spiResponder = spiResponder
        self.local = local
        self.remote = remote
        self.createdAt = now
        self.lastReceivedAt = now
    }

    var state: State { lifecycle.stage }
    var keying: IKESAKeying? { lifecycle.keying }
    var suite: IKECipherSuite? { keying?.suite }
    var keys: IKESAKeys? { keying?.keys }
    var replacedByRekey: Bool { if case .replaced = lifecycle { true } else { false } }

    /// IKE_SA_INIT agreed these keys: IKE_AUTH follows.
    func agreeKeys(suite: IKECipherSuite, keys: IKESAKeys) { lifecycle = .authenticating(IKESAKeying(suite: suite, keys: keys)) }

    /// IKE_AUTH succeeded.
    func establish() { if case .authenticating(let keying) = lifecycle { lifecycle = .established(keying) } }

    /// Our Delete goes out (a replaced SA stays replaced: it is removed quietly).
    func startDeleting() {
        switch lifecycle {
        case .authenticating(let keying), .established(let keying): lifecycle = .deleting(keying)
        case .initiating, .replaced, .deleting, .closed: break
        }
    }

    /// A rekey's successor took its CHILD SAs.
    func markReplaced(now: Double) {
        guard let keying, !replacedByRekey else { return }
        lifecycle = .replaced(keying, since: now, deleteSent: false)
    }

    func close() { lifecycle = .closed(keying) }

    var localSPI: IKESPI { isOriginalInitiator ? spiInitiator : spiResponder }

    var outgoingProtection: MessageProtection? {
        guard let suite, let keys else { return nil }
        return MessageProtection(
            encryption: suite.encryption, integrity: suite.integrity,
            encryptionKey: isOriginalInitiator ? keys.encryptionInitiator : keys.encryptionResponder,
            integrityKey: isOriginalInitiator ? keys.integrityInitiator : keys.integrityResponder)
    }

    var incomingProtection: MessageProtection? {
        guard let suite, let keys else { return nil }
        return MessageProtection(
            encryption: suite.encryption, integrity: suite.integrity,
            encryptionKey: isOriginalInitiator ? keys.encryptionResponder : keys.encryptionInitiator,
            integrityKey: isOriginalInitiator ? keys.integrityResponder : keys.integrityInitiator)
    }

    func header(exchange: ExchangeType, messageID: UInt32, response: Bool) -> IKEHeader {
        var flags: IKEHeader.Flags = []
        if isOriginalInitiator { flags.insert(.initiator) }
        if response { flags.insert(.response) }
        return IKEHeader(
            spiInitiator: spiInitiator, spiResponder: spiResponder, nextPayload: .none,
            exchangeType: exchange, flags: flags, messageID: messageID)
    }

    /// Keys of a CHILD SA from this side's point of view; `initiatedHere` says who sent the exchange's request.
    func directionalKeys(_ keys: ChildSAKeys, initiatedHere: Bool) -> DirectionalChildKeys {
        if initiatedHere {
            return DirectionalChildKeys(
                encryptionInbound: keys.encryptionResponder, integrityInbound: keys.integrityResponder,
                encryptionOutbound: keys.encryptionInitiator, integrityOutbound: keys.integrityInitiator)
        }
        return DirectionalChildKeys(
            encryptionInbound: keys.encryptionInitiator, integrityInbound: keys.integrityInitiator,
            encryptionOutbound: keys.encryptionResponder, integrityOutbound: keys.integrityResponder)
    }
}

/// An IKE_AUTH message (our request's answer, or the peer's request) whose handling waits for an online
/// revocation check: handled again, with the same payloads, once the answer is in.
struct PendingRevocationCheck {
    var id: UInt64
    var startedAt: Double
    var policy: RevocationPolicy
    var subject: String
    /// The OCSP responders and CRL distribution points asked, for the log.
    var sources: String
    /// The peer's request (we are the responder), or nil for the answer to ours.
    var requestHeader: IKEHeader?
    var childRequest: ChildRequest?
    var payloads: [Payload]
}
