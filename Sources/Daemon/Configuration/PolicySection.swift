import ConfigurationFiles
import ESP
import Foundation
import IKEv2
import Management
import Packets
import Proxy
import Store
import X509

extension DaemonConfiguration {
    /// One policy rule as the configuration file and the management API write it.
    public struct RuleText: Codable, Sendable {
        public var source: String?
        public var destination: String?
        public var `protocol`: String?
        public var source_ports: String?
        public var destination_ports: String?
        public var action: String
        public var profile: String?
    }

    /// The rule as configuration text (the inverse of `parseRule`).
    public static func text(of rule: PolicyRule) -> RuleText {
        let names: [UInt8: String] = [
            IPProtocolNumber.tcp: "tcp", IPProtocolNumber.udp: "udp", IPProtocolNumber.icmp: "icmp",
            IPProtocolNumber.icmpv6: "icmpv6", IPProtocolNumber.esp: "esp"
        ]
        let action: String
        let profile: String?
        switch rule.action {
        case .bypass: (action, profile) = ("bypass", nil)
        case .discard: (action, profile) = ("discard", nil)
        case .protect(let name): (action, profile) = ("protect", name)
        }
        return RuleText(
            source: rule.source.text, destination: rule.destination.text,
            protocol: rule.ipProtocol.map { names[$0] ?? String($0) } ?? "any",
            source_ports: rule.sourcePorts.description, destination_ports: rule.destinationPorts.description,
            action: action, profile: profile)
    }

    public static func parseRule(_ r: RuleText, at: String, profiles: Set<String>) throws -> PolicyRule {
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        let sourceText = r.source ?? "any"
        let destinationText = r.destination ?? "any"
        let isIPv6 = sourceText.contains(":") || destinationText.contains(":")
        func prefix(_ text: String, _ key: String) throws -> AddressPrefix {
            if text == "any" { return AddressPrefix.any(ipv6: isIPv6) }
            guard let prefix = AddressPrefix(text) else { throw fail("\(at).\(key): '\(text)' is not an address prefix") }
            return prefix
        }
        let source = try prefix(sourceText, "source")
        let destination = try prefix(destinationText, "destination")
        guard source.isIPv6 == destination.isIPv6 else { throw fail("\(at): source and destination must be the same IP version") }
        let ipProtocol: UInt8?
        switch (r.protocol ?? "any").lowercased() {
        case "any": ipProtocol = nil
        case "tcp": ipProtocol = IPProtocolNumber.tcp
        case "udp": ipProtocol = IPProtocolNumber.udp
        case "icmp": ipProtocol = IPProtocolNumber.icmp
        case "icmpv6", "ipv6-icmp": ipProtocol = IPProtocolNumber.icmpv6
        case "esp": ipProtocol = IPProtocolNumber.esp
        case let other:
            guard let number = UInt8(other) else { throw fail("\(at).protocol: '\(other)' is not tcp, udp, icmp, icmpv6, esp, any or a number") }
            ipProtocol = number
        }
        func ports(_ text: String?, _ key: String) throws -> PortRange {
            guard let text, text != "any" else { return .any }
            guard let range = PortRange(text) else { throw fail("\(at).\(key): '\(text)' is not a port, a range like 1024-2047, or any") }
            return range
        }
        let action: PolicyAction
        switch r.action {
        case "bypass": action = .bypass
        case "discard": action = .discard
        case "protect":
            guard let name = r.profile else { throw fail("\(at): a protect rule names a profile") }
            guard profiles.contains(name) else { throw fail("\(at): profile '\(name)' is not defined in profiles") }
            action = .protect(profile: name)
        default: throw fail("\(at).action: '\(r.action)' is not bypass, discard or protect")
        }
        return PolicyRule(
            source: source, destination: destination, ipProtocol: ipProtocol,
            sourcePorts: try ports(r.source_ports, "source_ports"),
            destinationPorts: try ports(r.destination_ports, "destination_ports"), action: action)
    }
}
