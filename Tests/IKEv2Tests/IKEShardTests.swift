import XCTest

@testable import IKEv2

/// IKE SAs spread over several engines by SPI: each engine's SPIs are its own, and a datagram's header names
/// the engine that holds its IKE SA.
final class IKEShardTests: XCTestCase {
    func testAnEngineMakesOnlySPIsItOwnsAndNeverZero() {
        var random = SystemRandomNumberGenerator()
        let edges: [UInt64] = [0, 1, 2, 3, 4, 5, 6, 7, UInt64.max, UInt64.max - 1, UInt64.max - 2, 1 << 63]
        for count in 1...5 {
            for index in 0..<count {
                let shard = IKEShard(index: index, count: count)
                for value in edges + (0..<200).map({ _ in random.next() as UInt64 }) {
                    let spi = shard.own(value)
                    XCTAssertNotEqual(spi, 0, "shard \(index)/\(count) from \(value)")
                    XCTAssertTrue(shard.owns(IKESPI(spi)), "shard \(index)/\(count) from \(value) made \(spi)")
                    if value >= UInt64(count) { XCTAssertLessThanOrEqual(spi, value) }
                    if shard.owns(IKESPI(value)) && value != 0 { XCTAssertEqual(spi, value, "an owned SPI stays") }
                }
            }
        }
    }

    func header(initiator: UInt64, responder: UInt64, flags: UInt8, marker: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = marker ? [0, 0, 0, 0] : []
        bytes += IKESPI(initiator).bytes + IKESPI(responder).bytes
        bytes += [33, 0x20, 34, flags, 0, 0, 0, 0, 0, 0, 0, 28]
        return bytes
    }

    func testADatagramGoesToTheEngineOfOurSPI() {
        let initiatorFlag: UInt8 = 0x08
        let responseFlag: UInt8 = 0x20
        func owner(_ bytes: [UInt8], encapsulated: Bool = false) -> Int { IKEShard.owner(of: bytes[...], encapsulated: encapsulated, count: 3) }
        // A new IKE_SA_INIT request: the initiator's SPI decides (small SPIs: their leading zeros are no marker on 500).
        XCTAssertEqual(owner(header(initiator: 7, responder: 0, flags: initiatorFlag)), 1)
        // From the original initiator on an IKE SA: our SPI is the responder's.
        XCTAssertEqual(owner(header(initiator: 7, responder: 11, flags: initiatorFlag)), 2)
        XCTAssertEqual(owner(header(initiator: 7, responder: 11, flags: initiatorFlag | responseFlag)), 2)
        // From the original responder (we initiated): our SPI is the initiator's, even with no responder SPI yet
        // (an IKE_SA_INIT answered with a COOKIE or INVALID_KE_PAYLOAD).
        XCTAssertEqual(owner(header(initiator: 7, responder: 11, flags: responseFlag)), 1)
        XCTAssertEqual(owner(header(initiator: 8, responder: 0, flags: responseFlag)), 2)
        XCTAssertEqual(owner(header(initiator: 8, responder: 13, flags: 0)), 2)
        // On port 4500 behind the non-ESP marker, and in a slice that does not start at zero.
        let framed = [UInt8](repeating: 0xee, count: 5) + header(initiator: 7, responder: 11, flags: initiatorFlag, marker: true)
        XCTAssertEqual(IKEShard.owner(of: framed[5...], encapsulated: true, count: 3), 2)
        // Not IKE, or too short: engine 0 counts and drops it.
        XCTAssertEqual(owner([0xff]), 0)
        XCTAssertEqual(owner([0xff], encapsulated: true), 0)
        XCTAssertEqual(owner([0, 0, 0, 1] + header(initiator: 7, responder: 11, flags: initiatorFlag), encapsulated: true), 0)
        XCTAssertEqual(owner(Array(header(initiator: 7, responder: 11, flags: initiatorFlag).prefix(27))), 0)
        // One engine: everything is its own.
        XCTAssertEqual(IKEShard.owner(of: header(initiator: 7, responder: 11, flags: initiatorFlag)[...], encapsulated: false, count: 1), 0)
    }

    /// A host of `count` engines in memory: each datagram goes to the engine its header names.
    final class ShardedHost {
        let engines: [IKEEngine]
        let address: IPAddress
        init(connection: ConnectionConfiguration, address: String, count: Int, seed: UInt64) {
            self.address = IPAddress(address)!
            engines = (0..<count).map { index in
                var settings = EngineSettings()
                settings.shard = IKEShard(index: index, count: count)
                return IKEEngine(connections: [connection], settings: settings, random: SeededRandom(seed: seed + UInt64(index)))
            }
        }
        func engine(for datagram: Datagram) -> Int {
            IKEShard.owner(of: datagram.payload[...], encapsulated: datagram.destination.port == 4500, count: engines.count)
        }
        /// The engine holding the connection's established IKE SA.
        func holder() -> IKEEngine? { engines.first { $0.sessionSummaries.contains { $0.established } } }
    }

    /// Two hosts of three engines each negotiate, then each side rekeys the IKE SA and a CHILD SA: every datagram
    /// reaches, by its header alone, the engine that holds its IKE SA (or makes it): nothing is dropped, all
    /// comes up, and every SPI of ours is owned by the engine holding the SA.
    func testANegotiationAndItsRekeysBetweenShardedHostsReachTheEngineHoldingTheSA() throws {
        let count = 3
        func connection(_ local: String, _ remote: String) throws -> ConnectionConfiguration {
            try Fixtures.connection(local: local, remote: remote, proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        }
        let a = ShardedHost(connection: try connection("192.0.2.1", "192.0.2.2"), address: "192.0.2.1", count: count, seed: 10)
        let b = ShardedHost(connection: try connection("192.0.2.2", "192.0.2.1"), address: "192.0.2.2", count: count, seed: 20)
        var events: [SAEvent] = []
        var drops: [DropReason] = []
        var delivered = 0
        func run(_ actions: [EngineAction], now: Double) {
            var queue = actions
            while !queue.isEmpty {
                switch queue.removeFirst() {
                case .send(let datagram):
                    let host = datagram.destination.address == a.address ? a : b
                    delivered += 1
                    queue += host.engines[host.engine(for: datagram)].receive(
                        datagram.payload, from: datagram.source, to: datagram.destination, now: now)
                case .event(let event): events.append(event)
                case .drop(let reason): drops.append(reason)
                default: break
                }
            }
        }
        run(a.engines[0].initiate(connection: "c", now: 0), now: 0)
        XCTAssertEqual(events.filter { $0.kind == .childEstablished }.count, 2)
        run(try XCTUnwrap(a.holder()).rekeyIKE(connection: "c", now: 10), now: 10)
        run(try XCTUnwrap(b.holder()).rekeyIKE(connection: "c", now: 20), now: 20)
        run(try XCTUnwrap(b.holder()).rekeyChild(connection: "c", spi: nil, now: 30), now: 30)
        XCTAssertEqual(drops, [])
        XCTAssertEqual(events.filter { $0.kind == .ikeRekeyed }.count, 4)
        XCTAssertEqual(events.filter { $0.kind == .childRekeyed }.count, 2)
        XCTAssertGreaterThan(delivered, 8)
        for host in [a, b] {
            for (index, engine) in host.engines.enumerated() {
                for summary in engine.sessionSummaries {
                    let ours = summary.isOriginalInitiator ? summary.spiInitiator : summary.spiResponder
                    XCTAssertTrue(IKEShard(index: index, count: count).owns(ours), "engine \(index) holds an SA under SPI \(ours)")
                }
            }
        }
    }
}
