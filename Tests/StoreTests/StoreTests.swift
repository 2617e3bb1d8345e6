import Foundation
import XCTest
import IKEv2
import Proxy
@testable import ProxyDemo
@testable import Store

/// The store with a key-file sealer on a real SQLite file: boxes bound to their row, a missing key,
/// migrations and WAL, and SAs saved from a live proxy and restored into a fresh one.
final class StoreTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func testAKeyFileSealerOpensOnlyItsOwnBoxesForTheirOwnRow() throws {
        let sealer = try KeyFileSealer(path: directory.appendingPathComponent("seal.key").path, create: true)
        XCTAssertTrue(sealer.isAvailable())
        let secret = Array("a pre-shared key".utf8)
        let box = try sealer.seal(secret, context: "profile:peer")
        XCTAssertEqual(try sealer.unseal(box, context: "profile:peer"), secret)
        XCTAssertNil(box.firstRange(of: secret), "the box does not hold the secret in the clear")
        XCTAssertThrowsError(try sealer.unseal(box, context: "profile:other"), "a box moved to another row does not open")
        var forged = box
        forged[forged.count - 1] ^= 1
        XCTAssertThrowsError(try sealer.unseal(forged, context: "profile:peer"))
        XCTAssertThrowsError(try sealer.unseal([1, 2, 3], context: "profile:peer"))
        let other = try KeyFileSealer(path: directory.appendingPathComponent("other.key").path, create: true)
        XCTAssertThrowsError(try other.unseal(box, context: "profile:peer"), "sealed under another key")
        // The medium is taken away: nothing seals or opens until it is back.
        let moved = directory.appendingPathComponent("elsewhere.key")
        try FileManager.default.moveItem(atPath: sealer.path, toPath: moved.path)
        XCTAssertFalse(sealer.isAvailable())
        XCTAssertThrowsError(try sealer.seal(secret, context: "x"))
        try FileManager.default.moveItem(atPath: moved.path, toPath: sealer.path)
        XCTAssertTrue(sealer.isAvailable())
        XCTAssertEqual(try sealer.unseal(box, context: "profile:peer"), secret)
    }

    func testTheDatabaseIsMigratedToTheCurrentSchemaInWALMode() throws {
        let path = directory.appendingPathComponent("state.db").path
        let database = try StateDatabase(path: path)
        let (version, journal) = try database.describe()
        XCTAssertEqual(version, StateDatabase.schemaVersion)
        XCTAssertEqual(journal, "wal")
        // Opening again migrates nothing and keeps what is there.
        try database.audit(who: "test", action: "note", detail: "kept", now: 1)
        _ = try StateDatabase(path: path)
        XCTAssertEqual(try StateDatabase(path: path).describe().version, StateDatabase.schemaVersion)
        XCTAssertThrowsError(try StateDatabase(path: directory.appendingPathComponent("no/such/dir/state.db").path))
    }

    func testSAsSavedFromAProxyAreRestoredIntoAFreshOneWithoutSecretsInTheFile() throws {
        let network = DemoScenario.network(linkLatency: 0.0005)
        network.peerInitiates(connection: "to-\(DemoScenario.terminalA)")
        network.run(for: 1)
        let proxy = network.proxy
        XCTAssertEqual(proxy.store.children.count, 1)
        let path = directory.appendingPathComponent("state.db").path
        let sealer = try KeyFileSealer(path: directory.appendingPathComponent("seal.key").path, create: true)
        let state = ProxyStateStore(database: try StateDatabase(path: path), sealer: sealer)
        XCTAssertEqual(state.synchronize(engine: proxy.engine, now: network.now, wallClock: 1_000), [])
        XCTAssertEqual(try state.database.ikeSAs().count, 1)
        XCTAssertEqual(try state.database.childSAs().map(\.spiOutbound), proxy.store.children.keys.map(\.description))
        // Nothing changed: nothing written again.
        XCTAssertEqual(state.synchronize(engine: proxy.engine, now: network.now + 5, wallClock: 1_005), [])

        let file = try Data(contentsOf: URL(fileURLWithPath: path)) + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data())
        for sa in proxy.store.children.values {
            for key in [sa.inbound.encryptionKey.bytes, sa.outbound.encryptionKey.bytes] {
                XCTAssertNil(file.firstRange(of: Data(key)), "a CHILD SA key is in the database file")
            }
        }

        let fresh = KeyExchangeProxy(policy: DemoScenario.policy(),
                                     registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
                                     profiles: [DemoScenario.profile()])
        let restoring = ProxyStateStore(database: try StateDatabase(path: path), sealer: sealer)
        let log = restoring.restore(into: fresh, now: 50, wallClock: 1_010)
        XCTAssertEqual(log.first, "restored 1 IKE SA(s) with 1 CHILD SA(s) from \(path)")
        XCTAssertEqual(Set(fresh.store.children.keys), Set(proxy.store.children.keys))
        XCTAssertEqual(fresh.engine.sessionSummaries, proxy.engine.sessionSummaries)
        let restored = try XCTUnwrap(fresh.store.children.values.first)
        XCTAssertEqual(restored.createdAt, 50 - 10 - (network.now - proxy.store.children.values.first!.createdAt), accuracy: 0.01,
                       "the SA's age carries over the restart")

        // A sealer without the key cannot restore: the rows stay for a later start.
        let stranger = try KeyFileSealer(path: directory.appendingPathComponent("stranger.key").path, create: true)
        let other = KeyExchangeProxy(policy: DemoScenario.policy(),
                                     registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
                                     profiles: [DemoScenario.profile()])
        let refused = ProxyStateStore(database: try StateDatabase(path: path), sealer: stranger).restore(into: other, now: 0, wallClock: 1_010)
        XCTAssertTrue(refused.contains { $0.contains("not restored") && $0.contains("stays saved") }, "\(refused)")
        XCTAssertTrue(other.store.children.isEmpty)
        XCTAssertEqual(try state.database.ikeSAs().count, 1)
    }
}
