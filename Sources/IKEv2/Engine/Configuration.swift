import Foundation

/// An identity as carried in IDi/IDr (RFC 7296 section 3.5), parsed from strongSwan-like text:
/// an IPv4 or IPv6 address, "user@example.org" (RFC822_ADDR), "keyid:<hex>" (KEY_ID), anything else FQDN
/// (a leading "@" is dropped, as strongSwan does).
public struct Identity: Hashable, Sendable, CustomStringConvertible {
    public var payload: IdentificationPayload

    public init(payload: IdentificationPayload) { self.payload = payload }

    /// An IPV4_ADDR or IPV6_ADDR identity, what `Identity(address.description)` gives without the text.
    public init(address: IPAddress) {
        payload = IdentificationPayload(type: address.isIPv6 ? .ipv6Address : .ipv4Address, data: address.bytes)
    }

    public init(_ text: String) {
        if let address = IPAddress(text) {
            self.init(address: address)
        } else if text.lowercased().hasPrefix("keyid:") {
            let value = String(text.dropFirst(6))
            self.init(payload: IdentificationPayload(type: .keyID, data: [UInt8](hexString: value) ?? Array(value.utf8)))
        } else if text.hasPrefix("@") {
            self.init(payload: IdentificationPayload(type: .fqdn, data: Array(text.dropFirst().utf8)))
        } else if text.contains("@") {
            self.init(payload: IdentificationPayload(type: .rfc822Address, data: Array(text.utf8)))
        } else {
            self.init(payload: IdentificationPayload(type: .fqdn, data: Array(text.utf8)))
        }
    }

    public var description: String {
        switch payload.type {
        case .ipv4Address, .ipv6Address: return IPAddress(bytes: payload.data)?.description ?? payload.data.hexString
        case .fqdn, .rfc822Address: return String(decoding: payload.data, as: UTF8.self)
        case .keyID: return "keyid:" + payload.data.hexString
        default: return "id(\(payload.type.rawValue)):" + payload.data.hexString
        }
    }
}

/// ESP encapsulation mode of a CHILD SA.
public enum ChildMode: String, Sendable, Codable {
    case tunnel
    case transport
}

/// What one CHILD SA of a connection protects and how.
public struct ChildConfiguration: Sendable {
    public var name: String
    public var localTrafficSelectors: [TrafficSelector]
    public var remoteTrafficSelectors: [TrafficSelector]
    public var mode: ChildMode
    public var proposals: [ProposalSpec]
    /// Seconds after which this side starts a rekey; nil leaves rekeying to the peer.
    public var rekeyTime: Double?
    /// Seconds after which the SA is deleted if it was not rekeyed.
    public var lifetime: Double?
    /// Up to this many seconds are taken off `rekeyTime`, a different random amount for each SA
    /// (strongSwan's `rand_time`), so that SAs made together do not rekey together. Below `rekeyTime`.
    public var rekeyJitter: Double = 0

    public init(
        name: String, localTrafficSelectors: [TrafficSelector], remoteTrafficSelectors: [TrafficSelector],
        mode: ChildMode = .tunnel, proposals: [ProposalSpec], rekeyTime: Double? = nil, lifetime: Double? = nil
    ) {
        self.name = name
        self.localTrafficSelectors = localTrafficSelectors
        self.remoteTrafficSelectors = remoteTrafficSelectors
        self.mode = mode
        self.proposals = proposals
        self.rekeyTime = rekeyTime
        self.lifetime = lifetime
    }

    var pfs: Bool { proposals.contains { !$0.groups.isEmpty } }
}

/// Whether IKE_AUTH carries the first CHILD SA (RFC 6023), as strongSwan's `childless` option says.
public enum ChildlessMode: String, Sendable, CaseIterable {
    /// IKE_AUTH carries the first CHILD SA; a peer's childless IKE_AUTH is accepted (we announce support).
    case allow
    /// IKE_AUTH never carries one: every CHILD SA comes with CREATE_CHILD_SA (with its own key exchange
    /// when the proposals name a group), and a responder that did not announce support is not used. As
    /// responder, a peer's IKE_AUTH that carries a CHILD SA is refused (INVALID_SYNTAX).
    case force
    /// IKE_AUTH carries the first CHILD SA, and childless IKE SAs are refused as responder: support is not
    /// announced, and a peer's IKE_AUTH without a CHILD SA gets INVALID_SYNTAX.
    case never

    /// "allow, force or never", for error messages.
    public static var choices: String { allCases.map(\.rawValue).dropLast().joined(separator: ", ") + " or " + allCases.last!.rawValue }
}

/// A peer this endpoint talks to: addresses, identities, PSK, proposals and children.
public struct ConnectionConfiguration: Sendable {
    public var name: String
    public var localAddress: IPAddress
    /// nil accepts any peer address (responder only).
    public var remoteAddress: IPAddress?
    public var localPort: UInt16
    public var remotePort: UInt16
    public var localIdentity: Identity
    /// nil accepts any identity that proves knowledge of the PSK.
    public var remoteIdentity: Identity?
    public var preSharedKey: KeyMaterial
    public var proposals: [ProposalSpec]
    public var children: [ChildConfiguration]
    public var rekeyTime: Double?
    /// Up to this many seconds are taken off `rekeyTime`, a random amount for each IKE SA (strongSwan's
    /// `rand_time`). Below `rekeyTime`.
    public var rekeyJitter: Double = 0
    /// Fake NAT detection so that ESP is UDP-encapsulated even without a NAT (RFC 7296 section 2.23).
    public var forceEncapsulation: Bool
    /// Seconds of silence before a liveness check (dead peer detection); nil disables it.
    public var livenessInterval: Double?
    /// How this side proves who it is, and how the peer must: a pre-shared key unless set otherwise.
    public var localAuthentication: LocalAuthentication = .preSharedKey
    public var remoteAuthentication: RemoteAuthentication = .preSharedKey
    /// Whether, as initiator, IKE_AUTH carries the first CHILD SA (RFC 6023).
    public var childless: ChildlessMode = .allow
    /// A post-quantum preshared key (RFC 8784) mixed into the keys of the IKE SAs this connection makes.
    public var postQuantumPresharedKey: PostQuantumPresharedKey?

    /// Whether certificates are involved either way (SIGNATURE_HASH_ALGORITHMS is then announced).
    var usesCertificates: Bool {
        if case .certificate = localAuthentication { return true }
        if case .certificate = remoteAuthentication { return true }
        return false
    }

    public init(
        name: String, localAddress: IPAddress, remoteAddress: IPAddress?, localPort: UInt16 = 500,
        remotePort: UInt16 = 500, localIdentity: Identity, remoteIdentity: Identity?, preSharedKey: KeyMaterial,
        proposals: [ProposalSpec], children: [ChildConfiguration], rekeyTime: Double? = nil,
        forceEncapsulation: Bool = false, livenessInterval: Double? = nil
    ) {
        self.name = name
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.localPort = localPort
        self.remotePort = remotePort
        self.localIdentity = localIdentity
        self.remoteIdentity = remoteIdentity
        self.preSharedKey = preSharedKey
        self.proposals = proposals
        self.children = children
        self.rekeyTime = rekeyTime
        self.forceEncapsulation = forceEncapsulation
        self.livenessInterval = livenessInterval
    }
}

/// How much the engine and the programs around it log (`settings.log_level`).
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    /// Every negotiation's progress as well: IKE_SA_INIT answered, peer authenticated, SAs established and
    /// rekeyed (what strongSwan logs at its default level).
    case info = 1
    /// Only what went wrong or needs an operator: failures, refusals, drops, limits reached.
    case warning = 2

    public init?(name: String) {
        guard let level = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = level
    }

    public var name: String { self == .info ? "info" : "warning" }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Engine-wide tunables.
public struct EngineSettings: Sendable {
    /// Lines below this level are not made at all (`LogLevel`).
    public var logLevel: LogLevel = .info
    /// Half-open IKE SAs above which IKE_SA_INIT requests must carry a COOKIE (section 2.6).
    public var cookieThreshold: Int = 16
    /// Which of the engines sharing this host's IKE SAs this one is: the SPIs it makes are its own (IKEShard).
    public var shard: IKEShard = .whole
    /// First retransmission timeout in seconds; doubled each time (section 2.1).
    public var retransmitTimeout: Double = 1.0
    public var retransmitLimit: Int = 5
    /// Retransmissions of a Delete of the IKE SA at most (never more than `retransmitLimit`): its answer, once
    /// lost, is never sent again, because the peer removed the IKE SA when it answered. Four retransmissions
    /// (31 s at the default timeout) leave a 1 in 3,000 chance that a link losing 20% loses every request.
    public var ikeDeleteRetransmitLimit: Int = 4
    /// Seconds from a request's first transmission until the engine gives up on it: the first timeout, doubled
    /// at each of `retransmitLimit` retransmissions.
    public var requestGiveUpTime: Double { retransmitTimeout * (pow(2, Double(min(retransmitLimit, 16) + 1)) - 1) }
    /// Error answers to IKE_SA_INIT (no connection, no proposal, wrong group, malformed) per second at most;
    /// beyond it requests are dropped unanswered and counted (`answer_rate_limited`). COOKIEs are not limited.
    public var initErrorAnswerRate: Double = 1000
    /// Seconds a responder keeps a half-open SA before dropping it.
    public var halfOpenTimeout: Double = 30
    /// Seconds before a rekey the peer refused (e.g. TEMPORARY_FAILURE) is tried again; a random
    /// part of up to half as much again is added so that two ends do not collide once more.
    public var rekeyRetryDelay: Double = 10
    /// Seconds an SA replaced by a rekey waits for the peer's Delete before this side deletes it.
    public var replacedSATimeout: Double = 30
    /// The calendar time certificates' validity periods are checked against (the engine's own clock is
    /// monotonic seconds); tests set it.
    public var wallClock: @Sendable () -> Date = { Date() }
    /// Announce IKEv2 fragmentation (RFC 7383) and, when the peer does too, send protected messages larger
    /// than `fragmentSize` (the whole IP datagram, as strongSwan counts it) as SKF fragments.
    public var fragmentation = true
    public var fragmentSize = 1280
    /// Octets of fragments one IKE SA may hold while a message is reassembled (RFC 7383 section 2.6 leaves
    /// the bound to the receiver; strongSwan's max_packet is 10,000): beyond it the fragment is discarded.
    public var maximumReassemblySize = 65_536
    /// Octets of fragments all IKE SAs together may hold, so that many peers cannot pile them up.
    public var maximumReassemblyMemory = 8 << 20
    /// Seconds an IKE_AUTH waits for an online revocation answer before it counts as unavailable (within the
    /// peer's retransmission patience: strongSwan waits 4 s, then 7 s more before its second retry).
    public var revocationCheckTimeout: Double = 10
    /// Longest time the I/O layer keeps an OCSP answer, however late its nextUpdate (0: never kept), so
    /// that a revocation is seen within this time.
    public var ocspCacheLimit: Double = 3600
    public init() {}
}
