import IKEv2
import XCTest

@testable import KernelIPsec

final class KernelSelectorTests: XCTestCase {
    func prefixes(_ start: String, _ end: String) throws -> [String] {
        try KernelSelector.prefixes(IPAddress(start)!, IPAddress(end)!).map { "\(IPAddress(bytes: $0.0)!)/\($0.1)" }
    }

    func testAlignedRangeIsOnePrefix() throws {
        XCTAssertEqual(try prefixes("10.1.0.0", "10.1.0.255"), ["10.1.0.0/24"])
        XCTAssertEqual(try prefixes("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"])
        XCTAssertEqual(try prefixes("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["::/0"])
        XCTAssertEqual(try prefixes("2001:db8::2", "2001:db8::2"), ["2001:db8::2/128"])
    }

    func testUnalignedRangeIsCutIntoTheFewestPrefixes() throws {
        XCTAssertEqual(try prefixes("10.0.0.1", "10.0.0.6"), ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"])
        XCTAssertEqual(try prefixes("10.0.0.0", "10.0.1.127"), ["10.0.0.0/24", "10.0.1.0/25"])
    }

    func testEmptyOrMixedRangeIsRefused() {
        XCTAssertThrowsError(try prefixes("10.0.0.9", "10.0.0.1"))
        XCTAssertThrowsError(try KernelSelector.prefixes(IPAddress("10.0.0.1")!, IPAddress("::1")!))
    }

    func testPortRangesBecomePortMaskBlocks() {
        XCTAssertEqual(KernelSelector.portBlocks(0, 65535).map { [$0.0, $0.1] }, [[0, 0]], "any port")
        XCTAssertEqual(KernelSelector.portBlocks(500, 500).map { [$0.0, $0.1] }, [[500, 0xffff]])
        XCTAssertEqual(KernelSelector.portBlocks(1024, 2047).map { [$0.0, $0.1] }, [[1024, 0xfc00]])
        XCTAssertEqual(KernelSelector.portBlocks(7299, 7301).map { [$0.0, $0.1] }, [[7299, 0xffff], [7300, 0xfffe]])
    }

    func testIcmpTypeAndCodeGoWhereTheKernelLooks() throws {
        // Echo request, every code: type 8 in the source port field, code unconstrained.
        let echo = try KernelSelector.covering(
            source: [TrafficSelector(cidr: "10.2.0.2/32", ipProtocol: 1, startPort: 0x0800, endPort: 0x08ff)!],
            destination: [TrafficSelector(cidr: "10.1.0.1/32", ipProtocol: 1)!])
        XCTAssertEqual(echo.map { [$0.sourcePort, $0.sourcePortMask, $0.destinationPort, $0.destinationPortMask] }, [[8, 0xffff, 0, 0]])
        let unreachable = try KernelSelector.covering(
            source: [TrafficSelector(cidr: "10.2.0.2/32", ipProtocol: 1, startPort: 0x0303, endPort: 0x0303)!],
            destination: [TrafficSelector(cidr: "10.1.0.1/32", ipProtocol: 1)!])
        XCTAssertEqual(unreachable.map { [$0.sourcePort, $0.sourcePortMask, $0.destinationPort, $0.destinationPortMask] }, [[3, 0xffff, 3, 0xffff]])
    }

    func testPairsOfOtherFamiliesOrProtocolsCoverNothing() throws {
        let selectors = try KernelSelector.covering(
            source: [TrafficSelector(cidr: "10.2.0.2/32", ipProtocol: 6)!, TrafficSelector(cidr: "2001:db8::2/128")!],
            destination: [TrafficSelector(cidr: "10.1.0.1/32", ipProtocol: 17)!, TrafficSelector(cidr: "2001:db8::1/128")!])
        XCTAssertEqual(selectors.map(\.description), ["2001:db8::2/128 -> 2001:db8::1/128"])
        XCTAssertThrowsError(
            try KernelSelector.covering(source: [TrafficSelector(cidr: "10.2.0.2/32")!], destination: [TrafficSelector(cidr: "2001:db8::1/128")!]))
    }

    func testTooManyPoliciesIsRefused() {
        // Every other address of a /24 is 128 host prefixes.
        let scattered = (0..<70).map { TrafficSelector(cidr: "10.0.0.\($0 * 2)/32")! }
        XCTAssertThrowsError(try KernelSelector.covering(source: scattered, destination: [TrafficSelector(cidr: "10.1.0.0/24")!])) { error in
            XCTAssertEqual(error as? KernelSAError, .tooManyPolicies(65))
        }
    }

    func testSelectorSurvivesTheKernelStructure() throws {
        let selector = try XCTUnwrap(
            KernelSelector.covering(
                source: [TrafficSelector(cidr: "2001:db8::/64", ipProtocol: 6, startPort: 443, endPort: 443)!],
                destination: [TrafficSelector(cidr: "2001:db8:1::9/128", ipProtocol: 6)!]
            ).first)
        XCTAssertEqual(KernelSelector(structure: selector.structure), selector)
    }
}
