/// An IP address and UDP port.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }
    public var description: String { address.isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }
}

/// A UDP datagram the engine wants sent. On port 4500 `payload` already starts with the non-ESP marker.
public struct Datagram: Equatable, Sendable {
    public var payload: [UInt8]
    public var source: Endpoint
    public var destination: Endpoint

    /// Whether it carries an answer (the IKE header's R flag, after the non-ESP marker on port 4500).
    public var isResponse: Bool {
        let offset = source.port == 4500 || destination.port == 4500 ? 4 : 0
        guard payload.count > offset + 19 else { return false }
        return IKEHeader.Flags(rawValue: payload[offset + 19]).contains(.response)
    }
}

/// Why an incoming datagram was dropped without an answer; counted per reason.
public enum DropReason: Equatable, Sendable, CustomStringConvertible {
    case malformed(IKEDecodingError)
    case unknownSPI(IKESPI)
    case integrityCheckFailed
    case messageIDOutOfWindow(received: UInt32, expected: UInt32)
    case unexpectedResponse(messageID: UInt32)
    case espOnIKEPort
    case keepalive
    case invalidState(String)

    public var key: String {
        switch self {
        case .malformed: return "malformed"
        case .unknownSPI: return "unknown_spi"
        case .integrityCheckFailed: return "integrity"
        case .messageIDOutOfWindow: return "message_id_out_of_window"
        case .unexpectedResponse: return "unexpected_response"
        case .espOnIKEPort: return "esp_on_ike_port"
        case .keepalive: return "nat_keepalive"
        case .invalidState: return "invalid_state"
        }
    }

    public var description: String {
        switch self {
        case .malformed(let error): return "malformed message: \(error)"
        case .unknownSPI(let spi): return "no IKE SA with SPI \(spi)"
        case .integrityCheckFailed: return "integrity check failed"
        case .messageIDOutOfWindow(let received, let expected): return "message ID \(received) outside window (expected \(expected))"
        case .unexpectedResponse(let id): return "response with message ID \(id) matches no request"
        case .espOnIKEPort: return "ESP packet on the IKE socket"
        case .keepalive: return "NAT keepalive"
        case .invalidState(let why): return why
        }
    }
}

/// One ESP SA half as handed to the data plane.
public struct ChildSAEventDetails: Equatable, Sendable {
    public var name: String
    public var spiInbound: ChildSPI
    public var spiOutbound: ChildSPI
    public var suite: ChildCipherSuite
    public var localTrafficSelectors: [TrafficSelector]
    public var remoteTrafficSelectors: [TrafficSelector]
    public var mode: ChildMode
    public var encapsulated: Bool
    public var keys: DirectionalChildKeys
    /// For a rekey: the SPIs of the SA it replaces.
    public var replaces: (inbound: ChildSPI, outbound: ChildSPI)?
    /// The peer's rekey crossed one of ours (section 2.8.1) and which replacement stays is not settled yet: the
    /// inbound SA must be installed now (the peer may send on it), the outbound one only once this replacement is
    /// known to stay, which the old SA's deletion by the peer says (had ours stayed, a `childRekeyed` of ours
    /// comes first, and the peer deletes this one).
    public var outboundHeld = false
    /// The peer rekeyed it (this side answered the CREATE_CHILD_SA): the peer sends on the new SA once it has the
    /// answer but receives on it only once it has processed the answer, so this side starts sending on it when the
    /// peer deletes the old SA, as strongSwan's responder does.
    public var rekeyedByPeer = false

    public static func == (a: Self, b: Self) -> Bool {
        a.name == b.name && a.spiInbound == b.spiInbound && a.spiOutbound == b.spiOutbound && a.suite == b.suite
            && a.keys == b.keys && a.mode == b.mode
    }
}

/// CHILD SA keys named by direction from this side's point of view.
public struct DirectionalChildKeys: Equatable, Sendable {
    public var encryptionInbound: KeyMaterial
    public var integrityInbound: KeyMaterial
    public var encryptionOutbound: KeyMaterial
    public var integrityOutbound: KeyMaterial
}

/// Something that happened to an SA, reported to the embedding program.
public struct SAEvent: Equatable, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case ikeEstablished = "ike_sa_established"
        case ikeRekeyed = "ike_sa_rekeyed"
        case ikeDeleted = "ike_sa_deleted"
        case ikeFailed = "ike_sa_failed"
        case childEstablished = "child_sa_established"
        case childRekeyed = "child_sa_rekeyed"
        case childDeleted = "child_sa_deleted"
        /// A new CHILD SA we asked for was refused or its answer was unusable; the IKE SA stays. The reason is in `detail`.
        case childFailed = "child_sa_failed"
    }
    public var kind: Kind
    public var connection: String
    public var spiInitiator: IKESPI
    public var spiResponder: IKESPI
    public var local: Endpoint
    public var remote: Endpoint
    public var ikeSuite: IKECipherSuite?
    public var child: ChildSAEventDetails?
    /// For an IKE rekey, the SPIs of the replaced IKE SA; for failures, the reason.
    public var detail: String?
    /// The PPK_ID of the post-quantum preshared key (RFC 8784) in the IKE SA's keys; nil without one.
    public var ppkIdentity: String?
}

/// What the engine asks its embedding to do.
public enum EngineAction: Equatable, Sendable {
    case send(Datagram)
    case event(SAEvent)
    case drop(DropReason)
    case log(LogLine)
    /// Ask the OCSP responders (or fetch the CRLs) a verified peer chain names; answer with `IKEEngine.revocationChecked`.
    case checkRevocation(RevocationCheckRequest)
    /// A peer signalled INITIAL_CONTACT: this engine removed its stale IKE SAs; engines sharing the host's IKE SAs
    /// (IKEShard) must remove theirs (`IKEEngine.forgetStaleSessions`). A single engine has nothing to do.
    case initialContact(StaleSessionMatch)

    /// A line of text alone; its facts are filled in where they are known.
    public static func log(_ text: String) -> EngineAction { .log(LogLine(text)) }
}

/// Which IKE SAs a peer's INITIAL_CONTACT makes stale (RFC 7296 section 2.4): authenticated ones between the
/// same identities and the same addresses, other than the one that carried it.
public struct StaleSessionMatch: Equatable, Sendable {
    public var peerIdentity: IdentificationPayload
    public var localIdentity: Identity
    public var remote: IPAddress
    public var local: IPAddress
    /// Our SPI of the IKE SA that carried INITIAL_CONTACT.
    public var keep: IKESPI
}
