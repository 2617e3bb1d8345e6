#ifndef CLINUXIO_H
#define CLINUXIO_H

#include <stdint.h>

/// Opens /dev/net/tun and attaches a TUN device (IFF_TUN | IFF_NO_PI) named `name` (empty: kernel picks).
/// Writes the device's name into `actual_name` (16 octets). Returns the descriptor, or -errno.
int ikp_tun_open(const char *name, char *actual_name);

/// What the kernel says about a network interface.
typedef struct ikp_interface_info {
    int index;
    int mtu;
    unsigned char mac[6];
    int is_up;
} ikp_interface_info;

/// Looks up an interface by name. Returns 0, or -errno (ENODEV: no such interface).
int ikp_interface_info_get(const char *name, ikp_interface_info *info);

/// Sets an interface administratively up. Returns 0 or -errno.
int ikp_interface_set_up(const char *name);

/// Opens an AF_PACKET raw socket on one interface for a bump-in-the-wire port: every frame (ETH_P_ALL),
/// promiscuous, VLAN tags reported (PACKET_AUXDATA), our own transmissions not looped back
/// (PACKET_IGNORE_OUTGOING), queueing discipline bypassed, non-blocking. Returns the descriptor or -errno.
int ikp_packet_open(int ifindex, int receive_buffer);

/// A batch of receive slots for recvmmsg on an AF_PACKET socket.
typedef struct ikp_frame_batch ikp_frame_batch;

ikp_frame_batch *ikp_frame_batch_create(int capacity, int slot_size);
void ikp_frame_batch_destroy(ikp_frame_batch *batch);

/// Receives up to the batch's capacity of frames at once (recvmmsg). A VLAN tag the kernel took off
/// (offload) is put back into the frame, so frames are seen as they were on the wire. Returns the count
/// (0 when nothing is waiting) or -errno.
int ikp_frame_batch_receive(int fd, ikp_frame_batch *batch);

/// Frame `index` of the last receive: its start and length (a frame longer than the slot is truncated
/// and reported with `*truncated` set), and its offload header (virtio_net_hdr: a checksum still to be
/// completed, GSO), to be given back when the frame is forwarded.
const unsigned char *ikp_frame_batch_frame(const ikp_frame_batch *batch, int index, int *length, int *truncated,
                                           const unsigned char **offload);

/// Sends `count` frames at once (sendmmsg). Returns how many the kernel took (or -errno when it took none
/// and failed); frames it refused are skipped and counted in `*refused`.
/// `offloads` holds each frame's offload header as received (NULL entries, or a NULL array: none).
int ikp_packet_send_batch(int fd, const unsigned char *const *frames, const int *lengths, const unsigned char *const *offloads,
                          int count, int *refused);

/// Receives up to `capacity` UDP datagrams at once (recvmmsg), each into its slot of `slot_size` octets of
/// `buffer` with its sender in `names[i]` (struct sockaddr_storage) and its length in `lengths[i]`. Returns
/// the count (0 when nothing is waiting) or -errno.
int ikp_udp_receive_batch(int fd, unsigned char *buffer, int slot_size, int capacity, void *names, int *lengths);

/// Sends `count` UDP datagrams at once (sendmmsg), datagram i to `names[i]` (struct sockaddr_storage, of
/// `name_lengths[i]` octets). Returns how many the kernel took; a datagram it refused is skipped, its index
/// written to `refused_indices` and its errno to `refused_errors`, and `*refused` counts them.
int ikp_udp_send_batch(int fd, const unsigned char *const *payloads, const int *lengths, const void *names, const int *name_lengths,
                       int count, int *refused, int *refused_indices, int *refused_errors);

/// Opens a raw netlink socket of `protocol` (NETLINK_XFRM for IPsec) bound to the multicast `groups`
/// (a bit mask), with a 1 MiB receive buffer. Returns the descriptor or -errno.
int ikp_netlink_open(int protocol, uint32_t groups);

/// Sends one netlink message to the kernel. Returns 0 or -errno.
int ikp_netlink_send(int fd, const unsigned char *bytes, int length);

/// Exempts a socket's own packets from the kernel's IPsec policies both ways (IP_XFRM_POLICY or
/// IPV6_XFRM_POLICY with an allow policy), as an IKE daemon does for its sockets: a terminal's NAT
/// keepalives must not be held back by a trap policy towards the peer. Returns 0 or -errno.
int ikp_socket_bypass_ipsec(int fd, int ipv6);

/// An epoll set (close-on-exec). Returns the descriptor or -errno.
int ikp_epoll_open(void);

/// Adds `fd` to the set for readability (`add` non-zero), or removes it. Returns 0 or -errno.
int ikp_epoll_watch(int epoll, int fd, int add);

/// Waits up to `timeout_ms` and writes the descriptors that are readable into `ready` (at most `capacity`).
/// Returns how many, 0 on timeout, or -errno. (epoll_event is a packed struct: not usable from Swift.)
int ikp_epoll_wait_readable(int epoll, int *ready, int capacity, int timeout_ms);

#endif
