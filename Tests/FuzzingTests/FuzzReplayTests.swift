import Foundation
import Packets
import ProxyDemo
import XCTest

@testable import Fuzzing
@testable import IKEv2

/// Every fuzz target, run in CI without libFuzzer: its seeds, the inputs committed under fuzz/corpus
/// (what fuzzing runs kept, and every input that once broke something), and a fixed set of seeded
/// mutations of the seeds. A trap fails the run; a broken invariant fails the test with the input.
final class FuzzReplayTests: XCTestCase {
    static let corpusRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fuzz/corpus")

    func committedInputs(_ name: String) throws -> [(String, [UInt8])] {
        let folder = Self.corpusRoot.appendingPathComponent(name)
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return [] }
        return try files.sorted().map { ($0, Array(try Data(contentsOf: folder.appendingPathComponent($0)))) }
    }

    func replay(_ type: any FuzzTarget.Type, mutations: Int) throws {
        let target = type.init()
        let seeds = target.seeds()
        XCTAssertFalse(seeds.isEmpty, "\(type.name) has no seeds")
        for (index, seed) in seeds.enumerated() {
            XCTAssertEqual(Set(target.run(seed)), [], "\(type.name) seed \(index)")
        }
        let committed = try committedInputs(type.name)
        for (file, input) in committed {
            XCTAssertEqual(Set(target.run(input)), [], "\(type.name) fuzz/corpus/\(type.name)/\(file)")
        }
        var mutator = Mutator(seed: 0x1_5eed)
        var failures = 0
        for round in 0..<mutations where failures < 3 {
            let input = mutator.mutate(seeds[round % seeds.count], other: seeds[(round / 2) % seeds.count])
            let broken = target.run(input)
            guard !broken.isEmpty else { continue }
            failures += 1
            XCTFail("\(type.name) mutation \(round) broke \(Set(broken).sorted()); input \(input.map { String(format: "%02x", $0) }.joined())")
        }
        print(
            "fuzz replay \(type.name): \(seeds.count) seeds, \(committed.count) committed inputs, \(mutations) mutations, "
                + (failures == 0 ? "no invariant broken" : "\(failures) mutations broke an invariant"))
    }

    /// scripts/fuzz.sh (what CI runs through libFuzzer) names every target too.
    func testTheFuzzScriptRunsEveryTarget() throws {
        let script = try String(
            contentsOf: Self.corpusRoot.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("scripts/fuzz.sh"), encoding: .utf8)
        let line = try XCTUnwrap(script.split(separator: "\n").first { $0.contains("then targets=(") })
        let list = try XCTUnwrap(line.components(separatedBy: "targets=(").last?.components(separatedBy: ")").first)
        let names = list.split(separator: " ").map(String.init)
        XCTAssertEqual(Set(names), Set(FuzzTargets.all.map { $0.name }))
    }

    func testEveryTargetIsReplayed() {
        XCTAssertEqual(
            Set(FuzzTargets.all.map { $0.name }),
            [
                "ike-message", "ike-responder", "ike-auth", "ike-protected", "ike-intermediate", "ethernet-bridge", "terminal-agent",
                "configuration-text", "revocation-data"
            ])
    }

    func testIKEMessageCodec() throws { try replay(IKEMessageCodecFuzzTarget.self, mutations: 3000) }
    func testIKEResponder() throws { try replay(IKEResponderFuzzTarget.self, mutations: 400) }
    func testIKEAuth() throws { try replay(IKEAuthFuzzTarget.self, mutations: 800) }
    func testIKEProtectedExchange() throws { try replay(IKEProtectedExchangeFuzzTarget.self, mutations: 1500) }
    func testIKEIntermediate() throws { try replay(IKEIntermediateFuzzTarget.self, mutations: 300) }
    func testEthernetBridge() throws { try replay(EthernetBridgeFuzzTarget.self, mutations: 400) }
    func testConfigurationText() throws { try replay(ConfigurationTextFuzzTarget.self, mutations: 5000) }
    func testTerminalAgent() throws { try replay(TerminalAgentFuzzTarget.self, mutations: 1500) }
    func testRevocationData() throws { try replay(RevocationDataFuzzTarget.self, mutations: 3000) }

    /// The seeds reach deep: the harnesses are only worth running if their seeds take the happy path.
    func testSeedsReachTheStateMachines() {
        let protected = IKEProtectedExchangeFuzzTarget()
        let answers = protected.seeds().map { protected.exchange($0).answer }
        XCTAssertGreaterThanOrEqual(answers.count, 5, "liveness, CHILD_SA and IKE_SA rekeys, deletes")
        XCTAssertEqual(answers.filter { $0 == nil }.count, 0, "every seed is answered: \(answers)")
        XCTAssertTrue(answers.contains { $0?.contains(.keyExchange) == true }, "the IKE_SA rekey is accepted: \(answers)")
        XCTAssertTrue(answers.contains { $0?.contains(.trafficSelectorResponder) == true }, "the CHILD_SA rekey is accepted: \(answers)")
        XCTAssertGreaterThanOrEqual(IKEMessageCodecFuzzTarget().seeds().count, 12)
        let responder = IKEResponderFuzzTarget()
        XCTAssertEqual(responder.exchange(responder.seeds()[0]).answered.map(\.rawValue), [34, 35], "IKE_SA_INIT and IKE_AUTH answered")
        let auth = IKEAuthFuzzTarget()
        XCTAssertEqual(auth.seeds().count, 1)
        XCTAssertEqual(
            auth.seeds().first.flatMap { auth.exchange($0).answer }?.contains(.authentication), true,
            "the recorded IKE_AUTH, replayed, is answered with AUTH")
        let intermediate = IKEIntermediateFuzzTarget()
        let intermediateAnswers = intermediate.seeds().map { intermediate.exchange($0).answer }
        XCTAssertEqual(intermediateAnswers[0], [.keyExchange], "the first additional key exchange is answered")
        XCTAssertEqual(intermediateAnswers[1], [.keyExchange], "and the second, after a real first one")
        XCTAssertEqual(intermediateAnswers[2], [.notify], "a KE for another method: INVALID_SYNTAX")
        let bridge = EthernetBridgeFuzzTarget()
        let deliveries = bridge.seeds().prefix(2).map { bridge.exchange($0).keyDeliveries }
        XCTAssertTrue(deliveries.allSatisfy { $0 > 0 }, "both flows end with keys set into the terminal: \(deliveries)")
    }
}

/// A few of libFuzzer's mutations (flip, set, insert, erase, splice), seeded so that a failure repeats.
struct Mutator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next(_ bound: Int) -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return bound <= 0 ? 0 : Int((state >> 33) % UInt64(bound))
    }

    mutating func mutate(_ seed: [UInt8], other: [UInt8]) -> [UInt8] {
        var bytes = seed
        for _ in 0...next(4) {
            switch next(6) {
            case 0 where !bytes.isEmpty: bytes[next(bytes.count)] ^= UInt8(1 << next(8))
            case 1 where !bytes.isEmpty: bytes[next(bytes.count)] = [0, 0xff, 0x7f, 0x80, 1][next(5)]
            case 2: bytes.insert(contentsOf: (0..<next(16) + 1).map { _ in UInt8(next(256)) }, at: next(bytes.count + 1))
            case 3 where bytes.count > 1:
                let start = next(bytes.count)
                let count = min(next(16) + 1, bytes.count - start)
                bytes.removeSubrange(start..<start + count)
            case 4 where !other.isEmpty:
                let start = next(other.count)
                let count = min(next(64) + 1, other.count - start)
                bytes.insert(contentsOf: other[start..<start + count], at: next(bytes.count + 1))
            default: if !bytes.isEmpty { bytes[next(bytes.count)] &+= UInt8(next(7)) &- 3 }
            }
        }
        return bytes
    }
}

/// The invariant checks themselves catch what they are meant to, or a green fuzz run would mean nothing.
final class FuzzInvariantTests: XCTestCase {
    func testAMalformedDatagramFromTheEngineIsReported() {
        let datagram = Datagram(
            payload: [1, 2, 3], source: Endpoint(IPAddress("192.0.2.2")!, 500), destination: Endpoint(IPAddress("192.0.2.1")!, 500))
        XCTAssertEqual(IKEResponderFuzzTarget.check([.send(datagram)]).count, 1)
        let unmarked = Datagram(
            payload: [1, 2, 3], source: Endpoint(IPAddress("192.0.2.2")!, 4500), destination: Endpoint(IPAddress("192.0.2.1")!, 4500))
        XCTAssertEqual(IKEResponderFuzzTarget.check([.send(unmarked)]), ["sent on port 4500 without the non-ESP marker"])
    }

    func testFramesThatMustNotCrossAreReported() {
        let a = DemoScenario.terminalA
        let keyDelivery = EthernetBridgeFuzzTarget.ipFrame(
            from: a, to: IPAddress("169.254.0.1")!, protocolNumber: IPProtocolNumber.udp,
            transport: [0x30, 0x39, 0x25, 0x1c, 0, 12, 0, 0, 1, 2, 3, 4])
        XCTAssertEqual(EthernetBridgeFuzzTarget.mustNotCross(keyDelivery, from: .terminal), ["key delivery forwarded from the terminal side"])
        XCTAssertEqual(
            EthernetBridgeFuzzTarget.mustNotCross(EthernetBridgeFuzzTarget.icmpEcho(from: a, to: DemoScenario.peer), from: .terminal),
            ["plaintext ICMP of a protected flow forwarded to the Internet side"])
        let telnet = EthernetBridgeFuzzTarget.ipFrame(
            from: a, to: DemoScenario.telnetServer, protocolNumber: IPProtocolNumber.tcp,
            transport: [0x30, 0x39, 0, 23] + [UInt8](repeating: 0, count: 16))
        XCTAssertEqual(EthernetBridgeFuzzTarget.mustNotCross(telnet, from: .terminal), ["the discarded telnet flow was forwarded"])
        XCTAssertEqual(
            EthernetBridgeFuzzTarget.mustNotCross(EthernetBridgeFuzzTarget.icmpEcho(from: a, to: DemoScenario.dnsServer), from: .terminal), [])
    }

    func testBuiltFramesAreChecked() {
        var frame = EthernetBridgeFuzzTarget.icmpEcho(from: DemoScenario.stranger, to: DemoScenario.peer)
        XCTAssertEqual(EthernetBridgeFuzzTarget.check([.send(.internet, frame)]), [])
        XCTAssertTrue(EthernetBridgeFuzzTarget.speaksForStranger([.send(.internet, frame)]))
        frame[frame.count - 1] ^= 0xff
        XCTAssertEqual(EthernetBridgeFuzzTarget.check([.send(.internet, frame)]), ["built a packet with a bad checksum for the internet side"])
    }
}
