#ifndef CXFRM_H
#define CXFRM_H

// The kernel's netlink and XFRM structures, so that the Swift codec lays its messages out exactly as the
// running kernel's headers say instead of by hand-counted offsets.
// glibc first: its in6_addr then stands, and the kernel headers leave theirs out (linux/libc-compat.h).
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>

#endif
