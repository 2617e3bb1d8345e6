import Foundation
import IKEv2
import Proxy
import XCTest

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
        let box = try sealer.seal(secret, context: .profilePreSharedKey(profile: "peer"))
        XCTAssertEqual(try sealer.unseal(box, context: .profilePreSharedKey(profile: "peer")), secret)
        XCTAssertNil(box.firstRange(of: secret), "the box does not hold the secret in the clear")
        XCTAssertThrowsError(try sealer.unseal(box, context: .profilePreSharedKey(profile: "other")), "a box moved to another row does not open")
        var forged = box
        forged[forged.count - 1] ^= 1
        XCTAssertThrowsError(try sealer.unseal(forged, context: .profilePreSharedKey(profile: "peer")))
        XCTAssertThrowsError(try sealer.unseal([1, 2, 3], context: .profilePreSharedKey(profile: "peer")))
        let other = try KeyFileSealer(path: directory.appendingPathComponent("other.key").path, create: true)
        XCTAssertThrowsError(try other.unseal(box, context: .profilePreSharedKey(profile: "peer")), "sealed under another key")
        // The medium is taken away: nothing seals or opens until it is back.
        let moved = directory.appendingPathComponent("elsewhere.key")
        try FileManager.default.moveItem(atPath: sealer.path, toPath: moved.path)
        XCTAssertFalse(sealer.isAvailable())
        XCTAssertThrowsError(try sealer.seal(secret, context: .profilePreSharedKey(profile: "x")))
        try FileManager.default.moveItem(atPath: moved.path, toPath: sealer.path)
        XCTAssertTrue(sealer.isAvailable())
        XCTAssertEqual(try sealer.unseal(box, context: .profilePreSharedKey(profile: "peer")), secret)
    }

    /// A fresh SoftHSM2 token (PIN 1234) in a folder of its own, which this process's SOFTHSM2_CONF names;
    /// returns that folder (moving it away takes the token out).
    func softHSMToken(label: String) throws -> URL {
        let tokens = directory.appendingPathComponent("tokens")
        try FileManager.default.createDirectory(at: tokens, withIntermediateDirectories: true)
        let conf = directory.appendingPathComponent("softhsm2.conf")
        try "directories.tokendir = \(tokens.path)\nobjectstore.backend = file\nlog.level = ERROR\n".write(
            to: conf, atomically: true, encoding: .utf8)
        setenv("SOFTHSM2_CONF", conf.path, 1)
        let initialize = Process()
        initialize.executableURL = URL(fileURLWithPath: "/usr/bin/softhsm2-util")
        initialize.arguments = ["--init-token", "--free", "--label", label, "--pin", "1234", "--so-pin", "123456"]
        initialize.standardOutput = FileHandle.nullDevice
        try initialize.run()
        initialize.waitUntilExit()
        XCTAssertEqual(initialize.terminationStatus, 0)
        return tokens
    }

    /// Envelope sealing with a real SoftHSM2 token: the token wraps the data key once; boxes are sealed
    /// with the data key, bound to their row; the token's own boxes still open; a restart unwraps the
    /// same key; with the token out, saving goes on but no new envelope opens.
    func testTheEnvelopeSealerNeedsTheTokenOnlyForItsDataKey() throws {
        let module = "/usr/lib/softhsm/libsofthsm2.so"
        guard FileManager.default.fileExists(atPath: module), FileManager.default.fileExists(atPath: "/usr/bin/softhsm2-util") else {
            return XCTFail("SoftHSM2 is not installed (scripts/test.sh installs softhsm2): envelope sealing cannot be tested")
        }
        _ = try softHSMToken(label: "envelope-test")
        let token = TokenSealer(modulePath: module, tokenLabel: "envelope-test", pin: "1234")
        XCTAssertTrue(token.isAvailable(), token.lastError ?? "")
        let secret = Array("SK_ei of some CHILD SA".utf8)
        let first = try EnvelopeSealer(token: token, wrappedKey: nil)
        let box = try first.seal(secret, context: .savedIKESA(key: "1_2"))
        XCTAssertEqual(box.first, EnvelopeSealer.version)
        XCTAssertEqual(first.wrappedKey.first, 1, "the data key is a box the token sealed")
        // A restart: the token unwraps the same data key, which opens the box, for its row only.
        let second = try EnvelopeSealer(token: token, wrappedKey: first.wrappedKey)
        XCTAssertEqual(try second.unseal(box, context: .savedIKESA(key: "1_2")), secret)
        XCTAssertThrowsError(try second.unseal(box, context: .savedIKESA(key: "3_4")))
        var tampered = box
        tampered[tampered.count / 2] ^= 1
        XCTAssertThrowsError(try second.unseal(tampered, context: .savedIKESA(key: "1_2")))
        // The token's own boxes (`ikeproxy seal`, databases from before) still open, through the token.
        let legacy = try token.seal(secret, context: .profilePreSharedKey(profile: "p"))
        XCTAssertEqual(try second.unseal(legacy, context: .profilePreSharedKey(profile: "p")), secret)
        // A wrapped key the token did not make opens nothing.
        var forged = first.wrappedKey
        forged[forged.count - 1] ^= 1
        XCTAssertThrowsError(try EnvelopeSealer(token: token, wrappedKey: forged))
        // The token taken out: SA changes are still saved (the data key is in memory), a new start is not possible.
        token.close()
        let later = try second.seal(secret, context: .savedIKESA(key: "5_6"))
        XCTAssertEqual(try second.unseal(later, context: .savedIKESA(key: "5_6")), secret)
        XCTAssertThrowsError(try EnvelopeSealer(token: token, wrappedKey: first.wrappedKey))
        XCTAssertThrowsError(try second.unseal(legacy, context: .profilePreSharedKey(profile: "p")), "the token's own boxes need the token")
    }

    /// The daemon's presence check with a real SoftHSM2 token, run in a child process (`ikeproxy
    /// token-probe`): present, taken out, put back, a wrong PIN, and a probe that hangs.
    func testTheTokenPresenceProbeSeesATokenLeaveAndComeBackWithoutBlocking() throws {
        let module = "/usr/lib/softhsm/libsofthsm2.so"
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let executable = root.appendingPathComponent(".build/debug/ikeproxy").path
        guard FileManager.default.fileExists(atPath: module), FileManager.default.fileExists(atPath: "/usr/bin/softhsm2-util") else {
            return XCTFail("SoftHSM2 is not installed (scripts/test.sh installs softhsm2): the token probe cannot be tested")
        }
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            return XCTFail("\(executable) is missing: `swift build --build-tests` builds it before the tests run")
        }
        let tokens = try softHSMToken(label: "probe-test")
        let removed = directory.appendingPathComponent("removed")

        var longestPoll = 0.0
        func answer(_ probe: TokenPresenceProbe) throws -> TokenPresenceProbe.Outcome? {
            let started = Date()
            try probe.start(now: 0)
            while Date().timeIntervalSince(started) < 20 {
                // The caller is never kept waiting: poll answers at once, nil while the child works.
                let before = Date()
                let outcome = probe.poll(now: Date().timeIntervalSince(started))
                longestPoll = max(longestPoll, Date().timeIntervalSince(before))
                XCTAssertLessThan(Date().timeIntervalSince(before), 0.5, "poll must not wait for the token")
                if let outcome {
                    print(
                        "token probe: \(outcome) after \(Int(Date().timeIntervalSince(started) * 1000)) ms; longest poll so far \(Int(longestPoll * 1_000_000)) µs"
                    )
                    return outcome
                }
                usleep(20_000)
            }
            return nil
        }
        let probe = TokenPresenceProbe(
            executable: executable, modulePath: module, tokenLabel: "probe-test", keyLabel: "ikeproxy-sealing-key", pin: "1234")
        XCTAssertEqual(try answer(probe), .present)
        // Taken out (the token's folder moved away, as the daemon test does).
        try FileManager.default.moveItem(at: tokens, to: removed)
        try FileManager.default.createDirectory(at: tokens, withIntermediateDirectories: true)
        guard case .absent(let reason)? = try answer(probe) else { return XCTFail("a removed token is reported present") }
        XCTAssertFalse(reason.isEmpty)
        // Put back.
        try FileManager.default.removeItem(at: tokens)
        try FileManager.default.moveItem(at: removed, to: tokens)
        XCTAssertEqual(try answer(probe), .present)
        // A wrong PIN is an absent token, with the token's reason.
        let wrongPIN = TokenPresenceProbe(
            executable: executable, modulePath: module, tokenLabel: "probe-test", keyLabel: "ikeproxy-sealing-key", pin: "9999")
        guard case .absent(let pinReason)? = try answer(wrongPIN) else { return XCTFail("a wrong PIN is reported present") }
        XCTAssertTrue(pinReason.contains("CKR"), pinReason)
        // A probe that hangs (a token that does not answer) is killed after its timeout and counts as absent.
        let hanging = directory.appendingPathComponent("hang.sh")
        try "#!/bin/sh\nsleep 30\n".write(to: hanging, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: hanging.path)
        let stuck = TokenPresenceProbe(executable: hanging.path, modulePath: module, tokenLabel: "probe-test", keyLabel: "k", pin: "1234", timeout: 1)
        XCTAssertEqual(try answer(stuck), .absent("the token did not answer within 1 s"))
        XCTAssertFalse(stuck.isRunning)
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

    /// `GET /v1/audit` reads the newest entries, oldest first, and the total.
    func testSAsSavedFromAProxyAreRestoredIntoAFreshOneWithoutSecretsInTheFile() throws {
        let network = DemoScenario.network(linkLatency: 0.0005)
        network.peerInitiates(connection: "to-\(DemoScenario.terminalA)")
        network.run(for: 1)
        let proxy = network.proxy
        XCTAssertEqual(proxy.store.children.count, 1)
        let path = directory.appendingPathComponent("state.db").path
        let sealer = try KeyFileSealer(path: directory.appendingPathComponent("seal.key").path, create: true)
        let state = ProxyStateStore(database: try StateDatabase(path: path), sealer: sealer)
        XCTAssertEqual(state.synchronize(engines: proxy.engines, at: ClockReading(monotonic: network.now, wall: 1_000)), [])
        XCTAssertEqual(try state.database.ikeSAs().count, 1)
        XCTAssertEqual(try state.database.childSAs().map(\.spiOutbound), proxy.store.children.keys.map(\.description))
        // Nothing changed: nothing written again.
        XCTAssertEqual(state.synchronize(engines: proxy.engines, at: ClockReading(monotonic: network.now + 5, wall: 1_005)), [])

        let file = try Data(contentsOf: URL(fileURLWithPath: path)) + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data())
        for sa in proxy.store.children.values {
            for key in [sa.inbound.encryptionKey.bytes, sa.outbound.encryptionKey.bytes] {
                XCTAssertNil(file.firstRange(of: Data(key)), "a CHILD SA key is in the database file")
            }
        }

        let fresh = KeyExchangeProxy(
            policy: DemoScenario.policy(),
            registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
            profiles: [DemoScenario.profile()])
        let restoring = ProxyStateStore(database: try StateDatabase(path: path), sealer: sealer)
        let log = restoring.restore(into: fresh, at: ClockReading(monotonic: 50, wall: 1_010))
        XCTAssertEqual(log.first, "restored 1 IKE SA(s) with 1 CHILD SA(s) from \(path)")
        XCTAssertEqual(Set(fresh.store.children.keys), Set(proxy.store.children.keys))
        XCTAssertEqual(fresh.engines.sessionSummaries, proxy.engines.sessionSummaries)
        let restored = try XCTUnwrap(fresh.store.children.values.first)
        XCTAssertEqual(
            restored.createdAt, 50 - 10 - (network.now - proxy.store.children.values.first!.createdAt), accuracy: 0.01,
            "the SA's age carries over the restart")

        // A sealer without the key cannot restore: the rows stay for a later start.
        let stranger = try KeyFileSealer(path: directory.appendingPathComponent("stranger.key").path, create: true)
        let other = KeyExchangeProxy(
            policy: DemoScenario.policy(),
            registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
            profiles: [DemoScenario.profile()])
        let refused = ProxyStateStore(database: try StateDatabase(path: path), sealer: stranger).restore(
            into: other, at: ClockReading(monotonic: 0, wall: 1_010))
        XCTAssertTrue(refused.contains { $0.contains("not restored") && $0.contains("stays saved") }, "\(refused)")
        XCTAssertTrue(other.store.children.isEmpty)
        XCTAssertEqual(try state.database.ikeSAs().count, 1)
    }
}
