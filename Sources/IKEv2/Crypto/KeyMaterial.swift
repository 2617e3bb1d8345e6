import Crypto

#if canImport(Glibc)
    import Glibc
#endif

/// Secret octets (a derived key, a shared secret, a PSK). Kept distinct from plain byte arrays so that
/// signatures say what they take, and so that printing one never leaks it by accident.
public struct KeyMaterial: Equatable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var count: Int { bytes.count }
    public var hexString: String { bytes.hexString }
    public var description: String { "<\(bytes.count) secret octets>" }
    public static let empty = KeyMaterial([])
}

/// Source of randomness for SPIs, nonces, IVs and cookie secrets. Injected so tests are deterministic.
public protocol RandomSource: Sendable {
    func bytes(_ count: Int) -> [UInt8]
}

/// The kernel's CSPRNG, one read of /dev/urandom per request (the same pool as getrandom(2), which Glibc's
/// module does not export). swift-crypto's random octets (SymmetricKey, and the standard library's
/// SystemRandomNumberGenerator beneath it) make one getrandom call per eight octets: 13 system calls per
/// negotiation for a responder (measured with `ike_rate.py --syscalls`), which a burst of negotiations pays
/// for in kernel time. Same source, asked once per request; no generator of our own. Without /dev/urandom
/// (a bare chroot) it falls back to swift-crypto.
public struct SystemRandom: RandomSource {
    public init() {}

    #if canImport(Glibc)
        /// Opened once for the process, and kept.
        static let device: Int32 = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    #endif

    public func bytes(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        #if canImport(Glibc)
            let device = Self.device
            if device >= 0 {
                return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                    var filled = 0
                    while filled < count {
                        let got = read(device, buffer.baseAddress! + filled, count - filled)
                        if got > 0 {
                            filled += got
                        } else if got == 0 || errno != EINTR {
                            // The system's randomness is gone: nothing safe can go on (as the standard library's
                            // generator does, it stops the process).
                            fatalError("reading /dev/urandom failed: \(got == 0 ? "end of file" : "errno \(errno)")")
                        }
                    }
                    initialized = count
                }
            }
        #endif
        return SymmetricKey(size: SymmetricKeySize(bitCount: count * 8)).withUnsafeBytes { Array($0) }
    }
}

/// Deterministic generator for tests (SplitMix64); never for production use.
public final class SeededRandom: RandomSource, @unchecked Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8]()
        while out.count < count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            for shift in stride(from: 0, to: 64, by: 8) where out.count < count { out.append(UInt8((z >> UInt64(shift)) & 0xff)) }
        }
        return out
    }
}

extension RandomSource {
    func uint64() -> UInt64 { bytes(8).reduce(0) { $0 << 8 | UInt64($1) } }
    func uint32() -> UInt32 { bytes(4).reduce(0) { $0 << 8 | UInt32($1) } }
}
