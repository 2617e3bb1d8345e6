import XCTest

@testable import IKEv2

/// Floods handed to the engine in memory: spoofed IKE_SA_INIT (strangers and a genuine peer's address), IKE_AUTH
/// with garbage SK payloads on a half-open SA. State stays bounded, error answers are rate-limited, COOKIEs are
/// not, log lines are folded, and the genuine negotiation still completes. (Rates under flood are measured by
/// `proxy-benchmark`'s flood rows and `tests/interop/flood.py`, not here.)
final class FloodTests: XCTestCase {
    /// The initiator's IKE_SA_INIT, with a fresh initiator SPI for each copy.
    func spoofedInits(_ pair: EnginePair, count: Int) throws -> (template: Datagram, copies: [[UInt8]]) {
        pair.holding = true
        pair.run(pair.initiator.initiate(connection: "c", now: pair.now), from: "initiator")
        let template = try XCTUnwrap(pair.held.first)
        pair.held = []
        pair.holding = false
        let message = try IKEMessage.decode(template.payload)
        var random = SeededRandom(seed: 42)
        let copies = (0..<count).map { _ -> [UInt8] in
            var header = message.header
            header.spiInitiator = IKESPI(bytes: random.bytes(8))
            return IKEMessage(header: header, payloads: message.payloads).encode()
        }
        return (template, copies)
    }

    func sent(_ actions: [EngineAction]) -> [Datagram] { actions.compactMap { if case .send(let d) = $0 { return d } else { return nil } } }
    func logged(_ actions: [EngineAction]) -> [String] { actions.compactMap { if case .log(let l) = $0 { return l.text } else { return nil } } }

    func testErrorAnswersToStrangersAreRateLimitedAndTheirLogFolded() throws {
        var settings = EngineSettings()
        settings.initErrorAnswerRate = 100
        let pair = try Fixtures.pair(responderSettings: settings)
        let (template, copies) = try spoofedInits(pair, count: 1_000)
        var answers = 0
        var answerOctets = 0
        var lines: [String] = []
        for (index, bytes) in copies.enumerated() {
            // A thousand strangers (no connection for them) within one second.
            let stranger = Endpoint(IPAddress(bytes: [198, 18, UInt8(index >> 8), UInt8(index & 0xff)])!, 500)
            let actions = pair.responder.receive(bytes, from: stranger, to: template.destination, now: Double(index) / 1_000)
            answers += sent(actions).count
            answerOctets += sent(actions).reduce(0) { $0 + $1.payload.count }
            lines += logged(actions)
        }
        XCTAssertLessThanOrEqual(answers, 200, "a burst of 100 and 100 more over the second")
        XCTAssertGreaterThanOrEqual(answers, 100)
        XCTAssertEqual(pair.responder.counters["answer_rate_limited"], 1_000 - answers)
        XCTAssertEqual(pair.responder.counters["no_matching_connection"], 1_000)
        XCTAssertLessThan(answerOctets, copies.reduce(0) { $0 + $1.count } / 4, "the answers are far smaller than the requests")
        XCTAssertLessThanOrEqual(lines.count, 4, "\(lines.count) log lines: \(lines.prefix(5))")
        XCTAssertTrue(lines.contains { $0.contains("no connection configured") }, "\(lines)")
        XCTAssertTrue(pair.responder.sessions.isEmpty)
        // A second later the bucket has refilled.
        let later = pair.responder.receive(
            copies[0], from: Endpoint(IPAddress("198.18.9.9")!, 500), to: template.destination, now: 5)
        XCTAssertEqual(sent(later).count, 1)
    }

    func testSpoofedInitsFromAGenuinePeersAddressGetCookiesAndThePeerStillGetsIn() throws {
        var settings = EngineSettings()
        settings.cookieThreshold = 16
        let pair = try Fixtures.pair(responderSettings: settings)
        let (template, copies) = try spoofedInits(pair, count: 5_000)
        var cookies = 0
        var lines: [String] = []
        for (index, bytes) in copies.enumerated() {
            let actions = pair.responder.receive(bytes, from: template.source, to: template.destination, now: Double(index) / 5_000)
            cookies += sent(actions).filter { (try? IKEMessage.decode($0.payload))?.payloads.notify(.cookie) != nil }.count
            lines += logged(actions)
        }
        XCTAssertEqual(pair.responder.sessions.count, 16, "half-open state stops at the cookie threshold")
        XCTAssertEqual(cookies, 5_000 - 16, "every request past the threshold gets a COOKIE, unlimited")
        XCTAssertLessThanOrEqual(lines.filter { $0.contains("COOKIE") }.count, 2, "the COOKIE log line is folded")
        // The genuine initiator, under the same flood, answers the COOKIE and gets its SAs.
        pair.now = 1
        pair.run(pair.initiator.initiate(connection: "c", now: pair.now), from: "initiator")
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1)
        XCTAssertEqual(pair.responder.sessions.values.filter { $0.state == .established }.count, 1)
        // Half-open state expires.
        pair.run(pair.responder.tick(now: 1 + settings.halfOpenTimeout + 1), from: "responder")
        XCTAssertEqual(pair.responder.sessions.count, 1, "only the genuine IKE SA is left")
    }

    func testGarbageIKEAuthOnAHalfOpenSAIsDroppedUnansweredAndTheGenuineOneStillWorks() throws {
        let pair = try Fixtures.pair()
        pair.holding = true
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        let initRequest = try XCTUnwrap(pair.held.first)
        pair.held = []
        // The responder answers IKE_SA_INIT; the initiator's IKE_AUTH is held back.
        let initAnswer = try XCTUnwrap(
            sent(pair.responder.receive(initRequest.payload, from: initRequest.source, to: initRequest.destination, now: 0)).first)
        pair.run(pair.initiator.receive(initAnswer.payload, from: initAnswer.source, to: initAnswer.destination, now: 0), from: "initiator")
        let authRequest = try XCTUnwrap(pair.held.first)
        pair.held = []
        pair.holding = false
        let genuine = Array(authRequest.payload.dropFirst(authRequest.destination.port == 4500 ? 4 : 0))
        let message = try IKEMessage.decode(genuine)
        var random = SeededRandom(seed: 7)
        for _ in 0..<2_000 {
            // Same header (SPIs, message ID 1), an SK payload of random octets of the genuine length.
            let body = random.bytes(genuine.count - 28 - 4)
            let sk = [UInt8(message.header.nextPayload.rawValue), 0] + [UInt8((body.count + 4) >> 8), UInt8((body.count + 4) & 0xff)] + body
            var header = message.header
            header.length = UInt32(28 + sk.count)
            var writer = ByteWriter()
            header.encode(into: &writer)
            let forged = writer.bytes + sk
            let wire = authRequest.destination.port == 4500 ? [0, 0, 0, 0] + forged : forged
            XCTAssertTrue(sent(pair.responder.receive(wire, from: authRequest.source, to: authRequest.destination, now: 0.5)).isEmpty)
        }
        XCTAssertEqual(pair.responder.counters["integrity"], 2_000, "\(pair.responder.counters)")
        XCTAssertEqual(pair.responder.sessions.count, 1)
        pair.run(pair.responder.receive(authRequest.payload, from: authRequest.source, to: authRequest.destination, now: 1), from: "responder")
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1, "the genuine IKE_AUTH is answered")
    }

    func testTheTokenBucketAndTheLogSampler() {
        var bucket = TokenBucket(rate: 10)
        XCTAssertEqual((0..<20).filter { _ in bucket.allow(now: 0) }.count, 10, "a burst of the rate")
        XCTAssertEqual((0..<20).filter { _ in bucket.allow(now: 0.5) }.count, 5, "half a second refills half")
        XCTAssertFalse(bucket.allow(now: 0.4), "time going backwards gives nothing")
        XCTAssertEqual((0..<20).filter { _ in bucket.allow(now: 100) }.count, 10, "never more than the burst")
        var sampler = LogSampler(interval: 1)
        XCTAssertEqual(sampler.line("x", now: 0), "x")
        XCTAssertNil(sampler.line("x", now: 0.5))
        XCTAssertNil(sampler.line("x", now: 0.9))
        XCTAssertEqual(sampler.line("x", now: 1.0), "x (and 2 more like it since the last such line)")
    }
}
