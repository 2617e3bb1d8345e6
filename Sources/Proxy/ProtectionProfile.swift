import ESP
import IKEv2
import X509

/// How a protected flow is protected: the IKE and ESP proposals and the credential the proxy uses
/// when it negotiates in a terminal's name (the "protect" of a policy rule names one).
public struct ProtectionProfile: Sendable {
    public var name: String
    public var ikeProposals: [ProposalSpec]
    public var espProposals: [ProposalSpec]
    public var preSharedKey: KeyMaterial
    /// The peer's identity; nil expects the peer's IP address as its ID.
    public var peerIdentity: Identity?
    public var mode: ChildMode
    /// Always UDP-encapsulate ESP (the terminals here speak ESP in UDP 4500).
    public var forceEncapsulation: Bool
    /// Hard lifetime given to the terminal with each SA, seconds; nil for none.
    public var hardLifetime: UInt32?
    /// Volume lifetimes given to the terminal with each SA, per direction (strongSwan's rekey_bytes,
    /// life_bytes, rekey_packets, life_packets): the terminal counts, reports the soft one and the proxy
    /// rekeys; at the hard one the SA is deleted.
    public var volumeLifetime = ESPLifetime()

    /// The lifetimes the terminal gets with each SA of this profile.
    public var espLifetime: ESPLifetime {
        var lifetime = volumeLifetime
        lifetime.hardSeconds = hardLifetime
        return lifetime
    }
    /// The proxy rekeys each CHILD SA this many seconds after it was made; nil leaves rekeying to the peer.
    public var childRekeyTime: Double?
    /// The proxy rekeys each IKE SA this many seconds after it was made; nil leaves it to the peer.
    public var ikeRekeyTime: Double?
    /// Up to this many seconds are taken off each rekey time, a random amount per SA (strongSwan's
    /// `rand_time`): one proxy's terminals come up together, and so would their rekeys.
    public var childRekeyJitter: Double = 0
    public var ikeRekeyJitter: Double = 0
    /// Seconds without a message from the peer after which the proxy checks it is alive (an empty
    /// INFORMATIONAL, RFC 7296 section 2.4); a peer that never answers is declared dead and the
    /// terminals' SAs with it are deleted. nil: no checks.
    public var livenessInterval: Double?
    /// The proxy proves the terminal's identity with the terminal's own certificate and key instead of the PSK.
    public var authenticatesWithTerminalCertificate = false
    /// Terminals' RSA keys sign with RSASSA-PSS (RFC 7427) rather than PKCS#1 v1.5.
    public var signsWithRSAPSS = false
    /// The peer must prove its identity with a certificate from one of these CAs; nil: with the PSK.
    public var peerTrustAnchors: [Certificate]?
    /// CRLs of those CAs: a revoked peer certificate is refused.
    public var peerRevocationLists: [CertificateRevocationList] = []
    /// What a missing OCSP answer about the peer's certificates means (strongSwan's `revocation`).
    public var peerRevocationPolicy: RevocationPolicy = .relaxed
    /// `force`: the proxy's IKE_AUTH carries no CHILD SA; the terminal's SA comes with CREATE_CHILD_SA, with
    /// a key exchange of its own when the ESP proposals name a group (RFC 6023).
    public var childless: ChildlessMode = .allow
    /// A post-quantum preshared key (RFC 8784) mixed into the keys of every terminal's IKE SA with the peer.
    public var postQuantumPresharedKey: PostQuantumPresharedKey?

    public init(
        name: String, ikeProposals: [ProposalSpec], espProposals: [ProposalSpec], preSharedKey: KeyMaterial,
        peerIdentity: Identity? = nil, mode: ChildMode = .tunnel, forceEncapsulation: Bool = true, hardLifetime: UInt32? = nil,
        childRekeyTime: Double? = nil
    ) {
        self.name = name
        self.ikeProposals = ikeProposals
        self.espProposals = espProposals
        self.preSharedKey = preSharedKey
        self.peerIdentity = peerIdentity
        self.mode = mode
        self.forceEncapsulation = forceEncapsulation
        self.hardLifetime = hardLifetime
        self.childRekeyTime = childRekeyTime
    }

    /// The engine connection that negotiates for `terminal` with `peer` under this profile: the terminal's
    /// address and identity on our side, the selectors the policy gives (host to host by default).
    /// `otherChildren`: CHILD SAs of other profiles that protect other traffic between the same two addresses
    /// and share this profile's IKE SA.
    public func connection(
        terminal: IPAddress, peer: IPAddress, credential: CertificateCredential? = nil,
        selectors: ProtectedTrafficSelectors? = nil, otherChildren: [ChildConfiguration] = []
    ) -> ConnectionConfiguration {
        let child = childConfiguration(selectors: selectors ?? .hostToHost(terminal: terminal, peer: peer))
        var connection = ConnectionConfiguration(
            name: Self.connectionName(profile: name, terminal: terminal, peer: peer),
            localAddress: terminal, remoteAddress: peer,
            localIdentity: Identity(address: terminal), remoteIdentity: peerIdentity ?? Identity(address: peer),
            preSharedKey: preSharedKey, proposals: ikeProposals, children: [child] + otherChildren,
            rekeyTime: ikeRekeyTime, forceEncapsulation: forceEncapsulation,
            livenessInterval: livenessInterval)
        connection.rekeyJitter = ikeRekeyJitter
        if authenticatesWithTerminalCertificate, var credential {
            credential.rsaPSS = signsWithRSAPSS
            connection.localAuthentication = .certificate(credential)
        }
        connection.childless = childless
        connection.postQuantumPresharedKey = postQuantumPresharedKey
        if let peerTrustAnchors {
            connection.remoteAuthentication = .certificate(
                trustAnchors: peerTrustAnchors, revocationLists: peerRevocationLists,
                revocation: peerRevocationPolicy)
        }
        return connection
    }

    /// The CHILD SA this profile asks for: its ESP proposals, mode and rekey times, with these selectors.
    public func childConfiguration(selectors: ProtectedTrafficSelectors) -> ChildConfiguration {
        var child = ChildConfiguration(
            name: childName, localTrafficSelectors: selectors.local, remoteTrafficSelectors: selectors.remote,
            mode: mode, proposals: espProposals, rekeyTime: childRekeyTime)
        child.rekeyJitter = childRekeyJitter
        return child
    }

    /// The name of the CHILD SA configuration of this profile, as SA events and snapshots carry it.
    public var childName: String { "\(name)-child" }

    public static func connectionName(profile: String, terminal: IPAddress, peer: IPAddress) -> String {
        "\(profile):\(terminal)>\(peer)"
    }
}
