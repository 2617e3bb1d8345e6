import ESP
import IKEv2
import KeyDelivery
import Packets
import TerminalAgent

/// The terminal agent fed authentic key-delivery messages of any content (the fuzz octets decoded as
/// messages and sealed by a real proxy-side channel), raw datagrams on its key-delivery port, packets
/// from its host and ESP from the network. The message codec must round-trip whatever it accepts, and
/// everything the agent sends the proxy must be accepted by the proxy's channel.
public final class TerminalAgentFuzzTarget: FuzzTarget {
    public static let name = "terminal-agent"
    public init() {}

    static let terminalID: UInt64 = 11
    static let enrollmentKey = KeyMaterial(Array(repeating: 0xa1, count: 32))
    static let wallClock = 1_800_000_000.0
    static let terminal = IPAddress("10.0.0.11")!, peer = IPAddress("198.51.100.1")!

    enum Operation: UInt8 {
        case message = 0
        case hostPacket, esp, encapsulated, rawKeyDelivery, delayedMessage, releaseDelayed
    }

    /// Input: records whose first octet chooses what the rest is (an `Operation`, modulo 7), 100 ms apart;
    /// then the agent's timers run a day on, through every lifetime. A delayed message is sealed at once and
    /// delivered at the next release, after newer ones: an SA set after a FLUSH or DELETE_SA was sealed must
    /// survive its late arrival.
    public func run(_ input: [UInt8]) -> [String] {
        let agent = TerminalAgent(
            channel: KeyDeliveryChannel(role: .terminal, terminalID: Self.terminalID, enrollmentKey: Self.enrollmentKey, epoch: 1))
        let proxy = KeyDeliveryChannel(role: .proxy, terminalID: Self.terminalID, enrollmentKey: Self.enrollmentKey, epoch: 1)
        var reader = FuzzInput(input)
        var broken: [String] = []
        var now = 0.0
        func check(_ actions: [TerminalAction], after: Double = 0) {
            for case .sendKeyDelivery(let datagram) in actions {
                if case .rejected(let reason) = proxy.receive(datagram, at: ClockReading(monotonic: now + after, wall: Self.wallClock + now + after))
                {
                    broken.append("the proxy rejected what the agent sent (\(reason))")
                }
            }
        }
        var delayed: [(message: KeyDeliveryMessage, datagram: [UInt8])] = []
        // SAs (direction and SPI) set since each delayed message was sealed, by its index in `delayed`.
        var setSince: [[String]] = []
        func deliver(_ message: KeyDeliveryMessage) {
            if case .addSA(let sa) = message { for index in setSince.indices { setSince[index].append("\(sa.direction) \(sa.spi)") } }
            check(
                agent.receiveKeyDelivery(
                    proxy.send(message, at: ClockReading(monotonic: now, wall: Self.wallClock + now)),
                    at: ClockReading(monotonic: now, wall: Self.wallClock + now)))
        }
        while !reader.isAtEnd {
            let record = reader.record()
            guard let first = record.first else { continue }
            let body = Array(record.dropFirst())
            switch Operation(rawValue: first % 7)! {
            case .message:
                guard let message = try? KeyDeliveryMessage.decode(body) else { break }
                if (try? KeyDeliveryMessage.decode(message.encode())) != message { broken.append("decode(encode(m)) differs from m") }
                deliver(message)
            case .delayedMessage:
                guard let message = try? KeyDeliveryMessage.decode(body), delayed.count < 8 else { break }
                delayed.append((message, proxy.send(message, at: ClockReading(monotonic: now, wall: Self.wallClock + now))))
                setSince.append([])
            case .releaseDelayed:
                for (index, late) in delayed.enumerated() {
                    let held = Set(
                        agent.database.inbound.keys.map { "inbound \($0)" } + agent.database.outbound.map { "outbound \($0.parameters.spi)" })
                    check(agent.receiveKeyDelivery(late.datagram, at: ClockReading(monotonic: now, wall: Self.wallClock + now)))
                    let after = Set(
                        agent.database.inbound.keys.map { "inbound \($0)" } + agent.database.outbound.map { "outbound \($0.parameters.spi)" })
                    switch late.message {
                    case .flush, .deleteSA:
                        // What was set after it was sealed (and is still there) must stay.
                        let lost = held.intersection(setSince[index]).subtracting(after)
                        if !lost.isEmpty { broken.append("a late \(late.message.kind) removed SAs set after it: \(lost.sorted())") }
                    default: break
                    }
                }
                delayed.removeAll()
                setSince.removeAll()
            case .hostPacket: check(agent.outbound(body, at: ClockReading(monotonic: now, wall: Self.wallClock + now)))
            case .esp: check(agent.inboundESP(body[...]))
            case .encapsulated: check(agent.inboundEncapsulated(body))
            case .rawKeyDelivery: check(agent.receiveKeyDelivery(body, at: ClockReading(monotonic: now, wall: Self.wallClock + now)))
            }
            now += 0.1
        }
        for later in [30.0, 600, 3_600, 86_400] {
            check(agent.tick(at: ClockReading(monotonic: now + later, wall: Self.wallClock + now + later)), after: later)
        }
        return broken
    }

    // MARK: seeds

    static func parameters(_ direction: ESPDirection, spi: UInt32) -> SecurityAssociationParameters {
        let suite = ChildCipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: false)
        let outbound = direction == .outbound
        return SecurityAssociationParameters(
            spi: ChildSPI(spi), direction: direction, suite: suite, encryptionKey: KeyMaterial((0..<36).map { UInt8($0) &* 7 &+ UInt8(spi & 0xff) }),
            integrityKey: KeyMaterial([]), mode: .tunnel, tunnelSource: outbound ? terminal : peer, tunnelDestination: outbound ? peer : terminal,
            encapsulation: UDPEncapsulation(), sourceSelectors: [TrafficSelector(cidr: (outbound ? terminal : peer).description)!],
            destinationSelectors: [TrafficSelector(cidr: (outbound ? peer : terminal).description)!],
            lifetime: ESPLifetime(softPackets: 50, hardPackets: 100, softSeconds: 600, hardSeconds: 900))
    }

    static func record(_ operation: Operation, _ body: [UInt8]) -> [UInt8] { FuzzInput.record([operation.rawValue] + body) }

    /// An SA pair set, traffic both ways through it (one ESP packet sealed with the inbound SA's keys),
    /// then the other messages of the protocol.
    public func seeds() -> [[UInt8]] {
        let inbound = Self.parameters(.inbound, spi: 0xc0de_0001)
        let outbound = Self.parameters(.outbound, spi: 0xc0de_0002)
        let ping = IPHeaderBuilder.udpPacket(
            source: Self.terminal.bytes, destination: Self.peer.bytes, sourcePort: 4000, destinationPort: 7,
            payload: Array("hello".utf8))
        var sealed: [UInt8] = []
        var senderSide = inbound
        senderSide.direction = .outbound
        if let sender = try? OutboundSecurityAssociation(senderSide),
            let packet = try? sender.encapsulate(
                IPHeaderBuilder.udpPacket(
                    source: Self.peer.bytes, destination: Self.terminal.bytes,
                    sourcePort: 7, destinationPort: 4000, payload: Array("back".utf8)))
        {
            sealed = Array(packet.espBytes)
        }
        let flow = FlowDescription(source: Self.terminal, destination: Self.peer, ipProtocol: 17, sourcePort: 4000, destinationPort: 7)
        let messages: [KeyDeliveryMessage] = [
            .addSA(inbound), .addSA(outbound), .acquire(flow), .expire(spi: ChildSPI(0xc0de_0002), direction: .outbound, hard: false),
            .status([SAStatus(spi: ChildSPI(0xc0de_0001), direction: .inbound, packets: 3, bytes: 300)])
        ]
        let setUp = messages.flatMap { Self.record(.message, $0.encode()) }
        return [
            setUp + Self.record(.hostPacket, ping) + Self.record(.esp, sealed) + Self.record(.encapsulated, sealed),
            setUp + Self.record(.message, KeyDeliveryMessage.deleteSA(spi: ChildSPI(0xc0de_0001), direction: .inbound).encode())
                + Self.record(.message, KeyDeliveryMessage.flush.encode()) + Self.record(.hostPacket, ping),
            Self.record(.hostPacket, ping) + Self.record(.rawKeyDelivery, Array("IKPD".utf8) + [UInt8](repeating: 0, count: 80)),
            // A FLUSH and a DELETE_SA overtaken by the SAs set after them.
            Self.record(.delayedMessage, KeyDeliveryMessage.flush.encode())
                + Self.record(.delayedMessage, KeyDeliveryMessage.deleteSA(spi: ChildSPI(0xc0de_0001), direction: .inbound).encode())
                + setUp + Self.record(.releaseDelayed, []) + Self.record(.hostPacket, ping)
        ]
    }
}
