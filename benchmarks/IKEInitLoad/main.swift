// A load of genuine IKE_SA_INIT requests for a responder's throughput (benchmarks/ike_rate/responder_load.py,
// issue 21's workers): each request is a real one from our own engine (aes256gcm16-prfsha256-x25519, a valid
// X25519 public value) under a fresh initiator SPI, so the responder does all its IKE_SA_INIT work (a key
// pair, the shared secret, the key derivation) for every one. Sent with sendmmsg at a set rate from one UDP
// socket; the answers are read back (recvmmsg) and counted: the responder's throughput, seen from outside.
// The generator's own cost is a few microseconds a request (no crypto), so the responder has the machine.
//
//   ike-init-load LOCAL REMOTE RATE SECONDS     prints one JSON line: sent, answered (an IKE SA made), of those
//                                               answered while the load was on, other answers
import Foundation
import IKEv2
import LinuxIO

let arguments = CommandLine.arguments
guard arguments.count == 5, let local = IPAddress(arguments[1]), let remote = IPAddress(arguments[2]), let rate = Double(arguments[3]),
    let seconds = Double(arguments[4])
else {
    FileHandle.standardError.write(Data("usage: ike-init-load LOCAL REMOTE RATE SECONDS\n".utf8))
    exit(2)
}

func connection() throws -> ConnectionConfiguration {
    ConnectionConfiguration(
        name: "load", localAddress: local, remoteAddress: remote, localIdentity: Identity("load@bench.example"),
        remoteIdentity: Identity("responder.bench.example"), preSharedKey: KeyMaterial(Array("ike-rate-benchmark-pre-shared-key".utf8)),
        proposals: [try ProposalSpec("aes256gcm16-prfsha256-x25519", forIKE: true)],
        children: [
            ChildConfiguration(
                name: "ch", localTrafficSelectors: [TrafficSelector(cidr: "10.100.0.0/32")!],
                remoteTrafficSelectors: [TrafficSelector(cidr: "10.200.0.0/32")!], mode: .tunnel,
                proposals: [try ProposalSpec("aes256gcm16", forIKE: false)])
        ])
}

let engine = IKEEngine(connections: [try connection()])
guard
    let request = engine.initiate(connection: "load", now: 0).compactMap({ action -> [UInt8]? in
        if case .send(let datagram) = action { return datagram.payload } else { return nil }
    }).first
else {
    FileHandle.standardError.write(Data("ike-init-load: the engine made no IKE_SA_INIT\n".utf8))
    exit(1)
}
let socket = try UDPSocket(address: local.bytes, port: 500)
_ = socket.setReceiveBuffer(32 << 20)
var random = SystemRandomNumberGenerator()
var sent = 0
var answered = 0
var other = 0
/// Answers that came while the load was on: the responder's rate (what it still answers from its socket's
/// backlog afterwards is counted in `answered` too).
var answeredInTime = 0
let start = monotonicSeconds()
let batch = 32

/// Counts answers: one that made an IKE SA has a non-zero responder SPI (a COOKIE or an error answer has none).
/// Returns how many there were.
@MainActor func tally(_ answers: [ReceivedDatagram], inTime: Bool) -> Int {
    for answer in answers {
        if answer.bytes.count >= 28, answer.bytes[8..<16].contains(where: { $0 != 0 }) {
            answered += 1
            if inTime { answeredInTime += 1 }
        } else {
            other += 1
        }
    }
    return answers.count
}
while true {
    let now = monotonicSeconds()
    let elapsed = now - start
    if elapsed >= seconds { break }
    // Paced: as many as the rate allows by now, a batch at a time.
    let due = min(Int(elapsed * rate) - sent, batch)
    if due > 0 {
        let datagrams = (0..<due).map { _ -> OutgoingDatagram in
            var bytes = request
            var spi = random.next() as UInt64
            for i in 0..<8 {
                bytes[i] = UInt8(truncatingIfNeeded: spi)
                spi >>= 8
            }
            return OutgoingDatagram(bytes: bytes, address: remote.bytes, port: 500)
        }
        _ = socket.sendBatch(datagrams)
        sent += due
    }
    _ = tally(socket.receiveBatch(limit: 64), inTime: true)
    if due <= 0 { usleep(200) }
}
// The answers still on their way.
let drainUntil = monotonicSeconds() + 1
while monotonicSeconds() < drainUntil {
    if tally(socket.receiveBatch(limit: 64), inTime: false) == 0 { usleep(1000) }
}
print("{\"sent\":\(sent),\"answered\":\(answered),\"answered_in_time\":\(answeredInTime),\"other\":\(other),\"seconds\":\(seconds)}")
