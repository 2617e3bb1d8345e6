import CXFRM
import ESP
import IKEv2

/// The XFRM netlink requests (<linux/xfrm.h>) that put SAs and policies into a Linux kernel and take
/// them out again, built as bytes without a socket so that they can be checked in a test.
public enum XFRMRequest {
    static let newSA: UInt16 = 0x10
    static let deleteSA: UInt16 = 0x11
    static let getSA: UInt16 = 0x12
    static let deletePolicy: UInt16 = 0x14
    static let acquire: UInt16 = 0x17
    static let expire: UInt16 = 0x18
    static let updatePolicy: UInt16 = 0x19
    static let flushSA: UInt16 = 0x1c
    static let flushPolicy: UInt16 = 0x1d
    static let attributeEncapsulation: UInt16 = 4  // XFRMA_ENCAP
    static let attributeTemplate: UInt16 = 5  // XFRMA_TMPL
    static let attributeReplayESN: UInt16 = 23  // XFRMA_REPLAY_ESN_VAL
    static let esp: UInt8 = 50
    static let infinite = UInt64.max  // XFRM_INF
    /// The replay window of every inbound SA, in packets (RFC 4303 section 3.4.3 asks for at least 32).
    public static let replayWindow: UInt32 = 128

    /// Which way a policy applies (XFRM_POLICY_IN, _OUT).
    public enum PolicyDirection: UInt8, Sendable {
        case inbound = 0
        case outbound = 1
    }

    /// XFRM_MSG_NEWSA: one direction of an ESP SA with its keys, lifetimes, replay state and UDP encapsulation.
    public static func addSA(_ sa: SecurityAssociationParameters, reqid: UInt32, sequence: UInt32) throws(KernelSAError) -> NetlinkMessage {
        var info = xfrm_usersa_info()
        info.sel.family = family(sa.tunnelDestination)
        put(sa.tunnelDestination, into: &info.id.daddr)
        info.id.spi = sa.spi.rawValue.bigEndian
        info.id.proto = esp
        put(sa.tunnelSource, into: &info.saddr)
        info.lft.soft_byte_limit = sa.lifetime.softBytes ?? infinite
        info.lft.hard_byte_limit = sa.lifetime.hardBytes ?? infinite
        info.lft.soft_packet_limit = sa.lifetime.softPackets ?? infinite
        info.lft.hard_packet_limit = sa.lifetime.hardPackets ?? infinite
        info.lft.soft_add_expires_seconds = UInt64(sa.lifetime.softSeconds ?? 0)
        info.lft.hard_add_expires_seconds = UInt64(sa.lifetime.hardSeconds ?? 0)
        info.reqid = reqid
        info.family = family(sa.tunnelDestination)
        info.mode = sa.mode == .tunnel ? 1 : 0
        // XFRM_STATE_ESN; the window itself is in the REPLAY_ESN attribute.
        info.flags = sa.suite.extendedSequenceNumbers ? 128 : 0
        var payload = KernelStructure.bytes(of: info)
        for attribute in try KernelAlgorithm.attributes(suite: sa.suite, encryptionKey: sa.encryptionKey, integrityKey: sa.integrityKey) {
            attribute.append(to: &payload)
        }
        if let encapsulation = sa.encapsulation {
            var template = xfrm_encap_tmpl()
            template.encap_type = 2  // UDP_ENCAP_ESPINUDP (RFC 3948)
            template.encap_sport = encapsulation.sourcePort.bigEndian
            template.encap_dport = encapsulation.destinationPort.bigEndian
            NetlinkAttribute(type: attributeEncapsulation, value: KernelStructure.bytes(of: template)).append(to: &payload)
        }
        // struct xfrm_replay_state_esn: bitmap length in words, outbound and inbound sequence halves, window,
        // then the bitmap. An outbound SA handed again continues above the sequence numbers already used.
        var replay: [UInt8] = []
        replay.appendHost(replayWindow / 32)
        replay.appendHost(UInt32(truncatingIfNeeded: sa.sequenceStart))
        replay.appendHost(UInt32(0))
        replay.appendHost(UInt32(truncatingIfNeeded: sa.sequenceStart >> 32))
        replay.appendHost(UInt32(0))
        // Linux 6.1 refuses an ESN SA whose window is 0 even for sending, which never checks it: every SA gets one.
        replay.appendHost(replayWindow)
        replay += [UInt8](repeating: 0, count: Int(replayWindow / 8))
        NetlinkAttribute(type: attributeReplayESN, value: replay).append(to: &payload)
        return NetlinkMessage(
            type: newSA, flags: request | NetlinkMessage.flagCreate | NetlinkMessage.flagExclusive, sequence: sequence, payload: payload)
    }

    /// XFRM_MSG_DELSA.
    public static func removeSA(spi: ChildSPI, destination: IPAddress, sequence: UInt32) -> NetlinkMessage {
        NetlinkMessage(
            type: deleteSA, flags: request, sequence: sequence, payload: KernelStructure.bytes(of: saIdentifier(spi: spi, destination: destination)))
    }

    /// XFRM_MSG_GETSA: the kernel answers with the SA, its counters among it.
    public static func readSA(spi: ChildSPI, destination: IPAddress, sequence: UInt32) -> NetlinkMessage {
        NetlinkMessage(
            type: getSA, flags: NetlinkMessage.flagRequest, sequence: sequence,
            payload: KernelStructure.bytes(of: saIdentifier(spi: spi, destination: destination)))
    }

    /// XFRM_MSG_UPDPOLICY: a policy that sends (or expects) the selector's traffic through ESP with `reqid`,
    /// created or replaced. `tunnel` holds the outer addresses of a tunnel-mode template.
    public static func setPolicy(
        _ selector: KernelSelector, direction: PolicyDirection, reqid: UInt32, tunnel: (source: IPAddress, destination: IPAddress)?, sequence: UInt32
    ) -> NetlinkMessage {
        let info = policy(selector, direction: direction, priority: priority(of: selector))
        var template = xfrm_user_tmpl()
        template.id.proto = esp
        template.family = UInt16(selector.isIPv6 ? 10 : 2)
        if let tunnel {
            template.family = family(tunnel.destination)
            put(tunnel.destination, into: &template.id.daddr)
            put(tunnel.source, into: &template.saddr)
        }
        template.reqid = reqid
        template.mode = tunnel == nil ? 0 : 1
        template.aalgos = .max
        template.ealgos = .max
        template.calgos = .max
        var payload = KernelStructure.bytes(of: info)
        NetlinkAttribute(type: attributeTemplate, value: KernelStructure.bytes(of: template)).append(to: &payload)
        return NetlinkMessage(type: updatePolicy, flags: request | NetlinkMessage.flagCreate, sequence: sequence, payload: payload)
    }

    /// XFRM_MSG_UPDPOLICY without a template: the selector's traffic passes in the clear, whatever other
    /// policies say (the highest precedence). For what must never wait for an SA, such as neighbour discovery.
    public static func setBypassPolicy(_ selector: KernelSelector, direction: PolicyDirection, sequence: UInt32) -> NetlinkMessage {
        NetlinkMessage(
            type: updatePolicy, flags: request | NetlinkMessage.flagCreate, sequence: sequence,
            payload: KernelStructure.bytes(of: policy(selector, direction: direction, priority: 1)))
    }

    /// A policy without lifetime limits; XFRM_POLICY_ALLOW, which with a template means through ESP and without
    /// one in the clear.
    static func policy(_ selector: KernelSelector, direction: PolicyDirection, priority: UInt32) -> xfrm_userpolicy_info {
        var info = xfrm_userpolicy_info()
        info.sel = selector.structure
        info.lft.soft_byte_limit = infinite
        info.lft.hard_byte_limit = infinite
        info.lft.soft_packet_limit = infinite
        info.lft.hard_packet_limit = infinite
        info.priority = priority
        info.dir = direction.rawValue
        info.action = 0
        return info
    }

    /// XFRM_MSG_DELPOLICY.
    public static func removePolicy(_ selector: KernelSelector, direction: PolicyDirection, sequence: UInt32) -> NetlinkMessage {
        var identifier = xfrm_userpolicy_id()
        identifier.sel = selector.structure
        identifier.dir = direction.rawValue
        return NetlinkMessage(type: deletePolicy, flags: request, sequence: sequence, payload: KernelStructure.bytes(of: identifier))
    }

    /// XFRM_MSG_FLUSHSA for ESP and XFRM_MSG_FLUSHPOLICY: what an agent that starts holds nothing of.
    public static func flush(sequence: UInt32) -> [NetlinkMessage] {
        var flush = xfrm_usersa_flush()
        flush.proto = esp
        return [
            NetlinkMessage(type: flushSA, flags: request, sequence: sequence, payload: KernelStructure.bytes(of: flush)),
            NetlinkMessage(type: flushPolicy, flags: request, sequence: sequence &+ 1, payload: [])
        ]
    }

    static let request = NetlinkMessage.flagRequest | NetlinkMessage.flagAcknowledge

    /// Narrower selectors win: the kernel takes the policy with the lowest number.
    static func priority(of selector: KernelSelector) -> UInt32 {
        let ports = (selector.sourcePortMask == 0 ? 0 : 1) + (selector.destinationPortMask == 0 ? 0 : 1)
        return 100_000 - (UInt32(selector.sourcePrefixLength) + UInt32(selector.destinationPrefixLength)) * 8 - (selector.ipProtocol == 0 ? 0 : 4)
            - UInt32(ports)
    }

    private static func saIdentifier(spi: ChildSPI, destination: IPAddress) -> xfrm_usersa_id {
        var identifier = xfrm_usersa_id()
        put(destination, into: &identifier.daddr)
        identifier.spi = spi.rawValue.bigEndian
        identifier.family = family(destination)
        identifier.proto = esp
        return identifier
    }

    static func family(_ address: IPAddress) -> UInt16 { address.isIPv6 ? 10 : 2 }

    static func put(_ address: IPAddress, into field: inout xfrm_address_t) {
        withUnsafeMutableBytes(of: &field) { $0.copyBytes(from: address.bytes) }
    }
}
