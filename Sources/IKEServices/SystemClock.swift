import Foundation
import IKEv2
import LinuxIO

extension ClockReading {
    /// Both clocks as the system has them now, for the I/O layers that hand a reading to the pure cores.
    public static func system() -> ClockReading {
        ClockReading(monotonic: monotonicSeconds(), wall: Date().timeIntervalSince1970)
    }
}
