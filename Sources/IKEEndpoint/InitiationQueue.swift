/// Initiations asked for in a burst (`--initiate` names, `initiate` lines on the control pipe), started a
/// batch per turn of the loop and no more than `window` in flight: the next starts when one has its IKE SA
/// up or failed. strongSwan's init_limit_half_open does the same: unpaced, a burst of 1,000 made a
/// strongSwan responder's socket drop 4,000 datagrams, each paid for with a retransmission a second later
/// (issue 21). Pure: the runner hands it the clock and the engine's answers.
struct InitiationQueue {
    let window: Int
    let perTurn: Int
    /// How long an initiation may hold its place without an answer: the engine gives up on it before.
    let expiry: Double
    private(set) var waiting: [String] = []
    /// Connections started and not yet answered, with when each started.
    private(set) var inFlight: [String: Double] = [:]

    init(window: Int, perTurn: Int = 32, expiry: Double) {
        self.window = window
        self.perTurn = perTurn
        self.expiry = expiry
    }

    mutating func add(_ names: [String]) { waiting += names }

    /// Whether some initiation could start now (the loop then polls without waiting).
    var ready: Bool { !waiting.isEmpty && inFlight.count < window }

    /// The connections to start this turn; `start` initiates one and says whether it sent anything (an
    /// unknown connection, say, holds no place).
    mutating func startTurn(now: Double, start: (String) -> Bool) {
        inFlight = inFlight.filter { now - $0.value < expiry }
        var started = 0
        while started < perTurn, inFlight.count < window, !waiting.isEmpty {
            let name = waiting.removeFirst()
            if start(name) { inFlight[name] = now }
            started += 1
        }
    }

    /// The connection's IKE SA came up, failed or went: its place is free.
    mutating func answered(_ connection: String) { inFlight[connection] = nil }
}
