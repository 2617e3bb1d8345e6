import ESP
import IKEv2

/// Why a received key-delivery datagram was refused; each is counted.
public enum KeyDeliveryRejection: String, Sendable, CaseIterable {
    case malformed
    case wrongTerminal = "wrong_terminal"
    case reflected
    case forged
    case replayed
    case stale
}

/// Timers and windows of the channel.
public struct KeyDeliverySettings: Sendable {
    public var retransmitInterval: Double = 0.5
    public var maximumAttempts = 8
    public var replayWindow = 1024
    /// Largest accepted difference between the sender's timestamp and our clock, in seconds.
    public var maximumClockSkew: Double = 120
    public init() {}
}

/// Where a message stands in its sender's order: epochs grow across the sender's restarts, sequence numbers
/// within one. Messages may arrive out of that order (a retransmission overtaken by newer ones); the receiver
/// uses it to tell a stale FLUSH or DELETE from a current one.
public struct KeyDeliveryOrder: Comparable, Hashable, Sendable {
    public var epoch: UInt64
    public var sequence: UInt64
    public init(epoch: UInt64, sequence: UInt64) {
        self.epoch = epoch
        self.sequence = sequence
    }
    public static func < (a: Self, b: Self) -> Bool { (a.epoch, a.sequence) < (b.epoch, b.sequence) }
}

/// What receiving one datagram amounted to.
public enum KeyDeliveryReceipt: Equatable, Sendable {
    /// A new message: act on it and send `acknowledgement`.
    case message(KeyDeliveryMessage, acknowledgement: [UInt8])
    /// A message already acted on (its acknowledgement was lost): send `acknowledgement` again, do nothing else.
    case duplicate(acknowledgement: [UInt8])
    /// The peer acknowledged one of ours (nil when it was already acknowledged).
    case acknowledged(KeyDeliveryMessage?)
    case rejected(KeyDeliveryRejection)
}

/// One end of the authenticated, reliable key-delivery channel between the proxy and one terminal
/// (docs/key-delivery.md). Pure: datagrams and clock readings in, datagrams out; sockets live elsewhere.
public final class KeyDeliveryChannel: @unchecked Sendable {
    public let role: KeyDeliveryRole
    public let terminalID: UInt64
    public let settings: KeyDeliverySettings
    private let cipher: KeyDeliveryCipher
    private let random: RandomSource
    /// This end's epoch: every message it sends is ordered after those of lower epochs.
    public let epoch: UInt64
    private var nextSequence: UInt64 = 1

    private struct Pending {
        var message: KeyDeliveryMessage
        var attempts: Int
        var nextSend: Double
        /// When it was first sent: its acknowledgement's delay is the round trip operators watch.
        var firstSent: Double
    }
    private var pending: [UInt64: Pending] = [:]

    private var peerEpoch: UInt64 = 0
    private var peerWindow: ReplayWindow
    /// The sender's order of the last new message received (`.message`).
    public private(set) var lastMessageOrder = KeyDeliveryOrder(epoch: 0, sequence: 0)
    public private(set) var rejections: [KeyDeliveryRejection: UInt64] = [:]
    public private(set) var retransmissions: UInt64 = 0
    /// Seconds from a message's first sending to its acknowledgement, since the last `takeRoundTrips()` (at most
    /// the last 1,000).
    private var roundTrips: [Double] = []

    public func takeRoundTrips() -> [Double] {
        defer { roundTrips.removeAll() }
        return roundTrips
    }

    /// `epoch` must grow across restarts of this end (the start time in milliseconds serves).
    public init(
        role: KeyDeliveryRole, terminalID: UInt64, enrollmentKey: KeyMaterial, epoch: UInt64,
        settings: KeyDeliverySettings = KeyDeliverySettings(), random: RandomSource = SystemRandom()
    ) {
        self.role = role
        self.terminalID = terminalID
        self.settings = settings
        self.random = random
        self.epoch = epoch
        cipher = KeyDeliveryCipher(enrollmentKey: enrollmentKey, terminalID: terminalID, role: role)
        peerWindow = ReplayWindow(size: settings.replayWindow)
    }

    public var unacknowledgedCount: Int { pending.count }

    private func seal(_ message: KeyDeliveryMessage, sequence: UInt64, wallClock: Double) -> [UInt8] {
        let header = KeyDeliveryHeader(
            sender: role, terminalID: terminalID, epoch: epoch, sequence: sequence,
            timestamp: UInt64(max(0, wallClock) * 1000), nonce: random.bytes(12))
        return cipher.seal(header: header, body: message.encode())
    }

    /// Seals a message for sending; it is kept and retransmitted by `tick` until acknowledged.
    public func send(_ message: KeyDeliveryMessage, at time: ClockReading) -> [UInt8] {
        let sequence = nextSequence
        nextSequence += 1
        if message.needsAcknowledgement {
            pending[sequence] = Pending(
                message: message, attempts: 1, nextSend: time.monotonic + settings.retransmitInterval, firstSent: time.monotonic)
        }
        return seal(message, sequence: sequence, wallClock: time.wall)
    }

    /// Retransmissions due now (freshly sealed: new nonce and timestamp, same sequence number), and the
    /// messages given up on after `maximumAttempts`.
    public func tick(at time: ClockReading) -> (datagrams: [[UInt8]], abandoned: [KeyDeliveryMessage]) {
        var datagrams: [[UInt8]] = []
        var abandoned: [KeyDeliveryMessage] = []
        for (sequence, entry) in pending.sorted(by: { $0.key < $1.key }) where entry.nextSend <= time.monotonic {
            if entry.attempts >= settings.maximumAttempts {
                pending[sequence] = nil
                abandoned.append(entry.message)
                continue
            }
            var updated = entry
            updated.attempts += 1
            updated.nextSend = time.monotonic + settings.retransmitInterval * Double(1 << min(entry.attempts, 6))
            pending[sequence] = updated
            retransmissions += 1
            datagrams.append(seal(entry.message, sequence: sequence, wallClock: time.wall))
        }
        return (datagrams, abandoned)
    }

    private func reject(_ reason: KeyDeliveryRejection) -> KeyDeliveryReceipt {
        rejections[reason, default: 0] += 1
        return .rejected(reason)
    }

    public func receive(_ datagram: [UInt8], at time: ClockReading) -> KeyDeliveryReceipt {
        guard let header = KeyDeliveryHeader.decode(datagram) else { return reject(.malformed) }
        guard header.terminalID == terminalID else { return reject(.wrongTerminal) }
        guard header.sender == role.other else { return reject(.reflected) }
        guard let body = cipher.open(datagram, header: header) else { return reject(.forged) }
        // Authentic from here on; time.monotonic decide whether it is fresh.
        if abs(Double(header.timestamp) / 1000 - time.wall) > settings.maximumClockSkew { return reject(.stale) }
        if header.epoch < peerEpoch { return reject(.stale) }
        if header.epoch > peerEpoch {
            peerEpoch = header.epoch
            peerWindow = ReplayWindow(size: settings.replayWindow)
        }
        guard let message = try? KeyDeliveryMessage.decode(body) else { return reject(.malformed) }
        // Acknowledgements take their own sequence numbers, so they pass the peer's replay check too.
        let acknowledgement: [UInt8]? =
            message.needsAcknowledgement
            ? send(.acknowledge(sequence: header.sequence), at: time) : nil
        switch peerWindow.check(header.sequence) {
        case .behindWindow: return reject(.stale)
        case .replayed:
            rejections[.replayed, default: 0] += 1
            if let acknowledgement { return .duplicate(acknowledgement: acknowledgement) }
            return .rejected(.replayed)
        case .fresh: break
        }
        peerWindow.accept(header.sequence)
        lastMessageOrder = KeyDeliveryOrder(epoch: header.epoch, sequence: header.sequence)
        if case .acknowledge(let sequence) = message {
            let acknowledged = pending.removeValue(forKey: sequence)
            if let acknowledged {
                if roundTrips.count >= 1000 { roundTrips.removeFirst() }
                roundTrips.append(time.monotonic - acknowledged.firstSent)
            }
            return .acknowledged(acknowledged?.message)
        }
        return .message(message, acknowledgement: acknowledgement!)
    }
}
