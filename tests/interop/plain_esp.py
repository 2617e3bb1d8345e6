#!/usr/bin/env python3
"""Plain ESP test: two terminals exchange ESP as IP protocol 50, without UDP encapsulation.

strongSwan's kernel-libipsec always puts ESP in UDP, so here both ends are the project's own: in each of
two network namespaces joined by a veth pair, `ikeproxy endpoint` negotiates IKEv2 with the other side
(no NAT, no forced encapsulation, so the CHILD SA is plain ESP) and sets the keys into an
`ikeproxy terminal` agent on the same host over the key-delivery channel (loopback).

  ikp-p-a  192.0.2.1 / 2001:db8::1   TUN inner 10.1.0.1 / fd00:1::1
  ikp-p-b  192.0.2.2 / 2001:db8::2   TUN inner 10.2.0.2 / fd00:2::2

Checks, for an IPv4 and an IPv6 outer family: the SA handed over on both sides, ping both ways, 10 MB TCP
each way, a capture of the veth link with protocol-50 packets and not one UDP 4500 datagram, tshark
decrypting that capture with the keys, the agents' plain-ESP counters and no ESP drop.
Needs root, iproute2, tcpdump and tshark; it fails loudly otherwise.
"""
import json, os, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import add_namespaces, wait_for_text, missing_prerequisites, ns, remove_namespaces, sh  # noqa: E402
from lib.peer import PSK  # noqa: E402
from lib.processes import start, stop  # noqa: E402
from lib.report import check, summary  # noqa: E402
from lib.traffic import start_capture, transfer  # noqa: E402

A, B = "ikp-p-a", "ikp-p-b"
KEY_HEX = "3c" * 32
FAMILIES = {
    "IPv4": {"outer": ("192.0.2.1", "192.0.2.2"), "inner": ("10.1.0.1", "10.2.0.2"), "prefix": (32, 24),
             "nets": ("10.1.0.0/24", "10.2.0.0/24"), "tshark": "IPv4", "filter": "ip"},
    "IPv6": {"outer": ("2001:db8::1", "2001:db8::2"), "inner": ("fd00:1::1", "fd00:2::2"), "prefix": (128, 64),
             "nets": ("fd00:1::/64", "fd00:2::/64"), "tshark": "IPv6", "filter": "ip6"},
}


def topology():
    remove_namespaces(A, B)
    add_namespaces(A, B)
    sh("ip", "link", "add", "ikp-pa0", "netns", A, "type", "veth", "peer", "name", "ikp-pb0", "netns", B)
    for name, dev, v4, v6 in ((A, "ikp-pa0", "192.0.2.1/24", "2001:db8::1/64"), (B, "ikp-pb0", "192.0.2.2/24", "2001:db8::2/64")):
        ns(name, "ip", "addr", "add", v4, "dev", dev)
        ns(name, "ip", "addr", "add", v6, "dev", dev, "nodad")
        ns(name, "ip", "link", "set", dev, "up")


def configure(directory, side, family):
    """Writes the endpoint and terminal configuration of one side (0 = a, initiator; 1 = b)."""
    f = FAMILIES[family]
    me, other = side, 1 - side
    name = "ab"[side]
    terminal = {"terminal_id": 10 + side, "enrollment_key_hex": KEY_HEX, "outer_address": f["outer"][me],
                "proxy_address": "127.0.0.1", "key_delivery_listen": "127.0.0.1", "key_delivery_port": 9500,
                # The endpoint holds UDP 4500 on this host; ESP-in-UDP (unused without NAT) moves aside.
                "encapsulation_port": 4501, "status_interval": 5,
                "tun": {"name": "ikp0", "addresses": [f"{f['inner'][me]}/{f['prefix'][0]}"], "routes": [f["nets"][other]], "mtu": 1400}}
    endpoint = {"connections": [{
        "name": "plain", "local_address": f["outer"][me], "remote_address": f["outer"][other], "psk": PSK,
        "proposals": ["aes256gcm16-prfsha256-x25519"],
        "children": [{"name": "ch", "local_ts": [f"{f['inner'][me]}/{f['prefix'][0]}"], "remote_ts": [f["nets"][other]],
                      "esp_proposals": ["aes256gcm16"]}],
        "terminal": {"terminal_id": 10 + side, "enrollment_key_hex": KEY_HEX, "address": "127.0.0.1", "port": 9500,
                     "source": "127.0.0.1", "source_port": 9501}}]}
    paths = {}
    for kind, content in (("terminal", terminal), ("endpoint", endpoint)):
        paths[kind] = os.path.join(directory, f"{family}-{name}-{kind}.json")
        with open(paths[kind], "w") as out:
            json.dump(content, out)
    return paths


def counters_line(log_path):
    lines = [line for line in open(log_path).read().splitlines() if "stopping; counters:" in line]
    return lines[-1] if lines else ""


def run_case(directory, family):
    f = FAMILIES[family]
    print(f"-- {family}: plain ESP between two terminals")
    topology()
    processes, logs = [], {}
    capture_path = os.path.join(directory, f"{family}-link.pcap")
    capture = start_capture(A, "ikp-pa0", capture_path, f"{f['filter']} proto 50 or udp port 4500 or udp port 4501")
    try:
        for side, namespace in ((1, B), (0, A)):
            name = "ab"[side]
            paths = configure(directory, side, family)
            logs[f"terminal-{name}"] = os.path.join(directory, f"{family}-{name}-terminal.log")
            logs[f"endpoint-{name}"] = os.path.join(directory, f"{family}-{name}-endpoint.log")
            processes.append(start(namespace, ["terminal", "--config", paths["terminal"]], logs[f"terminal-{name}"]))
            arguments = ["endpoint", "--config", paths["endpoint"], "--show-keys"] + (["--initiate", "plain"] if side == 0 else [])
            time.sleep(0.5)
            processes.append(start(namespace, arguments, logs[f"endpoint-{name}"],
                                   stdout=open(os.path.join(directory, f"{family}-{name}-events.jsonl"), "w")))
        handed = all(wait_for_text(logs[f"terminal-{n}"], "installed outbound SA", 15) and
                     wait_for_text(logs[f"terminal-{n}"], "installed inbound SA", 5) for n in "ab")
        check(handed, f"{family}: both endpoints negotiated and set the SAs into their terminals")
        events = [json.loads(line) for line in open(os.path.join(directory, f"{family}-a-events.jsonl")) if line.strip()]
        established = [e for e in events if e["event"] == "child_sa_established"]
        check(len(established) == 1 and established[0]["child"].get("encapsulation") == "none",
              f"{family}: the CHILD SA is plain ESP (no NAT, no UDP encapsulation: "
              f"{established[0]['child'].get('encapsulation') if established else None})")

        for source_ns, source, destination in ((A, f["inner"][0], f["inner"][1]), (B, f["inner"][1], f["inner"][0])):
            ping = ns(source_ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", source, destination, check=False)
            check(ping.returncode == 0, f"{family}: ping {source} -> {destination} through plain ESP "
                  f"({ping.stdout.strip().splitlines()[-2] if ping.stdout.strip() else ping.stderr.strip()})")
        size = 10 * 1024 * 1024
        for server_ns, server, client_ns, port in ((B, f["inner"][1], A, 5101), (A, f["inner"][0], B, 5102)):
            started = time.time()
            intact, count, _ = transfer(server_ns, server, client_ns, None, port, size)
            check(intact,
                  f"{family}: 10 MB TCP to {server} through plain ESP, intact ({count} octets, {time.time() - started:.1f} s)")

        time.sleep(0.5)
        capture.send_signal(signal.SIGINT)
        capture.wait(timeout=10)
        counts = subprocess.run(["tshark", "-r", capture_path, "-T", "fields", "-e", "frame.protocols"],
                                capture_output=True, text=True).stdout.splitlines()
        esp = sum(1 for line in counts if line.endswith(":esp"))
        udp = sum(1 for line in counts if ":udp" in line)
        check(esp > 10000 and udp == 0, f"{family}: the link carried {esp} protocol-50 ESP packets and {udp} UDP-encapsulated ones")
        if established:
            decrypt_check(capture_path, established[0], family)
    finally:
        if capture.poll() is None:
            capture.kill()
        for process in reversed(processes):
            stop(process)
    for n in "ab":
        line = counters_line(logs.get(f"terminal-{n}", "/dev/null")) if f"terminal-{n}" in logs else ""
        received = next((int(part.split("=")[1]) for part in line.split() if part.startswith("plain_esp_received=")), 0)
        check(received > 5000 and "ESP drops: none" in line,
              f"{family}: terminal {n} received {received} ESP packets on its protocol-50 socket, no ESP drop ({line.split('counters: ')[-1][:160]})")
    remove_namespaces(A, B)


def decrypt_check(capture_path, event, family):
    f = FAMILIES[family]
    child, keys = event["child"], event["child"].get("keys", {})
    args = ["tshark", "-r", capture_path, "-o", "esp.enable_encryption_decode:TRUE"]
    # Side a's inbound SA is b -> a; its outbound a -> b.
    for src, dst, spi, key in ((f["outer"][1], f["outer"][0], child["spi_in"], keys.get("encryption_in")),
                               (f["outer"][0], f["outer"][1], child["spi_out"], keys.get("encryption_out"))):
        args += ["-o", f'uat:esp_sa:"{f["tshark"]}","{src}","{dst}","0x{spi}","AES-GCM with 16 octet ICV [RFC4106]","0x{key}","NULL",""']
    address = "ipv6" if family == "IPv6" else "ip"
    result = subprocess.run(args + ["-Y", "icmp || icmpv6 || tcp", "-T", "fields", "-e", f"{address}.src"],
                            capture_output=True, text=True)
    inner = {line.split(",")[-1] for line in result.stdout.split() if "," in line}
    check(set(f["inner"]) <= inner, f"{family}: tshark decrypts the protocol-50 capture with the keys (inner sources {sorted(inner)})"
          + ("" if inner else f" (tshark: {result.stderr.strip()[:300]})"))


def main():
    missing = missing_prerequisites("plain ESP test", tools=("tcpdump", "tshark", "ip"))
    if missing is not None:
        return missing
    directory = tempfile.mkdtemp(prefix="ikp-plain-esp-")
    print(f"== plain ESP test (logs in {directory})")
    try:
        for family in FAMILIES:
            run_case(directory, family)
    finally:
        remove_namespaces(A, B)
    return summary("plain ESP test")


if __name__ == "__main__":
    sys.exit(main())
