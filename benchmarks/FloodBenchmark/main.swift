// The rate at which one engine (one core, release build) disposes of flood datagrams, side by side with the
// bare work each kind cannot avoid, measured in the same run:
// - IKE_SA_INIT from strangers (no connection): NO_PROPOSAL_CHOSEN, or unanswered once over initErrorAnswerRate;
// - IKE_SA_INIT from a configured peer's (spoofed) address past the cookie threshold: a COOKIE each;
// - IKE_AUTH with a garbage SK payload on a half-open SA: the integrity check fails, nothing is answered.
// Bare: decoding the IKE_SA_INIT, the cookie's SHA-256, and an AES-GCM open that fails, per datagram.
// Run: swift run -c release flood-benchmark [--quick]
import Crypto
import Foundation
import IKEv2

let quick = CommandLine.arguments.contains("--quick")
let rounds = quick ? 3 : 7
let perRound = quick ? 20_000 : 100_000

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// Per-second rate of `body` over `count` items, the median of `rounds` rounds.
func rate(_ count: Int, _ body: (Int) -> Int) -> Double {
    var samples: [Double] = []
    var sink = 0
    for _ in 0..<rounds {
        let start = now()
        for i in 0..<count { sink &+= body(i) }
        samples.append(Double(count) / (now() - start))
    }
    if sink == -1 { print("") }
    return samples.sorted()[samples.count / 2]
}

func connection(local: String, remote: String) throws -> ConnectionConfiguration {
    ConnectionConfiguration(
        name: "c", localAddress: IPAddress(local)!, remoteAddress: IPAddress(remote)!, localIdentity: Identity(local),
        remoteIdentity: Identity(remote), preSharedKey: KeyMaterial(Array("flood benchmark pre-shared key".utf8)),
        proposals: [try ProposalSpec("aes256gcm16-prfsha256-x25519", forIKE: true)],
        children: [
            ChildConfiguration(
                name: "ch", localTrafficSelectors: [TrafficSelector(cidr: local)!], remoteTrafficSelectors: [TrafficSelector(cidr: remote)!],
                mode: .tunnel, proposals: [try ProposalSpec("aes256gcm16", forIKE: false)])
        ])
}

func sent(_ actions: [EngineAction]) -> [Datagram] { actions.compactMap { if case .send(let d) = $0 { return d } else { return nil } } }

let peer = "192.0.2.1"
let us = "192.0.2.2"
let initiator = IKEEngine(connections: [try connection(local: peer, remote: us)])
let request = sent(initiator.initiate(connection: "c", now: 0))[0]
let message = try IKEMessage.decode(request.payload)
// Distinct requests: fresh initiator SPIs (a flood of copies of one request would hit the retransmission cache).
var generator = SystemRandomNumberGenerator()
let requests: [[UInt8]] = (0..<4096).map { _ in
    var header = message.header
    header.spiInitiator = IKESPI(bytes: (0..<8).map { _ in UInt8.random(in: 0...255, using: &generator) })
    return IKEMessage(header: header, payloads: message.payloads).encode()
}
let strangers = (0..<4096).map { Endpoint(IPAddress(bytes: [198, 18, UInt8($0 >> 8), UInt8($0 & 0xff)])!, 500) }

var unlimited = EngineSettings()
unlimited.initErrorAnswerRate = 1e12
let answering = IKEEngine(connections: [try connection(local: us, remote: peer)], settings: unlimited)
let strangerRate = rate(perRound) { i in
    sent(answering.receive(requests[i & 4095], from: strangers[i & 4095], to: request.destination, now: Double(i) * 1e-6)).count
}
let limiting = IKEEngine(connections: [try connection(local: us, remote: peer)])
let limitedRate = rate(perRound) { i in
    sent(limiting.receive(requests[i & 4095], from: strangers[i & 4095], to: request.destination, now: 0)).count
}
let cookies = IKEEngine(connections: [try connection(local: us, remote: peer)])
for i in 0..<16 { _ = cookies.receive(requests[4095 - i], from: request.source, to: request.destination, now: 0) }
let cookieRate = rate(perRound) { i in sent(cookies.receive(requests[i & 2047], from: request.source, to: request.destination, now: 0)).count }

// A half-open SA made by a genuine IKE_SA_INIT, then IKE_AUTH datagrams with its SPIs and random SK contents.
let halfOpen = IKEEngine(connections: [try connection(local: us, remote: peer)])
let initAnswer = sent(halfOpen.receive(request.payload, from: request.source, to: request.destination, now: 0))[0]
let responderSPI = try IKEMessage.decode(initAnswer.payload).header.spiResponder
let garbage: [[UInt8]] = (0..<256).map { _ in
    var header = message.header
    header.spiResponder = responderSPI
    header.exchangeType = .ikeAuth
    header.messageID = 1
    let body = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
    return IKEMessage(header: header, payloads: [.encrypted(EncryptedPayload(firstInnerPayload: .identificationInitiator, data: body))]).encode()
}
let authRate = rate(perRound) { i in sent(halfOpen.receive(garbage[i & 255], from: request.source, to: request.destination, now: 1)).count }

// Bare work, same run.
let decodeRate = rate(perRound) { i in (try? IKEMessage.decode(requests[i & 4095]))?.payloads.count ?? 0 }
let secret = [UInt8](repeating: 7, count: 32)
let nonce = [UInt8](repeating: 3, count: 32)
let shaRate = rate(perRound) { i in
    Int(SHA256.hash(data: nonce + [192, 0, 2, 1] + requests[i & 4095].prefix(8) + secret).withUnsafeBytes { $0[0] })
}
let key = SymmetricKey(size: .bits256)
let box = try AES.GCM.SealedBox(combined: [UInt8](repeating: 1, count: 12) + [UInt8](repeating: 2, count: 300) + [UInt8](repeating: 3, count: 16))
let openRate = rate(perRound) { _ in (try? AES.GCM.open(box, using: key))?.count ?? 0 }

print("| flood datagram, one engine, one core | disposed of per second | bare work per second | engine / bare |")
print("|---|---:|---:|---:|")
print(
    String(
        format: "| IKE_SA_INIT from a stranger, answered NO_PROPOSAL_CHOSEN | %.0f | %.0f (decode) | %.2f |", strangerRate, decodeRate,
        strangerRate / decodeRate))
print(
    String(
        format: "| IKE_SA_INIT from a stranger, over the error answer rate (unanswered) | %.0f | %.0f (decode) | %.2f |", limitedRate, decodeRate,
        limitedRate / decodeRate))
print(
    String(
        format: "| IKE_SA_INIT from a peer's address past the cookie threshold, COOKIE | %.0f | %.0f (decode + SHA-256: %.0f) | %.2f |", cookieRate,
        1 / (1 / decodeRate + 1 / shaRate), shaRate, cookieRate / (1 / (1 / decodeRate + 1 / shaRate))))
print(
    String(
        format: "| IKE_AUTH with a garbage SK payload on a half-open SA (integrity fails) | %.0f | %.0f (AES-GCM open fails) | %.2f |", authRate,
        openRate, authRate / openRate))
print(
    "counters: stranger engine \(answering.counters), limiting engine \(limiting.counters), cookie engine \(cookies.counters), half-open engine \(halfOpen.counters)"
)
