import XCTest

@testable import IKEv2

/// The IKE SA's lifecycle as the engine moves it: keys exist from the key exchange on, only an SA in
/// IKE_AUTH becomes established, a replaced SA stays replaced while it is deleted, and a closed one keeps
/// its keys for the response still to go.
final class SALifecycleTests: XCTestCase {
    func makeSession() throws -> IKESession {
        let connection = try Fixtures.connection(
            local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        return IKESession(
            connection: connection, isOriginalInitiator: true, spiInitiator: IKESPI(1), spiResponder: IKESPI(2),
            local: Endpoint(IPAddress("192.0.2.1")!, 500), remote: Endpoint(IPAddress("192.0.2.2")!, 500), now: 0)
    }

    let suite = IKECipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, prf: .hmacSHA256, group: .curve25519)
    let key = KeyMaterial(Array(repeating: 7, count: 32))
    var keys: IKESAKeys {
        IKESAKeys(
            deriving: key, integrityInitiator: .empty, integrityResponder: .empty, encryptionInitiator: key, encryptionResponder: key,
            authenticationInitiator: key, authenticationResponder: key)
    }

    func testKeysExistFromTheKeyExchangeOnAndOnlyAnAuthenticatingSAIsEstablished() throws {
        let session = try makeSession()
        XCTAssertEqual(session.state, .initiating)
        XCTAssertNil(session.keys)
        session.establish()
        XCTAssertEqual(session.state, .initiating, "no IKE_AUTH without keys")
        session.agreeKeys(suite: suite, keys: keys)
        XCTAssertEqual(session.state, .authenticating)
        XCTAssertEqual(session.keys, keys)
        session.establish()
        XCTAssertEqual(session.state, .established)
    }

    func testAReplacedSAStaysReplacedWhileDeletedAndAClosedOneKeepsItsKeys() throws {
        let session = try makeSession()
        session.agreeKeys(suite: suite, keys: keys)
        session.establish()
        session.markReplaced(now: 10)
        XCTAssertTrue(session.replacedByRekey)
        XCTAssertEqual(session.state, .deleting)
        session.startDeleting()
        guard case .replaced(_, since: 10, deleteSent: false) = session.lifecycle else { return XCTFail("\(session.lifecycle)") }
        session.markReplaced(now: 20)
        guard case .replaced(_, since: 10, _) = session.lifecycle else { return XCTFail("replaced once, at its first time") }
        session.close()
        XCTAssertEqual(session.state, .closed)
        XCTAssertEqual(session.keys, keys, "a response may still go under them")
    }

    func testACHILDSAsLifecycleSaysWhetherItWaitsForItsDeleteAndWhetherItWasAnnounced() throws {
        let configuration = try makeSession().connection.children[0]
        var child = ChildSA(
            configuration: configuration, spiInbound: ChildSPI(1), spiOutbound: ChildSPI(2),
            suite: ChildCipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: false),
            keys: DirectionalChildKeys(encryptionInbound: key, integrityInbound: .empty, encryptionOutbound: key, integrityOutbound: .empty),
            localTrafficSelectors: configuration.localTrafficSelectors, remoteTrafficSelectors: configuration.remoteTrafficSelectors,
            mode: .tunnel, createdAt: 0)
        XCTAssertFalse(child.rekeyed)
        XCTAssertTrue(child.announced)
        child.lifecycle = .replaced(at: 5)
        XCTAssertTrue(child.rekeyed)
        XCTAssertEqual(child.rekeyedAt, 5)
        XCTAssertTrue(child.announced, "a replaced SA was announced when made")
        child.lifecycle = .redundant(at: 6)
        XCTAssertTrue(child.rekeyed)
        XCTAssertFalse(child.announced, "the loser of a simultaneous rekey never was")
        child.lifecycle = .replaced(at: nil)
        XCTAssertNil(child.rekeyedAt, "restored after a restart: the time is not saved")
    }

    /// The answer to our Delete of the IKE SA is lost: the peer removed the SA as it answered, so no retransmission
    /// is ever answered. The Delete is sent five times (four retransmissions, 1 + 2 + 4 + 8 + 16 s at the defaults:
    /// a Delete lost every time on a link losing 20% stays near 0.03%), not the six other requests get, and the IKE
    /// SA is then reported deleted; `ike_delete_retransmit_limit` changes the count.
    func testADeleteOfTheIKESAWhoseAnswerIsLostIsGivenUpSoon() throws {
        let pair = try Fixtures.pair()
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        let request = try XCTUnwrap(pair.takeRequest(pair.initiator.deleteIKE(connection: "c", now: 1)))
        _ = pair.responder.receive(request.payload, from: request.source, to: request.destination, now: 1)  // its answer is lost
        XCTAssertTrue(pair.responder.sessions.isEmpty, "the peer removed the IKE SA as it answered")
        var transmissions = 1
        var t = 1.0
        while pair.events("initiator", .ikeDeleted).isEmpty && t < 200 {
            t += 0.5
            pair.run(pair.initiator.tick(now: t), from: "initiator")
            transmissions += pair.held.count
            pair.held = []
        }
        XCTAssertEqual(transmissions, 5)
        XCTAssertEqual(pair.events("initiator", .ikeDeleted).count, 1)
        XCTAssertLessThanOrEqual(t, 32.5, "given up after 1 + 2 + 4 + 8 + 16 s")
        XCTAssertTrue(pair.initiator.sessions.isEmpty)
    }
}
