import ESP
import IKEv2

/// Why a saved SA was not brought back after a restart.
public struct RestoreRefusal: Error, CustomStringConvertible {
    public var description: String
}

extension KeyExchangeProxy {
    /// Brings back an IKE SA (and its CHILD SAs) saved before a restart: the engine resumes it and the
    /// SA store knows its CHILD SAs again, so the terminal's ESP is forwarded at once and rekeys and
    /// expiries keep their original schedule. Nothing is sent: the terminal still holds its keys.
    public func restore(_ snapshot: IKESASnapshot, highestOutboundSequences: [ChildSPI: UInt64] = [:], now: Double) throws -> Int {
        guard let terminal = IPAddress(snapshot.localAddress), let peer = IPAddress(snapshot.remoteAddress) else {
            throw SnapshotRestoreError.malformed("addresses")
        }
        guard let profile = profile(terminal: terminal, peer: peer) else {
            throw RestoreRefusal(description: "no protect rule covers \(terminal) -> \(peer) any more")
        }
        guard connection(for: terminal, peer: peer, profile: profile).name == snapshot.connection else {
            throw RestoreRefusal(description: "connection '\(snapshot.connection)' no longer matches profile \(profile.name)")
        }
        let events = try engines.restore(snapshot, now: now)
        for event in events {
            guard let child = event.child else { continue }
            let lifetime = (self.profile(forChild: child.name) ?? profile).espLifetime
            let age = snapshot.children.first { $0.spiInbound == child.spiInbound.rawValue }?.ageSeconds ?? 0
            store.record(event, lifetime: lifetime, asked: asked(event), now: now - age)
            if let sequence = highestOutboundSequences[child.spiOutbound] { store.restoreSequence(spi: child.spiOutbound, highest: sequence) }
        }
        return events.count
    }
}
