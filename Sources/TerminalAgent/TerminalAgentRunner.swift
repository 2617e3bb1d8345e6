import Foundation
import IKEv2
import KeyDelivery
import LinuxIO

/// Runs the terminal agent. With the user-space backend: a TUN device for the protected flows, UDP 4500
/// for ESP-in-UDP, raw protocol-50 sockets for ESP without UDP, and raw sockets for packets sent on
/// unchanged. With the kernel backend: the kernel's XFRM over netlink, and UDP 4500 sockets marked for the
/// kernel to take ESP-in-UDP off (UDP_ENCAP). Both: the key-delivery port.
public final class TerminalAgentRunner {
    let configuration: TerminalConfiguration
    let agent: TerminalAgent
    let tun: TUNDevice?
    let kernel: XFRMKernel?
    /// ESP in UDP, one socket per address family the terminal has an outer address in.
    let espSockets: [UDPSocket]
    /// ESP without UDP encapsulation, likewise one per family (user-space backend).
    let plainESPSockets: [RawESPSocket]
    let keyDeliverySocket: UDPSocket
    let raw4: RawIPSocket?
    let raw6: RawIPSocket?
    let log: (String) -> Void
    /// Where key-delivery messages go: the source of the last authentic message from the proxy, with the
    /// interface it came in on (an IPv6 link-local or multicast address needs it).
    var proxyEndpoint: (address: [UInt8], port: UInt16, scopeID: UInt32)

    public init(configuration: TerminalConfiguration, log: @escaping (String) -> Void) throws {
        self.configuration = configuration
        self.log = log
        var settings = KeyDeliverySettings()
        settings.maximumClockSkew = configuration.maximumClockSkew
        let epoch = UInt64(Date().timeIntervalSince1970 * 1000)
        let channel = KeyDeliveryChannel(
            role: .terminal, terminalID: configuration.terminalID, enrollmentKey: configuration.enrollmentKey, epoch: epoch, settings: settings)
        espSockets = try configuration.outerAddresses.map {
            try UDPSocket(address: $0.bytes, port: configuration.encapsulationPort, mark: configuration.fwmark)
        }
        keyDeliverySocket = try UDPSocket(
            address: configuration.keyDeliveryListen.bytes, port: configuration.keyDeliveryPort,
            mark: configuration.fwmark, broadcast: true)
        proxyEndpoint = (configuration.proxyAddress.bytes, configuration.keyDeliveryPort, 0)
        let outer = configuration.outerAddresses.map { "\($0)" }.joined(separator: " and ")
        switch configuration.backend {
        case .kernel:
            let kernel = try XFRMKernel(traps: configuration.traps, log: log)
            for socket in espSockets + [keyDeliverySocket] { try socket.bypassKernelIPsec() }
            for socket in espSockets { try socket.takeESPIntoKernel() }
            self.kernel = kernel
            agent = TerminalAgent(channel: channel, statusInterval: configuration.statusInterval, kernel: kernel)
            (tun, plainESPSockets, raw4, raw6) = (nil, [], nil, nil)
            log(
                "terminal \(configuration.terminalID): kernel backend (XFRM): SAs go into the kernel, which does the ESP; "
                    + "ESP-in-UDP taken off by the kernel on \(outer) port \(configuration.encapsulationPort); "
                    + "\(configuration.traps.count) trap polic\(configuration.traps.count == 1 ? "y" : "ies")\(configuration.traps.isEmpty ? "" : " (\(configuration.traps.map(\.description).joined(separator: "; ")))"); "
                    + "key delivery on port \(configuration.keyDeliveryPort)")
        case .userSpace:
            kernel = nil
            agent = TerminalAgent(channel: channel, statusInterval: configuration.statusInterval)
            let tun = try TUNDevice(name: configuration.tunName)
            try Self.ip(["link", "set", tun.name, "mtu", String(configuration.tunMTU), "up"])
            for address in configuration.tunAddresses { try Self.ip(["address", "add", address, "dev", tun.name]) }
            for route in configuration.tunRoutes { try Self.ip(["route", "add", route, "dev", tun.name]) }
            self.tun = tun
            plainESPSockets = try configuration.outerAddresses.map { try RawESPSocket(ipv6: $0.isIPv6) }
            raw4 = try RawIPSocket(ipv6: false, mark: configuration.fwmark)
            raw6 = try RawIPSocket(ipv6: true, mark: configuration.fwmark)
            log(
                "terminal \(configuration.terminalID): TUN \(tun.name) up (\(configuration.tunAddresses.joined(separator: ", ")); routes \(configuration.tunRoutes.joined(separator: ", "))), "
                    + "ESP-in-UDP on \(outer) port \(configuration.encapsulationPort) and plain ESP (protocol 50), key delivery on port \(configuration.keyDeliveryPort)"
            )
        }
    }

    static func ip(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TerminalConfigurationError(description: "'ip \(arguments.joined(separator: " "))' failed with status \(process.terminationStatus)")
        }
    }

    func perform(_ actions: [TerminalAction]) {
        for action in actions {
            do {
                switch action {
                case .sendEncapsulated(let payload, let to, let port, _):
                    guard let socket = espSocket(for: to) else {
                        log("no outer address of the family of \(to): ESP not sent")
                        continue
                    }
                    try socket.send(payload, to: to.bytes, port: port)
                case .sendRaw(let packet, let destination):
                    try (destination.isIPv6 ? raw6 : raw4)?.send(packet, destination: destination.bytes)
                case .deliver(let packet):
                    try tun?.write(packet)
                case .sendKeyDelivery(let datagram):
                    if proxyEndpoint.scopeID == 0, let scope = linkScope(of: proxyEndpoint.address) { proxyEndpoint.scopeID = scope }
                    try keyDeliverySocket.send(datagram, to: proxyEndpoint.address, port: proxyEndpoint.port, scopeID: proxyEndpoint.scopeID)
                case .log(let text):
                    log(text)
                }
            } catch {
                log("I/O failed: \(error)")
            }
        }
    }

    /// For an IPv6 link-local or multicast proxy address (the default for an IPv6-only terminal is ff02::1):
    /// the interface of the terminal's own IPv6 address, the link the proxy is on.
    func linkScope(of address: [UInt8]) -> UInt32? {
        guard address.count == 16, address[0] == 0xff || (address[0] == 0xfe && address[1] & 0xc0 == 0x80),
            let own = configuration.outerAddresses.first(where: \.isIPv6)
        else { return nil }
        guard let index = interfaceIndex(holding: own.bytes) else {
            log("key delivery: no interface holds \(own) yet; cannot reach the proxy's link-scoped address")
            return nil
        }
        return index
    }

    func espSocket(for address: IPAddress) -> UDPSocket? { espSockets.first { $0.isIPv6 == address.isIPv6 } }

    public func run(shouldStop: () -> Bool) {
        let descriptors =
            [keyDeliverySocket.descriptor] + (tun.map { [$0.descriptor] } ?? []) + (kernel.map { [$0.notifications.descriptor] } ?? [])
            + espSockets.map(\.descriptor) + plainESPSockets.map(\.descriptor)
        var lastTick = 0.0
        var lastKeepalive = monotonicSeconds()
        while !shouldStop() {
            let ready = waitReadable(descriptors, timeoutMilliseconds: 100)
            let time = ClockReading(monotonic: monotonicSeconds(), wall: Date().timeIntervalSince1970)
            if let tun, ready.contains(tun.descriptor) {
                var budget = 256
                while budget > 0, let packet = tun.read() {
                    perform(agent.outbound(packet, at: time))
                    budget -= 1
                }
            }
            for socket in espSockets where ready.contains(socket.descriptor) {
                var budget = 256
                // With the kernel backend only what is not ESP reaches the socket (IKE, keepalives).
                while budget > 0, let (bytes, _, _) = socket.receive() {
                    perform(agent.inboundEncapsulated(bytes))
                    budget -= 1
                }
            }
            for socket in plainESPSockets where ready.contains(socket.descriptor) {
                var budget = 256
                while budget > 0, let esp = socket.receive() {
                    perform(agent.inboundPlainESP(esp))
                    budget -= 1
                }
            }
            if let kernel, ready.contains(kernel.notifications.descriptor) {
                for report in kernel.drainNotifications() {
                    switch report {
                    case .acquire(let flow): perform(agent.kernelAcquired(flow, at: time))
                    case .expire(let spi, let direction, let hard): perform(agent.kernelExpired(spi: spi, direction: direction, hard: hard, at: time))
                    }
                }
            }
            if ready.contains(keyDeliverySocket.descriptor) {
                while let (bytes, address, port) = keyDeliverySocket.receive() {
                    let actions = agent.receiveKeyDelivery(bytes, at: time)
                    if agent.lastKeyDeliveryWasAuthentic { proxyEndpoint = (address, port, keyDeliverySocket.lastScopeID) }
                    perform(actions)
                }
            }
            if time.monotonic - lastTick >= 0.1 {
                perform(agent.tick(at: time))
                lastTick = time.monotonic
            }
            if configuration.keepaliveInterval > 0 && time.monotonic - lastKeepalive >= configuration.keepaliveInterval {
                lastKeepalive = time.monotonic
                for (peer, port, _) in agent.encapsulatedPeers { try? espSocket(for: peer)?.send([0xff], to: peer.bytes, port: port) }
            }
        }
        let drops = agent.database.drops.counts.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: " ")
        let counters = agent.counters.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        log("stopping; counters: \(counters); ESP drops: \(drops.isEmpty ? "none" : drops)")
    }
}
