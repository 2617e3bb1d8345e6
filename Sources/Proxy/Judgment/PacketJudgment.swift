import ESP
import IKEv2
import KeyDelivery
import Packets

// The two flowcharts of the design (docs/proxy.md), as three judgments that only read the proxy's state and
// return a verdict; `KeyExchangeProxy` carries the verdict out. Each reads top to bottom in the order of its
// flowchart's questions.

/// An IKE datagram for a terminal, as the engine takes it.
struct IKEDatagramForTerminal {
    var payload: [UInt8]
    var peer: Endpoint
    var terminal: Endpoint
}

/// What to do with a packet that arrived from the Internet side.
enum InternetPacketVerdict {
    case drop(PacketDropReason, log: String? = nil)
    /// Not IKE for a terminal (ESP, or traffic the policy passes): on to the terminal side unchanged.
    case forwardToTerminal
    /// IKE on an IKE SA held for an address the proxy no longer makes SAs for (a terminal removed, a pair no
    /// longer protected): answered so that its Delete exchanges and liveness checks complete.
    case answerOnHeldIKESA(IKEDatagramForTerminal, counted: ProxyCounter)
    /// IKE for a registered, protected terminal: answered in its name under this profile's connection;
    /// `storedSA`, when set, is a valid SA whose keys the terminal gets again first (the peer starts over).
    case negotiate(IKEDatagramForTerminal, terminal: TerminalEntry, profile: ProtectionProfile, storedSA: StoredChildSA?)
}

/// What to do with a packet that arrived from the terminal side.
enum TerminalPacketVerdict {
    case drop(PacketDropReason)
    /// Key delivery from a terminal (or a removed one whose acknowledgements are still awaited).
    case keyDelivery([UInt8], from: TerminalEntry)
    case bypass
    case forwardKeepalive
    /// ESP on an SA stored for this terminal: out, with its sequence number noted.
    case forwardESP(spi: ChildSPI, sequenceLow: UInt32)
    /// ESP on an SA the terminal had until just now (a rekey): the peer still takes it for a while.
    case forwardESPOfReplacedSA
    /// ESP on an SA the proxy does not hold for this terminal.
    case espOfUnknownSA(ChildSPI, terminal: IPAddress)
    /// Plaintext of a protected flow: a start request (the packet itself never goes out).
    case startRequest(terminal: IPAddress, peer: IPAddress, flow: FlowKey)
}

/// What a start request (a plaintext packet of a protected flow, or an ACQUIRE) comes to.
enum StartRequestVerdict {
    case drop(PacketDropReason, log: String? = nil)
    /// A valid stored SA takes the flow: set its keys into the terminal (it may have lost them).
    case setStoredSA(StoredChildSA, terminal: TerminalEntry)
    /// The stored SA's keys were set a moment ago: nothing to do.
    case settingAlready
    /// The flow is protected but outside the stored SA, which the peer narrowed: its packets are dropped.
    case outsideStoredSA(StoredChildSA, flow: FlowKey)
    case joinNegotiation
    case heldAfterFailure
    /// Over a negotiation limit (the text says which).
    case overLimit(String, terminal: TerminalEntry)
    /// Negotiate in the terminal's name: the pair's IKE SA under `profile`, the CHILD SA of `wanted`;
    /// `replacing` is a stored SA made before the policy changed, which the new one replaces.
    case negotiate(terminal: TerminalEntry, profile: ProtectionProfile, wanted: ProtectionProfile, replacing: StoredChildSA?)
}

extension KeyExchangeProxy {
    /// UDP source and destination ports and where the UDP payload starts, for UDP packets that are not later fragments.
    private func udp(_ packet: [UInt8], _ view: IPPacketView) -> (source: UInt16, destination: UInt16, payload: Int)? {
        guard view.upperProtocol == IPProtocolNumber.udp, !view.isLaterFragment, let ports = view.ports(in: packet),
            view.upperOffset + 8 <= view.totalLength
        else { return nil }
        return (ports.source, ports.destination, view.upperOffset + 8)
    }

    /// UDP to the key-delivery port, whether or not the rest of the UDP header is there.
    private func isToKeyDeliveryPort(_ packet: [UInt8], _ view: IPPacketView) -> Bool {
        view.upperProtocol == IPProtocolNumber.udp && view.ports(in: packet)?.destination == settings.keyDeliveryPort
    }

    /// Flowchart 1: a packet from the Internet. Discarded by policy? Key exchange related? For a registered
    /// terminal? Protected? May a new IKE SA be made? A valid SA stored already? Then agree, store and set.
    func judgeFromInternet(_ packet: [UInt8], view: IPPacketView, now: Double) -> InternetPacketVerdict {
        let peerBytes = view.source(in: packet)
        let terminalBytes = view.destination(in: packet)
        // Policy rules are written from the terminal's side: look the packet up as the terminal's flow.
        let ports = view.ports(in: packet)
        let isICMP = view.upperProtocol == IPProtocolNumber.icmp || view.upperProtocol == IPProtocolNumber.icmpv6
        let key = FlowKey(
            isIPv6: view.version == 6, source: AddressKey(terminalBytes), destination: AddressKey(peerBytes),
            ipProtocol: view.upperProtocol,
            sourcePort: isICMP ? ports?.source ?? 0 : ports?.destination ?? 0,
            destinationPort: isICMP ? ports?.destination ?? 0 : ports?.source ?? 0)
        if policy.action(for: key) == .discard { return .drop(.policyDiscard) }
        // Judged by the port alone: a datagram to the key-delivery port never reaches a terminal from the
        // Internet, even one whose UDP header is cut short (found by fuzzing: it used to pass unjudged).
        if isToKeyDeliveryPort(packet, view) { return .drop(.keyDeliveryFromInternet) }
        guard let udp = udp(packet, view),
            udp.destination == WellKnownPort.ike
                || (udp.destination == WellKnownPort.ikeNATTraversal
                    && UDPEncapsulatedKind(payload: packet[udp.payload..<view.totalLength]) == .ike)
        else {
            return .forwardToTerminal
        }
        guard let peer = IPAddress(bytes: peerBytes), let terminalAddress = IPAddress(bytes: terminalBytes) else { return .drop(.malformed) }
        let payload = Array(packet[udp.payload..<view.totalLength])
        let datagram = IKEDatagramForTerminal(
            payload: payload, peer: Endpoint(peer, udp.source), terminal: Endpoint(terminalAddress, udp.destination))
        let isNewSA =
            payload.count >= 28 && payload[(udp.destination == WellKnownPort.ikeNATTraversal ? 4 : 0) + 18] == ExchangeType.ikeSAInit.rawValue
        guard let terminal = registry.terminal(at: terminalAddress) else {
            // A terminal just removed: the IKE SAs still held in its name are being deleted, and their Delete
            // exchanges (and anything else the peer sends on them meanwhile) are answered; nothing new is made.
            guard !isNewSA, engines.holdsAuthenticatedIKESA(local: terminalAddress, remote: peer) else { return .drop(.ikeForUnregisteredTerminal) }
            return .answerOnHeldIKESA(datagram, counted: .ikeAnsweredForRemovedTerminal)
        }
        guard let profile = profile(terminal: terminalAddress, peer: peer) else {
            // No longer protected (the policy changed): an IKE SA still held for the pair goes on until it is
            // deleted, so that its Delete exchanges and liveness checks complete; no new one is made.
            guard !isNewSA, engines.holdsIKESA(local: terminalAddress, remote: peer) else { return .drop(.ikeWithoutProtectPolicy) }
            return .answerOnHeldIKESA(datagram, counted: .ikeAnsweredForTerminal)
        }
        guard isNewSA else { return .negotiate(datagram, terminal: terminal, profile: profile, storedSA: nil) }
        if let reason = refusesNewNegotiations {
            return .drop(.newNegotiationRefused, log: "IKE_SA_INIT from \(peer) for \(terminalAddress) refused: \(reason)")
        }
        if let reason = missingCredential(terminal, profile: profile) {
            return .drop(.noCertificateForTerminal, log: "IKE_SA_INIT from \(peer) for \(terminalAddress) refused: \(reason)")
        }
        return .negotiate(datagram, terminal: terminal, profile: profile, storedSA: store.validChild(terminal: terminalAddress, peer: peer, now: now))
    }

    /// Flowchart 2: a packet from a terminal. Key delivery for the proxy? Discarded or bypassed by policy?
    /// ESP on a stored SA? Else plaintext of a protected flow: a start request (`judgeStartRequest`).
    func judgeFromTerminal(_ packet: [UInt8], view: IPPacketView, now: Double) -> TerminalPacketVerdict {
        let terminalBytes = view.source(in: packet)
        let peerBytes = view.destination(in: packet)
        let udp = udp(packet, view)
        if isToKeyDeliveryPort(packet, view) {
            // Key delivery is for us, whatever address it was sent to; it never leaves the terminal link,
            // not even cut short.
            guard let udp else { return .drop(.malformedKeyDelivery) }
            guard let address = IPAddress(bytes: terminalBytes),
                let terminal = registry.terminal(at: address) ?? keyDeliveries.departedTerminal(at: address)
            else {
                return .drop(.keyDeliveryFromUnknownTerminal)
            }
            return .keyDelivery(Array(packet[udp.payload..<view.totalLength]), from: terminal)
        }
        let key = FlowKey(packet: packet, view: view)
        switch policy.action(for: key) {
        case .discard: return .drop(.policyDiscard)
        case .bypass: return .bypass
        case .protect: break
        }
        if let udp, udp.destination == WellKnownPort.ikeNATTraversal || udp.source == WellKnownPort.ikeNATTraversal {
            let payload = packet[udp.payload..<view.totalLength]
            switch UDPEncapsulatedKind(payload: payload) {
            case .keepalive: return .forwardKeepalive
            case .esp: return judgeESP(payload, terminal: terminalBytes, now: now)
            case .ike: return .drop(.ikeFromTerminal)
            case .malformed: return .drop(.malformed)
            }
        }
        if view.upperProtocol == IPProtocolNumber.esp {
            return judgeESP(packet[view.upperOffset..<view.totalLength], terminal: terminalBytes, now: now)
        }
        guard let terminalAddress = IPAddress(bytes: terminalBytes), let peer = IPAddress(bytes: peerBytes) else { return .drop(.malformed) }
        return .startRequest(terminal: terminalAddress, peer: peer, flow: key)
    }

    /// ESP from a terminal (`esp` starts at the SPI, in UDP or directly over IP) goes out only under an SA
    /// stored for that terminal.
    private func judgeESP(_ esp: ArraySlice<UInt8>, terminal terminalBytes: [UInt8], now: Double) -> TerminalPacketVerdict {
        let s = esp.startIndex
        guard esp.count >= 8, let terminal = IPAddress(bytes: terminalBytes) else { return .drop(.espOfUnknownSA) }
        let spi = ChildSPI(bytes: Array(esp[s..<(s + 4)]))
        guard store.isOutboundSPI(spi, of: terminal) else {
            // Sent on the old SA just before the terminal had the new one: the peer still takes it for a while.
            if store.isRecentlyReplacedSPI(spi, of: terminal, now: now) { return .forwardESPOfReplacedSA }
            return .espOfUnknownSA(spi, terminal: terminal)
        }
        return .forwardESP(spi: spi, sequenceLow: esp[(s + 4)..<(s + 8)].reduce(0) { $0 << 8 | UInt32($1) })
    }

    /// The start request's questions: a registered terminal? A protected pair? A valid stored SA that takes
    /// the flow? A negotiation under way, or one failed a moment ago? May a new one start? `flow`, when known,
    /// is the packet's or the ACQUIRE's: its rule's profile names the CHILD SA it needs.
    func judgeStartRequest(terminal address: IPAddress, peer: IPAddress, flow: FlowKey?, now: Double) -> StartRequestVerdict {
        guard let terminal = registry.terminal(at: address) else { return .drop(.startRequestFromUnregisteredTerminal) }
        guard let profile = profile(terminal: address, peer: peer) else { return .drop(.startRequestWithoutProtectPolicy) }
        let pair = TerminalPeer(terminal: address, peer: peer)
        // The flow's own profile names the CHILD SA it needs; the pair's first profile sets up the IKE SA.
        var wanted = profile
        if let flow, case .protect(let name) = policy.action(for: flow), let flowProfile = profiles[name] { wanted = flowProfile }
        let valid = store.validChildren(terminal: address, peer: peer, now: now)
        let covering = flow.flatMap { flow in
            valid.last { stored in
                stored.outbound.covers(
                    source: address.bytes[...], destination: peer.bytes[...], ipProtocol: flow.ipProtocol,
                    ports: (flow.sourcePort, flow.destinationPort))
            }
        }
        let sameChild = valid.last { $0.childName == wanted.childName }
        var replacing: StoredChildSA?
        if let stored = covering ?? sameChild ?? (flow == nil ? valid.last : nil) {
            guard let flow, covering == nil else {
                // A valid SA takes the flow: set its keys into the terminal again; no negotiation.
                return now - (lastReuse[pair] ?? -.infinity) >= settings.reuseInterval ? .setStoredSA(stored, terminal: terminal) : .settingAlready
            }
            let current = selectors(terminal: address, peer: peer, profile: wanted.name)
            let asked = ProtectedTrafficSelectors(local: current.local, remote: current.remote)
            guard stored.childName == wanted.childName, let was = stored.asked, was != asked,
                TrafficSelector.cover(
                    current.local, current.remote, source: address.bytes[...], destination: peer.bytes[...],
                    ipProtocol: flow.ipProtocol, ports: (flow.sourcePort, flow.destinationPort))
            else {
                // Setting these keys again would not help: the SA does not take this flow, and the policy gives
                // the same selectors as when it was made (the peer narrowed them).
                return .outsideStoredSA(stored, flow: flow)
            }
            // The policy changed since this SA was made and now takes the flow: a CHILD SA with the current
            // selectors replaces it.
            replacing = stored
        }
        if negotiations.isUnderWay(pair) { return .joinNegotiation }
        if negotiations.isHeldAfterFailure(pair, now: now) { return .heldAfterFailure }
        if let reason = refusesNewNegotiations {
            return .drop(.newNegotiationRefused, log: "start request \(address) -> \(peer) refused: \(reason)")
        }
        if let reason = missingCredential(terminal, profile: profile) {
            return .drop(.noCertificateForTerminal, log: "start request \(address) -> \(peer) refused: \(reason)")
        }
        if let limit = negotiations.limitReached(terminalID: terminal.terminalID, of: { self.registry.entries[$0]?.terminalID }) {
            return .overLimit(limit, terminal: terminal)
        }
        return .negotiate(terminal: terminal, profile: profile, wanted: wanted, replacing: replacing)
    }
}
