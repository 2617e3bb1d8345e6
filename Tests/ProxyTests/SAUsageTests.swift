import IKEv2
import XCTest

@testable import Proxy
@testable import ProxyDemo

/// The terminal's STATUS reports reach the SA store per SA and direction (what `ikeproxy sas` shows);
/// reports about SAs the proxy does not hold, or another terminal's, are not taken.
final class SAUsageTests: XCTestCase {
    let peer = DemoScenario.peer, a = DemoScenario.terminalA, b = DemoScenario.terminalB

    func testTheTerminalsStatusReportsAreKeptPerSAAndDirection() throws {
        let network = DemoScenario.network()
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        let sa = try XCTUnwrap(network.proxy.store.children.values.first)
        XCTAssertNil(network.proxy.store.usage[sa.inbound.spi], "nothing before the first report")
        for sequence in 1...4 { network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: UInt16(sequence))) }
        network.run()
        network.terminals[a]!.agent.statusInterval = 1
        network.advance(by: 2)
        let inbound = try XCTUnwrap(network.proxy.store.usage[sa.inbound.spi])
        let outbound = try XCTUnwrap(network.proxy.store.usage[sa.outbound.spi])
        XCTAssertEqual(inbound.packets, 4, "the four echo requests the terminal accepted")
        XCTAssertEqual(outbound.packets, 4, "and the four replies it protected")
        XCTAssertGreaterThan(inbound.octets, 4 * 20)
        XCTAssertNil(network.proxy.counters["status_of_unknown_sa"])
        // A report naming another terminal's SPI is not taken for it.
        XCTAssertFalse(network.proxy.store.recordUsage(spi: sa.inbound.spi, packets: 99, octets: 99, terminal: { $0 == self.b }, now: network.now))
        XCTAssertEqual(network.proxy.store.usage[sa.inbound.spi]?.packets, 4)
        // The SA deleted, its usage goes with it.
        network.peerDeletesIKE(connection: "to-\(a)")
        network.run()
        XCTAssertTrue(network.proxy.store.usage.isEmpty)
    }
}
