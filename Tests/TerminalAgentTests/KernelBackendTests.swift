import ESP
import Foundation
import KeyDelivery
import XCTest

@testable import IKEv2
@testable import TerminalAgent

/// A kernel that records what the agent sets into it (the real one is exercised in a UML guest by
/// tests/interop/kernel_terminal.py).
final class RecordingKernel: KernelESP {
    var installed: [SecurityAssociationParameters] = []
    var refuse = false
    var traffic: [ChildSPI: (UInt64, UInt64)] = [:]

    struct Refused: Error, CustomStringConvertible {
        var description: String { "add SA: Invalid argument" }
    }

    func install(_ sa: SecurityAssociationParameters) throws {
        if refuse { throw Refused() }
        installed.append(sa)
    }

    func remove(spi: ChildSPI, direction: ESPDirection) -> Bool {
        let before = installed.count
        installed.removeAll { $0.spi == spi && $0.direction == direction }
        return installed.count < before
    }

    var held: [(spi: ChildSPI, direction: ESPDirection)] { installed.map { ($0.spi, $0.direction) } }

    func counters() -> [SAStatus] {
        installed.map { SAStatus(spi: $0.spi, direction: $0.direction, packets: traffic[$0.spi]?.0 ?? 0, bytes: traffic[$0.spi]?.1 ?? 0) }
    }
}

final class KernelBackendTests: XCTestCase {
    let helper = AgentFixture.self
    let time = ClockReading(monotonic: 10, wall: 1_700_000_000)

    func makeAgent(_ kernel: RecordingKernel) -> (TerminalAgent, KeyDeliveryChannel) {
        let proxy = KeyDeliveryChannel(role: .proxy, terminalID: 9, enrollmentKey: helper.key, epoch: 1)
        let agent = TerminalAgent(
            channel: KeyDeliveryChannel(role: .terminal, terminalID: 9, enrollmentKey: helper.key, epoch: 2), statusInterval: 0, kernel: kernel)
        return (agent, proxy)
    }

    func messages(_ actions: [TerminalAction], from agent: TerminalAgent, to proxy: KeyDeliveryChannel) -> [KeyDeliveryMessage] {
        actions.compactMap { action -> KeyDeliveryMessage? in
            guard case .sendKeyDelivery(let datagram) = action, case .message(let message, _) = proxy.receive(datagram, at: time) else { return nil }
            return message
        }
    }

    func testSAsFromTheProxyGoIntoTheKernelNotTheUserSpaceDatabase() {
        let kernel = RecordingKernel()
        let (agent, proxy) = makeAgent(kernel)
        let (inbound, outbound) = helper.handover()
        _ = helper.install(agent, proxy, inbound)
        _ = helper.install(agent, proxy, outbound)
        XCTAssertEqual(kernel.installed.map(\.spi), [inbound.spi, outbound.spi])
        XCTAssertTrue(agent.database.inbound.isEmpty && agent.database.outbound.isEmpty, "the agent does no ESP itself")
        XCTAssertEqual(agent.encapsulatedPeers.map { $0.0 }, [IPAddress("192.0.2.1")!], "keepalives towards the peer of the UDP SA")
        _ = agent.receiveKeyDelivery(proxy.send(.deleteSA(spi: inbound.spi, direction: .inbound), at: time), at: time)
        XCTAssertEqual(kernel.installed.map(\.spi), [outbound.spi])
        _ = agent.receiveKeyDelivery(proxy.send(.flush, at: time), at: time)
        XCTAssertTrue(kernel.installed.isEmpty)
        XCTAssertTrue(agent.encapsulatedPeers.isEmpty)
    }

    func testAKernelRefusalIsCountedAndLoggedNotAcknowledgedAsInstalled() {
        let kernel = RecordingKernel()
        kernel.refuse = true
        let (agent, proxy) = makeAgent(kernel)
        let actions = helper.install(agent, proxy, helper.handover().inbound)
        XCTAssertEqual(agent.counters["sa_install_failed"], 1)
        XCTAssertTrue(actions.contains { if case .log(let text) = $0 { text.contains("add SA: Invalid argument") } else { false } })
    }

    func testKernelAcquireBecomesOneAcquireToTheProxyPerInterval() {
        let (agent, proxy) = makeAgent(RecordingKernel())
        let flow = FlowDescription(source: IPAddress("10.2.0.2")!, destination: IPAddress("10.1.0.1")!, ipProtocol: 1)
        XCTAssertEqual(messages(agent.kernelAcquired(flow, at: time), from: agent, to: proxy), [.acquire(flow)])
        XCTAssertTrue(agent.kernelAcquired(flow, at: time).isEmpty, "the kernel repeats itself; the proxy hears it once per interval")
        let later = ClockReading(monotonic: time.monotonic + agent.acquireInterval, wall: time.wall + agent.acquireInterval)
        XCTAssertEqual(messages(agent.kernelAcquired(flow, at: later), from: agent, to: proxy).count, 1)
        XCTAssertEqual(agent.counters["kernel_acquires"], 3)
    }

    func testKernelExpiryBecomesExpireSoftOnceAndHardAlways() {
        let kernel = RecordingKernel()
        let (agent, proxy) = makeAgent(kernel)
        let outbound = helper.handover().outbound
        _ = helper.install(agent, proxy, outbound)
        XCTAssertEqual(
            messages(agent.kernelExpired(spi: outbound.spi, direction: .outbound, hard: false, at: time), from: agent, to: proxy),
            [.expire(spi: outbound.spi, direction: .outbound, hard: false)])
        XCTAssertTrue(agent.kernelExpired(spi: outbound.spi, direction: .outbound, hard: false, at: time).isEmpty, "one soft EXPIRE per SA")
        XCTAssertEqual(
            messages(agent.kernelExpired(spi: outbound.spi, direction: .outbound, hard: true, at: time), from: agent, to: proxy),
            [.expire(spi: outbound.spi, direction: .outbound, hard: true)])
    }

    func testStatusReportsTheKernelsCounters() {
        let kernel = RecordingKernel()
        let (agent, proxy) = makeAgent(kernel)
        let inbound = helper.handover().inbound
        _ = helper.install(agent, proxy, inbound)
        kernel.traffic[inbound.spi] = (12, 3400)
        XCTAssertEqual(agent.statusEntries(), [SAStatus(spi: inbound.spi, direction: .inbound, packets: 12, bytes: 3400)])
    }

    func testKernelConfigurationLoadsAndIsChecked() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let configuration = try TerminalConfiguration.load(path: root.appendingPathComponent("docs/examples/terminal-kernel.json").path)
        XCTAssertEqual(configuration.backend, .kernel)
        XCTAssertEqual(configuration.traps.map(\.description), ["192.0.2.2/32 -> 192.0.2.1/32", "2001:db8::2/128 -> 2001:db8::1/128"])
        XCTAssertEqual(
            configuration.summary[2], "kernel ESP (XFRM): 2 trap policies (192.0.2.2/32 -> 192.0.2.1/32; 2001:db8::2/128 -> 2001:db8::1/128)")
        let base = #""terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "outer_address": "192.0.2.2""#
        for (extra, expected) in [
            (#", "backend": "xfrm""#, "backend 'xfrm' is neither 'user-space' nor 'kernel'"),
            (#", "backend": "kernel", "tun": {"name": "ikp0"}"#, "tun is for backend 'user-space'"),
            (#", "kernel": {"trap": []}"#, "kernel settings are for backend 'kernel'"),
            (#", "backend": "kernel", "kernel": {"trap": [{"local": "192.0.2.2/33", "remote": "192.0.2.1"}]}"#, "kernel.trap"),
            (#", "backend": "kernel", "kernel": {"trap": [{"local": "192.0.2.2", "remote": "2001:db8::1"}]}"#, "no pair of source and destination")
        ] {
            XCTAssertThrowsError(try TerminalConfiguration.parse(Data(("{" + base + extra + "}").utf8)), extra) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
    }
}
