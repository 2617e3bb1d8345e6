import XCTest

@testable import LinuxIO

/// Batched UDP I/O on loopback: what `sendBatch` sends, `receiveBatch` reads back whole, in order, with its
/// sender; a datagram the kernel refuses is reported and the rest still go; the receive buffer is raised.
final class UDPSocketBatchTests: XCTestCase {
    let loopback: [UInt8] = [127, 0, 0, 1]

    func testABatchArrivesWholeInOrderWithItsSender() throws {
        let sender = try UDPSocket(address: loopback, port: 47_811)
        let receiver = try UDPSocket(address: loopback, port: 47_812)
        receiver.setReceiveBuffer(4 << 20)
        let sizes = [0, 1, 28, 1_400, 9_000, 65_507] + (0..<194).map { 40 + $0 * 7 }
        let datagrams = sizes.enumerated().map { index, size in
            OutgoingDatagram(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ index) }, address: loopback, port: 47_812)
        }
        XCTAssertTrue(sender.sendBatch(datagrams).isEmpty)
        var received: [ReceivedDatagram] = []
        var batches = 0
        let deadline = monotonicSeconds() + 5
        while received.count < datagrams.count, monotonicSeconds() < deadline {
            let batch = receiver.receiveBatch(limit: 32)
            if batch.isEmpty { _ = waitReadable([receiver.descriptor], timeoutMilliseconds: 100) } else { batches += 1 }
            XCTAssertLessThanOrEqual(batch.count, 32)
            received += batch
        }
        XCTAssertEqual(received.map(\.bytes), datagrams.map(\.bytes))
        XCTAssertTrue(received.allSatisfy { $0.address == loopback && $0.port == 47_811 })
        XCTAssertLessThan(batches, datagrams.count / 4, "read in batches, not one by one")
        XCTAssertTrue(receiver.receiveBatch().isEmpty, "nothing more waits")
    }

    func testARefusedDatagramIsReportedAndTheOthersGo() throws {
        let sender = try UDPSocket(address: loopback, port: 47_813)
        let receiver = try UDPSocket(address: loopback, port: 47_814)
        let good = OutgoingDatagram(bytes: [1, 2, 3], address: loopback, port: 47_814)
        // Larger than any UDP datagram: EMSGSIZE.
        let oversized = OutgoingDatagram(bytes: [UInt8](repeating: 0, count: 70_000), address: loopback, port: 47_814)
        let refused = sender.sendBatch([good, oversized, good])
        XCTAssertEqual(refused.count, 1)
        XCTAssertEqual(refused.first?.0.bytes.count, 70_000)
        XCTAssertEqual(refused.first?.1.code, EMSGSIZE)
        _ = waitReadable([receiver.descriptor], timeoutMilliseconds: 1_000)
        var received: [ReceivedDatagram] = []
        for _ in 0..<10 where received.count < 2 {
            received += receiver.receiveBatch()
            if received.count < 2 { _ = waitReadable([receiver.descriptor], timeoutMilliseconds: 100) }
        }
        XCTAssertEqual(received.map(\.bytes), [[1, 2, 3], [1, 2, 3]])
    }

    /// As root (CI is), SO_RCVBUFFORCE goes beyond net.core.rmem_max (212,992 by default).
    func testTheReceiveBufferIsRaisedBeyondTheDefaultCap() throws {
        let socket = try UDPSocket(address: loopback, port: 47_815)
        let before = socket.receiveBufferSize
        let granted = socket.setReceiveBuffer(8 << 20)
        guard getuid() == 0 else {
            XCTAssertGreaterThanOrEqual(granted, before, "not root: only up to net.core.rmem_max")
            return
        }
        XCTAssertGreaterThanOrEqual(granted, 8 << 20, "the kernel reports twice what it keeps for data; at least the request")
    }
}
