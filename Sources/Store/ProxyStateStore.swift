import Foundation
import IKEv2
import Proxy

/// Keeps the proxy's SAs on disk as they change and brings them back after a restart. Each established
/// IKE SA is saved as an engine snapshot, sealed (it holds keys), with a clear index of its CHILD SAs
/// for listings; negotiations under way are noted (without secrets) so a restart can say what it lost.
/// Writes happen only when something changed (message IDs, SPIs, CHILD SAs), not per packet.
public final class ProxyStateStore {
    public let database: any StateStore
    public let sealer: Sealer
    /// What was last written per IKE SA ("spiI_spiR"), without the ever-changing ages.
    /// What was last saved of each IKE SA, without its ages (`stable`): compared field by field, which costs
    /// far less than encoding every SA anew after each batch of frames (with 1,000 SAs, JSON fingerprints took
    /// two thirds of the daemon's CPU in the burst benchmark).
    private var saved: [String: IKESASnapshot] = [:]
    private var savedNegotiations: Set<String> = []
    private var lastSealingError: String?

    public init(database: any StateStore, sealer: Sealer) {
        self.database = database
        self.sealer = sealer
    }

    static func key(_ spiI: String, _ spiR: String) -> String { spiI + "_" + spiR }

    static func context(_ key: String) -> SealingContext { .savedIKESA(key: key) }

    /// The snapshot without the fields that change with the clock alone.
    /// The snapshot without what changes by itself as time passes (ages, time to rekey): what tells whether
    /// an SA changed since it was saved.
    static func stable(_ snapshot: IKESASnapshot) -> IKESASnapshot {
        var stable = snapshot
        stable.ageSeconds = 0
        stable.rekeyInSeconds = nil
        stable.children = stable.children.map {
            var c = $0
            c.ageSeconds = 0
            return c
        }
        return stable
    }

    /// Saves every IKE SA that changed since the last call and forgets the ones that are gone; returns
    /// lines for the log (nothing when all is well). Called before the frames an exchange produced are
    /// sent, so what the peer sees is never ahead of what is on disk.
    public func synchronize(engines engine: EngineShards, at time: ClockReading) -> [String] {
        var log: [String] = []
        let snapshots = engine.snapshots(now: time.monotonic)
        var current = Set<String>()
        var upserts: [(StateDatabase.IKESARow, [StateDatabase.ChildSARow])] = []
        var saving: [String: IKESASnapshot] = [:]
        for snapshot in snapshots {
            let spiI = IKESPI(snapshot.spiInitiator).description
            let spiR = IKESPI(snapshot.spiResponder).description
            let key = Self.key(spiI, spiR)
            current.insert(key)
            let stable = Self.stable(snapshot)
            guard saved[key] != stable else { continue }
            do {
                let box = try sealer.seal(Array(try JSONEncoder().encode(snapshot)), context: Self.context(key))
                let children = snapshot.children.filter { !$0.rekeyed }.map { child in
                    StateDatabase.ChildSARow(
                        spiOutbound: ChildSPI(child.spiOutbound).description, spiInbound: ChildSPI(child.spiInbound).description,
                        terminal: snapshot.localAddress, peer: snapshot.remoteAddress, ikeSPIInitiator: spiI,
                        ikeSPIResponder: spiR, suite: child.suite, mode: child.mode.rawValue,
                        createdAt: time.wall - child.ageSeconds)
                }
                upserts.append(
                    (
                        StateDatabase.IKESARow(
                            spiInitiator: spiI, spiResponder: spiR, connection: snapshot.connection,
                            terminal: snapshot.localAddress, peer: snapshot.remoteAddress,
                            sealedState: box, savedAt: time.wall), children
                    ))
                saving[key] = stable
            } catch {
                let text = "IKE SA \(key) not saved yet: \(error) (kept in memory, saved once sealing works)"
                if lastSealingError != text {
                    log.append(text)
                    lastSealingError = text
                }
            }
        }
        let removed = saved.keys.filter { !current.contains($0) }
        if !upserts.isEmpty || !removed.isEmpty {
            do {
                try database.saveIKESAs(
                    upserts,
                    removed: removed.map { k in
                        let parts = k.split(separator: "_").map(String.init)
                        return (parts[0], parts.count > 1 ? parts[1] : "")
                    })
                for (k, f) in saving { saved[k] = f }
                for k in removed { saved[k] = nil }
                if !upserts.isEmpty { lastSealingError = nil }
            } catch {
                log.append("saving SAs to \(database.location) failed: \(error)")
            }
        }
        let negotiations = engine.negotiationSummaries
        let names = Set(negotiations.map { "\($0.spiInitiator)_\($0.spiResponder)" })
        if names != savedNegotiations {
            do {
                try database.replaceNegotiations(
                    negotiations.map { ($0.spiInitiator.description, $0.spiResponder.description, $0.connection) }, now: time.wall)
                savedNegotiations = names
            } catch {
                log.append("saving negotiations to \(database.location) failed: \(error)")
            }
        }
        return log
    }

    /// Highest outbound sequence numbers and counters: saved every few seconds, not per packet (a restored
    /// SA resumes with a margin above the saved number, see SAStore.resumable).
    public func saveProgress(proxy: KeyExchangeProxy, counters: [String: Int]) -> [String] {
        var sequences: [String: UInt64] = [:]
        for (spi, sequence) in proxy.store.highestOutboundSequence { sequences[spi.description] = sequence }
        do {
            try database.saveProgress(sequences: sequences, counters: counters)
            return []
        } catch {
            return ["saving progress to \(database.location) failed: \(error)"]
        }
    }

    /// Brings back every saved IKE SA into the proxy; returns lines for the log. SAs that cannot be
    /// unsealed (the token is absent) stay on disk for the next start; ones the configuration no longer
    /// covers are dropped, and said so.
    public func restore(into proxy: KeyExchangeProxy, at time: ClockReading) -> [String] {
        var log: [String] = []
        let rows: [StateDatabase.IKESARow]
        let sequences: [String: UInt64]
        do {
            rows = try database.ikeSAs()
            sequences = try database.highestOutboundSequences()
        } catch {
            return ["cannot read saved SAs from \(database.location): \(error)"]
        }
        var ikeCount = 0
        var childCount = 0
        var dropped: [(String, String)] = []
        for row in rows {
            let key = Self.key(row.spiInitiator, row.spiResponder)
            let snapshot: IKESASnapshot
            do {
                let plain = try sealer.unseal(row.sealedState, context: Self.context(key))
                snapshot = try JSONDecoder().decode(IKESASnapshot.self, from: Data(plain))
            } catch {
                log.append("IKE SA \(key) (\(row.connection)) not restored: \(error); it stays saved for a later start")
                continue
            }
            // The monotonic clock started again: carry the ages over with the wall clock.
            let elapsed = max(0, time.wall - row.savedAt)
            var aged = snapshot
            aged.ageSeconds += elapsed
            aged.rekeyInSeconds = snapshot.rekeyInSeconds.map { $0 - elapsed }
            aged.children = snapshot.children.map {
                var c = $0
                c.ageSeconds += elapsed
                return c
            }
            var childSequences: [ChildSPI: UInt64] = [:]
            for child in snapshot.children {
                if let sequence = sequences[ChildSPI(child.spiOutbound).description] { childSequences[ChildSPI(child.spiOutbound)] = sequence }
            }
            do {
                childCount += try proxy.restore(aged, highestOutboundSequences: childSequences, now: time.monotonic)
                ikeCount += 1
                saved[key] = Self.stable(snapshot)
            } catch {
                log.append("IKE SA \(key) (\(row.connection)) dropped: \(error)")
                dropped.append((row.spiInitiator, row.spiResponder))
            }
        }
        if !dropped.isEmpty { try? database.saveIKESAs([], removed: dropped) }
        log.insert("restored \(ikeCount) IKE SA(s) with \(childCount) CHILD SA(s) from \(database.location)", at: 0)
        if let lost = try? database.takeNegotiations(), !lost.isEmpty {
            log.append(
                "\(lost.count) negotiation(s) under way before the restart were discarded (the peers start again): "
                    + lost.joined(separator: ", "))
        }
        return log
    }
}
