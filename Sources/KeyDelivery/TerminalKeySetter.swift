import ESP
import IKEv2
import KeyDelivery

/// Sets the CHILD SAs negotiated in one terminal's name into that terminal over its key-delivery channel,
/// make-before-break: a replacement's SAs go at once; the replaced outbound SA is deleted once the terminal
/// has acknowledged the replacement, the replaced inbound SA only when the old CHILD SA is deleted with the
/// peer (its Delete exchange done, RFC 7296 section 1.4.1), since until then the peer may still send on it
/// (docs/key-delivery.md, "Ordering").
public final class TerminalKeySetter {
    public let channel: KeyDeliveryChannel
    public let terminalID: UInt64
    private var waiting: [(spis: Set<UInt32>, then: [KeyDeliveryMessage])] = []
    /// Replaced outbound SAs already deleted in the terminal, so that the old CHILD SA's deletion does not
    /// delete them again.
    private var outboundDeletedOnReplacement: Set<UInt32> = []
    /// Replacements from a rekey collision not settled yet (`outboundHeld`), by the outbound SPI of the SA they
    /// replace: only their inbound SA is in the terminal, which keeps sending on the old one.
    private var held: [UInt32: (inbound: ChildSPI, outbound: SecurityAssociationParameters)] = [:]

    /// Datagrams to send to the terminal and lines for the log.
    public struct Output: Equatable, Sendable {
        public var datagrams: [[UInt8]] = []
        public var log: [String] = []
        public init() {}
    }

    /// Whether lines about deliveries going as they should (set, acknowledged) are made (`LogLevel.info`).
    let logsProgress: Bool

    public init(channel: KeyDeliveryChannel, logLevel: LogLevel = .info) {
        self.channel = channel
        terminalID = channel.terminalID
        logsProgress = logLevel <= .info
    }

    private func send(_ message: KeyDeliveryMessage, at time: ClockReading, into output: inout Output) {
        output.datagrams.append(channel.send(message, at: time))
    }

    /// Sets SAs directly (e.g. a stored SA handed again to a terminal that asks for one).
    public func set(
        _ inbound: SecurityAssociationParameters, _ outbound: SecurityAssociationParameters,
        at time: ClockReading
    ) -> Output {
        var output = Output()
        send(.addSA(inbound), at: time, into: &output)
        send(.addSA(outbound), at: time, into: &output)
        if logsProgress { output.log.append("key delivery: set SAs \(inbound.spi) (in) and \(outbound.spi) (out) into terminal \(terminalID)") }
        return output
    }

    /// Acts on a CHILD SA event of an IKE SA negotiated for this terminal.
    public func handle(_ event: SAEvent, lifetime: ESPLifetime, at time: ClockReading) -> Output {
        guard let child = event.child else { return Output() }
        switch event.kind {
        case .childEstablished, .childRekeyed:
            let (inbound, outbound) = SAHandover.parameters(for: event, child: child, lifetime: lifetime)
            if let old = child.replaces, child.outboundHeld || child.rekeyedByPeer {
                // A collision: which replacement stays is not known yet, and the terminal could otherwise send on one the
                // peer deletes. A rekey of the peer's: the peer may not have processed the answer yet, and would drop
                // what the terminal sends on the new SA; its Delete of the old SA says it has.
                held[old.outbound.rawValue] = (inbound.spi, outbound)
                var output = Output()
                send(.addSA(inbound), at: time, into: &output)
                output.log.append(
                    "key delivery: set SA \(inbound.spi) (in) into terminal \(terminalID); its outbound SA \(outbound.spi) waits "
                        + (child.outboundHeld
                            ? "until the rekey collision over \(old.outbound) is settled"
                            : "until the peer deletes the SA it replaces (\(old.outbound))"))
                return output
            }
            var output = set(inbound, outbound, at: time)
            if let old = child.replaces, let redundant = held.removeValue(forKey: old.outbound.rawValue) {
                // Ours stays: the held replacement is the redundant one, deleted by the peer; its outbound is never set.
                outboundDeletedOnReplacement.insert(redundant.outbound.spi.rawValue)
                output.log.append("key delivery: \(redundant.inbound)/\(redundant.outbound.spi) lost the rekey collision; its outbound SA is not set")
            }
            if let old = child.replaces {
                // The old inbound SA stays until the old CHILD SA's deletion (`.childDeleted`): a peer answering
                // our rekey keeps sending on it until it has our Delete.
                waiting.append((spis: [inbound.spi.rawValue, outbound.spi.rawValue], then: [.deleteSA(spi: old.outbound, direction: .outbound)]))
                outboundDeletedOnReplacement.insert(old.outbound.rawValue)
            }
            return output
        case .childDeleted:
            if let old = held.first(where: { $0.value.inbound == child.spiInbound })?.key {
                // A held replacement deleted (the peer's redundant one, settled first on its side): only its inbound was set.
                held[old] = nil
                outboundDeletedOnReplacement.insert(child.spiOutbound.rawValue)
            } else if let survivor = held.removeValue(forKey: child.spiOutbound.rawValue) {
                // The peer deleted the old SA while a replacement of it was held: the peer's replacement stays. The
                // terminal gets its outbound SA, and stops sending on the old one once it holds it.
                var output = Output()
                send(.addSA(survivor.outbound), at: time, into: &output)
                waiting.append((spis: [survivor.outbound.spi.rawValue], then: [.deleteSA(spi: child.spiOutbound, direction: .outbound)]))
                outboundDeletedOnReplacement.insert(child.spiOutbound.rawValue)
                output.log.append(
                    "key delivery: the peer deleted \(child.spiOutbound), which its replacement replaces; "
                        + "set the replacement's outbound SA \(survivor.outbound.spi) into terminal \(terminalID)")
                let deleted = delete(inbound: child.spiInbound, outbound: child.spiOutbound, at: time)
                output.datagrams += deleted.datagrams
                output.log += deleted.log
                return output
            }
            return delete(inbound: child.spiInbound, outbound: child.spiOutbound, at: time)
        default:
            return Output()
        }
    }

    /// Deletes an SA in the terminal that the proxy holds nothing of (no replacement waits for it).
    public func deleteUnknown(_ spi: ChildSPI, direction: ESPDirection, at time: ClockReading) -> Output {
        var output = Output()
        send(.deleteSA(spi: spi, direction: direction), at: time, into: &output)
        return output
    }

    /// Deletes a CHILD SA's pair in the terminal, after any replacement still being set.
    public func delete(inbound: ChildSPI, outbound: ChildSPI, at time: ClockReading) -> Output {
        var output = Output()
        var deletes: [KeyDeliveryMessage] = [.deleteSA(spi: inbound, direction: .inbound)]
        if outboundDeletedOnReplacement.remove(outbound.rawValue) == nil { deletes.append(.deleteSA(spi: outbound, direction: .outbound)) }
        if let index = waiting.lastIndex(where: { !$0.spis.isEmpty }) {
            for message in deletes where !waiting[index].then.contains(message) { waiting[index].then.append(message) }
        } else {
            deletes.forEach { send($0, at: time, into: &output) }
            output.log.append(
                deletes.count == 2
                    ? "key delivery: deleted SAs \(inbound)/\(outbound) in terminal \(terminalID)"
                    : "key delivery: deleted SA \(inbound) (inbound; the outbound one went when its replacement was in place) in terminal \(terminalID)"
            )
        }
        return output
    }

    /// Deletes every SA in the terminal at once (it is no longer served): nothing waiting is sent any more.
    public func flush(at time: ClockReading) -> Output {
        var output = Output()
        waiting.removeAll()
        outboundDeletedOnReplacement.removeAll()
        held.removeAll()
        send(.flush, at: time, into: &output)
        output.log.append("key delivery: flush sent to terminal \(terminalID) (every SA in it deleted)")
        return output
    }

    /// The terminal acknowledged one of our messages: release deletes that waited for it.
    public func acknowledged(_ message: KeyDeliveryMessage?, at time: ClockReading) -> Output {
        var output = Output()
        guard case .addSA(let sa)? = message else { return output }
        if logsProgress { output.log.append("key delivery: terminal \(terminalID) acknowledged SA \(sa.spi) (\(sa.direction.rawValue))") }
        for index in waiting.indices { waiting[index].spis.remove(sa.spi.rawValue) }
        while let first = waiting.first, first.spis.isEmpty {
            waiting.removeFirst()
            for message in first.then {
                send(message, at: time, into: &output)
                output.log.append("key delivery: replacement in place, \(message.kind) sent to terminal \(terminalID)")
            }
        }
        return output
    }
}
