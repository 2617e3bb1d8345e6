/// Answers to a peer's request that made a CHILD SA (IKE_AUTH, CREATE_CHILD_SA, the last IKE_FOLLOWUP_KE), held
/// until the terminal acknowledges the new inbound SA. The peer may send ESP on the new SA as soon as it has the
/// answer (RFC 7296 section 2.8: the initiator of a rekey starts using the new SA at once), so a responder installs
/// its inbound SA before answering, as strongSwan and the kernel do; in the proxy the inbound SA lives in the
/// terminal, one key-delivery round trip away. An answer waits at most `ProxySettings.answerHoldLimit`: a
/// terminal that does not acknowledge does not stall the peer's exchange.
struct AnswersAwaitingKeys {
    struct Held {
        var terminalID: UInt64
        /// Inbound SPIs not yet acknowledged by the terminal.
        var awaited: Set<UInt32>
        var packets: [ProxyAction]
        var deadline: Double
    }
    private var held: [Held] = []

    var isEmpty: Bool { held.isEmpty }

    mutating func hold(_ packets: [ProxyAction], terminalID: UInt64, awaiting spis: Set<UInt32>, deadline: Double) {
        held.append(Held(terminalID: terminalID, awaited: spis, packets: packets, deadline: deadline))
    }

    /// The terminal acknowledged this inbound SA: the answers that waited for nothing else go now, in order.
    mutating func acknowledged(spi: UInt32, terminalID: UInt64) -> [ProxyAction] {
        var released: [ProxyAction] = []
        held = held.compactMap { entry in
            guard entry.terminalID == terminalID else { return entry }
            var entry = entry
            entry.awaited.remove(spi)
            if entry.awaited.isEmpty {
                released += entry.packets
                return nil
            }
            return entry
        }
        return released
    }

    /// Answers whose terminal did not acknowledge in time: they go anyway; the count says how many.
    mutating func expire(now: Double) -> (packets: [ProxyAction], count: Int) {
        let due = held.filter { $0.deadline <= now }
        guard !due.isEmpty else { return ([], 0) }
        held.removeAll { $0.deadline <= now }
        return (due.flatMap(\.packets), due.count)
    }
}
