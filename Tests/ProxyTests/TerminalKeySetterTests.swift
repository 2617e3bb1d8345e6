import ESP
import KeyDelivery
import TerminalAgent
import XCTest

@testable import IKEv2
@testable import Proxy

/// The order in which a rekeyed CHILD SA's keys reach the terminal, against a real terminal agent.
final class TerminalKeySetterTests: XCTestCase {
    let key = KeyMaterial(Array(repeating: 0x5a, count: 32))
    let clock = 1_800_000_000.0

    func event(_ kind: SAEvent.Kind, spiIn: UInt32, spiOut: UInt32, replaces: (UInt32, UInt32)? = nil) -> SAEvent {
        let suite = ChildCipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: false)
        let keys = DirectionalChildKeys(
            encryptionInbound: KeyMaterial(Array(repeating: 1, count: 36)), integrityInbound: .empty,
            encryptionOutbound: KeyMaterial(Array(repeating: 2, count: 36)), integrityOutbound: .empty)
        let child = ChildSAEventDetails(
            name: "ch", spiInbound: ChildSPI(spiIn), spiOutbound: ChildSPI(spiOut), suite: suite,
            localTrafficSelectors: [TrafficSelector(cidr: "192.0.2.2")!],
            remoteTrafficSelectors: [TrafficSelector(cidr: "192.0.2.1")!],
            mode: .tunnel, encapsulated: true, keys: keys,
            replaces: replaces.map { (ChildSPI($0.0), ChildSPI($0.1)) })
        return SAEvent(
            kind: kind, connection: "t", spiInitiator: IKESPI(bytes: Array(repeating: 1, count: 8)),
            spiResponder: IKESPI(bytes: Array(repeating: 2, count: 8)),
            local: Endpoint(IPAddress("192.0.2.2")!, 4500), remote: Endpoint(IPAddress("192.0.2.1")!, 4500),
            ikeSuite: nil, child: child, detail: nil)
    }

    /// Delivers the setter's datagrams to the agent and the agent's acknowledgements back, until quiet.
    func exchange(_ output: TerminalKeySetter.Output, _ setter: TerminalKeySetter, _ agent: TerminalAgent) {
        var toTerminal = output.datagrams
        while !toTerminal.isEmpty {
            let datagram = toTerminal.removeFirst()
            for case .sendKeyDelivery(let reply) in agent.receiveKeyDelivery(datagram, at: ClockReading(monotonic: 0, wall: clock)) {
                if case .acknowledged(let message) = setter.channel.receive(reply, at: ClockReading(monotonic: 0, wall: clock)) {
                    toTerminal += setter.acknowledged(message, at: ClockReading(monotonic: 0, wall: clock)).datagrams
                }
            }
        }
    }

    func testARekeyedSAsOldInboundStaysUntilTheOldCHILDSAIsDeletedWithThePeer() {
        let setter = TerminalKeySetter(channel: KeyDeliveryChannel(role: .proxy, terminalID: 7, enrollmentKey: key, epoch: 1))
        let agent = TerminalAgent(channel: KeyDeliveryChannel(role: .terminal, terminalID: 7, enrollmentKey: key, epoch: 2), statusInterval: 0)
        exchange(
            setter.handle(
                event(.childEstablished, spiIn: 0x1000, spiOut: 0x2000), lifetime: ESPLifetime(), at: ClockReading(monotonic: 0, wall: clock)),
            setter, agent)
        XCTAssertEqual(Set(agent.database.inbound.keys), [ChildSPI(0x1000)])

        // Rekeyed: the new pair goes in, the old outbound goes once the new is acknowledged, and the old inbound
        // stays: the peer may still be sending on it until it has our Delete.
        exchange(
            setter.handle(
                event(.childRekeyed, spiIn: 0x1001, spiOut: 0x2001, replaces: (0x1000, 0x2000)), lifetime: ESPLifetime(),
                at: ClockReading(monotonic: 0, wall: clock)), setter, agent)
        XCTAssertEqual(Set(agent.database.inbound.keys), [ChildSPI(0x1000), ChildSPI(0x1001)])
        XCTAssertEqual(agent.database.outbound.map(\.parameters.spi), [ChildSPI(0x2001)])

        // The old CHILD SA deleted with the peer: its inbound SA goes, and its outbound is not deleted twice.
        let deletion = setter.handle(
            event(.childDeleted, spiIn: 0x1000, spiOut: 0x2000), lifetime: ESPLifetime(), at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertEqual(deletion.datagrams.count, 1, "\(deletion.log)")
        exchange(deletion, setter, agent)
        XCTAssertEqual(Set(agent.database.inbound.keys), [ChildSPI(0x1001)])
        XCTAssertEqual(agent.database.outbound.map(\.parameters.spi), [ChildSPI(0x2001)])
    }

    func held(_ spiIn: UInt32, _ spiOut: UInt32, replaces: (UInt32, UInt32)) -> SAEvent {
        var rekeyed = event(.childRekeyed, spiIn: spiIn, spiOut: spiOut, replaces: replaces)
        rekeyed.child?.outboundHeld = true
        return rekeyed
    }

    /// A terminal with SA 0x1000/0x2000 whose rekey by the peer (0x1001/0x2001) crossed one of ours: only the
    /// peer's inbound SA is set, and the terminal keeps sending on the old one.
    func collision() -> (TerminalKeySetter, TerminalAgent) {
        let setter = TerminalKeySetter(channel: KeyDeliveryChannel(role: .proxy, terminalID: 7, enrollmentKey: key, epoch: 1))
        let agent = TerminalAgent(channel: KeyDeliveryChannel(role: .terminal, terminalID: 7, enrollmentKey: key, epoch: 2), statusInterval: 0)
        exchange(
            setter.handle(
                event(.childEstablished, spiIn: 0x1000, spiOut: 0x2000), lifetime: ESPLifetime(), at: ClockReading(monotonic: 0, wall: clock)),
            setter, agent)
        exchange(
            setter.handle(held(0x1001, 0x2001, replaces: (0x1000, 0x2000)), lifetime: ESPLifetime(), at: ClockReading(monotonic: 0, wall: clock)),
            setter, agent)
        XCTAssertEqual(Set(agent.database.inbound.keys), [ChildSPI(0x1000), ChildSPI(0x1001)], "the peer may send on its replacement")
        XCTAssertEqual(agent.database.outbound.map(\.parameters.spi), [ChildSPI(0x2000)], "the terminal keeps sending on the old SA")
        return (setter, agent)
    }

    /// Ours stays (CI caught the terminal sending on the peer's redundant replacement before): the peer's
    /// outbound SA is never set, whichever of our announcement and the peer's deletion comes first.
    func testInARekeyCollisionThePeersRedundantReplacementNeverCarriesTraffic() {
        for peerDeletesFirst in [false, true] {
            let (setter, agent) = collision()
            let ours = event(.childRekeyed, spiIn: 0x1002, spiOut: 0x2002, replaces: (0x1000, 0x2000))
            let redundantDeleted = event(.childDeleted, spiIn: 0x1001, spiOut: 0x2001)
            for next in peerDeletesFirst ? [redundantDeleted, ours] : [ours, redundantDeleted] {
                let output = setter.handle(next, lifetime: ESPLifetime(), at: ClockReading(monotonic: 0, wall: clock))
                exchange(output, setter, agent)
                XCTAssertFalse(agent.database.outbound.contains { $0.parameters.spi == ChildSPI(0x2001) }, "never the redundant outbound SA")
            }
            XCTAssertEqual(agent.database.outbound.map(\.parameters.spi), [ChildSPI(0x2002)], "ours, once in place")
            exchange(
                setter.handle(
                    event(.childDeleted, spiIn: 0x1000, spiOut: 0x2000), lifetime: ESPLifetime(), at: ClockReading(monotonic: 0, wall: clock)),
                setter, agent)
            XCTAssertEqual(Set(agent.database.inbound.keys), [ChildSPI(0x1002)], "peerDeletesFirst \(peerDeletesFirst)")
        }
    }

    /// The peer's replacement stays: the peer deletes the old SA, which releases the held outbound SA; the old
    /// outbound goes only once the terminal holds it.
    func testInARekeyCollisionThePeersSurvivingReplacementGetsItsOutboundWhenThePeerDeletesTheOldSA() {
        let (setter, agent) = collision()
        let released = setter.handle(
            event(.childDeleted, spiIn: 0x1000, spiOut: 0x2000), lifetime: ESPLifetime(), at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertEqual(released.datagrams.count, 1, "the outbound SA first, the deletes after it is acknowledged: \(released.log)")
        exchange(released, setter, agent)
        XCTAssertEqual(agent.database.outbound.map(\.parameters.spi), [ChildSPI(0x2001)])
        XCTAssertEqual(Set(agent.database.inbound.keys), [ChildSPI(0x1001)])
    }
}
