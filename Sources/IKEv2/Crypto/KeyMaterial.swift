import Crypto
import Synchronization

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

/// The kernel's CSPRNG (/dev/urandom, the same pool as getrandom(2), which Glibc's module does not export),
/// read 4 KiB at a time and handed out in order, each octet once, zeroed as it leaves the buffer.
/// swift-crypto's random octets (SymmetricKey, and the standard library's SystemRandomNumberGenerator beneath
/// it) make one getrandom call per eight octets: 13 system calls per negotiation for a responder, and one
/// read per request still made five (measured with `ike_rate.py --syscalls`), each paid in kernel time by a
/// negotiation that arrives alone. The kernel's octets, not a generator of our own. Without /dev/urandom (a
/// bare chroot) it falls back to swift-crypto.
public struct SystemRandom: RandomSource {
    public init() {}

    #if canImport(Glibc)
        /// Opened once for the process, and kept.
        static let device: Int32 = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        /// Shared by the engines' threads.
        static let pool = Mutex(KernelRandomPool())
    #endif

    public func bytes(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        #if canImport(Glibc)
            let device = Self.device
            if device >= 0 {
                return Self.pool.withLock { $0.take(count, from: device) }
            }
        #endif
        return SymmetricKey(size: SymmetricKeySize(bitCount: count * 8)).withUnsafeBytes { Array($0) }
    }
}

#if canImport(Glibc)
    /// Octets read from the kernel ahead of use: `take` hands each out once and zeroes it, and reads the next
    /// block when the buffer runs out.
    struct KernelRandomPool: ~Copyable {
        static let size = 4096
        private let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: KernelRandomPool.size)
        /// Octets before this index were handed out (or never read).
        private var next = KernelRandomPool.size

        deinit {
            buffer.update(repeating: 0)
            buffer.deallocate()
        }

        mutating func take(_ count: Int, from device: Int32) -> [UInt8] {
            // Requests as large as the pool go straight to the kernel.
            guard count < Self.size else { return Self.read(count, from: device) }
            if Self.size - next < count {
                Self.fill(buffer, from: device)
                next = 0
            }
            let slice = UnsafeMutableBufferPointer(rebasing: buffer[next..<(next + count)])
            let octets = Array(slice)
            slice.update(repeating: 0)
            next += count
            return octets
        }

        /// What the buffer holds where it handed octets out (for tests: zeros).
        var handedOut: [UInt8] { next < Self.size ? Array(buffer[0..<next]) : [] }

        static func read(_ count: Int, from device: Int32) -> [UInt8] {
            [UInt8](unsafeUninitializedCapacity: count) { octets, initialized in
                fill(octets, from: device)
                initialized = count
            }
        }

        static func fill(_ octets: UnsafeMutableBufferPointer<UInt8>, from device: Int32) {
            var filled = 0
            while filled < octets.count {
                let got = Glibc.read(device, octets.baseAddress! + filled, octets.count - filled)
                if got > 0 {
                    filled += got
                } else if got == 0 || errno != EINTR {
                    // The system's randomness is gone: nothing safe can go on (as the standard library's
                    // generator does, it stops the process).
                    fatalError("reading /dev/urandom failed: \(got == 0 ? "end of file" : "errno \(errno)")")
                }
            }
        }
    }
#endif

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
