import IKEv2

/// What the policy says about each terminal and peer (the profiles protecting their traffic and each one's
/// selectors), derived once per policy: every IKE message, start request and SA event asks. Forgotten when
/// the policy or the profiles change.
struct PairPolicies {
    struct Entry {
        var profiles: [ProtectionProfile]
        var selectors: [String: ProtectedTrafficSelectors]
    }

    private(set) var entries: [TerminalPeer: Entry] = [:]
    /// The earlier rules each connection's selectors could not cut out, as last counted: counted again only when it changes.
    var reportedStillCovered: [String: [Int]] = [:]
    /// What was logged about them, by profile and rules: said once, however many terminals and peers it concerns.
    var loggedStillCovered: Set<String> = []

    mutating func forget() { entries = [:] }

    mutating func remember(_ entry: Entry, for pair: TerminalPeer) {
        if entries.count >= 65536 { entries = [:] }
        entries[pair] = entry
    }
}

/// The policy's answers per terminal and peer, and the engine connection made from them.
extension KeyExchangeProxy {
    /// The profile of the first protect rule covering traffic between a terminal and a peer: it sets up their
    /// IKE SA (proposals, identities, credentials) and its CHILD SA comes first.
    func profile(terminal: IPAddress, peer: IPAddress) -> ProtectionProfile? { profilesProtecting(terminal: terminal, peer: peer).first }

    /// Every profile that protects some traffic between a terminal and a peer, in the order of their first
    /// rules (the default action last): each has its CHILD SA on the pair's one IKE SA.
    func profilesProtecting(terminal: IPAddress, peer: IPAddress) -> [ProtectionProfile] { pairPolicy(terminal: terminal, peer: peer).profiles }

    /// The CHILD SA selectors the policy gives a profile for a terminal and a peer.
    func selectors(terminal: IPAddress, peer: IPAddress, profile: String) -> ProtectedTrafficSelectors {
        pairPolicy(terminal: terminal, peer: peer).selectors[profile] ?? policy.protectedSelectors(terminal: terminal, peer: peer, profile: profile)
    }

    private func pairPolicy(terminal: IPAddress, peer: IPAddress) -> PairPolicies.Entry {
        let pair = TerminalPeer(terminal: terminal, peer: peer)
        if let known = pairPolicies.entries[pair] { return known }
        let t = AddressKey(terminal.bytes)
        let p = AddressKey(peer.bytes)
        var names: [String] = []
        for rule in policy.rules where rule.source.isIPv6 == terminal.isIPv6 && rule.source.contains(t) && rule.destination.contains(p) {
            if case .protect(let name) = rule.action, !names.contains(name) { names.append(name) }
        }
        if case .protect(let name) = policy.defaultAction, !names.contains(name) { names.append(name) }
        var selectors: [String: ProtectedTrafficSelectors] = [:]
        for name in names { selectors[name] = policy.protectedSelectors(terminal: terminal, peer: peer, profile: name) }
        // A profile whose rules earlier rules shadow entirely protects nothing here.
        let found = PairPolicies.Entry(profiles: names.filter { selectors[$0]?.shadowed == false }.compactMap { profiles[$0] }, selectors: selectors)
        pairPolicies.remember(found, for: pair)
        return found
    }

    /// The profile whose CHILD SA configuration has this name.
    func profile(forChild name: String) -> ProtectionProfile? { profiles.values.first { $0.childName == name } }

    /// The engine's connection for a terminal and a peer, set from the current policy, and a log line when its
    /// selectors newly reach into earlier rules' traffic (see `ProtectedTrafficSelectors.stillCovered`).
    func connection(for terminal: IPAddress, peer: IPAddress, profile: ProtectionProfile) -> (name: String, notes: [ProxyAction]) {
        let credential = registry.terminal(at: terminal).flatMap { terminalCredentials[$0.terminalID] }
        let others = profilesProtecting(terminal: terminal, peer: peer).filter { $0.name != profile.name }
        let selectors = self.selectors(terminal: terminal, peer: peer, profile: profile.name)
        var bySelectors = [(profile, selectors)]
        for other in others { bySelectors.append((other, self.selectors(terminal: terminal, peer: peer, profile: other.name))) }
        let connection = profile.connection(
            terminal: terminal, peer: peer, credential: credential, selectors: selectors,
            otherChildren: bySelectors.dropFirst().map { $0.0.childConfiguration(selectors: $0.1) })
        // Set every time: a policy changed over the management API reaches the next negotiation.
        engines.setConnection(connection)
        var notes: [ProxyAction] = []
        for (profile, selectors) in bySelectors {
            notes += noteStillCovered(selectors, profile: profile, terminal: terminal, peer: peer, key: "\(connection.name) \(profile.name)")
        }
        return (connection.name, notes)
    }

    /// Counts (once per terminal, peer and profile) and logs (once per profile and rules) the earlier rules a
    /// profile's selectors could not cut out.
    private func noteStillCovered(
        _ selectors: ProtectedTrafficSelectors, profile: ProtectionProfile, terminal: IPAddress, peer: IPAddress,
        key: String
    ) -> [ProxyAction] {
        var notes: [ProxyAction] = []
        if pairPolicies.reportedStillCovered[key, default: []] != selectors.stillCovered {
            pairPolicies.reportedStillCovered[key] = selectors.stillCovered
            let rules = selectors.stillCovered.map { "the rule at position \($0) (\(policy.rules[$0]))" }.joined(separator: ", ")
            if !selectors.stillCovered.isEmpty {
                count(.selectorsCoveringEarlierRules)
                if pairPolicies.loggedStillCovered.count < 1024, pairPolicies.loggedStillCovered.insert("\(profile.name) \(rules)").inserted {
                    notes.append(
                        .log(
                            "CHILD SA selectors of profile '\(profile.name)' still cover traffic of \(rules) (first for \(terminal) <-> \(peer); "
                                + "said once for every terminal and peer): IKEv2 selectors cannot cut it out (a selector names one protocol "
                                + "or all, and the SA takes every local and remote pair), so the terminal encrypts it and that rule never "
                                + "sees it; narrow the protect rule to keep it outside"))
                }
            }
        }
        return notes
    }
}
