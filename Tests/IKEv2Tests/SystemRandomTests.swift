import XCTest

@testable import IKEv2

/// The system's randomness, read ahead 4 KiB at a time: every length comes back whole (across the end of a
/// block, and larger than one), no two draws agree, and the octets handed out are zeroed in the pool.
final class SystemRandomTests: XCTestCase {
    func testEveryLengthComesBackWholeAndDrawsDiffer() {
        let random = SystemRandom()
        XCTAssertEqual(random.bytes(0), [])
        for count in [1, 4, 8, 32, 255, 256, 257, 4096] {
            let a = random.bytes(count)
            let b = random.bytes(count)
            XCTAssertEqual(a.count, count)
            if count >= 8 { XCTAssertNotEqual(a, b, "two draws of \(count) octets") }
        }
        // Octets spread over all values: 64 KiB from a source stuck on a few values would miss most of them.
        XCTAssertEqual(Set(random.bytes(65_536)).count, 256)
        // Draws of 100 octets cross the end of each 4 KiB block: none repeats what came before.
        var seen = Set<[UInt8]>()
        for _ in 0..<200 { XCTAssertTrue(seen.insert(random.bytes(100)).inserted) }
    }

    func testTheOctetsHandedOutAreZeroedInThePool() {
        var pool = KernelRandomPool()
        let device = SystemRandom.device
        XCTAssertGreaterThanOrEqual(device, 0)
        let first = pool.take(32, from: device)
        XCTAssertEqual(first.count, 32)
        XCTAssertEqual(pool.handedOut, Array(repeating: 0, count: 32))
        XCTAssertNotEqual(pool.take(32, from: device), first)
    }
}
