/// When an SA rekeys: its configured rekey time less a random part of the jitter (strongSwan's
/// `rand_time`; RFC 7296 section 2.8.1 asks for randomised rekey timers). SAs made in the same moment,
/// as when one proxy's terminals all come up together or after a restart, then rekey spread out
/// instead of all at once, and two ends with equal lifetimes rarely cross.
enum RekeySchedule {
    /// Seconds after its creation this CHILD SA rekeys, nil when this side leaves rekeying to the peer.
    /// The random part is taken from the SA's inbound SPI, which this side drew at random: the same SA
    /// gets the same moment after a restart without it being stored.
    static func childRekeyAge(_ configuration: ChildConfiguration, spiInbound: ChildSPI) -> Double? {
        guard let rekeyTime = configuration.rekeyTime else { return nil }
        return rekeyTime - configuration.rekeyJitter * fraction(spiInbound.rawValue)
    }

    /// Seconds from now after which a new IKE SA rekeys, nil when this side leaves it to the peer.
    static func ikeRekeyDelay(_ connection: ConnectionConfiguration, random: RandomSource) -> Double? {
        guard let rekeyTime = connection.rekeyTime else { return nil }
        return rekeyTime - connection.rekeyJitter * fraction(random.uint32())
    }

    /// A value in [0, 1) from 32 random bits. Multiplying by an odd constant (Fibonacci hashing) spreads
    /// SPIs that a test's counting generator hands out one after another; it maps uniform to uniform.
    static func fraction(_ bits: UInt32) -> Double {
        Double(bits &* 0x9E37_79B1) / 4_294_967_296
    }
}

extension RekeySchedule {
    /// Seconds with one decimal, for log lines ("age 7.4 s").
    static func seconds(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}

/// A configuration file's `rand_time` that cannot be used.
public struct RekeyJitterError: Error, CustomStringConvertible {
    public var description: String
}

/// How configuration files turn `rand_time` into a jitter, the same for every file.
public enum RekeyJitter {
    /// The share of the rekey time taken as jitter when `rand_time` is absent (strongSwan's default).
    public static let defaultShare = 0.1

    /// The jitter for `randTime` seconds (nil: the default share of `rekeyTime`); it must be at least 0 and,
    /// when this side rekeys at all, below `rekeyTime`. `names` are the file's keys, for the message.
    public static func configured(
        randTime: Double?, rekeyTime: Double?,
        names: (rand: String, rekey: String) = ("rand_time", "rekey_time")
    ) throws(RekeyJitterError) -> Double {
        guard let randTime else { return (rekeyTime ?? 0) * defaultShare }
        guard randTime >= 0, randTime.isFinite else { throw RekeyJitterError(description: "\(names.rand) \(randTime) is negative") }
        if let rekeyTime, randTime >= rekeyTime {
            throw RekeyJitterError(description: "\(names.rand) \(randTime) is not below \(names.rekey) \(rekeyTime)")
        }
        return randTime
    }
}

extension IKEEngine {
    /// Seconds until this side rekeys the CHILD SA with this inbound SPI (0 when due or under way); nil when it
    /// leaves rekeying to the peer, the SA is replaced already, or no such SA is held.
    public func secondsUntilRekey(childInbound spi: ChildSPI, now: Double) -> Double? {
        guard let (_, child) = child(inbound: spi), !child.rekeyed,
            let age = RekeySchedule.childRekeyAge(child.configuration, spiInbound: spi)
        else { return nil }
        return max(0, max(child.createdAt + age, child.rekeyNotBefore) - now)
    }
}
