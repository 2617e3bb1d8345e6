/// One line for the operator's log: the text as it is written in the text format, and the facts it is about
/// (which peer, which of our addresses, which IKE SA), which the JSON format carries as fields of their own so
/// that a log collector can select by them without reading the text.
///
/// Written from a string literal or interpolation like a `String`: the engine's call sites stay plain text, and
/// the facts are filled in where they are known (`IKEEngine.receive` adds those of the datagram at hand).
public struct LogLine: Equatable, Sendable, CustomStringConvertible, ExpressibleByStringInterpolation {
    public var text: String
    public var facts: LogFacts

    public init(_ text: String, facts: LogFacts = LogFacts()) {
        self.text = text
        self.facts = facts
    }

    public init(stringLiteral value: String) { self.init(value) }
    public init(stringInterpolation: DefaultStringInterpolation) { self.init(String(stringInterpolation: stringInterpolation)) }

    public var description: String { text }

    /// The line with the facts it lacks taken from `other`.
    public func adding(_ other: LogFacts) -> LogLine { LogLine(text, facts: facts.adding(other)) }
}

/// What a log line is about; nil where it is not known.
public struct LogFacts: Equatable, Sendable {
    /// The peer's address.
    public var peer: String?
    /// Our address in the exchange: a terminal's when the proxy speaks in its name.
    public var local: String?
    /// The terminal the line is about, when the caller knows the address is one (the proxy).
    public var terminal: String?
    /// The IKE SA, as `SPIi_SPIr` (the responder's SPI zero before it has one).
    public var ikeSPIs: String?

    public init(peer: String? = nil, local: String? = nil, terminal: String? = nil, ikeSPIs: String? = nil) {
        self.peer = peer
        self.local = local
        self.terminal = terminal
        self.ikeSPIs = ikeSPIs
    }

    /// The facts of a datagram: its two addresses and the SPIs its IKE header names (after the non-ESP marker on 4500).
    public init(datagram: [UInt8], from remote: Endpoint, to local: Endpoint) {
        let start = (remote.port == 4500 || local.port == 4500) && datagram.count >= 4 && datagram[0..<4].allSatisfy({ $0 == 0 }) ? 4 : 0
        self.init(peer: remote.address.description, local: local.address.description)
        if datagram.count >= start + 16 {
            let initiator = IKESPI(bytes: Array(datagram[start..<start + 8]))
            let responder = IKESPI(bytes: Array(datagram[start + 8..<start + 16]))
            ikeSPIs = "\(initiator)_\(responder)"
        }
    }

    public func adding(_ other: LogFacts) -> LogFacts {
        LogFacts(peer: peer ?? other.peer, local: local ?? other.local, terminal: terminal ?? other.terminal, ikeSPIs: ikeSPIs ?? other.ikeSPIs)
    }

    /// The facts that are known, by the names the JSON log format gives them, in a fixed order.
    public var fields: [(name: String, value: String)] {
        [("peer", peer), ("local", local), ("terminal", terminal), ("ike_spis", ikeSPIs)].compactMap { field in
            field.1.map { (field.0, $0) }
        }
    }
}
