import Foundation
import XCTest

@testable import Store

/// The pair's lease on a real PostgreSQL server: one holder at a time, the fencing number growing at each change of
/// hands, writes under a lost lease refused, and a server that does not answer failing the call in time.
final class PostgreSQLLeaseTests: XCTestCase {
    nonisolated(unsafe) static var server: PostgreSQLServer?

    override class func tearDown() {
        server?.stop()
        server = nil
        super.tearDown()
    }

    func database() throws -> PostgreSQLStateStore.Settings {
        if Self.server == nil { Self.server = try PostgreSQLServer() }
        return try XCTUnwrap(Self.server).newDatabase(prefix: "lease")
    }

    func testOneHolderAtATimeAndTheFencingNumberGrowsAtEachChangeOfHands() throws {
        let settings = try database()
        let a = try PostgreSQLStateStore(settings: settings)
        let b = try PostgreSQLStateStore(settings: settings)
        XCTAssertNil(try a.currentLease(), "no one held it yet")
        let first = try a.claimLease(holder: "a", duration: 2)
        XCTAssertEqual(first.holder, "a")
        XCTAssertEqual(first.fencing, 1)
        XCTAssertEqual(first.remaining, 2, accuracy: 0.5)
        let refused = try b.claimLease(holder: "b", duration: 2)
        XCTAssertEqual(refused.holder, "a", "b is told who holds it")
        XCTAssertEqual(refused.fencing, 1)
        Thread.sleep(forTimeInterval: 0.2)
        let renewed = try a.claimLease(holder: "a", duration: 2)
        XCTAssertEqual(renewed.fencing, 1, "a renewal keeps the term")
        XCTAssertGreaterThan(renewed.age, 0.15, "and its age")
        Thread.sleep(forTimeInterval: 2.5)
        let taken = try b.claimLease(holder: "b", duration: 2)
        XCTAssertEqual(taken.holder, "b", "a lapsed lease passes")
        XCTAssertEqual(taken.fencing, 2)
        XCTAssertLessThan(taken.age, 0.5)
        XCTAssertEqual(try a.claimLease(holder: "a", duration: 2).holder, "b", "a cannot take it back while b renews")
        try b.releaseLease(holder: "b")
        let handedOver = try a.claimLease(holder: "a", duration: 2)
        XCTAssertEqual(handedOver.holder, "a", "a released lease passes at once")
        XCTAssertEqual(handedOver.fencing, 3)
        try b.releaseLease(holder: "b")
        XCTAssertEqual(try b.currentLease()?.holder, "a", "a release by one who does not hold it changes nothing")
        Thread.sleep(forTimeInterval: 2.5)
        XCTAssertEqual(try a.claimLease(holder: "a", duration: 2).fencing, 4, "a holder back after its own lease lapsed starts a new term")
    }

    func testWritesUnderALostLeaseChangeNothing() throws {
        let settings = try database()
        let a = try PostgreSQLStateStore(settings: settings)
        let b = try PostgreSQLStateStore(settings: settings)
        let term = try a.claimLease(holder: "a", duration: 2)
        a.fenceWrites(LeaseFence(holder: "a", fencing: term.fencing))
        try a.setMeta("written_by", "a")
        XCTAssertEqual(try b.meta("written_by"), "a", "the holder writes")
        Thread.sleep(forTimeInterval: 2.5)
        XCTAssertThrowsError(try a.setMeta("written_by", "a, lapsed"), "a lapsed lease writes nothing") { error in
            XCTAssertTrue(error is LeaseLost, "\(error)")
            XCTAssertEqual("\(error)", "the lease (holder a, fencing 1) is no longer held: nothing written")
        }
        let taken = try b.claimLease(holder: "b", duration: 5)
        b.fenceWrites(LeaseFence(holder: "b", fencing: taken.fencing))
        try b.setMeta("written_by", "b")
        XCTAssertThrowsError(try a.saveProgress(sequences: [:], counters: ["x": 1]), "nor after it passed to b")
        XCTAssertThrowsError(try a.replacePolicy(rules: ["r"], defaultAction: "bypass", who: "a", now: 1))
        XCTAssertEqual(try a.meta("written_by"), "b", "reads still work for the one that lost it")
        XCTAssertEqual(try b.policyRules(), [], "nothing of a's reached the database")
        XCTAssertEqual(try b.counters(), [:])
    }

    /// Two daemons claiming a lapsed lease at the same moment, ten times: exactly one wins each time.
    func testClaimsAtTheSameMomentHaveOneWinner() throws {
        let settings = try database()
        let stores = [try PostgreSQLStateStore(settings: settings), try PostgreSQLStateStore(settings: settings)]
        var fencing: Int64 = 0
        for round in 0..<10 {
            let answers = Answers()
            DispatchQueue.concurrentPerform(iterations: 2) { index in
                let record = try? stores[index].claimLease(holder: "node\(index)", duration: 0.4)
                answers.set(index, record)
            }
            let results = answers.records
            let holders = Set(results.compactMap { $0?.holder })
            XCTAssertEqual(holders.count, 1, "round \(round): both saw one and the same holder (\(holders))")
            let term = try XCTUnwrap(results[0]?.fencing)
            XCTAssertEqual(term, fencing + 1, "round \(round): one new term")
            fencing = term
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    /// A server that accepts the connection and never answers (the path to it cut, say) fails the call after the
    /// timeout, not after TCP's minutes.
    func testAServerThatNeverAnswersFailsTheCallInTime() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        XCTAssertEqual(listen(listener, 4), 0)
        var settings = PostgreSQLStateStore.Settings(host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)), username: "u", database: "d")
        settings.timeout = 0.5
        let started = Date()
        XCTAssertThrowsError(try PostgreSQLStateStore(settings: settings)) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot connect to postgresql://u@127.0.0.1"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "failed after about the timeout")
    }
}

/// The two claims' answers, written from two threads.
private final class Answers: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [LeaseRecord?] = [nil, nil]
    func set(_ index: Int, _ record: LeaseRecord?) { lock.withLock { values[index] = record } }
    var records: [LeaseRecord?] { lock.withLock { values } }
}
