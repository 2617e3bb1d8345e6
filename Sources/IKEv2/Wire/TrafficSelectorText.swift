/// The text form of a traffic selector in configuration files and logs, as strongSwan writes it:
/// `10.0.0.0/24`, `2001:db8::1`, `192.0.2.1/32[tcp]`, `192.0.2.1[tcp/443]`, `192.0.2.1[udp/1000-2000]`,
/// `192.0.2.1[47]`. Ports are selected only for protocols that have them (TCP, UDP, SCTP, UDP-Lite).
/// For ICMP and ICMPv6 the port fields carry the message type in the high octet and the code in the low
/// one (RFC 7296 section 3.13.1), written as strongSwan does: `[icmp/8]` is type 8 code 0, `[icmp/3(4)]`
/// type 3 code 4, `[icmp/3-3(255)]` type 3 with any code; a number of 256 or more is the 16-bit value.
extension TrafficSelector {
    public struct SyntaxError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    static let protocolNames: [(name: String, number: UInt8)] = [
        ("tcp", 6), ("udp", 17), ("icmp", 1), ("icmpv6", 58), ("ipv6-icmp", 58),
        ("sctp", 132), ("udplite", 136)
    ]
    /// TCP, UDP, SCTP and UDP-Lite: the protocols whose selectors carry ports here.
    public static let protocolsWithPorts: Set<UInt8> = [6, 17, 132, 136]
    /// ICMP and ICMPv6: the protocols whose selectors carry a message type and code in the port fields.
    public static let protocolsWithMessageTypes: Set<UInt8> = [1, 58]

    public init(text: String) throws(SyntaxError) {
        var prefix = Substring(text)
        var selector = Substring("")
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
        let bounds = portText.split(separator: "-", omittingEmptySubsequences: false)
        if Self.protocolsWithMessageTypes.contains(ipProtocol) {
            guard (1...2).contains(bounds.count), let low = Self.messageTypeValue(bounds[0]),
                let high = Self.messageTypeValue(bounds[bounds.count - 1]), low <= high
            else {
                throw SyntaxError(description: "'\(text)': '\(parts[1])' is not an ICMP type, type(code) or a range of them")
            }
            startPort = low
            endPort = high
            return
        }
        guard Self.protocolsWithPorts.contains(ipProtocol) else {
            throw SyntaxError(description: "'\(text)': ports apply to tcp, udp, sctp and udplite, types to icmp and icmpv6 only")
        }
        guard (1...2).contains(bounds.count), let low = UInt16(bounds[0]), let high = UInt16(bounds[bounds.count - 1]), low <= high else {
            throw SyntaxError(description: "'\(text)': port '\(parts[1])' is not a number or a range low-high")
        }
        startPort = low
        endPort = high
    }

    /// "8" (type 8, code 0), "3(4)" (type 3, code 4), or a number of 256 or more taken as the whole value,
    /// as strongSwan reads them.
    static func messageTypeValue(_ text: Substring) -> UInt16? {
        if let open = text.firstIndex(of: "(") {
            guard text.hasSuffix(")"), let type = UInt8(text[..<open]),
                let code = UInt8(text[text.index(after: open)..<text.index(before: text.endIndex)])
            else { return nil }
            return UInt16(type) << 8 | UInt16(code)
        }
        guard let number = UInt16(text) else { return nil }
        return number < 256 ? number << 8 : number
    }

    /// The inverse of `messageTypeValue`: "8", "3(4)".
    static func messageTypeText(_ value: UInt16) -> String {
        value & 0xff == 0 ? "\(value >> 8)" : "\(value >> 8)(\(value & 0xff))"
    }

    /// The protocol and ports in brackets, empty for "any protocol, any port".
    var selectorSuffix: String {
        guard ipProtocol != 0 else { return startPort == 0 && endPort == 65535 ? "" : "[any/\(startPort)-\(endPort)]" }
        let name = Self.protocolNames.first { $0.number == ipProtocol }?.name ?? String(ipProtocol)
        if startPort == 0 && endPort == 65535 { return "[\(name)]" }
        if Self.protocolsWithMessageTypes.contains(ipProtocol) {
            let low = Self.messageTypeText(startPort)
            let high = Self.messageTypeText(endPort)
            return "[\(name)/" + (startPort == endPort ? low : "\(low)-\(high)") + "]"
        }
        return "[\(name)/" + (startPort == endPort ? "\(startPort)" : "\(startPort)-\(endPort)") + "]"
    }
}
