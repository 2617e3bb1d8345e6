import XCTest

@testable import LinuxIO

/// The loop's epoll wait: it reports what is readable among the descriptors asked for at each call, follows
/// the set as it changes, and times out when nothing is.
final class ReadinessWaiterTests: XCTestCase {
    func testItReportsTheReadableAmongThoseAskedForAndFollowsTheSet() throws {
        let first = WakePipe()
        let second = WakePipe()
        let waiter = ReadinessWaiter()
        let both = [first.readDescriptor, second.readDescriptor]
        XCTAssertEqual(waiter.wait(both, timeoutMilliseconds: 0), [])
        let start = monotonicSeconds()
        XCTAssertEqual(waiter.wait(both, timeoutMilliseconds: 30), [])
        XCTAssertGreaterThanOrEqual(monotonicSeconds() - start, 0.025, "waited for the timeout")

        second.wake()
        XCTAssertEqual(waiter.wait(both, timeoutMilliseconds: 1000), [second.readDescriptor])
        // Level-triggered: still readable until read.
        XCTAssertEqual(waiter.wait(both, timeoutMilliseconds: 0), [second.readDescriptor])
        // Left out of the set, it is not reported even though it is readable.
        XCTAssertEqual(waiter.wait([first.readDescriptor], timeoutMilliseconds: 0), [])
        first.wake()
        XCTAssertEqual(waiter.wait([first.readDescriptor], timeoutMilliseconds: 0), [first.readDescriptor])
        // Asked for again, it is reported again.
        XCTAssertEqual(Set(waiter.wait(both, timeoutMilliseconds: 0)), Set(both))
        first.drain()
        second.drain()
        XCTAssertEqual(waiter.wait(both, timeoutMilliseconds: 0), [])
    }

    func testADatagramMakesItsSocketReadable() throws {
        let loopback: [UInt8] = [127, 0, 0, 1]
        let receiver = try UDPSocket(address: loopback, port: 47_821)
        let sender = try UDPSocket(address: loopback, port: 47_822)
        let waiter = ReadinessWaiter()
        XCTAssertEqual(waiter.wait([receiver.descriptor], timeoutMilliseconds: 0), [])
        try sender.send([1, 2, 3], to: loopback, port: 47_821)
        XCTAssertEqual(waiter.wait([receiver.descriptor], timeoutMilliseconds: 1000), [receiver.descriptor])
        XCTAssertEqual(receiver.receiveBatch(limit: 8).map(\.bytes), [[1, 2, 3]])
        XCTAssertEqual(waiter.wait([receiver.descriptor], timeoutMilliseconds: 0), [])
    }
}
