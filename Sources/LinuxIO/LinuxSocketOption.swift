/// Linux socket options Glibc does not export to Swift, by their values in <linux/socket.h> and <linux/in.h>.
enum LinuxSocketOption {
    /// SO_MARK: the fwmark on the socket's packets (the agents' own packets bypass their TUN routes by it).
    static let mark: Int32 = 36
    /// IP_TRANSPARENT: bind and send from an address the host does not own (IKE in a terminal's name).
    static let ipTransparent: Int32 = 19
    /// IPV6_TRANSPARENT, the same for IPv6.
    static let ipv6Transparent: Int32 = 75
    /// UDP_ENCAP (<linux/udp.h>): the kernel takes ESP-in-UDP off the socket.
    static let udpEncapsulation: Int32 = 100
    /// SO_RCVBUFFORCE: a receive buffer beyond net.core.rmem_max (needs CAP_NET_ADMIN).
    static let receiveBufferForce: Int32 = 33
}
