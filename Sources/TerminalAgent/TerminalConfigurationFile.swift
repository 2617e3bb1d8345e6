import ConfigurationFiles
import Foundation
import IKEv2
import KernelIPsec
import Packets

/// Where a terminal's ESP is done: by the agent itself over a TUN device, for a kernel without ESP, or by
/// the terminal's Linux kernel (XFRM), into which the agent sets the SAs.
public enum TerminalBackend: String, Sendable {
    case userSpace = "user-space"
    case kernel
}

/// Why a terminal configuration was refused.
public struct TerminalConfigurationError: Error, CustomStringConvertible {
    public var description: String
}

/// The JSON configuration of `ikeproxy terminal` (docs/terminal.md).
public struct TerminalConfiguration: Sendable {
    public var terminalID: UInt64
    public var enrollmentKey: KeyMaterial
    public var keyDeliveryPort: UInt16
    public var keyDeliveryListen: IPAddress
    public var proxyAddress: IPAddress
    public var outerAddress: IPAddress
    /// All the terminal's own addresses that carry ESP in UDP (one IPv4 and one IPv6 for a dual-stack terminal).
    public var outerAddresses: [IPAddress]
    public var encapsulationPort: UInt16
    public var tunName: String
    public var tunAddresses: [String]
    public var tunRoutes: [String]
    public var tunMTU: Int
    public var fwmark: UInt32?
    public var statusInterval: Double
    public var keepaliveInterval: Double
    public var maximumClockSkew: Double
    public var backend: TerminalBackend = .userSpace
    /// Kernel backend: outbound policies with no SA behind them, so that the kernel holds back the first
    /// packet of such a flow and asks for an SA (ACQUIRE), which the agent passes to the proxy.
    public var traps: [KernelSelector] = []

    struct File: Decodable {
        var terminal_id: UInt64
        var enrollment_key_hex: String
        var key_delivery_port: UInt16?
        var key_delivery_listen: String?
        var proxy_address: String?
        var outer_address: String?
        var outer_addresses: [String]?
        var encapsulation_port: UInt16?
        var tun: Tun?
        var fwmark: UInt32?
        var status_interval: Double?
        var keepalive_interval: Double?
        var maximum_clock_skew: Double?
        var backend: String?
        var kernel: Kernel?
        struct Kernel: Decodable {
            var trap: [Trap]?
        }
        struct Trap: Decodable {
            var local: String
            var remote: String
            var `protocol`: UInt8?
        }
        struct Tun: Decodable {
            var name: String?
            var addresses: [String]?
            var routes: [String]?
            var mtu: Int?
        }
    }

    public static func load(path: String) throws -> TerminalConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TerminalConfigurationError(description: "cannot read configuration file \(path)")
        }
        return try parse(data)
    }

    public static func parse(_ data: Data) throws -> TerminalConfiguration {
        let file: File
        let check = UnknownKeyCheck(data: data)
        do { file = try check.decode(File.self) } catch {
            throw TerminalConfigurationError(description: "configuration is not valid JSON of the expected shape: \(error)")
        }
        do { try check.refuseUnknownKeys(in: "configuration") } catch { throw TerminalConfigurationError(description: "\(error)") }
        func fail(_ text: String) -> TerminalConfigurationError { TerminalConfigurationError(description: text) }
        guard let key = [UInt8](hexString: file.enrollment_key_hex), key.count >= 16 else {
            throw fail("enrollment_key_hex must be at least 16 octets of hexadecimal (32 recommended)")
        }
        var outers: [IPAddress] = []
        for (key, texts) in [("outer_address", file.outer_address.map { [$0] } ?? []), ("outer_addresses", file.outer_addresses ?? [])] {
            for text in texts {
                guard let address = IPAddress(text) else { throw fail("\(key): '\(text)' is not an IP address") }
                if !outers.contains(address) { outers.append(address) }
            }
        }
        guard let outer = outers.first else { throw fail("outer_address (or outer_addresses) is required: the terminal's own address") }
        guard Set(outers.map(\.isIPv6)).count == outers.count else {
            throw fail("outer_addresses: at most one IPv4 and one IPv6 address")
        }
        // An IPv6-only terminal answers the proxy from its own (registered) address, not from a link-local
        // one the proxy would not know, and reaches the proxy by all-nodes multicast until it has heard it.
        let listenText = file.key_delivery_listen ?? (outer.isIPv6 ? outer.description : "0.0.0.0")
        guard let listen = IPAddress(listenText) else { throw fail("key_delivery_listen '\(listenText)' is not an IP address") }
        let proxyText = file.proxy_address ?? (outer.isIPv6 ? "ff02::1" : "255.255.255.255")
        guard let proxy = IPAddress(proxyText) else { throw fail("proxy_address '\(proxyText)' is not an IP address") }
        for text in (file.tun?.addresses ?? []) + (file.tun?.routes ?? []) where TrafficSelector(cidr: text) == nil {
            throw fail("'\(text)' in tun is not an address prefix")
        }
        guard let backend = TerminalBackend(rawValue: file.backend ?? "user-space") else {
            throw fail("backend '\(file.backend ?? "")' is neither 'user-space' nor 'kernel'")
        }
        if file.kernel != nil && backend != .kernel { throw fail("kernel settings are for backend 'kernel'") }
        if file.tun != nil && backend == .kernel { throw fail("tun is for backend 'user-space': with backend 'kernel' the kernel does the ESP") }
        var traps: [KernelSelector] = []
        for trap in file.kernel?.trap ?? [] {
            guard let local = TrafficSelector(cidr: trap.local, ipProtocol: trap.protocol ?? 0),
                let remote = TrafficSelector(cidr: trap.remote, ipProtocol: trap.protocol ?? 0)
            else { throw fail("kernel.trap: '\(trap.local)' or '\(trap.remote)' is not an address prefix") }
            do { traps += try KernelSelector.covering(source: [local], destination: [remote]) } catch {
                throw fail("kernel.trap \(trap.local) -> \(trap.remote): \(error)")
            }
        }
        var configuration = TerminalConfiguration(
            terminalID: file.terminal_id, enrollmentKey: KeyMaterial(key), keyDeliveryPort: file.key_delivery_port ?? WellKnownPort.keyDelivery,
            keyDeliveryListen: listen, proxyAddress: proxy, outerAddress: outer, outerAddresses: outers,
            encapsulationPort: file.encapsulation_port ?? 4500,
            tunName: file.tun?.name ?? "ikp0", tunAddresses: file.tun?.addresses ?? [], tunRoutes: file.tun?.routes ?? [],
            tunMTU: file.tun?.mtu ?? 1400, fwmark: file.fwmark, statusInterval: file.status_interval ?? 30,
            keepaliveInterval: file.keepalive_interval ?? 20, maximumClockSkew: file.maximum_clock_skew ?? 120)
        configuration.backend = backend
        configuration.traps = traps
        return configuration
    }
}
