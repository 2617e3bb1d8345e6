/// One of `count` engines that share a host's IKE SAs, each SA held by exactly one (issue 21: both cores used).
///
/// Every SPI an engine makes for itself is ≡ `index` (mod `count`), so that a datagram's owner is found from
/// its header alone, before any engine sees it (`owner(of:count:)`): for a message sent by the original
/// initiator our SPI is the responder's, for one sent by the original responder it is the initiator's. A new
/// IKE_SA_INIT request (responder SPI zero) goes to the engine its initiator SPI falls to, which then makes
/// the responder SPI its own. A rekeyed IKE SA stays with the engine of the SA it replaces: that engine makes
/// the new SPI on our side.
public struct IKEShard: Equatable, Sendable {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) {
        precondition(count >= 1 && index >= 0 && index < count, "shard \(index) of \(count)")
        self.index = index
        self.count = count
    }

    /// The only engine: every SPI is its own.
    public static let whole = IKEShard(index: 0, count: 1)

    public func owns(_ spi: IKESPI) -> Bool { Int(spi.rawValue % UInt64(count)) == index }

    /// An SPI this engine owns made from a random one: the nearest at or below it, or the engine's smallest
    /// when there is none below. Never zero (zero means "no SPI yet").
    public func own(_ spi: UInt64) -> UInt64 {
        let n = UInt64(count)
        let remainder = spi % n
        let target = UInt64(index)
        let owned: UInt64
        if target <= remainder {
            owned = spi - (remainder - target)
        } else if spi - remainder >= n {
            owned = spi - remainder - n + target
        } else {
            owned = target
        }
        return owned == 0 ? n : owned
    }

    /// Which of `count` engines holds the IKE SA a datagram belongs to, from the IKE header; on the NAT
    /// traversal port (`encapsulated`) after the non-ESP marker. A datagram that is not IKE (too short, ESP, a
    /// keepalive) goes to engine 0, which counts and drops it as a single engine would.
    public static func owner(of datagram: ArraySlice<UInt8>, encapsulated: Bool, count: Int) -> Int {
        guard count > 1 else { return 0 }
        var start = datagram.startIndex
        if encapsulated {
            guard datagram.count >= 4, datagram[start] == 0, datagram[start + 1] == 0, datagram[start + 2] == 0, datagram[start + 3] == 0
            else { return 0 }
            start += 4
        }
        guard datagram.endIndex - start >= 28 else { return 0 }
        func spi(at offset: Int) -> UInt64 {
            datagram[(start + offset)..<(start + offset + 8)].reduce(0) { $0 << 8 | UInt64($1) }
        }
        let initiatorSPI = spi(at: 0)
        let responderSPI = spi(at: 8)
        let fromOriginalInitiator = datagram[start + 19] & 0x08 != 0
        let ours = fromOriginalInitiator && responderSPI != 0 ? responderSPI : initiatorSPI
        return Int(ours % UInt64(count))
    }

    /// Which of `count` engines asked for the online revocation check `id` (each numbers its own checks
    /// ≡ its index + 1 modulo `count`).
    public static func owner(ofRevocationCheck id: UInt64, count: Int) -> Int {
        id == 0 ? 0 : Int((id - 1) % UInt64(count))
    }

    /// The settings of engine `index` of `count`: its shard, and its part of the COOKIE threshold and of the
    /// reassembly memory (the IKE SAs spread over the engines as their SPIs do).
    public static func settings(_ settings: EngineSettings, index: Int, of count: Int) -> EngineSettings {
        var own = settings
        own.shard = IKEShard(index: index, count: count)
        if count > 1 {
            own.cookieThreshold = (settings.cookieThreshold + count - 1) / count
            // The reassembly bound is for the process: each engine holds its share, and at least one message.
            own.maximumReassemblyMemory = max(settings.maximumReassemblySize, settings.maximumReassemblyMemory / count)
        }
        return own
    }
}
