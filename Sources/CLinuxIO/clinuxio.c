// ioctl is variadic and so not callable from Swift, and recvmmsg/sendmmsg with control messages are
// clumsy there: the few C shims LinuxIO needs.
#define _GNU_SOURCE
#include "clinuxio.h"
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef TP_STATUS_VLAN_TPID_VALID
#define TP_STATUS_VLAN_TPID_VALID (1 << 6)
#endif

int ikp_tun_open(const char *name, char *actual_name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (name) strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &request) < 0) {
        int code = errno;
        close(fd);
        return -code;
    }
    memcpy(actual_name, request.ifr_name, IFNAMSIZ);
    return fd;
}

static int interface_request(const char *name, unsigned long operation, struct ifreq *request) {
    if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    memset(request, 0, sizeof(*request));
    strncpy(request->ifr_name, name, IFNAMSIZ - 1);
    int result = ioctl(fd, operation, request) < 0 ? -errno : 0;
    close(fd);
    return result;
}

int ikp_interface_info_get(const char *name, ikp_interface_info *info) {
    struct ifreq request;
    int result;
    memset(info, 0, sizeof(*info));
    if ((result = interface_request(name, SIOCGIFINDEX, &request)) < 0) return result;
    info->index = request.ifr_ifindex;
    if ((result = interface_request(name, SIOCGIFMTU, &request)) < 0) return result;
    info->mtu = request.ifr_mtu;
    if ((result = interface_request(name, SIOCGIFHWADDR, &request)) < 0) return result;
    memcpy(info->mac, request.ifr_hwaddr.sa_data, 6);
    if ((result = interface_request(name, SIOCGIFFLAGS, &request)) < 0) return result;
    info->is_up = (request.ifr_flags & IFF_UP) != 0;
    return 0;
}

int ikp_interface_set_up(const char *name) {
    struct ifreq request;
    int result = interface_request(name, SIOCGIFFLAGS, &request);
    if (result < 0) return result;
    if (request.ifr_flags & IFF_UP) return 0;
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    request.ifr_flags |= IFF_UP;
    result = ioctl(fd, SIOCSIFFLAGS, &request) < 0 ? -errno : 0;
    close(fd);
    return result;
}

int ikp_packet_open(int ifindex, int receive_buffer) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) return -errno;
    int one = 1;
    struct packet_mreq membership;
    memset(&membership, 0, sizeof(membership));
    membership.mr_ifindex = ifindex;
    membership.mr_type = PACKET_MR_PROMISC;
    struct sockaddr_ll address;
    memset(&address, 0, sizeof(address));
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = ifindex;
    // PACKET_VNET_HDR: frames come with a virtio_net_hdr that says when a checksum is still to be
    // completed (offload) or the frame is a GSO super-frame, and the same header on send lets the kernel
    // finish them on the way out; without it such frames would leave with wrong checksums or be cut.
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0
        || setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0
        || setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof(membership)) < 0
        || setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0
        || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        int code = errno;
        close(fd);
        return -code;
    }
    // Best effort: a bigger queue absorbs bursts; the qdisc bypass saves a lock per frame.
    if (receive_buffer > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer, sizeof(receive_buffer)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
    return fd;
}

/// Each slot keeps 4 octets of headroom in front of the frame, where a VLAN tag taken off by the
/// kernel is put back without moving the payload.
struct ikp_frame_batch {
    int capacity, slot_size, received;
    unsigned char *slots;
    struct virtio_net_hdr *headers;
    struct mmsghdr *messages;
    struct iovec *vectors;
    unsigned char *controls;
    int *starts;
    int *lengths;
    int *truncated;
};

enum { HEADROOM = 4, CONTROL_SIZE = CMSG_SPACE(sizeof(struct tpacket_auxdata)) };

ikp_frame_batch *ikp_frame_batch_create(int capacity, int slot_size) {
    ikp_frame_batch *batch = calloc(1, sizeof(*batch));
    if (!batch) return NULL;
    batch->capacity = capacity;
    batch->slot_size = slot_size;
    batch->slots = malloc((size_t)capacity * (size_t)(slot_size + HEADROOM));
    batch->headers = calloc((size_t)capacity, sizeof(struct virtio_net_hdr));
    batch->messages = calloc((size_t)capacity, sizeof(struct mmsghdr));
    batch->vectors = calloc((size_t)capacity * 2, sizeof(struct iovec));
    batch->controls = calloc((size_t)capacity, CONTROL_SIZE);
    batch->starts = calloc((size_t)capacity, sizeof(int));
    batch->lengths = calloc((size_t)capacity, sizeof(int));
    batch->truncated = calloc((size_t)capacity, sizeof(int));
    if (!batch->slots || !batch->headers || !batch->messages || !batch->vectors || !batch->controls || !batch->starts || !batch->lengths || !batch->truncated) {
        ikp_frame_batch_destroy(batch);
        return NULL;
    }
    return batch;
}

void ikp_frame_batch_destroy(ikp_frame_batch *batch) {
    if (!batch) return;
    free(batch->slots); free(batch->headers); free(batch->messages); free(batch->vectors); free(batch->controls);
    free(batch->starts); free(batch->lengths); free(batch->truncated);
    free(batch);
}

int ikp_frame_batch_receive(int fd, ikp_frame_batch *batch) {
    for (int i = 0; i < batch->capacity; i++) {
        unsigned char *slot = batch->slots + (size_t)i * (size_t)(batch->slot_size + HEADROOM);
        batch->vectors[2 * i].iov_base = &batch->headers[i];
        batch->vectors[2 * i].iov_len = sizeof(struct virtio_net_hdr);
        batch->vectors[2 * i + 1].iov_base = slot + HEADROOM;
        batch->vectors[2 * i + 1].iov_len = (size_t)batch->slot_size;
        struct msghdr *header = &batch->messages[i].msg_hdr;
        memset(header, 0, sizeof(*header));
        header->msg_iov = &batch->vectors[2 * i];
        header->msg_iovlen = 2;
        header->msg_control = batch->controls + (size_t)i * CONTROL_SIZE;
        header->msg_controllen = CONTROL_SIZE;
    }
    int count = recvmmsg(fd, batch->messages, (unsigned)batch->capacity, MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (count < 0) {
        batch->received = 0;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    }
    for (int i = 0; i < count; i++) {
        unsigned char *slot = batch->slots + (size_t)i * (size_t)(batch->slot_size + HEADROOM);
        int length = (int)batch->messages[i].msg_len - (int)sizeof(struct virtio_net_hdr);
        if (length < 0) length = 0;
        batch->truncated[i] = length > batch->slot_size || (batch->messages[i].msg_hdr.msg_flags & MSG_TRUNC);
        if (length > batch->slot_size) length = batch->slot_size;
        batch->starts[i] = HEADROOM;
        struct msghdr *header = &batch->messages[i].msg_hdr;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(header); c; c = CMSG_NXTHDR(header, c)) {
            if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
            struct tpacket_auxdata aux;
            memcpy(&aux, CMSG_DATA(c), sizeof(aux));
            if (!(aux.tp_status & TP_STATUS_VLAN_VALID) || length < 12) continue;
            unsigned short tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
            memmove(slot, slot + HEADROOM, 12);
            slot[12] = (unsigned char)(tpid >> 8);
            slot[13] = (unsigned char)tpid;
            slot[14] = (unsigned char)(aux.tp_vlan_tci >> 8);
            slot[15] = (unsigned char)aux.tp_vlan_tci;
            batch->starts[i] = 0;
            // Offsets in the virtio header count from the frame start: the tag moved them by 4.
            struct virtio_net_hdr *vnet = &batch->headers[i];
            if (vnet->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) vnet->csum_start += 4;
            if (vnet->hdr_len) vnet->hdr_len += 4;
            length += 4;
            if (length > batch->slot_size + HEADROOM) length = batch->slot_size + HEADROOM;
        }
        batch->lengths[i] = length;
    }
    batch->received = count;
    return count;
}

const unsigned char *ikp_frame_batch_frame(const ikp_frame_batch *batch, int index, int *length, int *truncated,
                                           const unsigned char **offload) {
    if (index < 0 || index >= batch->received) { *length = 0; *truncated = 0; *offload = NULL; return NULL; }
    *length = batch->lengths[index];
    *truncated = batch->truncated[index];
    *offload = (const unsigned char *)&batch->headers[index];
    return batch->slots + (size_t)index * (size_t)(batch->slot_size + HEADROOM) + batch->starts[index];
}

int ikp_packet_send_batch(int fd, const unsigned char *const *frames, const int *lengths, const unsigned char *const *offloads,
                          int count, int *refused) {
    enum { CHUNK = 64 };
    static const struct virtio_net_hdr none;
    struct mmsghdr messages[CHUNK];
    struct iovec vectors[2 * CHUNK];
    int next = 0, accepted = 0, last_error = 0;
    *refused = 0;
    while (next < count) {
        int n = count - next < CHUNK ? count - next : CHUNK;
        memset(messages, 0, sizeof(struct mmsghdr) * (size_t)n);
        for (int i = 0; i < n; i++) {
            const unsigned char *offload = offloads ? offloads[next + i] : NULL;
            vectors[2 * i].iov_base = (void *)(offload ? offload : (const unsigned char *)&none);
            vectors[2 * i].iov_len = sizeof(struct virtio_net_hdr);
            vectors[2 * i + 1].iov_base = (void *)frames[next + i];
            vectors[2 * i + 1].iov_len = (size_t)lengths[next + i];
            messages[i].msg_hdr.msg_iov = &vectors[2 * i];
            messages[i].msg_hdr.msg_iovlen = 2;
        }
        int result = sendmmsg(fd, messages, (unsigned)n, MSG_DONTWAIT);
        if (result < 0) { last_error = errno; result = 0; }
        accepted += result;
        next += result;
        if (result < n) {
            // The frame the kernel stopped at is refused (too big for the link, or no buffer): count it, go on.
            *refused += 1;
            next += 1;
        }
    }
    return accepted > 0 || last_error == 0 ? accepted : -last_error;
}

int ikp_udp_receive_batch(int fd, unsigned char *buffer, int slot_size, int capacity, void *names, int *lengths) {
    enum { CHUNK = 64 };
    struct mmsghdr messages[CHUNK];
    struct iovec vectors[CHUNK];
    struct sockaddr_storage *senders = names;
    if (capacity > CHUNK) capacity = CHUNK;
    memset(messages, 0, sizeof(struct mmsghdr) * (size_t)capacity);
    for (int i = 0; i < capacity; i++) {
        vectors[i].iov_base = buffer + (size_t)i * (size_t)slot_size;
        vectors[i].iov_len = (size_t)slot_size;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &senders[i];
        messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    }
    int count = recvmmsg(fd, messages, (unsigned)capacity, MSG_DONTWAIT, NULL);
    if (count < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    for (int i = 0; i < count; i++) lengths[i] = (int)messages[i].msg_len;
    return count;
}

int ikp_udp_send_batch(int fd, const unsigned char *const *payloads, const int *lengths, const void *names, const int *name_lengths,
                       int count, int *refused, int *refused_indices, int *refused_errors) {
    enum { CHUNK = 64 };
    struct mmsghdr messages[CHUNK];
    struct iovec vectors[CHUNK];
    const struct sockaddr_storage *receivers = names;
    int next = 0, accepted = 0;
    *refused = 0;
    while (next < count) {
        int n = count - next < CHUNK ? count - next : CHUNK;
        memset(messages, 0, sizeof(struct mmsghdr) * (size_t)n);
        for (int i = 0; i < n; i++) {
            vectors[i].iov_base = (void *)payloads[next + i];
            vectors[i].iov_len = (size_t)lengths[next + i];
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = (void *)&receivers[next + i];
            messages[i].msg_hdr.msg_namelen = (socklen_t)name_lengths[next + i];
        }
        int result = sendmmsg(fd, messages, (unsigned)n, 0);
        if (result > 0) {
            // Sent up to where the kernel stopped; the next call starts there (and names its error).
            accepted += result;
            next += result;
            continue;
        }
        if (result < 0 && errno == EINTR) continue;
        // The first datagram is refused: report it, go on with the rest.
        refused_indices[*refused] = next;
        refused_errors[*refused] = result < 0 ? errno : EAGAIN;
        *refused += 1;
        next += 1;
    }
    return accepted;
}

int ikp_netlink_open(int protocol, uint32_t groups) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -errno;
    int size = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = groups};
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        int code = errno;
        close(fd);
        return -code;
    }
    return fd;
}

int ikp_netlink_send(int fd, const unsigned char *bytes, int length) {
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t sent = sendto(fd, bytes, (size_t)length, 0, (struct sockaddr *)&kernel, sizeof kernel);
    if (sent < 0) return -errno;
    return sent == length ? 0 : -EMSGSIZE;
}

int ikp_socket_bypass_ipsec(int fd, int ipv6) {
    struct xfrm_userpolicy_info policy;
    memset(&policy, 0, sizeof policy);
    policy.action = XFRM_POLICY_ALLOW;
    policy.sel.family = ipv6 ? AF_INET6 : AF_INET;
    int level = ipv6 ? IPPROTO_IPV6 : IPPROTO_IP;
    int option = ipv6 ? IPV6_XFRM_POLICY : IP_XFRM_POLICY;
    for (int dir = XFRM_POLICY_IN; dir <= XFRM_POLICY_OUT; dir++) {
        policy.dir = (unsigned char)dir;
        if (setsockopt(fd, level, option, &policy, sizeof policy) < 0) return -errno;
    }
    return 0;
}

int ikp_epoll_open(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int ikp_epoll_watch(int epoll, int fd, int add) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = EPOLLIN;
    event.data.fd = fd;
    return epoll_ctl(epoll, add ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &event) == 0 ? 0 : -errno;
}

int ikp_epoll_wait_readable(int epoll, int *ready, int capacity, int timeout_ms) {
    enum { CHUNK = 64 };
    struct epoll_event events[CHUNK];
    if (capacity > CHUNK) capacity = CHUNK;
    int count = epoll_wait(epoll, events, capacity, timeout_ms);
    if (count < 0) return -errno;
    int readable = 0;
    // Only what has something to read, as poll(POLLIN) callers expect (a hang-up alone is not reported).
    for (int i = 0; i < count; i++)
        if (events[i].events & EPOLLIN) ready[readable++] = events[i].data.fd;
    return readable;
}
