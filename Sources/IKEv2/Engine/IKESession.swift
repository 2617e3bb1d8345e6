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
    /// Set once a replacement exists; the SA then only waits for its Delete.
    var rekeyed = false
    /// When `rekeyed` was set, so that an old SA whose Delete never comes is dropped eventually.
    var rekeyedAt: Double?
    /// No rekey attempt before this time (set after the peer refused one).
    var rekeyNotBefore: Double = 0
    /// Whether the embedding program was told about this SA; a redundant one from a rekey collision is not.
    var announced = true
    /// The peer's rekey of this SA while ours was in flight (section 2.8.1).
    var peerRekey: PeerRekeyRecord?
}

/// A CHILD SA this side has asked for and awaits the answer to.
struct ChildRequest {
    var configuration: ChildConfiguration
    var spiInbound: ChildSPI
    var nonce: [UInt8]
    var keyExchange: KeyExchangePrivateKey?
    var rekeying: ChildSPI?
}

/// What an outstanding request of ours was for, so its response can be handled.
enum RequestContext {
    case ikeSAInit
    case ikeAuth(ChildRequest?)
    case createChild(ChildRequest)
    case rekeyIKE(spi: IKESPI, nonce: [UInt8], keyExchange: KeyExchangePrivateKey)
    case deleteChildren([ChildSPI])
    case deleteIKE
    case liveness
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
    enum State: Equatable { case initiating, authenticating, established, deleting, closed }

    var connection: ConnectionConfiguration
    let isOriginalInitiator: Bool
    var spiInitiator: IKESPI
    var spiResponder: IKESPI
    var local: Endpoint
    var remote: Endpoint
    var state: State
    var createdAt: Double
    var lastReceivedAt: Double

    var suite: IKECipherSuite?
    var keys: IKESAKeys?
    var nonceInitiator: [UInt8] = []
    var nonceResponder: [UInt8] = []
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

    var nextRequestID: UInt32 = 0
    var outstanding: OutstandingRequest?
    var queued: [QueuedRequest] = []
    var expectedRequestID: UInt32 = 0
    var lastResponse: (messageID: UInt32, datagrams: [Datagram])?

    var children: [ChildSA] = []
    /// The first CHILD SA a responder was asked for in IKE_AUTH, or an initiator's queued extra children.
    var pendingChildren: [ChildConfiguration] = []
    var rekeyAt: Double?
    var rekeyInProgress = false
    /// Set when a rekeyed IKE SA took over this one's CHILD SAs; it then goes without CHILD SA events.
    var replacedByRekey = false
    /// When `replacedByRekey` was set, so that an SA whose Delete never comes is dropped eventually.
    var replacedAt: Double?
    /// The peer's rekey of this IKE SA while ours was in flight (section 2.8.2).
    var peerRekey: PeerRekeyRecord?
    /// Inbound SPIs of CHILD SAs both ends were rekeying that the peer deleted before our rekey was answered:
    /// the peer won, so our replacement is redundant when it comes.
    var supersededRekeys: Set<ChildSPI> = []

    /// IKE_AUTH held while the I/O layer asks OCSP responders about the peer's certificates.
    var pendingRevocation: PendingRevocationCheck?
    /// What that check decided, for the IKE_AUTH handler run again with the same message.
    var revocationOutcome: Result<String, AuthenticationFailure>?

    init(connection: ConnectionConfiguration, isOriginalInitiator: Bool, spiInitiator: IKESPI, spiResponder: IKESPI,
         local: Endpoint, remote: Endpoint, now: Double) {
        self.connection = connection; self.isOriginalInitiator = isOriginalInitiator
        self.spiInitiator = spiInitiator; self.spiResponder = spiResponder
        self.local = local; self.remote = remote
        self.state = .initiating; self.createdAt = now; self.lastReceivedAt = now
    }

    var localSPI: IKESPI { isOriginalInitiator ? spiInitiator : spiResponder }

    var outgoingProtection: MessageProtection? {
        guard let suite, let keys else { return nil }
        return MessageProtection(encryption: suite.encryption, integrity: suite.integrity,
                                 encryptionKey: isOriginalInitiator ? keys.encryptionInitiator : keys.encryptionResponder,
                                 integrityKey: isOriginalInitiator ? keys.integrityInitiator : keys.integrityResponder)
    }

    var incomingProtection: MessageProtection? {
        guard let suite, let keys else { return nil }
        return MessageProtection(encryption: suite.encryption, integrity: suite.integrity,
                                 encryptionKey: isOriginalInitiator ? keys.encryptionResponder : keys.encryptionInitiator,
                                 integrityKey: isOriginalInitiator ? keys.integrityResponder : keys.integrityInitiator)
    }

    func header(exchange: ExchangeType, messageID: UInt32, response: Bool) -> IKEHeader {
        var flags: IKEHeader.Flags = []
        if isOriginalInitiator { flags.insert(.initiator) }
        if response { flags.insert(.response) }
        return IKEHeader(spiInitiator: spiInitiator, spiResponder: spiResponder, nextPayload: .none,
                         exchangeType: exchange, flags: flags, messageID: messageID)
    }

    /// Keys of a CHILD SA from this side's point of view; `initiatedHere` says who sent the exchange's request.
    func directionalKeys(_ keys: ChildSAKeys, initiatedHere: Bool) -> DirectionalChildKeys {
        if initiatedHere {
            return DirectionalChildKeys(encryptionInbound: keys.encryptionResponder, integrityInbound: keys.integrityResponder,
                                        encryptionOutbound: keys.encryptionInitiator, integrityOutbound: keys.integrityInitiator)
        }
        return DirectionalChildKeys(encryptionInbound: keys.encryptionInitiator, integrityInbound: keys.integrityInitiator,
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
