import ESP
import IKEv2
import XCTest

@testable import KeyDelivery

final class KeyDeliveryTests: XCTestCase {
    let key = KeyMaterial(Array(repeating: 0x5a, count: 32))

    func makePair(proxyEpoch: UInt64 = 1_000, terminalEpoch: UInt64 = 2_000) -> (KeyDeliveryChannel, KeyDeliveryChannel) {
        (
            KeyDeliveryChannel(role: .proxy, terminalID: 42, enrollmentKey: key, epoch: proxyEpoch, random: SeededRandom(seed: 1)),
            KeyDeliveryChannel(role: .terminal, terminalID: 42, enrollmentKey: key, epoch: terminalEpoch, random: SeededRandom(seed: 2))
        )
    }

    func sampleSA() -> SecurityAssociationParameters {
        SecurityAssociationParameters(
            spi: ChildSPI(0xc1a0_0001), direction: .outbound,
            suite: ChildCipherSuite(encryption: .aesCBC(keyBits: 256), integrity: .hmacSHA256_128, group: nil, extendedSequenceNumbers: true),
            encryptionKey: KeyMaterial(Array(repeating: 1, count: 32)), integrityKey: KeyMaterial(Array(repeating: 2, count: 32)),
            mode: .tunnel, tunnelSource: IPAddress("2001:db8::2")!, tunnelDestination: IPAddress("2001:db8::1")!,
            encapsulation: UDPEncapsulation(sourcePort: 4500, destinationPort: 4501),
            sourceSelectors: [TrafficSelector(cidr: "2001:db8:2::/64", ipProtocol: 6, startPort: 1, endPort: 1024)!],
            destinationSelectors: [TrafficSelector(cidr: "2001:db8:1::/64")!, TrafficSelector(cidr: "2001:db8:3::1")!],
            lifetime: ESPLifetime(softBytes: 1 << 30, hardBytes: 1 << 31, softSeconds: 3000, hardSeconds: 3600))
    }

    func testEveryMessageRoundTrips() throws {
        var resumed = sampleSA()
        resumed.sequenceStart = 1 << 40
        let messages: [KeyDeliveryMessage] = [
            .addSA(sampleSA()), .addSA(resumed), .deleteSA(spi: ChildSPI(0x1234), direction: .inbound), .flush, .acknowledge(sequence: 77),
            .acquire(
                FlowDescription(
                    source: IPAddress("10.2.0.2")!, destination: IPAddress("10.1.0.1")!, ipProtocol: 6,
                    sourcePort: 40000, destinationPort: 5001)),
            .expire(spi: ChildSPI(0x999), direction: .outbound, hard: true),
            .status([SAStatus(spi: ChildSPI(0x1000), direction: .inbound, packets: 5, bytes: 600)])
        ]
        for message in messages {
            XCTAssertEqual(try KeyDeliveryMessage.decode(message.encode()), message)
        }
    }

    func testMalformedBodiesAreTypedErrors() {
        let good = KeyDeliveryMessage.addSA(sampleSA()).encode()
        for length in 0..<good.count {
            XCTAssertThrowsError(try KeyDeliveryMessage.decode(Array(good.prefix(length))), "prefix \(length)")
        }
        XCTAssertThrowsError(try KeyDeliveryMessage.decode(good + [0]))
        XCTAssertThrowsError(try KeyDeliveryMessage.decode([99]))
        var wrongKey = good
        wrongKey[13] = 5  // encryption key length octet no longer matches AES-256
        XCTAssertThrowsError(try KeyDeliveryMessage.decode(wrongKey))
    }

    func testDeliveredAndAcknowledged() {
        let (proxy, terminal) = makePair()
        let datagram = proxy.send(.addSA(sampleSA()), at: ClockReading(monotonic: 0, wall: 1_700_000_000))
        XCTAssertEqual(proxy.unacknowledgedCount, 1)
        guard case .message(let message, let ack) = terminal.receive(datagram, at: ClockReading(monotonic: 0, wall: 1_700_000_000)) else {
            return XCTFail("not delivered")
        }
        XCTAssertEqual(message, .addSA(sampleSA()))
        XCTAssertEqual(proxy.receive(ack, at: ClockReading(monotonic: 0, wall: 1_700_000_000)), .acknowledged(.addSA(sampleSA())))
        XCTAssertEqual(proxy.unacknowledgedCount, 0)
        XCTAssertTrue(proxy.tick(at: ClockReading(monotonic: 100, wall: 1_700_000_100)).datagrams.isEmpty)
    }

    func testLostAcknowledgementIsSurvivedWithoutApplyingTwice() {
        let (proxy, terminal) = makePair()
        let clock = 1_700_000_000.0
        let first = proxy.send(.deleteSA(spi: ChildSPI(0x4242), direction: .inbound), at: ClockReading(monotonic: 0, wall: clock))
        guard case .message = terminal.receive(first, at: ClockReading(monotonic: 0, wall: clock)) else { return XCTFail("not delivered") }
        // The acknowledgement is lost; the proxy retransmits.
        XCTAssertTrue(proxy.tick(at: ClockReading(monotonic: 0.2, wall: clock)).datagrams.isEmpty, "not yet due")
        let retransmitted = proxy.tick(at: ClockReading(monotonic: 0.6, wall: clock + 0.6)).datagrams
        XCTAssertEqual(retransmitted.count, 1)
        XCTAssertNotEqual(retransmitted[0], first, "freshly sealed")
        guard case .duplicate(let ack) = terminal.receive(retransmitted[0], at: ClockReading(monotonic: 0.6, wall: clock + 0.6)) else {
            return XCTFail("a duplicate must be acknowledged again and not acted on")
        }
        XCTAssertEqual(
            proxy.receive(ack, at: ClockReading(monotonic: 0.7, wall: clock + 0.7)),
            .acknowledged(.deleteSA(spi: ChildSPI(0x4242), direction: .inbound)))
        XCTAssertEqual(proxy.unacknowledgedCount, 0)
        XCTAssertEqual(proxy.retransmissions, 1)
    }

    func testUnansweredMessageIsAbandonedAfterBackoff() {
        let (proxy, _) = makePair()
        _ = proxy.send(.flush, at: ClockReading(monotonic: 0, wall: 0))
        var sent = 1
        var abandoned: [KeyDeliveryMessage] = []
        var time = 0.0
        while abandoned.isEmpty && time < 1000 {
            time += 0.25
            let result = proxy.tick(at: ClockReading(monotonic: time, wall: time))
            sent += result.datagrams.count
            abandoned += result.abandoned
        }
        XCTAssertEqual(sent, proxy.settings.maximumAttempts)
        XCTAssertEqual(abandoned, [.flush])
        XCTAssertGreaterThan(time, 30, "intervals doubled")
    }

    func testForgedReplayedStaleReflectedAndMisaddressedAreRejectedAndCounted() {
        let (proxy, terminal) = makePair()
        let clock = 1_700_000_000.0
        let datagram = proxy.send(.flush, at: ClockReading(monotonic: 0, wall: clock))

        for index in [5, 20, 45, datagram.count - 1] {  // header fields, nonce and tag are all authenticated
            var forged = datagram
            forged[index] ^= 0x01
            let receipt = terminal.receive(forged, at: ClockReading(monotonic: 0, wall: clock))
            XCTAssertTrue([.rejected(.forged), .rejected(.malformed), .rejected(.reflected)].contains(receipt), "octet \(index): \(receipt)")
        }
        let otherKey = KeyDeliveryChannel(role: .proxy, terminalID: 42, enrollmentKey: KeyMaterial(Array(repeating: 1, count: 32)), epoch: 5)
        XCTAssertEqual(
            terminal.receive(otherKey.send(.flush, at: ClockReading(monotonic: 0, wall: clock)), at: ClockReading(monotonic: 0, wall: clock)),
            .rejected(.forged))
        let otherTerminal = KeyDeliveryChannel(role: .proxy, terminalID: 43, enrollmentKey: key, epoch: 5)
        XCTAssertEqual(
            terminal.receive(otherTerminal.send(.flush, at: ClockReading(monotonic: 0, wall: clock)), at: ClockReading(monotonic: 0, wall: clock)),
            .rejected(.wrongTerminal))
        let sameRole = KeyDeliveryChannel(role: .terminal, terminalID: 42, enrollmentKey: key, epoch: 5)
        XCTAssertEqual(
            terminal.receive(sameRole.send(.flush, at: ClockReading(monotonic: 0, wall: clock)), at: ClockReading(monotonic: 0, wall: clock)),
            .rejected(.reflected))
        XCTAssertEqual(terminal.receive(Array(datagram.prefix(30)), at: ClockReading(monotonic: 0, wall: clock)), .rejected(.malformed))

        guard case .message = terminal.receive(datagram, at: ClockReading(monotonic: 0, wall: clock)) else {
            return XCTFail("genuine message refused")
        }
        guard case .duplicate = terminal.receive(datagram, at: ClockReading(monotonic: 1, wall: clock + 1)) else {
            return XCTFail("replay not caught")
        }

        // Stale: a timestamp far from our clock, and a message from an earlier session of the proxy.
        XCTAssertEqual(
            terminal.receive(proxy.send(.flush, at: ClockReading(monotonic: 0, wall: clock - 600)), at: ClockReading(monotonic: 0, wall: clock)),
            .rejected(.stale))
        let restarted = KeyDeliveryChannel(role: .proxy, terminalID: 42, enrollmentKey: key, epoch: 2_000)
        guard
            case .message = terminal.receive(
                restarted.send(.flush, at: ClockReading(monotonic: 0, wall: clock)), at: ClockReading(monotonic: 0, wall: clock))
        else {
            return XCTFail("a new session of the proxy must be accepted")
        }
        let fromOldSession = proxy.send(.flush, at: ClockReading(monotonic: 0, wall: clock))
        XCTAssertEqual(terminal.receive(fromOldSession, at: ClockReading(monotonic: 0, wall: clock)), .rejected(.stale))

        XCTAssertEqual(terminal.rejections[.forged], 4)
        XCTAssertEqual(terminal.rejections[.wrongTerminal], 1)
        XCTAssertEqual(terminal.rejections[.reflected], 1)
        XCTAssertEqual(terminal.rejections[.replayed], 1)
        XCTAssertEqual(terminal.rejections[.stale], 2)
    }
}
