#!/usr/bin/env python3
"""Captures IKE messages sent by a real strongSwan (in namespaces, against `ikeproxy endpoint`) and writes the
UDP payloads that strongSwan sent, as hex, to Tests/IKEv2Tests/Fixtures/. Run once by hand; the output is committed."""
import os, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strongswan_interop as t

OUT = os.path.join(t.ROOT, "Tests", "IKEv2Tests", "Fixtures")


def main():
    d = tempfile.mkdtemp(prefix="ikp-capture-")
    pcap = os.path.join(d, "capture.pcap")
    with t.Network():
        charon = t.Charon(d, t.PEER_NS)
        try:
            charon.load("aes256gcm16-prfsha256-x25519", "aes256gcm16", t.V4)
            dump = subprocess.Popen(["ip", "netns", "exec", t.EP_NS, "tcpdump", "--immediate-mode", "-i", "ikp-sw1", "-w", pcap, "-U", "udp"],
                                    stderr=subprocess.DEVNULL)
            time.sleep(1)
            endpoint = t.Endpoint(d, "aes256gcm16-prfsha256-x25519", "aes256gcm16", t.V4)
            list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))
            endpoint.wait_event("child_sa_established")
            endpoint.stop()
            endpoint = t.Endpoint(d, "aes256gcm16-prfsha256-x25519", "aes256gcm16", t.V4)
            endpoint.command("initiate c")
            endpoint.wait_event("child_sa_established")
            endpoint.stop()
            time.sleep(1)
            dump.terminate(); dump.wait()
        finally:
            charon.stop()
    fields = subprocess.run(["tshark", "-r", pcap, "-Y", f"ip.src == {t.V4[0]} && isakmp", "-T", "fields",
                             "-e", "udp.srcport", "-e", "udp.payload"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    names = {}
    for line in fields:
        port, payload = line.split("\t")
        if port == "4500":
            payload = payload[8:]  # strip the non-ESP marker
        exchange, flags = str(int(payload[36:38], 16)), payload[38:40]
        kind = {"34": "ike_sa_init", "35": "ike_auth"}.get(exchange)
        if not kind:
            continue
        role = "response" if int(flags, 16) & 0x20 else "request"
        name = f"strongswan-{kind}-{role}.hex"
        if name in names:
            continue
        names[name] = payload
        with open(os.path.join(OUT, name), "w") as f:
            f.write(payload + "\n")
        print("wrote", name, len(payload) // 2, "bytes")


if __name__ == "__main__":
    main()
