/// The text form of a traffic selector in configuration files and logs, as strongSwan writes it:
/// `10.0.0.0/24`, `2001:db8::1`, `192.0.2.1/32[tcp]`, `192.0.2.1[tcp/443]`, `192.0.2.1[udp/1000-2000]`,
/// `192.0.2.1[47]`. Ports are selected only for protocols that have them (TCP, UDP, SCTP, UDP-Lite);
/// for ICMP the port fields would carry type and code (RFC 7296 section 3.13.1), which is not offered.
extension TrafficSelector {
    public struct SyntaxError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    static let protocolNames: [(name: String, number: UInt8)] = [("tcp", 6), ("udp", 17), ("icmp", 1), ("icmpv6", 58), ("ipv6-icmp", 58),
                                                                  ("sctp", 132), ("udplite", 136)]
    /// TCP, UDP, SCTP and UDP-Lite: the protocols whose selectors carry ports here.
    public static let protocolsWithPorts: Set<UInt8> = [6, 17, 132, 136]

    public init(text: String) throws(SyntaxError) {
        var prefix = Substring(text), selector = Substring("")
        if let open = text.firstIndex(of: "[") {
            guard text.hasSuffix("]") else { throw SyntaxError(description: "'\(text)': a protocol selector ends with ']'") }
            prefix = text[..<open]
            selector = text[text.index(after: open)..<text.index(before: text.endIndex)]
        }
        guard let base = TrafficSelector(cidr: String(prefix)) else { throw SyntaxError(description: "'\(prefix)' is not a prefix") }
        self = base
        guard !selector.isEmpty else { return }
        let parts = selector.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let protocolText = parts[0].lowercased()
        if protocolText == "any" || protocolText == "%any" || protocolText.isEmpty {
            ipProtocol = 0
        } else if let named = Self.protocolNames.first(where: { $0.name == protocolText }) {
            ipProtocol = named.number
        } else if let number = UInt8(protocolText) {
            ipProtocol = number
        } else {
            throw SyntaxError(description: "'\(text)': protocol '\(parts[0])' is not tcp, udp, icmp, icmpv6, sctp, udplite, any or a number")
        }
        guard parts.count == 2 else { return }
        let portText = parts[1].lowercased()
        if portText == "any" || portText == "%any" || portText.isEmpty { return }
        guard Self.protocolsWithPorts.contains(ipProtocol) else {
            throw SyntaxError(description: "'\(text)': ports apply to tcp, udp, sctp and udplite only")
        }
        let bounds = portText.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count), let low = UInt16(bounds[0]), let high = UInt16(bounds[bounds.count - 1]), low <= high else {
            throw SyntaxError(description: "'\(text)': port '\(parts[1])' is not a number or a range low-high")
        }
        startPort = low; endPort = high
    }

    /// The protocol and ports in brackets, empty for "any protocol, any port".
    var selectorSuffix: String {
        guard ipProtocol != 0 else { return startPort == 0 && endPort == 65535 ? "" : "[any/\(startPort)-\(endPort)]" }
        let name = Self.protocolNames.first { $0.number == ipProtocol }?.name ?? String(ipProtocol)
        if startPort == 0 && endPort == 65535 { return "[\(name)]" }
        return "[\(name)/" + (startPort == endPort ? "\(startPort)" : "\(startPort)-\(endPort)") + "]"
    }
}
