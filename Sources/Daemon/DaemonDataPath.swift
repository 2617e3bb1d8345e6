import Foundation
import IKEServices
import IKEv2
import LinuxIO
import Management
import Packets
import Proxy
import Store

/// The data path: frames read from the AF_PACKET ports in batches, judged by the bridge, passed on or built.
extension DaemonRunner {
    /// Reads one batch from `side` (terminal port `port`), judges each frame and sends what goes on. Returns
    /// the frames read. With several terminal ports, frames between them are switched unjudged and frames
    /// for stations not learnt are flooded to the other terminal ports as well (TerminalPortSwitch).
    func pump(from side: LinkSide, port index: Int = 0) -> Int {
        let input = side == .internet ? internet : terminals[index]
        // Frames passed on unchanged, by output (0: Internet port, 1 + i: terminal port i): pointers into the batch.
        var forwards = Array(repeating: [UnsafePointer<UInt8>?](), count: 1 + terminals.count)
        var lengths = Array(repeating: [Int32](), count: 1 + terminals.count)
        var offloads = Array(repeating: [UnsafePointer<UInt8>?](), count: 1 + terminals.count)
        var built: [(LinkSide, [UInt8])] = []
        let inputSlot = side == .internet ? 0 : 1 + index
        let now = monotonicSeconds()
        let wall = Date().timeIntervalSince1970
        var received = 0
        do {
            received = try input.receiveBatch { frame, offload, truncated in
                guard !truncated else {
                    count(.truncatedFrameDropped(side))
                    return
                }
                func pass(to slot: Int) {
                    if slot == inputSlot {
                        // Back out of the port it came in by: copied, the batch is still being read.
                        built.append((side, Array(frame)))
                    } else {
                        forwards[slot].append(frame.baseAddress)
                        lengths[slot].append(Int32(frame.count))
                        offloads[slot].append(offload)
                    }
                }
                if portSwitch != nil, frame.count >= 14 {
                    let destination = TerminalPortSwitch.key(frame, at: 0)
                    let source = TerminalPortSwitch.key(frame, at: 6)
                    if side == .internet {
                        portSwitch!.learn(source: source, at: .internet, now: now)
                    } else {
                        portSwitch!.learn(source: source, at: .terminal(index), now: now)
                        switch portSwitch!.fromTerminal(ingress: index, destination: destination, now: now) {
                        case .switchTo(let other):
                            count(.framesSwitchedBetweenTerminalPorts)
                            return pass(to: 1 + other)
                        case .sameSegment:
                            count(.framesFilteredSameSegment)
                            return
                        case .judgeAndFlood(let others):
                            if !others.isEmpty { count(.framesFloodedToTerminalPorts) }
                            for other in others { pass(to: 1 + other) }
                        }
                    }
                }
                for action in bridge.receive(from: side, frame: Array(frame), at: ClockReading(monotonic: now, wall: wall)) {
                    switch action {
                    case .forward(.internet): pass(to: 0)
                    case .forward(.terminal):
                        let ports = portSwitch.map { $0.terminalPorts(for: TerminalPortSwitch.key(frame, at: 0), now: now) } ?? [0]
                        for port in ports { pass(to: 1 + port) }
                    case .send(let out, let bytes):
                        built.append((out, bytes))
                        ikeActivity = true
                    case .drop: break
                    case .log(let line): log(line)
                    case .discovered(let line):
                        discoveryChanged = true
                        log(line)
                    case .event(let event):
                        ikeActivity = true
                        report(event, at: now)
                    case .checkRevocation(let request): revocation.start(request)
                    }
                }
            }
            // The forwarded frames point into the receive batch: sent before the next read reuses it.
            for slot in forwards.indices where !forwards[slot].isEmpty {
                let output = slot == 0 ? internet : terminals[slot - 1]
                let outputSide: LinkSide = slot == 0 ? .internet : .terminal
                let (sent, refused) = output.send(frames: forwards[slot], lengths: lengths[slot], offloads: offloads[slot])
                count(.framesForwarded(to: outputSide), sent)
                count(.transmitRefused(outputSide), refused)
            }
            count(.framesIn(side), received)
        } catch {
            count(.receiveErrors(side))
            log("\(error)")
        }
        // The batch's IKE datagrams, answered by the engines together (on `workers` threads); what they decided
        // is saved before it goes out, as for the rest of the batch.
        let answers = bridge.answerHeldIKE(at: ClockReading(monotonic: now, wall: wall))
        if !answers.isEmpty { ikeActivity = true }
        synchronizeState(now: now)
        // A daemon of a pair whose lease ran out while it saved (a database that does not answer) sends nothing more,
        // and says what it held back: the other node answers the peer's retransmissions from the saved state.
        guard leadership?.acts(now: monotonicSeconds()) ?? true else {
            let withheld = built.count + answers.filter { if case .send = $0 { true } else { false } }.count
            if withheld > 0 { log("high availability: the lease ran out while this batch was saved; \(withheld) frame(s) it built not sent") }
            return received
        }
        for (out, bytes) in built { sendBuilt(bytes, on: out) }
        perform(answers, receivedOn: side)
        return received
    }

    /// A frame the proxy built (or passed back): out of the Internet port, or the terminal port(s) its
    /// destination sits behind.
    func sendBuilt(_ frame: [UInt8], on side: LinkSide) {
        let ports: [PacketPort]
        if side == .internet {
            ports = [internet]
        } else if let portSwitch, frame.count >= 14 {
            ports = portSwitch.terminalPorts(for: TerminalPortSwitch.key(frame, at: 0), now: monotonicSeconds()).map { terminals[$0] }
        } else {
            ports = [terminal]
        }
        for port in ports {
            if port.send(frame) { count(.framesBuilt(to: side)) } else { count(.transmitRefused(side)) }
        }
    }

    /// An SA event on the event stream, and among the recent failures when it is one.
    func report(_ event: SAEvent, at now: Double) {
        recentFailures.note(event, at: now)
        emit(EventJSON.render(event, showKeys: showKeys))
    }

    func perform(_ actions: [FrameAction], receivedOn: LinkSide?) {
        for action in actions {
            switch action {
            case .send(let side, let bytes): sendBuilt(bytes, on: side)
            case .forward: break
            case .drop: break
            case .log(let line): log(line)
            case .discovered(let line):
                discoveryChanged = true
                log(line)
            case .event(let event): report(event, at: monotonicSeconds())
            case .checkRevocation(let request): revocation.start(request)
            }
        }
    }

    /// Frames the proxy decided outside a received frame (an OCSP answer, an administrator's command, a reload,
    /// the start): as for frames, the state they change is saved before they go out.
    func sendDecided(_ frames: [FrameAction], now: Double) {
        ikeActivity = true
        synchronizeState(now: now)
        perform(frames, receivedOn: nil)
    }

    /// OCSP answers that came in: the held IKE_AUTH exchanges go on.
    func receiveRevocationAnswers() {
        for answer in revocation.drain() {
            log("revocation check \(answer.id): \(RevocationService.describe(answer))")
            let actions = bridge.revocationChecked(
                answer.id, answer.status, at: .system())
            sendDecided(actions, now: monotonicSeconds())
        }
    }

    func render(counters: [String: Int]) -> String {
        counters.isEmpty ? "none" : counters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    func count(_ counter: DataPathCounter, _ amount: Int = 1) { if amount > 0 { portCounters[counter.name, default: 0] += amount } }
}
