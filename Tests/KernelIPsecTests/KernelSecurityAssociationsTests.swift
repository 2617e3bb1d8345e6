import CXFRM
import ESP
import IKEv2
import XCTest

@testable import KernelIPsec

final class KernelSecurityAssociationsTests: XCTestCase {
    func types(_ messages: [NetlinkMessage]?) -> [UInt16] { messages?.map(\.type) ?? [] }

    func testRekeyKeepsThePolicyUntilTheLastSAOfItGoes() throws {
        var kernel = KernelSecurityAssociations()
        XCTAssertEqual(types(try kernel.add(XFRMRequestTests.sa(spi: 1))), [0x10, 0x19], "the SA, then its policy")
        XCTAssertEqual(types(try kernel.add(XFRMRequestTests.sa(spi: 2))), [0x10, 0x19], "the new SA, its policy updated")
        XCTAssertEqual(types(kernel.remove(spi: ChildSPI(1), direction: .outbound)), [0x11], "the old SA goes, the policy stays for the new one")
        XCTAssertEqual(types(kernel.remove(spi: ChildSPI(2), direction: .outbound)), [0x11, 0x14], "the last SA goes with its policy")
        XCTAssertNil(kernel.remove(spi: ChildSPI(2), direction: .outbound), "an SA not held")
    }

    func testInboundSAGetsAnInboundPolicy() throws {
        var kernel = KernelSecurityAssociations()
        let requests = try kernel.add(XFRMRequestTests.sa(spi: 3, direction: .inbound))
        let policy = try XCTUnwrap(KernelStructure.read(xfrm_userpolicy_info.self, from: requests[1].payload, zero: xfrm_userpolicy_info()))
        XCTAssertEqual(policy.dir, 0)
        XCTAssertEqual(kernel.direction(of: ChildSPI(3), destination: IPAddress("192.0.2.2")!), .inbound)
    }

    func testTrapComesBackWhenItsSAGoes() throws {
        let trap = try XCTUnwrap(
            KernelSelector.covering(source: [TrafficSelector(cidr: "192.0.2.2/32")!], destination: [TrafficSelector(cidr: "192.0.2.1/32")!]).first)
        var kernel = KernelSecurityAssociations(traps: [trap])
        let start = kernel.start()
        XCTAssertEqual(
            types(start), [0x1c, 0x1d] + [UInt16](repeating: 0x19, count: 6) + [0x19], "flush SAs and policies, the ND bypass, then the trap")
        XCTAssertEqual(
            KernelSecurityAssociations.neighbourDiscovery.map { "\($0.sourcePort)/\(String($0.sourcePortMask, radix: 16))" },
            ["133/ffff", "134/fffe", "136/fffe"],
            "ICMPv6 types 133 to 137 in three type blocks")
        XCTAssertTrue(
            start[2..<8].allSatisfy { NetlinkAttribute.parse($0.payload, from: MemoryLayout<xfrm_userpolicy_info>.size).isEmpty },
            "bypass policies have no template")
        _ = try kernel.add(XFRMRequestTests.sa(spi: 4))
        let removal = try XCTUnwrap(kernel.remove(spi: ChildSPI(4), direction: .outbound))
        XCTAssertEqual(types(removal), [0x11, 0x19], "the SA goes and the trap is set again in place of its policy")
        let template = try XCTUnwrap(
            KernelStructure.read(
                xfrm_user_tmpl.self, from: NetlinkAttribute.parse(removal[1].payload, from: MemoryLayout<xfrm_userpolicy_info>.size)[0].value,
                zero: xfrm_user_tmpl()))
        XCTAssertEqual(template.reqid, KernelSecurityAssociations.trapReqid)
    }

    func testHardExpiryByTheKernelForgetsTheSAAndItsPolicy() throws {
        var kernel = KernelSecurityAssociations()
        _ = try kernel.add(XFRMRequestTests.sa(spi: 5))
        let removed = try XCTUnwrap(kernel.removedByKernel(spi: ChildSPI(5), destination: IPAddress("192.0.2.1")!))
        XCTAssertEqual(removed.direction, .outbound)
        XCTAssertEqual(types(removed.requests), [0x14], "the kernel deleted the SA itself; only the policy is left to remove")
        XCTAssertTrue(kernel.held.isEmpty)
    }

    func testReqidIsStableAndFollowsTheSelectors() {
        XCTAssertEqual(
            KernelSecurityAssociations.reqid(for: XFRMRequestTests.sa(spi: 1)), KernelSecurityAssociations.reqid(for: XFRMRequestTests.sa(spi: 2)))
        XCTAssertNotEqual(
            KernelSecurityAssociations.reqid(for: XFRMRequestTests.sa(spi: 1)),
            KernelSecurityAssociations.reqid(for: XFRMRequestTests.sa(spi: 1, destination: [TrafficSelector(cidr: "10.1.0.0/24")!])))
    }
}

final class XFRMNotificationTests: XCTestCase {
    func testExpireNamesTheSAAndWhetherItIsHard() {
        var expire = xfrm_user_expire()
        expire.state.id.spi = UInt32(0xc0ffee).bigEndian
        expire.state.family = 2
        withUnsafeMutableBytes(of: &expire.state.id.daddr) { $0.copyBytes(from: [192, 0, 2, 1]) }
        expire.hard = 1
        let message = NetlinkMessage(type: 0x18, flags: 0, payload: KernelStructure.bytes(of: expire))
        XCTAssertEqual(XFRMNotification(message), .expire(spi: ChildSPI(0xc0ffee), destination: IPAddress("192.0.2.1")!, hard: true))
    }

    func testAcquireGivesTheFlow() throws {
        var acquire = xfrm_user_acquire()
        let flow = try XCTUnwrap(
            KernelSelector.covering(
                source: [TrafficSelector(cidr: "10.2.0.2/32", ipProtocol: 1)!], destination: [TrafficSelector(cidr: "10.1.0.1/32", ipProtocol: 1)!]
            ).first)
        acquire.sel = flow.structure
        let message = NetlinkMessage(type: 0x17, flags: 0, payload: KernelStructure.bytes(of: acquire))
        XCTAssertEqual(XFRMNotification(message), .acquire(flow: flow))
    }

    func testErrorAndAcknowledgementAndTruncatedMessages() {
        var payload: [UInt8] = []
        payload.appendHost(UInt32(bitPattern: -17))
        XCTAssertEqual(XFRMNotification(NetlinkMessage(type: 2, flags: 0, sequence: 7, payload: payload)), .answer(sequence: 7, code: 17))
        XCTAssertEqual(XFRMNotification(NetlinkMessage(type: 2, flags: 0, sequence: 8, payload: [0, 0, 0, 0])), .answer(sequence: 8, code: 0))
        XCTAssertEqual(XFRMNotification(NetlinkMessage(type: 0x18, flags: 0, payload: [1, 2, 3])), .other(type: 0x18), "too short: no crash")
    }

    func testSplitReadsEveryMessageOfADatagramAndStopsAtATruncatedOne() {
        let first = NetlinkMessage(type: 2, flags: 0, sequence: 1, payload: [0, 0, 0, 0, 9])
        let second = NetlinkMessage(type: 3, flags: 0, sequence: 2, payload: [])
        var datagram = first.bytes + [0, 0, 0] + second.bytes
        XCTAssertEqual(NetlinkMessage.split(datagram).map(\.sequence), [1, 2])
        datagram += [64, 0, 0, 0, 1, 0]
        XCTAssertEqual(NetlinkMessage.split(datagram).count, 2)
    }
}
