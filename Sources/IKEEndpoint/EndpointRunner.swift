import Foundation
import IKEv2
import LinuxIO

/// Runs the engine as a plain IKEv2 endpoint: UDP 500 and 4500 on every configured local address,
/// a clock tick every 100 ms, commands from an optional control pipe, events as JSON lines on stdout.
public final class EndpointRunner {
    let engine: IKEEngine
    let showKeys: Bool
    var sockets: [UDPSocket] = []
    let control: ControlChannel?
    let log: (String) -> Void
    let emit: (String) -> Void

    public init(configurationPath: String, showKeys: Bool, controlPath: String?,
                log: @escaping (String) -> Void, emit: @escaping (String) -> Void) throws {
        let (connections, settings) = try EndpointConfigurationFile.load(path: configurationPath)
        engine = IKEEngine(connections: connections, settings: settings)
        self.showKeys = showKeys
        self.log = log
        self.emit = emit
        var bound = Set<String>()
        for connection in connections {
            for port in Set([connection.localPort, 4500]) where bound.insert("\(connection.localAddress)|\(port)").inserted {
                sockets.append(try UDPSocket(address: connection.localAddress.bytes, port: port))
                log("listening on \(Endpoint(connection.localAddress, port))")
            }
        }
        control = try controlPath.map { try ControlChannel(path: $0) }
    }

    /// Handles one control command; returns a line describing the result.
    func command(_ line: String, now: Double) -> [EngineAction] {
        let words = line.split(separator: " ").map(String.init)
        guard let verb = words.first else { return [] }
        let name = words.count > 1 ? words[1] : ""
        let spi = words.count > 2 ? UInt32(words[2], radix: 16).map(ChildSPI.init) : nil
        switch verb {
        case "initiate": return engine.initiate(connection: name, now: now)
        case "rekey-child": return engine.rekeyChild(connection: name, spi: spi, now: now)
        case "rekey-ike": return engine.rekeyIKE(connection: name, now: now)
        case "delete-child": return engine.deleteChild(connection: name, spi: spi, now: now)
        case "delete-ike": return engine.deleteIKE(connection: name, now: now)
        case "liveness": return engine.checkLiveness(connection: name, now: now)
        case "list":
            return engine.sessionSummaries.map { s in
                .log("IKE SA \(s.connection) \(s.spiInitiator)_\(s.spiResponder) \(s.established ? "ESTABLISHED" : "CONNECTING") \(s.local) <-> \(s.remote) children: "
                     + s.children.map { "\($0.name) \($0.inbound)/\($0.outbound)" }.joined(separator: ", "))
            }
        default: return [.log("unknown control command '\(line)'")]
        }
    }

    func perform(_ actions: [EngineAction]) {
        for action in actions {
            switch action {
            case .send(let datagram):
                guard let socket = sockets.first(where: { $0.localAddress == datagram.source.address.bytes && $0.localPort == datagram.source.port })
                        ?? sockets.first(where: { $0.localAddress == datagram.source.address.bytes }) else {
                    log("no socket for \(datagram.source)"); continue
                }
                do { try socket.send(datagram.payload, to: datagram.destination.address.bytes, port: datagram.destination.port) }
                catch { log("send to \(datagram.destination) failed: \(error)") }
            case .event(let event): emit(EventJSON.render(event, showKeys: showKeys))
            case .drop(let reason): log("dropped datagram: \(reason)")
            case .log(let text): log(text)
            }
        }
    }

    /// Runs until `shouldStop` returns true.
    public func run(initiate: [String], shouldStop: () -> Bool) {
        for name in initiate { perform(engine.initiate(connection: name, now: monotonicSeconds())) }
        let descriptors = sockets.map(\.descriptor) + (control.map { [$0.descriptor] } ?? [])
        var lastTick = monotonicSeconds()
        while !shouldStop() {
            let ready = waitReadable(descriptors, timeoutMilliseconds: 100)
            for socket in sockets where ready.contains(socket.descriptor) {
                while let (bytes, address, port) = socket.receive() {
                    guard let from = IPAddress(bytes: address), let to = IPAddress(bytes: socket.localAddress) else { continue }
                    perform(engine.receive(bytes, from: Endpoint(from, port), to: Endpoint(to, socket.localPort), now: monotonicSeconds()))
                }
            }
            if let control, ready.contains(control.descriptor) {
                for line in control.readLines() {
                    log("control: \(line)")
                    perform(command(line, now: monotonicSeconds()))
                }
            }
            let now = monotonicSeconds()
            if now - lastTick >= 0.1 { perform(engine.tick(now: now)); lastTick = now }
        }
        log("stopping; counters: \(engine.counters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
    }
}
