import ESP
import Foundation
import KeyDelivery
import Packets
import Proxy
import XCTest

@testable import IKEv2
@testable import TerminalAgent

/// The terminal agent driven in memory: a proxy-side channel sets SAs, a peer-side ESP pair plays the
/// remote end.
final class TerminalAgentTests: XCTestCase {
    let key = AgentFixture.key
    let clock = AgentFixture.clock

    func makeAgent() -> (TerminalAgent, KeyDeliveryChannel) {
        let proxy = KeyDeliveryChannel(role: .proxy, terminalID: 9, enrollmentKey: key, epoch: 1)
        let agent = TerminalAgent(
            channel: KeyDeliveryChannel(role: .terminal, terminalID: 9, enrollmentKey: key, epoch: 2),
            statusInterval: 0)
        return (agent, proxy)
    }

    func handover(spiIn: UInt32 = 0x1111_0001, spiOut: UInt32 = 0x2222_0001, lifetime: ESPLifetime = ESPLifetime())
        -> (inbound: SecurityAssociationParameters, outbound: SecurityAssociationParameters)
    {
        AgentFixture.handover(spiIn: spiIn, spiOut: spiOut, lifetime: lifetime)
    }

    func packet(from source: String, to destination: String) -> [UInt8] {
        var bytes: [UInt8] = []
        let payload: [UInt8] = [0x9c, 0x40, 0x13, 0x89, 0, 12, 0, 0, 1, 2, 3, 4]
        IPHeaderBuilder.appendIPv4(
            to: &bytes, source: IPAddress(source)!.bytes, destination: IPAddress(destination)!.bytes,
            protocolNumber: IPProtocolNumber.udp, payloadLength: payload.count)
        return bytes + payload
    }

    func install(_ agent: TerminalAgent, _ proxy: KeyDeliveryChannel, _ sa: SecurityAssociationParameters) -> [TerminalAction] {
        AgentFixture.install(agent, proxy, sa)
    }

    /// A FLUSH or DELETE overtaken by newer messages (a retransmission that arrives after SAs set since) leaves
    /// those SAs alone: the proxy meant what was there before it sent them.
    func testAFlushOrDeleteThatArrivesLateSparesWhatWasSetAfterIt() {
        let (agent, proxy) = makeAgent()
        let (inbound, outbound) = handover()
        let (older, _) = handover(spiIn: 0x1111_0009, spiOut: 0x2222_0009)
        _ = install(agent, proxy, older)
        let lateFlush = proxy.send(.flush, at: ClockReading(monotonic: 0, wall: clock))
        let lateDelete = proxy.send(.deleteSA(spi: inbound.spi, direction: .inbound), at: ClockReading(monotonic: 0, wall: clock))
        _ = install(agent, proxy, inbound)
        _ = install(agent, proxy, outbound)
        let deleted = agent.receiveKeyDelivery(lateDelete, at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertTrue(deleted.contains(.log("delete of inbound SA \(inbound.spi) ignored: sent before the SA was set again")), "\(deleted)")
        let flushed = agent.receiveKeyDelivery(lateFlush, at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertTrue(flushed.contains(.log("flushed 1 SA(s); kept 2 set after the FLUSH was sent (it arrived late)")), "\(flushed)")
        XCTAssertNil(agent.database.inbound[older.spi], "what was set before the FLUSH went")
        XCTAssertNotNil(agent.database.inbound[inbound.spi])
        XCTAssertEqual(agent.database.outbound.map(\.parameters.spi), [outbound.spi])
        // In order, they act as ever.
        _ = agent.receiveKeyDelivery(
            proxy.send(.deleteSA(spi: inbound.spi, direction: .inbound), at: ClockReading(monotonic: 0, wall: clock)),
            at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertNil(agent.database.inbound[inbound.spi])
        _ = agent.receiveKeyDelivery(proxy.send(.flush, at: ClockReading(monotonic: 0, wall: clock)), at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertTrue(agent.database.outbound.isEmpty)
    }

    func testSAsSetByTheProxyCarryTrafficBothWays() throws {
        let (agent, proxy) = makeAgent()
        let (inbound, outbound) = handover()
        for sa in [inbound, outbound] {
            let actions = install(agent, proxy, sa)
            guard case .sendKeyDelivery(let ack)? = actions.first else { return XCTFail("no acknowledgement") }
            XCTAssertEqual(proxy.receive(ack, at: ClockReading(monotonic: 0, wall: clock)), .acknowledged(.addSA(sa)))
        }
        XCTAssertEqual(proxy.unacknowledgedCount, 0)

        // Terminal -> peer: encrypted with the outbound SA, in UDP from 4500 to the peer's 4500.
        let plain = packet(from: "10.2.0.2", to: "10.1.0.7")
        guard
            case .sendEncapsulated(let payload, let to, let port, let fromPort)? = agent.outbound(plain, at: ClockReading(monotonic: 1, wall: clock))
                .first
        else {
            return XCTFail("not encapsulated")
        }
        XCTAssertEqual([to.description, String(port), String(fromPort)], ["192.0.2.1", "4500", "4500"])
        // The peer holds the mirror image: its inbound is our outbound.
        var peerInbound = outbound
        peerInbound.direction = .inbound
        XCTAssertEqual(try InboundSecurityAssociation(peerInbound).decapsulate(payload[...]), plain)

        // Peer -> terminal: decrypted and delivered to the TUN device.
        var peerOutbound = inbound
        peerOutbound.direction = .outbound
        let reply = packet(from: "10.1.0.7", to: "10.2.0.2")
        let esp = try OutboundSecurityAssociation(peerOutbound).encapsulate(reply)
        XCTAssertEqual(agent.inboundEncapsulated(Array(esp.espBytes)), [.deliver(reply)])
        // The same packet again is a replay: dropped and counted.
        XCTAssertFalse(agent.inboundEncapsulated(Array(esp.espBytes)).contains(.deliver(reply)))
        XCTAssertEqual(agent.database.drops[.replayed], 1)
    }

    func testSAsWithoutUDPEncapsulationSendAndReceivePlainESP() throws {
        let (agent, proxy) = makeAgent()
        var (inbound, outbound) = handover()
        inbound.encapsulation = nil
        outbound.encapsulation = nil
        _ = install(agent, proxy, inbound)
        _ = install(agent, proxy, outbound)

        let plain = packet(from: "10.2.0.2", to: "10.1.0.7")
        guard case .sendRaw(let sent, let destination)? = agent.outbound(plain, at: ClockReading(monotonic: 1, wall: clock)).first else {
            return XCTFail("not sent as a raw IP packet")
        }
        XCTAssertEqual(destination, IPAddress("192.0.2.1")!)
        let outer = try IPPacketView(sent)
        XCTAssertEqual(outer.upperProtocol, IPProtocolNumber.esp, "IP protocol 50, no UDP")
        XCTAssertEqual(IPAddress(bytes: outer.source(in: sent)), IPAddress("192.0.2.2")!)

        var peerOutbound = inbound
        peerOutbound.direction = .outbound
        let reply = packet(from: "10.1.0.7", to: "10.2.0.2")
        let peer = try OutboundSecurityAssociation(peerOutbound)
        let esp = try peer.encapsulate(reply)
        XCTAssertEqual(esp.espOffset, 20)
        XCTAssertEqual(agent.inboundPlainESP(Array(esp.espBytes)), [.deliver(reply)])
        XCTAssertEqual(agent.counters["plain_esp_received"], 1)
        var forged = Array(try peer.encapsulate(reply).espBytes)
        forged[forged.count - 1] ^= 1
        XCTAssertFalse(agent.inboundPlainESP(forged).contains(.deliver(reply)))
        XCTAssertEqual(agent.database.drops[.authenticationFailed], 1)
    }

    func testDuplicateDeliveryIsAcknowledgedButNotAppliedTwice() {
        let (agent, proxy) = makeAgent()
        let datagram = proxy.send(.addSA(handover().outbound), at: ClockReading(monotonic: 0, wall: clock))
        _ = agent.receiveKeyDelivery(datagram, at: ClockReading(monotonic: 0, wall: clock))
        let again = agent.receiveKeyDelivery(datagram, at: ClockReading(monotonic: 1, wall: clock + 1))
        XCTAssertTrue(again.contains { if case .sendKeyDelivery = $0 { return true } else { return false } })
        XCTAssertEqual(agent.counters["sa_added"], 1)
        XCTAssertEqual(agent.counters["key_delivery_duplicates"], 1)
    }

    func testFlowWithoutSAPassesUnchangedAndAcquiresOnce() throws {
        let (agent, proxy) = makeAgent()
        let plain = packet(from: "10.2.0.2", to: "10.9.9.9")
        let actions = agent.outbound(plain, at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertTrue(actions.contains(.sendRaw(packet: plain, destination: IPAddress("10.9.9.9")!)))
        let requests = actions.compactMap { action -> [UInt8]? in if case .sendKeyDelivery(let d) = action { return d } else { return nil } }
        XCTAssertEqual(requests.count, 1)
        guard case .message(.acquire(let flow), _) = proxy.receive(requests[0], at: ClockReading(monotonic: 0, wall: clock)) else {
            return XCTFail("no ACQUIRE")
        }
        XCTAssertEqual(
            flow,
            FlowDescription(
                source: IPAddress("10.2.0.2")!, destination: IPAddress("10.9.9.9")!, ipProtocol: 17,
                sourcePort: 40000, destinationPort: 5001))
        let second = agent.outbound(plain, at: ClockReading(monotonic: 0.5, wall: clock))
        XCTAssertFalse(second.contains { if case .sendKeyDelivery = $0 { return true } else { return false } }, "rate-limited")
        XCTAssertEqual(agent.outbound(packet(from: "169.254.1.1", to: "224.0.0.251"), at: ClockReading(monotonic: 1, wall: clock)), [])
    }

    /// The first tick of a (re)started agent sends a STATUS, whatever status_interval: the proxy learns at once
    /// that it holds nothing. With status_interval 0 no other follows; with one, one per interval.
    func testAStartedAgentReportsItsSAsOnceAtItsFirstTick() {
        func statuses(_ agent: TerminalAgent, _ proxy: KeyDeliveryChannel, at times: [Double]) -> [Int] {
            times.map { now in
                agent.tick(at: ClockReading(monotonic: now, wall: clock)).filter { action in
                    guard case .sendKeyDelivery(let datagram) = action,
                        case .message(.status, _) = proxy.receive(datagram, at: ClockReading(monotonic: now, wall: clock))
                    else { return false }
                    return true
                }.count
            }
        }
        let (quiet, quietProxy) = makeAgent()
        quiet.statusInterval = 0
        XCTAssertEqual(statuses(quiet, quietProxy, at: [1, 2, 100]), [1, 0, 0])
        let (periodic, periodicProxy) = makeAgent()
        periodic.statusInterval = 30
        XCTAssertEqual(statuses(periodic, periodicProxy, at: [1, 2, 31, 40, 61]), [1, 0, 1, 0, 1])
    }

    func testLifetimesProduceSoftThenHardExpiry() {
        let (agent, proxy) = makeAgent()
        _ = install(agent, proxy, handover(lifetime: ESPLifetime(softSeconds: 10, hardSeconds: 20)).outbound)
        func expiries(_ actions: [TerminalAction]) -> [KeyDeliveryMessage] {
            actions.compactMap { action in
                guard case .sendKeyDelivery(let datagram) = action,
                    case .message(let message, _) = proxy.receive(datagram, at: ClockReading(monotonic: 0, wall: clock))
                else { return nil }
                return message
            }
        }
        XCTAssertEqual(
            expiries(agent.tick(at: ClockReading(monotonic: 5, wall: clock))),
            [.status([SAStatus(spi: ChildSPI(0x2222_0001), direction: .outbound, packets: 0, bytes: 0)])],
            "the first tick reports what the agent holds")
        XCTAssertEqual(
            expiries(agent.tick(at: ClockReading(monotonic: 11, wall: clock))),
            [.expire(spi: ChildSPI(0x2222_0001), direction: .outbound, hard: false)])
        XCTAssertEqual(expiries(agent.tick(at: ClockReading(monotonic: 12, wall: clock))), [], "soft expiry is reported once")
        XCTAssertEqual(
            expiries(agent.tick(at: ClockReading(monotonic: 21, wall: clock))),
            [.expire(spi: ChildSPI(0x2222_0001), direction: .outbound, hard: true)])
        XCTAssertTrue(agent.database.outbound.isEmpty, "a hard expiry removes the SA")
    }

    func testIKEReachingTheTerminalIsCountedAndForgedDeliveryIsRejected() {
        let (agent, _) = makeAgent()
        _ = agent.inboundEncapsulated([0, 0, 0, 0] + Array(repeating: 7, count: 40))
        XCTAssertEqual(agent.counters["ike_on_terminal"], 1)
        let stranger = KeyDeliveryChannel(role: .proxy, terminalID: 9, enrollmentKey: KeyMaterial(Array(repeating: 9, count: 32)), epoch: 1)
        _ = agent.receiveKeyDelivery(stranger.send(.flush, at: ClockReading(monotonic: 0, wall: clock)), at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertEqual(agent.counters["key_delivery_rejected_forged"], 1)
    }

    /// A host on the link floods the agent: forged, oversized, garbage and replayed datagrams, 10,000 of each
    /// kind within a second. Nothing changes in the SAs; a replay is acknowledged ten times a second at most (the
    /// proxy retransmits about once a second), so the agent reflects no flood; log lines are folded to one a second.
    func testAKeyDeliveryFloodChangesNothingAndIsNotReflected() {
        let (agent, proxy) = makeAgent()
        let sa = handover()
        let genuine = proxy.send(.addSA(sa.outbound), at: ClockReading(monotonic: 0, wall: clock))
        _ = agent.receiveKeyDelivery(genuine, at: ClockReading(monotonic: 0, wall: clock))
        let held = agent.held.map(\.spi)
        let stranger = KeyDeliveryChannel(role: .proxy, terminalID: 9, enrollmentKey: KeyMaterial(Array(repeating: 9, count: 32)), epoch: 1)
        let kinds: [(String, (Int) -> [UInt8])] = [
            ("forged", { _ in stranger.send(.flush, at: ClockReading(monotonic: 0, wall: self.clock)) }),
            ("oversized", { _ in [UInt8](repeating: 0x49, count: 65_000) }), ("garbage", { i in [UInt8(i & 0xff), 1, 2, 3] }),
            ("replayed", { _ in genuine })
        ]
        var sent = 0
        var lines = 0
        for (_, make) in kinds {
            for i in 0..<10_000 {
                let at = 1 + Double(i) / 10_000
                for action in agent.receiveKeyDelivery(make(i), at: ClockReading(monotonic: at, wall: clock + at)) {
                    if case .sendKeyDelivery = action { sent += 1 }
                    if case .log = action { lines += 1 }
                }
            }
        }
        XCTAssertEqual(agent.held.map(\.spi), held, "the SAs are as they were")
        XCTAssertEqual(agent.counters["sa_added"], 1)
        XCTAssertEqual(agent.counters["key_delivery_duplicates"], 10_000)
        XCTAssertLessThanOrEqual(sent, 20, "replays acknowledged ten a second at most (a burst of ten, ten more over the second)")
        XCTAssertEqual(UInt64(sent) + (agent.counters["key_delivery_duplicates_unanswered"] ?? 0), 10_000)
        XCTAssertLessThanOrEqual(lines, 8, "folded log lines")
        XCTAssertGreaterThan(agent.counters.filter { $0.key.hasPrefix("key_delivery_rejected_") }.values.reduce(0, +), 29_000)
        // The genuine channel still works after the flood.
        let next = proxy.send(.addSA(handover(spiIn: 0x1111_0002, spiOut: 0x2222_0002).outbound), at: ClockReading(monotonic: 3, wall: clock + 3))
        _ = agent.receiveKeyDelivery(next, at: ClockReading(monotonic: 3, wall: clock + 3))
        XCTAssertEqual(agent.counters["sa_added"], 2)
    }

    func testDocumentedExampleLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let configuration = try TerminalConfiguration.load(path: root.appendingPathComponent("docs/examples/terminal.json").path)
        XCTAssertEqual(configuration.terminalID, 7)
        XCTAssertEqual(configuration.tunAddresses, ["10.2.0.2/32"])
        // `ikeproxy terminal --check` says what the agent would run with, never the enrollment key.
        XCTAssertEqual(
            configuration.summary,
            [
                "terminal 7: key delivery on 0.0.0.0 port 9500, the proxy at 169.254.0.1",
                "ESP for 192.0.2.2, in UDP on port 4500 and as IP protocol 50",
                "user-space ESP: TUN ikp0, MTU 1400, routes 10.1.0.0/24" + (configuration.fwmark.map { ", own packets marked \($0)" } ?? ""),
                "STATUS every 30 s, NAT keepalives every 20 s"
            ])
        XCTAssertFalse(configuration.summary.joined().contains(configuration.enrollmentKey.bytes.hexString))
    }

    func testConfigurationErrorsNameTheKey() {
        XCTAssertThrowsError(
            try TerminalConfiguration.parse(Data(#"{"terminal_id": 1, "enrollment_key_hex": "zz", "outer_address": "192.0.2.2"}"#.utf8))
        ) {
            XCTAssertTrue("\($0)".contains("enrollment_key_hex"))
        }
        XCTAssertThrowsError(
            try TerminalConfiguration.parse(
                Data(#"{"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "outer_address": "x"}"#.utf8))
        ) {
            XCTAssertTrue("\($0)".contains("outer_address"))
        }
        XCTAssertThrowsError(
            try TerminalConfiguration.parse(
                Data(
                    #"{"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "outer_address": "192.0.2.2", "tun": {"route": []}}"#
                        .utf8))
        ) {
            XCTAssertTrue("\($0)".contains("unknown key tun.route"), "\($0)")
        }
        let good = try? TerminalConfiguration.parse(
            Data(
                #"{"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "outer_address": "192.0.2.2", "tun": {"routes": ["10.1.0.0/24"]}}"#
                    .utf8))
        XCTAssertEqual(good?.keyDeliveryPort, 9500)
        XCTAssertEqual(good?.tunRoutes, ["10.1.0.0/24"])
        let dual = try? TerminalConfiguration.parse(
            Data(
                #"{"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "outer_addresses": ["192.0.2.2", "2001:db8::2"]}"#.utf8
            ))
        XCTAssertEqual(dual?.outerAddresses.map(\.description), ["192.0.2.2", "2001:db8::2"])
        XCTAssertThrowsError(
            try TerminalConfiguration.parse(
                Data(
                    #"{"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "outer_addresses": ["192.0.2.2", "192.0.2.3"]}"#
                        .utf8))
        ) {
            XCTAssertTrue("\($0)".contains("at most one IPv4 and one IPv6"))
        }
        XCTAssertThrowsError(
            try TerminalConfiguration.parse(Data(#"{"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff"}"#.utf8))
        ) {
            XCTAssertTrue("\($0)".contains("outer_address (or outer_addresses) is required"))
        }
    }

    func testAnIPv6OnlyTerminalAnswersFromItsOwnAddressAndFirstReachesTheProxyByAllNodesMulticast() throws {
        let v6 = try TerminalConfiguration.parse(
            Data(#"{"terminal_id": 4, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "outer_addresses": ["2001:db8::4"]}"#.utf8))
        XCTAssertEqual(v6.keyDeliveryListen, IPAddress("2001:db8::4"), "bound to the address the proxy registered, so answers come from it")
        XCTAssertEqual(v6.proxyAddress, IPAddress("ff02::1"))
        let dual = try TerminalConfiguration.parse(
            Data(
                #"{"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "outer_addresses": ["192.0.2.2", "2001:db8::2"]}"#.utf8
            ))
        XCTAssertEqual(dual.keyDeliveryListen, IPAddress("0.0.0.0"))
        XCTAssertEqual(dual.proxyAddress, IPAddress("255.255.255.255"))
    }
}

/// What the agent's tests share: an enrollment key, a wall clock, SA pairs as the proxy hands them over.
enum AgentFixture {
    static let key = KeyMaterial(Array(repeating: 0x33, count: 32))
    static let clock = 1_700_000_000.0

    /// The SA pair as SAHandover builds it from an engine event (terminal 192.0.2.2, peer 192.0.2.1).
    static func handover(spiIn: UInt32 = 0x1111_0001, spiOut: UInt32 = 0x2222_0001, lifetime: ESPLifetime = ESPLifetime())
        -> (inbound: SecurityAssociationParameters, outbound: SecurityAssociationParameters)
    {
        let suite = ChildCipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: false)
        let keys = DirectionalChildKeys(
            encryptionInbound: KeyMaterial(Array(repeating: 1, count: 36)), integrityInbound: .empty,
            encryptionOutbound: KeyMaterial(Array(repeating: 2, count: 36)), integrityOutbound: .empty)
        let child = ChildSAEventDetails(
            name: "ch", spiInbound: ChildSPI(spiIn), spiOutbound: ChildSPI(spiOut), suite: suite,
            localTrafficSelectors: [TrafficSelector(cidr: "10.2.0.2")!],
            remoteTrafficSelectors: [TrafficSelector(cidr: "10.1.0.0/24")!],
            mode: .tunnel, encapsulated: true, keys: keys, replaces: nil)
        let event = SAEvent(
            kind: .childEstablished, connection: "t", spiInitiator: IKESPI(bytes: Array(repeating: 1, count: 8)),
            spiResponder: IKESPI(bytes: Array(repeating: 2, count: 8)),
            local: Endpoint(IPAddress("192.0.2.2")!, 4500), remote: Endpoint(IPAddress("192.0.2.1")!, 4500),
            ikeSuite: nil, child: child, detail: nil)
        return SAHandover.parameters(for: event, child: child, lifetime: lifetime)
    }

    static func install(_ agent: TerminalAgent, _ proxy: KeyDeliveryChannel, _ sa: SecurityAssociationParameters) -> [TerminalAction] {
        agent.receiveKeyDelivery(proxy.send(.addSA(sa), at: ClockReading(monotonic: 0, wall: clock)), at: ClockReading(monotonic: 0, wall: clock))
    }
}
