/// The keys an IKE SA agreed in IKE_SA_INIT or in the rekey that made it: the suite and SK_* (RFC 7296
/// section 2.14). They exist from the key exchange on, so only the stages after it carry them.
struct IKESAKeying {
    var suite: IKECipherSuite
    var keys: IKESAKeys
}

/// Where an IKE SA stands (RFC 7296 sections 1.2, 1.4, 2.8); each stage carries what exists at that stage.
enum IKESALifecycle {
    /// IKE_SA_INIT sent or being answered: no keys yet.
    case initiating
    /// Keys agreed; IKE_AUTH under way.
    case authenticating(IKESAKeying)
    /// Authenticated: CHILD SAs, rekeys and liveness checks run on it.
    case established(IKESAKeying)
    /// A rekey's successor took its CHILD SAs (section 2.8.2): it goes without CHILD SA events and is removed
    /// quietly once deleted. `since` lets an SA whose Delete never comes be deleted from this side, once
    /// (`deleteSent`).
    case replaced(IKESAKeying, since: Double, deleteSent: Bool)
    /// Being deleted: our Delete is on its way.
    case deleting(IKESAKeying)
    /// Gone; the keys stay for a response still to be sent.
    case closed(IKESAKeying?)

    /// The summary the engine's checks compare against.
    enum Stage: Equatable { case initiating, authenticating, established, deleting, closed }

    var stage: Stage {
        switch self {
        case .initiating: .initiating
        case .authenticating: .authenticating
        case .established: .established
        case .replaced, .deleting: .deleting
        case .closed: .closed
        }
    }

    var keying: IKESAKeying? {
        switch self {
        case .initiating: nil
        case .authenticating(let keying), .established(let keying), .replaced(let keying, _, _), .deleting(let keying): keying
        case .closed(let keying): keying
        }
    }
}

/// Where a CHILD SA stands once made (RFC 7296 section 2.8).
enum ChildSALifecycle: Equatable {
    /// Carries traffic and is rekeyed when due.
    case active
    /// A rekey made its replacement; it only waits for its Delete. `at` is nil for one restored after a
    /// restart (the time is not saved).
    case replaced(at: Double?)
    /// Made by our exchange of a simultaneous rekey that lost (section 2.8.1): never announced, deleted at once.
    case redundant(at: Double)
}
