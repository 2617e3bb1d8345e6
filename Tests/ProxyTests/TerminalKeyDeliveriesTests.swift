import IKEv2
import KeyDelivery
import Packets
import XCTest

@testable import Proxy

/// Key delivery to terminals without the rest of the proxy: the framing from the link-local source, one
/// channel per terminal (a new one, in a later epoch, for a terminal enrolled again under another key),
/// and removed terminals kept only until their last messages are acknowledged.
final class TerminalKeyDeliveriesTests: XCTestCase {
    let key = KeyMaterial(Array(repeating: 7, count: 32))
    func terminal(_ address: String, id: UInt64 = 1, key: KeyMaterial? = nil) -> TerminalEntry {
        TerminalEntry(address: IPAddress(address)!, terminalID: id, enrollmentKey: key ?? self.key, keyDeliveryPort: 9600)
    }

    func testDatagramsGoFromTheLinkLocalSourceToTheTerminalsKeyDeliveryPort() throws {
        let deliveries = TerminalKeyDeliveries(settings: ProxySettings(), epoch: 1)
        for (address, source) in [("10.0.0.10", "169.254.0.1"), ("2001:db8:a::10", "fe80::1")] {
            guard case .send(.terminal, let packet)? = deliveries.packets([[1, 2, 3]], to: terminal(address)).first else { return XCTFail() }
            let view = try IPPacketView(packet)
            XCTAssertEqual(IPAddress(bytes: view.source(in: packet)), IPAddress(source))
            XCTAssertEqual(IPAddress(bytes: view.destination(in: packet)), IPAddress(address))
            XCTAssertEqual(view.ports(in: packet)?.source, WellKnownPort.keyDelivery)
            XCTAssertEqual(view.ports(in: packet)?.destination, 9600)
        }
    }

    func testATerminalEnrolledAgainUnderANewKeyGetsANewChannelInALaterEpoch() {
        var deliveries = TerminalKeyDeliveries(settings: ProxySettings(), epoch: 5)
        let first = deliveries.setter(for: terminal("10.0.0.10"))
        XCTAssertTrue(first === deliveries.setter(for: terminal("10.0.0.20")), "the same key at another address keeps its channel")
        let second = deliveries.setter(for: terminal("10.0.0.10", key: KeyMaterial(Array(repeating: 8, count: 32))))
        XCTAssertFalse(first === second)
        XCTAssertEqual(first.channel.epoch, 5)
        XCTAssertEqual(second.channel.epoch, 6)
    }

    func testARemovedTerminalIsForgottenOnceNothingIsUnacknowledged() {
        var deliveries = TerminalKeyDeliveries(settings: ProxySettings(), epoch: 1)
        let removed = terminal("10.0.0.10")
        let flush = deliveries.setter(for: removed).flush(at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertFalse(flush.datagrams.isEmpty)
        deliveries.depart(removed.address, delivery: removed)
        let registry = TerminalRegistry(allowedPrefixes: [])
        let retransmitted = deliveries.tick(at: ClockReading(monotonic: 1, wall: 1), registry: registry)
        XCTAssertFalse(retransmitted.actions.isEmpty, "the FLUSH is retransmitted to the removed terminal")
        XCTAssertNotNil(deliveries.departedTerminal(at: removed.address), "still awaiting its acknowledgement")
        // Given up on after the channel's attempts: then forgotten.
        var abandoned = 0
        for second in 2...200 {
            abandoned += deliveries.tick(at: ClockReading(monotonic: Double(second), wall: Double(second)), registry: registry).abandoned.count
        }
        XCTAssertEqual(abandoned, 1)
        XCTAssertNil(deliveries.departedTerminal(at: removed.address))
    }
}
