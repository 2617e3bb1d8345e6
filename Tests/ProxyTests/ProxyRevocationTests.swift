import Crypto
import Foundation
import IKEv2
import SwiftASN1
import X509
import XCTest

@testable import Proxy
@testable import ProxyDemo

/// The proxy checks the peer's certificate online before it sets keys into a terminal: the engine's
/// request goes out through the proxy, the answer comes back through it, on the demo's virtual links.
final class ProxyRevocationTests: XCTestCase {
    let peer = DemoScenario.peer, a = DemoScenario.terminalA

    /// The demo network with a peer that signs with a certificate naming an OCSP responder, and a proxy
    /// profile that trusts its CA under `policy`.
    func network(policy: RevocationPolicy) throws -> (VirtualNetwork, Certificate) {
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName("peer CA") }
        let ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey), notValidBefore: Date(timeIntervalSinceNow: -60),
            notValidAfter: Date(timeIntervalSinceNow: 86400), issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil)) },
            issuerPrivateKey: .init(caKey))
        let peerKey = P256.Signing.PrivateKey()
        let peerCertificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(peerKey.publicKey), notValidBefore: Date(timeIntervalSinceNow: -60),
            notValidAfter: Date(timeIntervalSinceNow: 86400), issuer: caName, subject: try DistinguishedName { CommonName("peer") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: ArraySlice(peer.bytes)))])
                AuthorityInformationAccess([.init(method: .ocspServer, location: .uniformResourceIdentifier("http://ocsp.example/"))])
            }, issuerPrivateKey: .init(caKey))
        var connections = DemoScenario.peerEngine().connections
        for index in connections.indices {
            connections[index].localAuthentication = .certificate(CertificateCredential(chain: [peerCertificate], key: .p256(peerKey)))
        }
        var profile = DemoScenario.profile()
        profile.peerTrustAnchors = [ca]
        profile.peerRevocationPolicy = policy
        let registry = TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals())
        let proxy = KeyExchangeProxy(policy: DemoScenario.policy(), registry: registry, profiles: [profile])
        return (
            VirtualNetwork(proxy: proxy, peer: IKEEngine(connections: connections), peerAddress: peer, terminals: DemoScenario.terminals()),
            peerCertificate
        )
    }

    func ping(_ network: VirtualNetwork) {
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 1))
        network.run()
    }

    func testKeysReachTheTerminalOnlyAfterAGoodAnswer() throws {
        let (network, certificate) = try network(policy: .ifURI)
        network.revocationResponder = { _ in .good }
        ping(network)
        XCTAssertEqual(network.revocationRequests.count, 1)
        XCTAssertEqual(network.revocationRequests.first?.chain.first, certificate, "the proxy asked about the peer's certificate")
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA, "keys set after the good answer")
        XCTAssertEqual(network.proxy.engines.counters["revocation_good"], 1)
    }

    func testARevokedPeerGetsNoSAAndTheTerminalNoKeys() throws {
        let (network, _) = try network(policy: .relaxed)
        network.revocationResponder = { _ in .revoked("revoked through OCSP, reason: keyCompromise") }
        ping(network)
        XCTAssertFalse(network.terminals[a]!.hasOutboundSA)
        XCTAssertEqual(network.proxy.store.count, 0)
        XCTAssertTrue(network.peer.engine.sessionSummaries.isEmpty, "the peer closed the SA it had made on AUTHENTICATION_FAILED")
    }

    func testWithoutAnswerIfURIRefusesAfterTheTimeoutAndRelaxedAccepts() throws {
        for (policy, keys) in [(RevocationPolicy.ifURI, false), (.relaxed, true)] {
            let (network, _) = try network(policy: policy)
            ping(network)
            XCTAssertEqual(network.revocationRequests.count, 1)
            XCTAssertFalse(network.terminals[a]!.hasOutboundSA, "\(policy): nothing while the check is out")
            network.advance(by: 12)
            XCTAssertEqual(network.terminals[a]!.hasOutboundSA, keys, "\(policy)")
            XCTAssertEqual(network.proxy.engines.counters["revocation_unavailable"], 1)
        }
    }
}
