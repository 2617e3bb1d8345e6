import Foundation
import XCTest

@testable import Management

/// Bearer tokens and client certificates are checked against hashes only; the mailbox hands calls to a
/// loop and answers back.
final class AuthenticatorTests: XCTestCase {
    let alice = Administrator(name: "alice", role: .admin, tokenSHA256: Administrator.hash(token: "alice-secret-token"))
    let rob = Administrator(name: "rob", role: .reader, tokenSHA256: Administrator.hash(token: "rob-secret-token"))

    func testOnlyAKnownBearerTokenAuthenticates() {
        let authenticator = Authenticator(administrators: [alice, rob])
        XCTAssertEqual(authenticator.administrator(authorization: "Bearer alice-secret-token")?.0, alice)
        XCTAssertEqual(authenticator.administrator(authorization: "bearer rob-secret-token")?.0, rob)
        XCTAssertEqual(authenticator.administrator(authorization: "bearer rob-secret-token")?.1, .bearerToken)
        for header in [
            nil, "", "Bearer", "Bearer ", "Bearer alice-secret-token2", "Basic YWxpY2U6c2VjcmV0", "alice-secret-token",
            "Bearer " + Administrator.hash(token: "alice-secret-token").map { String(format: "%02x", $0) }.joined()
        ] {
            XCTAssertNil(authenticator.administrator(authorization: header), "\(header ?? "nil") must not authenticate")
        }
        XCTAssertEqual(
            Administrator.hash(token: "abc").map { String(format: "%02x", $0) }.joined(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "SHA-256 as sha256sum prints it")
    }

    func testAPinnedClientCertificateAuthenticatesAndAnUnpinnedOneDoesNot() {
        let carolCertificate: [UInt8] = Array("DER of carol's certificate".utf8)
        let carol = Administrator(name: "carol", role: .admin, certificateSHA256: Administrator.fingerprint(certificateDER: carolCertificate))
        let authenticator = Authenticator(administrators: [alice, rob, carol])
        XCTAssertEqual(authenticator.administrator(authorization: nil, clientCertificateDER: carolCertificate)?.0, carol)
        XCTAssertEqual(authenticator.administrator(authorization: nil, clientCertificateDER: carolCertificate)?.1, .clientCertificate)
        // The certificate wins over a token; an unknown certificate falls back to the token; nothing else passes.
        XCTAssertEqual(authenticator.administrator(authorization: "Bearer rob-secret-token", clientCertificateDER: carolCertificate)?.0, carol)
        let stranger: [UInt8] = Array("DER of another certificate from the same CA".utf8)
        XCTAssertEqual(authenticator.administrator(authorization: "Bearer rob-secret-token", clientCertificateDER: stranger)?.0, rob)
        XCTAssertNil(authenticator.administrator(authorization: nil, clientCertificateDER: stranger))
        XCTAssertNil(authenticator.administrator(authorization: nil, clientCertificateDER: []))
        // Administrators with only a token cannot be matched by a certificate, and the reverse.
        XCTAssertNil(Authenticator(administrators: [carol]).administrator(authorization: "Bearer alice-secret-token"))
        XCTAssertNil(Authenticator(administrators: [alice]).administrator(authorization: nil, clientCertificateDER: carolCertificate))
    }

    func testChangingRoutesAreMarked() {
        XCTAssertEqual(
            Set(ManagementRequest.Route.allChanging),
            [
                .addPolicy, .deletePolicy, .replacePolicy, .revertPolicy, .approveTerminal, .addTerminal, .removeTerminal,
                .deleteSA, .flushSAs, .reloadCredentials
            ])
    }

    func testTheMailboxHandsCallsToTheLoopAndAnswersBack() async {
        let mailbox = ManagementMailbox()
        let loop = Task.detached {
            var answered = 0
            while answered < 3 {
                var ready = pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&ready, 1, 1000)
                mailbox.drain { request in
                    answered += 1
                    return .json(["route": request.route.rawValue, "who": request.administrator.name])
                }
            }
        }
        let first = ManagementRequest(route: .status, administrator: alice)
        let second = ManagementRequest(route: .listSAs, administrator: rob)
        let third = ManagementRequest(route: .metrics, administrator: rob)
        async let a = mailbox.submit(first)
        async let b = mailbox.submit(second)
        async let c = mailbox.submit(third)
        let answers = await [a, b, c]
        XCTAssertTrue(answers[0].body.contains("\"route\" : \"status\"") && answers[0].body.contains("alice"))
        XCTAssertTrue(answers[1].body.contains("listSAs"))
        XCTAssertTrue(answers[2].body.contains("metrics"))
        await loop.value
    }
}
