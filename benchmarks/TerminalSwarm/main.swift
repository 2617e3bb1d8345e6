// Many terminals in one process, for the daemon's burst benchmark (benchmarks/daemon_burst, issue 21).
//
// Each simulated terminal is what the daemon sees of a terminal agent on the wire: its own address, a UDP
// socket on the key-delivery port there, and a real key-delivery channel (terminal role, its enrollment key).
// It acknowledges what the proxy sends, holds the SAs it is given (no ESP: the benchmark measures the
// keying), and on `go` (a line on stdin) the terminals marked `acquire` ask the proxy for an SA, as an agent
// does for its host's first packet to the peer, and again every 2 s until they hold one. Prints JSON lines on stdout:
//
//   {"ready":N}                           every socket is bound
//   {"keyed":ID,"after":SECONDS}          terminal ID holds an inbound and an outbound SA (seconds after `go`)
//   {"summary":{...}}                     at the end (`stop` on stdin): counts of what was received and rejected
//
//   terminal-swarm CONFIG.json    {"proxy_address": "169.254.0.1", "peer": "192.0.2.1",
//                                  "terminals": [{"id": 1, "key_hex": "...", "address": "198.18.0.1", "acquire": true}, ...]}
import ESP
import Foundation
import IKEv2
import KeyDelivery
import LinuxIO
import Packets

struct SwarmFile: Decodable {
    struct Terminal: Decodable {
        var id: UInt64
        var key_hex: String
        var address: String
        var acquire: Bool
    }
    var proxy_address: String
    var peer: String
    var port: UInt16?
    var terminals: [Terminal]
}

/// One simulated terminal.
final class SimulatedTerminal {
    let id: UInt64
    let address: IPAddress
    let acquire: Bool
    let channel: KeyDeliveryChannel
    let socket: UDPSocket
    var inbound: Set<ChildSPI> = []
    var outbound: Set<ChildSPI> = []
    var keyedAfter: Double?
    var lastAcquire = -Double.infinity

    init(_ entry: SwarmFile.Terminal, port: UInt16, epoch: UInt64) throws {
        guard let address = IPAddress(entry.address), let key = [UInt8](hexString: entry.key_hex) else {
            throw SwarmError("terminal \(entry.id): bad address or key")
        }
        id = entry.id
        self.address = address
        acquire = entry.acquire
        channel = KeyDeliveryChannel(role: .terminal, terminalID: entry.id, enrollmentKey: KeyMaterial(key), epoch: epoch)
        socket = try UDPSocket(address: address.bytes, port: port)
    }
}

struct SwarmError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func reading() -> ClockReading { ClockReading(monotonic: monotonicSeconds(), wall: Date().timeIntervalSince1970) }

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func main() throws {
    guard CommandLine.arguments.count == 2, let data = FileManager.default.contents(atPath: CommandLine.arguments[1]) else {
        throw SwarmError("usage: terminal-swarm CONFIG.json")
    }
    let file = try JSONDecoder().decode(SwarmFile.self, from: data)
    guard let proxy = IPAddress(file.proxy_address), let peer = IPAddress(file.peer) else { throw SwarmError("bad proxy or peer address") }
    let port = file.port ?? WellKnownPort.keyDelivery
    // A socket per terminal: the open-file limit raised to what they need (and its hard limit with it, as root may).
    let needed = rlim_t(file.terminals.count + 64)
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    if limit.rlim_cur < needed {
        limit = rlimit(rlim_cur: needed, rlim_max: max(needed, limit.rlim_max))
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            throw SwarmError("cannot raise the open-file limit to \(needed): \(String(cString: strerror(errno)))")
        }
    }
    let epoch = UInt64(Date().timeIntervalSince1970 * 1000)
    let terminals = try file.terminals.map { try SimulatedTerminal($0, port: port, epoch: epoch) }
    let byDescriptor = Dictionary(uniqueKeysWithValues: terminals.map { ($0.socket.descriptor, $0) })
    say("{\"ready\":\(terminals.count)}")

    var started: Double?
    var stdinOpen = true
    var received = 0
    var rejected: [String: Int] = [:]
    var lastTick = monotonicSeconds()
    let descriptors = [STDIN_FILENO] + terminals.map(\.socket.descriptor)
    func transmit(_ datagram: [UInt8], from terminal: SimulatedTerminal) {
        do { try terminal.socket.send(datagram, to: proxy.bytes, port: port) } catch {
            FileHandle.standardError.write(Data("terminal \(terminal.id): send failed: \(error)\n".utf8))
        }
    }
    // As an agent does while its host keeps sending to the peer with no SA: an ACQUIRE every 2 s (its
    // acquire_interval), so that one the proxy turned away (over its negotiation limit) is asked again.
    func acquire(_ terminal: SimulatedTerminal, at now: ClockReading) {
        terminal.lastAcquire = now.monotonic
        let flow = FlowDescription(source: terminal.address, destination: peer, ipProtocol: 1)
        transmit(terminal.channel.send(.acquire(flow), at: now), from: terminal)
    }
    while stdinOpen {
        let ready = Set(waitReadable(descriptors, timeoutMilliseconds: 100))
        if ready.contains(STDIN_FILENO) {
            let line = readLine()
            if line == nil || line == "stop" { stdinOpen = false }
            if line == "go", started == nil {
                let now = reading()
                started = now.monotonic
                for terminal in terminals where terminal.acquire { acquire(terminal, at: now) }
            }
        }
        for descriptor in ready where descriptor != STDIN_FILENO {
            guard let terminal = byDescriptor[descriptor] else { continue }
            while let (bytes, _, _) = terminal.socket.receive() {
                received += 1
                switch terminal.channel.receive(bytes, at: reading()) {
                case .rejected(let reason): rejected[reason.rawValue, default: 0] += 1
                case .duplicate(let acknowledgement): transmit(acknowledgement, from: terminal)
                case .acknowledged: break
                case .message(let message, let acknowledgement):
                    transmit(acknowledgement, from: terminal)
                    switch message {
                    case .addSA(let sa):
                        if sa.direction == .inbound { terminal.inbound.insert(sa.spi) } else { terminal.outbound.insert(sa.spi) }
                    case .deleteSA(let spi, _):
                        terminal.inbound.remove(spi)
                        terminal.outbound.remove(spi)
                    case .flush:
                        terminal.inbound.removeAll()
                        terminal.outbound.removeAll()
                    default: break
                    }
                    if terminal.keyedAfter == nil, !terminal.inbound.isEmpty, !terminal.outbound.isEmpty {
                        let after = monotonicSeconds() - (started ?? monotonicSeconds())
                        terminal.keyedAfter = after
                        say("{\"keyed\":\(terminal.id),\"after\":\(String(format: "%.4f", after))}")
                    }
                }
            }
        }
        let now = monotonicSeconds()
        if now - lastTick >= 0.1 {
            lastTick = now
            let current = reading()
            for terminal in terminals where terminal.channel.unacknowledgedCount > 0 {
                terminal.channel.tick(at: current).datagrams.forEach { transmit($0, from: terminal) }
            }
            if started != nil {
                for terminal in terminals where terminal.acquire && terminal.keyedAfter == nil && now - terminal.lastAcquire >= 2 {
                    acquire(terminal, at: current)
                }
            }
        }
    }
    let keyed = terminals.filter { $0.keyedAfter != nil }.count
    let rejections = rejected.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
    say("{\"summary\":{\"terminals\":\(terminals.count),\"keyed\":\(keyed),\"datagrams\":\(received),\"rejected\":{\(rejections)}}}")
}

do { try main() } catch {
    FileHandle.standardError.write(Data("terminal-swarm: \(error)\n".utf8))
    exit(1)
}
