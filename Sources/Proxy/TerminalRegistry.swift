import IKEv2
import Packets

/// A terminal the proxy may act for: its address, identity on the key-delivery channel and key.
public struct TerminalEntry: Sendable {
    public var address: IPAddress
    public var terminalID: UInt64
    public var enrollmentKey: KeyMaterial
    public var keyDeliveryPort: UInt16
    /// Where key-delivery messages go: a dual-stack terminal has one entry per address but one channel,
    /// reached on one of them (the agent listens on its IPv4 address).
    public var keyDeliveryAddress: IPAddress

    public init(
        address: IPAddress, terminalID: UInt64, enrollmentKey: KeyMaterial, keyDeliveryPort: UInt16 = WellKnownPort.keyDelivery,
        keyDeliveryAddress: IPAddress? = nil
    ) {
        self.address = address
        self.terminalID = terminalID
        self.enrollmentKey = enrollmentKey
        self.keyDeliveryPort = keyDeliveryPort
        self.keyDeliveryAddress = keyDeliveryAddress ?? address
    }
}

/// Which terminals the proxy may act for: enrolled terminals whose address lies inside one of the
/// administrator's prefixes. Anything else gets no SA from the proxy.
public struct TerminalRegistry: Sendable {
    public var allowedPrefixes: [AddressPrefix]
    public private(set) var entries: [IPAddress: TerminalEntry] = [:]

    public init(allowedPrefixes: [AddressPrefix], terminals: [TerminalEntry] = []) {
        self.allowedPrefixes = allowedPrefixes
        for terminal in terminals { entries[terminal.address] = terminal }
    }

    public mutating func enroll(_ terminal: TerminalEntry) { entries[terminal.address] = terminal }

    /// Forgets every address of a terminal; returns the entries removed (none for an unknown ID).
    public mutating func remove(terminalID: UInt64) -> [TerminalEntry] {
        let removed = entries.values.filter { $0.terminalID == terminalID }.sorted { $0.address.description < $1.address.description }
        for entry in removed { entries[entry.address] = nil }
        return removed
    }

    /// Forgets one address of a terminal (it no longer holds it).
    public mutating func forget(address: IPAddress) { entries[address] = nil }

    /// The IDs of the enrolled terminals, each once.
    public var terminalIDs: Set<UInt64> { Set(entries.values.map(\.terminalID)) }

    /// The terminal at `address` when it is enrolled and allowed.
    public func terminal(at address: IPAddress) -> TerminalEntry? {
        guard let entry = entries[address] else { return nil }
        return allowedPrefixes.contains { $0.contains(address) } ? entry : nil
    }
}
