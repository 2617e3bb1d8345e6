#!/usr/bin/env python3
"""Independent ESP known-answer vectors, built with pyca/cryptography (OpenSSL), not with our code.

Each vector is an inner IPv4 packet protected in tunnel mode (RFC 4303) with a fixed key, SPI and
sequence number: AES-GCM-16 (RFC 4106) and ChaCha20-Poly1305 (RFC 7634) with the IV equal to the
64-bit sequence number, with and without extended sequence numbers, and AES-CBC with HMAC-SHA2-256-128
(RFC 3602/4868) with a fixed IV. Output: Tests/ESPTests/Fixtures/esp-vectors.json (the ESP bytes,
starting at the SPI, as a UDP-encapsulating socket would carry them).
"""
import hashlib, hmac, json, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

def ipv4_icmp_echo(src, dst, payload):
    icmp = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01" + payload)
    s = sum(struct.unpack("!%dH" % (len(icmp) // 2), icmp)) if len(icmp) % 2 == 0 else None
    s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
    icmp[2:4] = struct.pack("!H", ~s & 0xffff)
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0x1c46, 0, 64, 1, 0, bytes(src), bytes(dst)))
    s = sum(struct.unpack("!10H", hdr)); s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
    hdr[10:12] = struct.pack("!H", ~s & 0xffff)
    return bytes(hdr + icmp)

def trailer(payload, align, next_header):
    pad = (align - (len(payload) + 2) % align) % align
    return payload + bytes(range(1, pad + 1)) + bytes([pad, next_header])

inner = ipv4_icmp_echo([10, 2, 0, 2], [10, 1, 0, 1], bytes(range(36)))
spi = 0xc0ffee01
vectors = []
for name, key_hex, seq, esn in [
    ("aes128gcm16", "feffe9928665731c6d6a8f9467308308" + "cafebabe", 1, False),
    ("aes256gcm16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308" + "cafebabe", 7, False),
    ("aes256gcm16-esn", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308" + "cafebabe", (3 << 32) | 5, True),
    ("chacha20poly1305", "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" + "a0a1a2a3", 2, False),
]:
    key = bytes.fromhex(key_hex)
    header = struct.pack("!II", spi, seq & 0xffffffff)
    iv = struct.pack("!Q", seq)
    aad = struct.pack("!III", spi, seq >> 32, seq & 0xffffffff) if esn else header
    aead = ChaCha20Poly1305(key[:-4]) if name.startswith("chacha") else AESGCM(key[:-4])
    sealed = aead.encrypt(key[-4:] + iv, trailer(inner, 4, 4), aad)
    vectors.append(dict(name=name, encryptionKey=key.hex(), integrityKey="", spi=spi, sequence=seq, esn=esn,
                        inner=inner.hex(), esp=(header + iv + sealed).hex()))

enc_key = bytes(range(32)); int_key = bytes(range(0x40, 0x60)); iv = bytes(range(0xa0, 0xb0)); seq = 9
header = struct.pack("!II", spi, seq)
enc = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
body = enc.update(trailer(inner, 16, 4)) + enc.finalize()
icv = hmac.new(int_key, header + iv + body, hashlib.sha256).digest()[:16]
vectors.append(dict(name="aes256-sha256", encryptionKey=enc_key.hex(), integrityKey=int_key.hex(), spi=spi, sequence=seq,
                    esn=False, inner=inner.hex(), esp=(header + iv + body + icv).hex()))

json.dump(dict(origin="tests/esp/make_esp_vectors.py (pyca/cryptography %s)" % __import__("cryptography").__version__,
               vectors=vectors), open(sys.argv[1], "w"), indent=1)
