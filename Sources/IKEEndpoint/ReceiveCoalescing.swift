/// When the loop reads its IKE sockets: as soon as a datagram waits, or, while many peers' messages trickle
/// in one at a time, once per `window`, as a network card moderates its interrupts. A peer with a thousand
/// negotiations under way that sends each message alone (strongSwan) otherwise wakes the loop once per
/// message, and every turn pays a wake-up, a `recvmmsg`, and a `sendmmsg` whose delivery into the peer's
/// namespace wakes the peer: together about as much CPU as the negotiation's crypto (issue 21). Held for a
/// window, the messages are read together and their answers leave in one `sendmmsg`.
///
/// A hold follows a sparse turn (fewer than `sparse` datagrams) that came less than `window` after the one
/// before, while the turns not held read fewer than three datagrams on average (the last eight or so): the
/// messages arrive one at a time. Our own initiations' answers, or a peer's burst, come several to a turn,
/// and a peer with a window of requests in flight waits on each answer, so holding them would slow it. A
/// hold pays only while others' messages gather meanwhile: a peer that waits for our answer before it
/// sends again (one negotiation at a time, or a few in flight) finds its answer late and sends nothing during
/// the hold. So three holds in a row that each gathered fewer than `sparse` datagrams turn holding off for a
/// while: 0.1 s, doubled each time it happens again up to 2 s, back to 0.1 s after a hold that gathered
/// enough (one poor hold alone is chance: a thousand peers' messages arrive unevenly). A lone
/// negotiation waits for nothing: its first message finds no recent turn. A datagram waits `window` at most.
struct ReceiveCoalescing {
    /// Seconds; 0 reads as soon as a datagram waits.
    let window: Double
    let sparse: Int
    /// Seconds without holds after three poor ones in a row (doubled each time, up to 2 s).
    private var quiet = ReceiveCoalescing.shortestQuiet
    static let shortestQuiet = 0.1
    static let longestQuiet = 2.0
    private var lastReadingTurn = -Double.infinity
    private var quietUntil = -Double.infinity
    /// Holds in a row that gathered fewer than `sparse` datagrams.
    private var poorHolds = 0
    /// Holds in a row, each right after the one before; above 0 while a hold is set or the turn after it.
    private var holdsInARow = 0
    static let longestRunOfHolds = 8
    /// Datagrams per turn not held, a moving average (weight 1/8), starting high: a hold needs a run of
    /// sparse turns first.
    private var unheldAverage = 8.0
    private(set) var holdUntil: Double?
    /// For the log at the end of a run: turns that read datagrams, the datagrams, and the turns after a hold.
    private(set) var turns = 0
    private(set) var datagrams = 0
    private(set) var heldTurns = 0
    /// Times three poor holds in a row turned holding off.
    private(set) var quietPeriods = 0

    init(window: Double, sparse: Int = 4) {
        self.window = window
        self.sparse = sparse
    }

    /// The loop read `count` datagrams (`batchFull`: it stopped with a batch full, more may wait) at `now`.
    mutating func read(_ count: Int, batchFull: Bool, now: Double) {
        guard count > 0 else { return }
        turns += 1
        datagrams += count
        guard window > 0 else { return }
        let afterHold = holdsInARow > 0
        if afterHold {
            heldTurns += 1
            if count < sparse {
                poorHolds += 1
            } else {
                poorHolds = 0
                quiet = Self.shortestQuiet
            }
            if poorHolds >= 3 {
                quietUntil = now + quiet
                quiet = min(quiet * 2, Self.longestQuiet)
                quietPeriods += 1
                poorHolds = 0
            }
        } else {
            unheldAverage += (Double(count) - unheldAverage) / 8
        }
        let gathered = afterHold && count >= sparse
        let steadySparseTurn = count < sparse && now - lastReadingTurn < window
        let continuing = gathered && holdsInARow < Self.longestRunOfHolds
        if !batchFull, unheldAverage < 3, now >= quietUntil, steadySparseTurn || continuing {
            holdUntil = now + window
            holdsInARow = continuing ? holdsInARow + 1 : 1
        } else {
            holdsInARow = 0
        }
        lastReadingTurn = now
    }

    /// Whether the sockets are read this turn (otherwise they wait until `holdUntil`).
    mutating func reads(now: Double) -> Bool {
        guard let until = holdUntil else { return true }
        if now >= until {
            holdUntil = nil
            return true
        }
        return false
    }

    /// Milliseconds the loop may sleep, given what it would sleep otherwise.
    func sleep(now: Double, otherwise: Int32) -> Int32 {
        guard let until = holdUntil else { return otherwise }
        return min(otherwise, Int32(max(0, (until - now) * 1000).rounded(.up)))
    }
}
