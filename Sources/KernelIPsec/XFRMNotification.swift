import CXFRM
import IKEv2

/// What the kernel tells an XFRM key manager, read from a netlink message: a packet matched a policy
/// with no SA (ACQUIRE), an SA reached a soft or hard lifetime (EXPIRE), an SA as asked for (its
/// counters), or the answer to a request.
public enum XFRMNotification: Equatable, Sendable {
    /// `flow` is the packet's own addresses, protocol and ports, as full-length prefixes.
    case acquire(flow: KernelSelector)
    case expire(spi: ChildSPI, destination: IPAddress, hard: Bool)
    case state(spi: ChildSPI, destination: IPAddress, packets: UInt64, bytes: UInt64)
    /// The answer to request `sequence`: 0 when it was done, else the errno.
    case answer(sequence: UInt32, code: Int32)
    /// Anything else (a policy expiry, a message type this agent does not use), or a message too short
    /// for its type, which the kernel never sends.
    case other(type: UInt16)

    public init(_ message: NetlinkMessage) {
        switch message.type {
        case NetlinkMessage.typeError:
            self = .answer(sequence: message.sequence, code: message.errorCode ?? -1)
        case XFRMRequest.acquire:
            guard let acquire = KernelStructure.read(xfrm_user_acquire.self, from: message.payload, zero: xfrm_user_acquire()) else {
                self = .other(type: message.type)
                return
            }
            self = .acquire(flow: KernelSelector(structure: acquire.sel))
        case XFRMRequest.expire:
            guard let expire = KernelStructure.read(xfrm_user_expire.self, from: message.payload, zero: xfrm_user_expire()),
                let destination = Self.address(expire.state.id.daddr, family: expire.state.family)
            else {
                self = .other(type: message.type)
                return
            }
            self = .expire(spi: ChildSPI(UInt32(bigEndian: expire.state.id.spi)), destination: destination, hard: expire.hard != 0)
        case XFRMRequest.newSA:
            guard let info = KernelStructure.read(xfrm_usersa_info.self, from: message.payload, zero: xfrm_usersa_info()),
                let destination = Self.address(info.id.daddr, family: info.family)
            else {
                self = .other(type: message.type)
                return
            }
            self = .state(
                spi: ChildSPI(UInt32(bigEndian: info.id.spi)), destination: destination, packets: info.curlft.packets, bytes: info.curlft.bytes)
        default:
            self = .other(type: message.type)
        }
    }

    static func address(_ field: xfrm_address_t, family: UInt16) -> IPAddress? {
        var copy = field
        let count = family == 10 ? 16 : 4
        return IPAddress(bytes: withUnsafeBytes(of: &copy) { Array($0.prefix(count)) })
    }
}
