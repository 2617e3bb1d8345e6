#ifndef CLINUXIO_H
#define CLINUXIO_H

/// Opens /dev/net/tun and attaches a TUN device (IFF_TUN | IFF_NO_PI) named `name` (empty: kernel picks).
/// Writes the device's name into `actual_name` (16 octets). Returns the descriptor, or -errno.
int ikp_tun_open(const char *name, char *actual_name);

#endif
