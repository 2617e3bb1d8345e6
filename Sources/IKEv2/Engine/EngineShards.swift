import Dispatch

/// The IKE engines of one program seen as one (issue 21: both cores used). Each engine holds the IKE SAs whose
/// SPIs on our side are its own (IKEShard); a command goes to the engine that holds what it names, a question
/// to all of them, in engine order.
///
/// Only `receive(batch:now:run:)` lets engines work at once: each takes its own datagrams of the batch in
/// order, and `run` decides whether engines run one after the other or on threads side by side. This type
/// owns no thread: with one engine, or a `run` that runs them in turn, it is as pure as the engine. Outside a
/// batch, one thread at a time calls it.
public final class EngineShards {
    public let engines: [IKEEngine]
    /// As given for the whole program (each engine takes its share, `IKEShard.settings`).
    public let settings: EngineSettings

    public var count: Int { engines.count }
    /// How many engines a configuration may ask for (`settings.workers` of the endpoint and the daemon).
    public static let allowedCounts = 1...64

    /// `random` serves every engine: with engines run at once it must be safe to call from several threads,
    /// as `SystemRandom` is.
    public convenience init(
        connections: [ConnectionConfiguration], settings: EngineSettings, count: Int = 1, random: RandomSource = SystemRandom()
    ) {
        self.init(connections: connections, settings: settings, count: count, randomFor: { _ in random })
    }

    /// Engine `index` draws from `randomFor(index)` (tests give each engine a seeded source of its own).
    public init(connections: [ConnectionConfiguration], settings: EngineSettings, count: Int, randomFor: (Int) -> RandomSource) {
        precondition(count >= 1, "at least one engine")
        self.settings = settings
        engines = (0..<count).map { index in
            IKEEngine(connections: connections, settings: IKEShard.settings(settings, index: index, of: count), random: randomFor(index))
        }
    }

    /// A datagram for `receive(batch:now:run:)`.
    public struct Datagram {
        public var payload: [UInt8]
        public var remote: Endpoint
        public var local: Endpoint

        public init(_ payload: [UInt8], from remote: Endpoint, to local: Endpoint) {
            self.payload = payload
            self.remote = remote
            self.local = local
        }

        /// The engine that takes it, by its IKE header (after the non-ESP marker on the NAT traversal port).
        func owner(among count: Int) -> Int {
            IKEShard.owner(of: payload[...], encapsulated: local.port == 4500 || remote.port == 4500, count: count)
        }
    }

    // MARK: Datagrams

    /// One datagram, to the engine of its IKE SA.
    public func receive(_ datagram: Datagram, now: Double) -> [EngineAction] {
        engines[datagram.owner(among: count)].receive(datagram.payload, from: datagram.remote, to: datagram.local, now: now)
    }

    /// A batch of datagrams: each engine takes its own in the batch's order. `run(count, body)` must call
    /// `body(index)` once for every engine index and return when all are done; calls for different engines may
    /// run at once on different threads (each touches only its engine and its datagrams' answers). Returns
    /// each datagram's answer, in the batch's order: the same as `receive` one by one, whatever `run` does.
    public func receive(batch: [Datagram], now: Double, run: (Int, (Int) -> Void) -> Void) -> [[EngineAction]] {
        guard count > 1 else { return batch.map { receive($0, now: now) } }
        var positions = Array(repeating: [Int](), count: count)
        for (position, datagram) in batch.enumerated() { positions[datagram.owner(among: count)].append(position) }
        var answers = Array(repeating: [EngineAction](), count: batch.count)
        answers.withUnsafeMutableBufferPointer { answers in
            // Each engine writes only its own datagrams' slots.
            nonisolated(unsafe) let slots = answers
            run(count) { index in
                let engine = engines[index]
                for position in positions[index] {
                    let datagram = batch[position]
                    slots[position] = engine.receive(datagram.payload, from: datagram.remote, to: datagram.local, now: now)
                }
            }
        }
        return answers
    }

    /// A `run` for `receive(batch:now:run:)` that runs the engines at once on the system's threads (Dispatch's
    /// `concurrentPerform`, which returns when every engine is done): for a program with cores to spare.
    public static func runAtOnce(_ count: Int, _ body: (Int) -> Void) {
        // Each call touches only its own engine and its own datagrams' answers.
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: count) { body($0) }
    }

    /// A `run` that runs the engines one after the other on the caller's thread.
    public static func runInTurn(_ count: Int, _ body: (Int) -> Void) {
        for index in 0..<count { body(index) }
    }

    // MARK: Commands

    /// Sets the connection in every engine (any of them may take an IKE SA with it).
    public func setConnection(_ connection: ConnectionConfiguration) { engines.forEach { $0.setConnection(connection) } }

    /// A CHILD SA for the connection: on the engine that holds an established IKE SA of it (CREATE_CHILD_SA),
    /// else on the one its name falls to, which starts a new IKE SA.
    public func startChild(connection name: String, child: String? = nil, now: Double) -> [EngineAction] {
        guard count > 1 else { return engines[0].startChild(connection: name, child: child, now: now) }
        let holder = engines.first { engine in engine.sessionSummaries.contains { $0.connection == name && $0.established } }
        return (holder ?? engines[Self.owner(ofConnection: name, count: count)]).startChild(connection: name, child: child, now: now)
    }

    /// Deletes a CHILD SA (by our inbound SPI) with the peer: in the engine that holds it; without an SPI,
    /// in every engine holding the connection.
    public func deleteChild(connection name: String, spi: ChildSPI? = nil, now: Double) -> [EngineAction] {
        holders(connection: name, child: spi).flatMap { $0.deleteChild(connection: name, spi: spi, now: now) }
    }

    /// Rekeys a CHILD SA (by our inbound SPI): in the engine that holds it.
    public func rekeyChild(connection name: String, spi: ChildSPI? = nil, now: Double) -> [EngineAction] {
        holders(connection: name, child: spi).flatMap { $0.rekeyChild(connection: name, spi: spi, now: now) }
    }

    /// Deletes the connection's IKE SA with that initiator SPI, or all of them, in whichever engine holds them.
    public func deleteIKE(connection name: String, spiInitiator: IKESPI? = nil, now: Double) -> [EngineAction] {
        guard count > 1 else { return engines[0].deleteIKE(connection: name, spiInitiator: spiInitiator, now: now) }
        return engines.filter { engine in
            engine.sessionSummaries.contains { $0.connection == name && (spiInitiator == nil || $0.spiInitiator == spiInitiator) }
        }.flatMap { $0.deleteIKE(connection: name, spiInitiator: spiInitiator, now: now) }
    }

    /// The answer to an online revocation check, to the engine that asked for it.
    public func revocationChecked(_ id: UInt64, _ status: RevocationStatus, now: Double) -> [EngineAction] {
        engines[IKEShard.owner(ofRevocationCheck: id, count: count)].revocationChecked(id, status, now: now)
    }

    /// Timers of every engine.
    public func tick(now: Double) -> [EngineAction] { engines.flatMap { $0.tick(now: now) } }

    /// A peer's INITIAL_CONTACT that one engine received: the others remove their stale IKE SAs of it too (the
    /// one that received it already did, and finds none again).
    public func forgetStaleSessions(_ match: StaleSessionMatch) -> [EngineAction] {
        count > 1 ? engines.flatMap { $0.forgetStaleSessions(match) } : []
    }

    /// Brings back a saved IKE SA, into the engine its SPI on our side falls to.
    public func restore(_ snapshot: IKESASnapshot, now: Double) throws(SnapshotRestoreError) -> [SAEvent] {
        let ours = snapshot.isOriginalInitiator ? snapshot.spiInitiator : snapshot.spiResponder
        return try engines[Int(ours % UInt64(count))].restore(snapshot, now: now)
    }

    // MARK: Questions

    public func connection(named name: String) -> ConnectionConfiguration? { engines[0].connection(named: name) }
    public var sessionSummaries: [IKEEngine.SessionSummary] { engines.flatMap(\.sessionSummaries) }
    public var negotiationSummaries: [IKEEngine.SessionSummary] { engines.flatMap(\.negotiationSummaries) }
    public var establishedAddresses: [IPAddress] { engines.flatMap(\.establishedAddresses) }
    public func snapshots(now: Double) -> [IKESASnapshot] { engines.flatMap { $0.snapshots(now: now) } }
    public func holdsIKESA(local: IPAddress, remote: IPAddress) -> Bool { engines.contains { $0.holdsIKESA(local: local, remote: remote) } }
    public func holdsAuthenticatedIKESA(local: IPAddress, remote: IPAddress) -> Bool {
        engines.contains { $0.holdsAuthenticatedIKESA(local: local, remote: remote) }
    }
    public func holdsChild(inbound spi: ChildSPI) -> Bool { engines.contains { $0.holdsChild(inbound: spi) } }
    public func secondsUntilRekey(childInbound spi: ChildSPI, now: Double) -> Double? {
        engines.lazy.compactMap { $0.secondsUntilRekey(childInbound: spi, now: now) }.first
    }
    /// Every engine's counters, added up.
    public var counters: [String: Int] {
        engines.reduce(into: [:]) { total, engine in total.merge(engine.counters, uniquingKeysWith: +) }
    }
    public var reassemblyOctetsPeak: Int { engines.reduce(0) { $0 + $1.reassemblyOctetsPeak } }

    /// The engine a connection's new IKE SAs start on: the same one each time (FNV-1a of its name).
    public static func owner(ofConnection name: String, count: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(hash % UInt64(count))
    }

    /// The engines a command on a connection's CHILD SA goes to: the one holding that SA, or with no SPI every
    /// one holding the connection; engine 0 when none does, which answers as a single engine would.
    private func holders(connection name: String, child spi: ChildSPI?) -> [IKEEngine] {
        guard count > 1 else { return engines }
        let holding = engines.filter { engine in
            if let spi { return engine.holdsChild(inbound: spi) }
            return engine.sessionSummaries.contains { $0.connection == name }
        }
        return holding.isEmpty ? [engines[0]] : holding
    }
}
