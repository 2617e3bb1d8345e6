import ESP
import IKEv2
import KeyDelivery

/// A terminal and a peer: the unit SAs are negotiated and stored for.
public struct TerminalPeer: Hashable, Sendable {
    public var terminal: IPAddress
    public var peer: IPAddress
}

/// A CHILD SA negotiated for a terminal, as stored: both directions, when it was made, which IKE SA.
public struct StoredChildSA: Sendable {
    public var terminal: IPAddress
    public var peer: IPAddress
    public var connection: String
    /// The CHILD SA configuration it was made from (one per protection profile).
    public var childName: String
    /// The selectors the policy gave that configuration when this SA was made (what was asked for, before any
    /// narrowing): a policy changed since gives other ones.
    public var asked: ProtectedTrafficSelectors?
    public var inbound: SecurityAssociationParameters
    public var outbound: SecurityAssociationParameters
    public var ikeSPIs: (initiator: IKESPI, responder: IKESPI)
    public var createdAt: Double
    public var hardLifetime: Double?

    public func isValid(now: Double) -> Bool { hardLifetime.map { now - createdAt < $0 } ?? true }
}

/// The proxy's SA store: every CHILD SA negotiated in a terminal's name, per terminal and peer, with
/// lifetimes. It answers "is there a valid SA for this flow" and "is this ESP SPI one of ours".
public final class SAStore {
    public private(set) var children: [ChildSPI: StoredChildSA] = [:]  // by outbound SPI
    /// Outbound SPIs per terminal and peer, kept with `children`: lookups stay cheap as the store grows.
    private var byPair: [TerminalPeer: Set<ChildSPI>] = [:]

    private func insert(_ sa: StoredChildSA) {
        children[sa.outbound.spi] = sa
        byPair[TerminalPeer(terminal: sa.terminal, peer: sa.peer), default: []].insert(sa.outbound.spi)
        outboundByInbound[sa.inbound.spi] = sa.outbound.spi
    }

    private func remove(_ spi: ChildSPI) {
        guard let sa = children.removeValue(forKey: spi) else { return }
        let pair = TerminalPeer(terminal: sa.terminal, peer: sa.peer)
        byPair[pair]?.remove(spi)
        if byPair[pair]?.isEmpty == true { byPair[pair] = nil }
        highestOutboundSequence[spi] = nil
        outboundByInbound[sa.inbound.spi] = nil
        usage[sa.inbound.spi] = nil
        usage[sa.outbound.spi] = nil
    }

    /// The outbound SPI of each stored SA, by its inbound SPI.
    private var outboundByInbound: [ChildSPI: ChildSPI] = [:]

    /// What a terminal last reported (key-delivery STATUS) about one direction of an SA it holds: the packets
    /// and octets it protected (outbound) or accepted (inbound), and when. The proxy itself sees only one side.
    public struct Usage: Equatable, Sendable {
        public var packets: UInt64
        public var octets: UInt64
        public var reportedAt: Double
    }
    /// By SPI (inbound or outbound), for stored SAs only.
    public private(set) var usage: [ChildSPI: Usage] = [:]

    /// The stored SA with this SPI in either direction.
    public func child(spi: ChildSPI) -> StoredChildSA? { children[spi] ?? outboundByInbound[spi].flatMap { children[$0] } }

    /// Takes a terminal's report about one of its SAs; false when the SPI is none of this terminal's stored SAs.
    @discardableResult
    public func recordUsage(spi: ChildSPI, packets: UInt64, octets: UInt64, terminal: (IPAddress) -> Bool, now: Double) -> Bool {
        guard let sa = child(spi: spi), terminal(sa.terminal) else { return false }
        usage[spi] = Usage(packets: packets, octets: octets, reportedAt: now)
        return true
    }
    /// Outbound SPIs a rekey replaced, until their CHILD SA is deleted.
    private var superseded: Set<ChildSPI> = []
    /// Outbound SPIs of replaced CHILD SAs since deleted, with their terminal and until when its ESP on them is
    /// still let out: the terminal switches to the new SA only once it holds it, and what it sent just before
    /// may still be on its way (strongSwan keeps a rekeyed inbound SA for its `delete_rekeyed_delay`, 5 s,
    /// for the same packets).
    private var deletedAfterRekey: [ChildSPI: (terminal: IPAddress, until: Double)] = [:]
    /// How long ESP on a replaced and deleted SA is still let out.
    public static let replacedSAGrace: Double = 5

    /// Highest sequence number seen in the terminal's ESP per outbound SA (the proxy forwards it all).
    public private(set) var highestOutboundSequence: [ChildSPI: UInt64] = [:]

    public init() {}

    /// After a restart: the highest sequence number the terminal was known to have used on an outbound SA.
    public func restoreSequence(spi: ChildSPI, highest: UInt64) {
        highestOutboundSequence[spi] = max(highestOutboundSequence[spi] ?? 0, highest)
    }

    /// Records what an engine event means for the store; returns the SA it added, if any.
    @discardableResult
    public func record(_ event: SAEvent, lifetime: ESPLifetime, asked: ProtectedTrafficSelectors? = nil, now: Double) -> StoredChildSA? {
        switch event.kind {
        case .childEstablished, .childRekeyed:
            guard let child = event.child else { return nil }
            let (inbound, outbound) = SAHandover.parameters(for: event, child: child, lifetime: lifetime)
            let stored = StoredChildSA(
                terminal: event.local.address, peer: event.remote.address, connection: event.connection,
                childName: child.name, asked: asked, inbound: inbound, outbound: outbound, ikeSPIs: (event.spiInitiator, event.spiResponder),
                createdAt: now, hardLifetime: lifetime.hardSeconds.map(Double.init))
            insert(stored)
            if let old = child.replaces { superseded.insert(old.outbound) }
            return stored
        case .childDeleted:
            guard let child = event.child else { break }
            if superseded.remove(child.spiOutbound) != nil {
                deletedAfterRekey[child.spiOutbound] = (event.local.address, now + Self.replacedSAGrace)
            }
            remove(child.spiOutbound)
        case .ikeDeleted, .ikeFailed:
            for (spi, sa) in children where sa.ikeSPIs == (event.spiInitiator, event.spiResponder) {
                remove(spi)
                superseded.remove(spi)
            }
        case .ikeRekeyed:
            // The CHILD SAs move to the new IKE SA; the event names the new SPIs, the old ones are in detail.
            break
        case .ikeEstablished, .childFailed:
            break
        }
        return nil
    }

    /// The newest valid CHILD SA between a terminal and a peer.
    public func validChild(terminal: IPAddress, peer: IPAddress, now: Double) -> StoredChildSA? {
        validChildren(terminal: terminal, peer: peer, now: now).last
    }

    /// The valid CHILD SAs between a terminal and a peer (one per profile that protects their traffic, more
    /// while a rekey's old SA waits for its deletion), oldest first.
    public func validChildren(terminal: IPAddress, peer: IPAddress, now: Double) -> [StoredChildSA] {
        (byPair[TerminalPeer(terminal: terminal, peer: peer)] ?? []).compactMap { children[$0] }.filter { $0.isValid(now: now) }
            .sorted { $0.createdAt < $1.createdAt }
    }

    /// Notes the sequence number of an ESP packet the terminal sent (low 32 bits on the wire; the high half
    /// is followed across wraps for extended sequence numbers).
    public func noteOutbound(spi: ChildSPI, sequenceLow: UInt32) {
        let previous = highestOutboundSequence[spi] ?? 0
        var high = previous >> 32
        if UInt32(truncatingIfNeeded: previous) > 0xC000_0000 && sequenceLow < 0x4000_0000 { high += 1 }
        let full = high << 32 | UInt64(sequenceLow)
        if full > previous { highestOutboundSequence[spi] = full }
    }

    /// The SA to hand again to a terminal: its outbound half continues above every sequence number used.
    public func resumable(_ stored: StoredChildSA) -> (inbound: SecurityAssociationParameters, outbound: SecurityAssociationParameters) {
        var outbound = stored.outbound
        outbound.sequenceStart = (highestOutboundSequence[stored.outbound.spi] ?? 0) + Self.sequenceMargin
        return (stored.inbound, outbound)
    }

    /// Sequence numbers skipped when an SA is handed again, for packets lost between terminal and proxy.
    public static let sequenceMargin: UInt64 = 65536

    /// Whether `spi` is the outbound SPI of a CHILD SA of this terminal (its ESP may go out).
    public func isOutboundSPI(_ spi: ChildSPI, of terminal: IPAddress) -> Bool { children[spi]?.terminal == terminal }

    /// Whether `spi` is the outbound SPI of this terminal's CHILD SA that a rekey replaced and that was deleted
    /// less than `replacedSAGrace` seconds ago (its last ESP may still go out).
    public func isRecentlyReplacedSPI(_ spi: ChildSPI, of terminal: IPAddress, now: Double) -> Bool {
        guard let entry = deletedAfterRekey[spi] else { return false }
        return entry.terminal == terminal && now < entry.until
    }

    /// Removes and returns the SAs past their hard lifetime.
    public func expire(now: Double) -> [StoredChildSA] {
        let expired = children.values.filter { !$0.isValid(now: now) }
        for sa in expired { remove(sa.outbound.spi) }
        deletedAfterRekey = deletedAfterRekey.filter { now < $0.value.until }
        return expired
    }

    public var count: Int { children.count }
}
