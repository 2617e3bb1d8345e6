import XCTest

@testable import Proxy

/// The learning switch between several terminal-side ports: stations learnt by source, frames between
/// terminal segments switched, unknown and group destinations flooded, entries aged and moved.
final class TerminalPortSwitchTests: XCTestCase {
    let a: UInt64 = 0x0200_0000_d001, b: UInt64 = 0x0200_0000_d002, gateway: UInt64 = 0x0200_0000_0001
    let broadcast: UInt64 = 0xffff_ffff_ffff, ipv6Multicast: UInt64 = 0x3333_0000_0001

    func testMACAddressesAreReadAsNumbers() {
        let frame: [UInt8] = [0x02, 0, 0, 0, 0xd0, 0x02, 0x02, 0, 0, 0, 0xd0, 0x01, 0x08, 0x00]
        XCTAssertEqual(TerminalPortSwitch.key(frame, at: 0), b)
        XCTAssertEqual(TerminalPortSwitch.key(frame, at: 6), a)
        XCTAssertEqual(TerminalPortSwitch.key(frame[6...], at: 6), a, "slices keep their indices")
    }

    func testFramesBetweenTerminalSegmentsAreSwitchedAndOthersJudged() {
        var ports = TerminalPortSwitch(portCount: 3)
        ports.learn(source: a, at: .terminal(0), now: 0)
        // b not learnt yet: a's frame for b is flooded to the other terminal ports and judged.
        XCTAssertEqual(ports.fromTerminal(ingress: 0, destination: b, now: 1), .judgeAndFlood([1, 2]))
        ports.learn(source: b, at: .terminal(2), now: 1)
        XCTAssertEqual(ports.fromTerminal(ingress: 0, destination: b, now: 2), .switchTo(2))
        XCTAssertEqual(ports.fromTerminal(ingress: 2, destination: a, now: 2), .switchTo(0))
        // A station on the segment the frame came from: nothing to do.
        XCTAssertEqual(ports.fromTerminal(ingress: 2, destination: b, now: 2), .sameSegment)
        // The gateway is on the Internet side: judged, never flooded to terminals.
        ports.learn(source: gateway, at: .internet, now: 2)
        XCTAssertEqual(ports.fromTerminal(ingress: 0, destination: gateway, now: 3), .judgeAndFlood([]))
        // Broadcast and multicast: flooded and judged; group addresses are never learnt as sources.
        ports.learn(source: broadcast, at: .terminal(1), now: 3)
        XCTAssertEqual(ports.fromTerminal(ingress: 1, destination: broadcast, now: 3), .judgeAndFlood([0, 2]))
        XCTAssertEqual(ports.fromTerminal(ingress: 1, destination: ipv6Multicast, now: 3), .judgeAndFlood([0, 2]))
        XCTAssertEqual(ports.stationCount, 3)
    }

    func testTheProxysOwnAddressIsJudgedNotFlooded() {
        var ports = TerminalPortSwitch(portCount: 2)
        ports.ownAddresses = [0x0200_0000_aaaa]
        XCTAssertEqual(ports.fromTerminal(ingress: 1, destination: 0x0200_0000_aaaa, now: 0), .judgeAndFlood([]))
    }

    func testFramesToTheTerminalSideLeaveByTheStationsPort() {
        var ports = TerminalPortSwitch(portCount: 2)
        ports.learn(source: a, at: .terminal(1), now: 0)
        ports.learn(source: gateway, at: .internet, now: 0)
        XCTAssertEqual(ports.terminalPorts(for: a, now: 1), [1])
        XCTAssertEqual(ports.terminalPorts(for: b, now: 1), [0, 1], "not learnt: every terminal port")
        XCTAssertEqual(ports.terminalPorts(for: broadcast, now: 1), [0, 1])
        XCTAssertEqual(ports.terminalPorts(for: gateway, now: 1), [], "a station on the Internet side")
    }

    func testAFullTableStopsLearningInsteadOfGrowing() {
        var ports = TerminalPortSwitch(portCount: 2, agingTime: 300, capacity: 100)
        // A host sending from ever new source addresses: the table stops at its capacity.
        for index in 0..<10_000 { ports.learn(source: 0x0200_0000_0000 + UInt64(index), at: .terminal(0), now: 1) }
        XCTAssertEqual(ports.stationCount, 100)
        XCTAssertEqual(ports.refusedStations, 9_900)
        // A station it could not learn is flooded to, and the ones it knows still switch.
        XCTAssertEqual(ports.terminalPorts(for: 0x0200_0000_5000, now: 2), [0, 1])
        XCTAssertEqual(ports.terminalPorts(for: 0x0200_0000_0001, now: 2), [0])
        // Once the flood has aged out, new stations are learnt again.
        ports.learn(source: b, at: .terminal(1), now: 400)
        XCTAssertEqual(ports.location(of: b, now: 400), .terminal(1))
        XCTAssertEqual(ports.stationCount, 1)
    }

    func testStationsMoveAndAgeOut() {
        var ports = TerminalPortSwitch(portCount: 2, agingTime: 300)
        ports.learn(source: a, at: .terminal(0), now: 0)
        ports.learn(source: a, at: .terminal(1), now: 10)
        XCTAssertEqual(ports.location(of: a, now: 11), .terminal(1), "moved to where it was seen last")
        XCTAssertNil(ports.location(of: a, now: 311), "silent for longer than the aging time")
        XCTAssertEqual(ports.terminalPorts(for: a, now: 311), [0, 1])
        ports.age(now: 311)
        XCTAssertEqual(ports.stationCount, 0)
    }
}
