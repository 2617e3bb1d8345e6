import ESP
import IKEv2
import KernelIPsec
import KeyDelivery
import LinuxIO

#if canImport(Glibc)
    import Glibc
#endif

/// Why the kernel refused a request, with its errno text.
public struct KernelRequestError: Error, CustomStringConvertible {
    public var request: String
    public var code: Int32
    public var description: String { code == 0 ? "\(request): no answer from the kernel" : "\(request): \(String(cString: strerror(code)))" }
}

/// The terminal's Linux kernel as `KernelESP`, through netlink XFRM: requests on one socket, answered
/// one by one; ACQUIRE and EXPIRE notifications on another, which the runner waits on.
public final class XFRMKernel: KernelESP {
    let requests: NetlinkSocket
    /// The ACQUIRE and EXPIRE multicast groups (XFRMNLGRP_ACQUIRE 1, XFRMNLGRP_EXPIRE 2), non-blocking.
    public let notifications: NetlinkSocket
    var associations: KernelSecurityAssociations
    let log: (String) -> Void

    /// Flushes what ESP state the kernel holds (an agent that starts holds nothing) and sets the traps.
    public init(traps: [KernelSelector], log: @escaping (String) -> Void) throws {
        requests = try NetlinkSocket(protocol: NetlinkSocket.xfrmProtocol)
        notifications = try NetlinkSocket(protocol: NetlinkSocket.xfrmProtocol, groups: 0b11, nonBlocking: true)
        associations = KernelSecurityAssociations(traps: traps)
        self.log = log
        for message in associations.start() { _ = try request(message) }
    }

    /// Sends a request and reads the kernel's answer: the messages it sends back (for a read), or an
    /// error message whose code 0 means done.
    @discardableResult
    func request(_ message: NetlinkMessage) throws -> [NetlinkMessage] {
        let name = Self.name(of: message.type)
        try requests.send(message.bytes)
        var replies: [NetlinkMessage] = []
        while let datagram = try requests.receive(waitingMilliseconds: 2000) {
            for reply in NetlinkMessage.split(datagram) where reply.sequence == message.sequence {
                if let code = reply.errorCode {
                    guard code == 0 else { throw KernelRequestError(request: name, code: code) }
                    return replies
                }
                replies.append(reply)
                if message.flags & NetlinkMessage.flagAcknowledge == 0 { return replies }
            }
        }
        throw KernelRequestError(request: name, code: 0)
    }

    public func install(_ sa: SecurityAssociationParameters) throws {
        let messages = try associations.add(sa)
        do {
            for message in messages { try request(message) }
        } catch {
            // Leave nothing half-set: what went in before the refusal comes out again.
            for message in associations.remove(spi: sa.spi, direction: sa.direction) ?? [] { _ = try? request(message) }
            throw error
        }
    }

    @discardableResult
    public func remove(spi: ChildSPI, direction: ESPDirection) -> Bool {
        guard let messages = associations.remove(spi: spi, direction: direction) else { return false }
        for message in messages {
            do { try request(message) } catch { log("kernel: \(error) (removing \(direction.rawValue) SA \(spi))") }
        }
        return true
    }

    public var held: [(spi: ChildSPI, direction: ESPDirection)] { associations.held.map { ($0.spi, $0.direction) } }

    public func counters() -> [SAStatus] {
        associations.held.compactMap { sa in
            let message = associations.readCounters(spi: sa.spi, destination: sa.destination)
            guard let reply = try? request(message).first, case .state(_, _, let packets, let bytes) = XFRMNotification(reply) else { return nil }
            return SAStatus(spi: sa.spi, direction: sa.direction, packets: packets, bytes: bytes)
        }
    }

    /// What the kernel reported since the last call, for the agent: flows that need an SA, and expiries
    /// of SAs the agent holds (a hard one has removed the SA in the kernel; its policies go too).
    public func drainNotifications() -> [KernelReport] {
        var reports: [KernelReport] = []
        while let datagram = try? notifications.receive() {
            for message in NetlinkMessage.split(datagram) {
                switch XFRMNotification(message) {
                case .acquire(let flow):
                    guard let source = IPAddress(bytes: flow.source), let destination = IPAddress(bytes: flow.destination) else { continue }
                    reports.append(
                        .acquire(
                            FlowDescription(
                                source: source, destination: destination, ipProtocol: flow.ipProtocol, sourcePort: flow.sourcePort,
                                destinationPort: flow.destinationPort)))
                case .expire(let spi, let destination, let hard):
                    if hard {
                        guard let (direction, requests) = associations.removedByKernel(spi: spi, destination: destination) else { continue }
                        for request in requests { _ = try? self.request(request) }
                        reports.append(.expire(spi: spi, direction: direction, hard: true))
                    } else if let direction = associations.direction(of: spi, destination: destination) {
                        reports.append(.expire(spi: spi, direction: direction, hard: false))
                    }
                case .state, .answer, .other: continue
                }
            }
        }
        return reports
    }

    static func name(of type: UInt16) -> String {
        switch type {
        case 0x10: "add SA"
        case 0x11: "delete SA"
        case 0x12: "read SA"
        case 0x14: "delete policy"
        case 0x19: "set policy"
        case 0x1c: "flush SAs"
        case 0x1d: "flush policies"
        default: "XFRM request \(type)"
        }
    }
}

/// A notification of the kernel the agent acts on.
public enum KernelReport: Equatable, Sendable {
    case acquire(FlowDescription)
    case expire(spi: ChildSPI, direction: ESPDirection, hard: Bool)
}
