#!/usr/bin/env python3
"""Terminal test: strongSwan -- key agent (the project's IKE engine acting for the terminal) -- terminal.

Three network namespaces joined by veth pairs:

  ikp-t-peer  strongSwan (charon, kernel-libipsec: ESP always in UDP 4500), 192.0.2.1, inner 10.1.0.1
  ikp-t-mid   a router with proxy ARP; nftables TPROXY hands IKE addressed to the terminal (UDP 500, and
              UDP 4500 behind the non-ESP marker) to `ikeproxy endpoint`, which answers *as 192.0.2.2*
              (transparent sockets) and sets the negotiated SA into the terminal over the key-delivery
              channel from 169.254.0.1, an address no namespace owns. ESP is forwarded untouched.
  ikp-t-term  `ikeproxy terminal` (192.0.2.2; TUN ikp0 with inner address 10.2.0.2): never sees IKE.

Checks: SA handed over, ping both ways, 10 MB TCP each way through ESP, strongSwan's counters, tshark
decrypting a capture with the keys, forged and malformed key-delivery datagrams refused, a CHILD SA rekey
made before the old SA is broken, a delete, and volume lifetimes: with a 2 MB soft limit the terminal's
expiry reports make the agent rekey during a 10 MB transfer, which arrives intact.
Needs root, iproute2, nftables, strongSwan, tshark and the `vici` module; it fails loudly otherwise.
"""
import json, os, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import Lab, ns, read, sh, wait_for  # noqa: E402
from lib.peer import PSK, initiate, run_with_charon  # noqa: E402
from lib.processes import start, stop  # noqa: E402
from lib.traffic import start_capture, transfer  # noqa: E402
from lib.report import check  # noqa: E402

PEER, MID, TERM = "ikp-t-peer", "ikp-t-mid", "ikp-t-term"
KEY_HEX = "7f" * 16 + "a5" * 16
TRANSFER_SIZE = 10 * 1024 * 1024


class Topology(Lab):
    namespaces = (PEER, MID, TERM)

    def build(self):
        sh("ip", "link", "add", "ikp-tp0", "netns", PEER, "type", "veth", "peer", "name", "ikp-tm0", "netns", MID)
        sh("ip", "link", "add", "ikp-tm1", "netns", MID, "type", "veth", "peer", "name", "ikp-tt0", "netns", TERM)
        ns(PEER, "ip", "addr", "add", "192.0.2.1/24", "dev", "ikp-tp0")
        ns(PEER, "ip", "addr", "add", "10.1.0.1/32", "dev", "lo")
        ns(TERM, "ip", "addr", "add", "192.0.2.2/24", "dev", "ikp-tt0")
        for name, dev in ((PEER, "ikp-tp0"), (MID, "ikp-tm0"), (MID, "ikp-tm1"), (TERM, "ikp-tt0")):
            ns(name, "ip", "link", "set", dev, "up")
        # The middle box: a router that answers ARP for both sides, so peer and terminal share 192.0.2.0/24.
        ns(MID, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for dev in ("ikp-tm0", "ikp-tm1"):
            ns(MID, "sysctl", "-qw", f"net.ipv4.conf.{dev}.proxy_arp=1")
        ns(MID, "ip", "addr", "add", "192.0.2.254/32", "dev", "ikp-tm0")
        # 169.254.0.1, the key agent's source for key delivery, is owned by nobody: a route towards the peer
        # side only lets proxy ARP answer for it on the terminal side, and TPROXY takes the terminal's
        # answers before routing would send them there.
        ns(MID, "ip", "route", "add", "169.254.0.1/32", "dev", "ikp-tm0")
        ns(MID, "ip", "route", "add", "192.0.2.1/32", "dev", "ikp-tm0")
        ns(MID, "ip", "route", "add", "192.0.2.2/32", "dev", "ikp-tm1")
        ns(TERM, "ip", "route", "add", "169.254.0.1/32", "dev", "ikp-tt0")
        # IKE addressed to the terminal goes to the local (transparent) sockets instead of being forwarded.
        rules = """table ip ikp {
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
    ip daddr 192.0.2.2 udp dport 500 tproxy to 192.0.2.2:500 meta mark set 1 accept
    ip daddr 192.0.2.2 udp dport 4500 @th,64,32 0 tproxy to 192.0.2.2:4500 meta mark set 1 accept
    iifname "ikp-tm1" ip daddr 169.254.0.1 udp dport 9500 tproxy to 169.254.0.1:9500 meta mark set 1 accept
  }
}
"""
        subprocess.run(["ip", "netns", "exec", MID, "nft", "-f", "-"], input=rules, text=True, check=True)
        ns(MID, "ip", "rule", "add", "fwmark", "1", "lookup", "100")
        ns(MID, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")


def child_counters(charon):
    for sa in charon.sas():
        for child in sa.get("child-sas", {}).values():
            if child["state"] == b"INSTALLED":
                return {k: int(child.get(k, b"0")) for k in ("packets-in", "packets-out", "bytes-in", "bytes-out")}, child
    return None, None


def main():
    return run_with_charon("terminal ESP test", "ikp-terminal-", Topology, run, peer_namespace=PEER, tools=("nft", "tshark", "tcpdump"))


def load_peer(charon):
    charon.session.load_conn({"c": {
        "version": "2", "local_addrs": ["192.0.2.1"], "remote_addrs": ["192.0.2.2"],
        "proposals": ["aes256gcm16-prfsha256-x25519"], "encap": "yes", "rekey_time": "0", "dpd_delay": "0",
        "local-1": {"auth": "psk", "id": "192.0.2.1"}, "remote-1": {"auth": "psk", "id": "192.0.2.2"},
        "children": {"ch": {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                            "local_ts": ["10.1.0.0/24"], "remote_ts": ["10.2.0.2/32"]}}}})
    charon.session.load_shared({"id": "psk-1", "type": "IKE", "data": PSK, "owners": ["192.0.2.1", "192.0.2.2"]})


def write_configurations(directory):
    """The terminal agent's and the key agent's configurations; returns their paths."""
    terminal_config = os.path.join(directory, "terminal.json")
    with open(terminal_config, "w") as f:
        json.dump({"terminal_id": 7, "enrollment_key_hex": KEY_HEX, "outer_address": "192.0.2.2",
                   "proxy_address": "169.254.0.1", "status_interval": 5,
                   "tun": {"name": "ikp0", "addresses": ["10.2.0.2/32"], "routes": ["10.1.0.0/24"], "mtu": 1400}}, f)
    agent_config = os.path.join(directory, "agent.json")
    with open(agent_config, "w") as f:
        json.dump({"transparent": True, "connections": [{
            "name": "t7", "local_address": "192.0.2.2", "remote_address": "192.0.2.1", "psk": PSK,
            "proposals": ["aes256gcm16-prfsha256-x25519"], "force_encapsulation": True,
            "children": [{"name": "ch", "local_ts": ["10.2.0.2/32"], "remote_ts": ["10.1.0.0/24"], "esp_proposals": ["aes256gcm16"]}],
            "terminal": {"terminal_id": 7, "enrollment_key_hex": KEY_HEX, "address": "192.0.2.2", "source": "169.254.0.1"}}]}, f)
    return terminal_config, agent_config


def start_key_agent(directory, agent_config, events):
    """`ikeproxy endpoint` acting for the terminal, once it listens."""
    fifo = os.path.join(directory, "control")
    if os.path.exists(fifo):
        os.unlink(fifo)
    log = os.path.join(directory, "agent.log")
    seen = read(log).count("listening on") if os.path.exists(log) else 0
    agent = start(MID, ["endpoint", "--config", agent_config, "--show-keys", "--control", fifo], log,
                  stdout=open(os.path.join(directory, events), "w"))
    wait_for(lambda: read(log).count("listening on") > seen or agent.poll() is not None, 10)
    return agent


def run(charon, directory):
    load_peer(charon)
    terminal_config, agent_config = write_configurations(directory)
    terminal = start(TERM, ["terminal", "--config", terminal_config], os.path.join(directory, "terminal.log"))
    agent = start_key_agent(directory, agent_config, "agent-events.jsonl")
    capture = start_capture(MID, "ikp-tm1", os.path.join(directory, "terminal-link.pcap"), "udp port 4500")
    delivery_capture = start_capture(MID, "ikp-tm1", os.path.join(directory, "key-delivery.pcap"), "udp dst port 9500 and dst host 192.0.2.2")
    try:
        check(wait_for(lambda: ns(TERM, "ip", "route", "show", "dev", "ikp0", check=False).stdout.strip() != "", 10)
              and terminal.poll() is None, "terminal agent is running")
        check(agent.poll() is None, "key agent (endpoint acting for the terminal) is running")
        sas_delivered_to_terminal(charon, directory)
        time.sleep(0.5)  # the capture's last packets
        delivery_capture.send_signal(signal.SIGINT)
        delivery_capture.wait(timeout=10)
        traffic_through_terminal_esp(charon)
        capture_decrypted_with_reported_keys(directory, capture)
        forged_key_delivery_refused(directory)
        key_delivery_flood(charon, directory, terminal)
        # The CHILD SA in use now: the flood's rekey replaced the first one (its child_sa_rekeyed event names the new SA).
        current = [json.loads(line) for line in open(os.path.join(directory, "agent-events.jsonl"))
                   if '"child_sa_established"' in line or '"child_sa_rekeyed"' in line][-1:]
        rekey_is_make_before_break(charon, directory, current)
        peer_delete_reaches_terminal(charon, directory)
        agent = volume_lifetimes_rekey_under_transfer(charon, directory, agent, agent_config)
    finally:
        for running in (capture, delivery_capture):
            if running.poll() is None:
                running.kill()
        stop(agent)
        stop(terminal)
        for name in ("terminal.log", "agent.log"):
            lines = read(os.path.join(directory, name)).splitlines()
            print(f"  --- last lines of {name}:")
            for line in lines[-6:]:
                print("      " + line)


def sas_delivered_to_terminal(charon, directory):
    initiate(charon, "ch", ike="c")
    check(len(charon.established(timeout=15)) == 1, "strongSwan established IKE and CHILD SA with the terminal's address")
    terminal_log = os.path.join(directory, "terminal.log")
    wait_for(lambda: "installed outbound SA" in read(terminal_log), 10)
    check("installed inbound SA" in read(terminal_log) and "installed outbound SA" in read(terminal_log),
          "the terminal received both SAs over the key-delivery channel")
    check(wait_for(lambda: "acknowledged SA" in read(os.path.join(directory, "agent.log")), 5), "the terminal acknowledged the SAs")


def ping_through(source_ns, source, destination, count):
    result = ns(source_ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", "-I", source, destination, check=False)
    return result.returncode == 0, (result.stdout.strip().splitlines()[-2] if result.stdout.strip() else result.stderr.strip())


def traffic_through_terminal_esp(charon):
    ok, outcome = ping_through(PEER, "10.1.0.1", "10.2.0.2", 5)
    check(ok, f"ping peer -> terminal through ESP ({outcome})")
    ok, outcome = ping_through(TERM, "10.2.0.2", "10.1.0.1", 5)
    check(ok, f"ping terminal -> peer through ESP ({outcome})")
    intact, count, seconds = transfer(TERM, "10.2.0.2", PEER, None, 5001, TRANSFER_SIZE)
    check(intact, f"10 MB TCP peer -> terminal through ESP, intact ({count} octets, {seconds:.1f} s)")
    intact, count, seconds = transfer(PEER, "10.1.0.1", TERM, None, 5002, TRANSFER_SIZE)
    check(intact, f"10 MB TCP terminal -> peer through ESP, intact ({count} octets, {seconds:.1f} s)")
    counters, _ = child_counters(charon)
    check(counters is not None and counters["packets-in"] > 1000 and counters["packets-out"] > 1000,
          f"strongSwan counts the ESP packets in and out: {counters}")
    check(counters is not None and counters["bytes-in"] > TRANSFER_SIZE and counters["bytes-out"] > TRANSFER_SIZE,
          "strongSwan's byte counters cover both 10 MB transfers")


def capture_decrypted_with_reported_keys(directory, capture):
    """tshark, given the keys, decrypts what crossed the terminal's link. Returns the key agent's established events."""
    time.sleep(0.5)  # the capture's last packets: nothing to wait on but tcpdump's buffer
    capture.send_signal(signal.SIGINT)
    capture.wait(timeout=10)
    events = [json.loads(line) for line in open(os.path.join(directory, "agent-events.jsonl")) if line.strip()]
    established = [e for e in events if e["event"] == "child_sa_established"]
    check(len(established) == 1, "the key agent reported the CHILD SA it set into the terminal")
    if established:
        decrypt_check(directory, established[0])
    return established


def forged_key_delivery_refused(directory):
    """A forged key-delivery datagram (right layout, wrong key) and garbage reach the terminal: refused, counted."""
    forged = (b"IKPD" + bytes([1, 1, 0, 0]) + (7).to_bytes(8, "big") + (1).to_bytes(8, "big") + (99).to_bytes(8, "big")
              + int(time.time() * 1000).to_bytes(8, "big") + os.urandom(12) + os.urandom(40))
    for payload in (forged, b"garbage"):
        ns(MID, sys.executable, "-c", "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
           f"s.sendto(bytes.fromhex('{payload.hex()}'), ('192.0.2.2', 9500))")
    terminal_log = os.path.join(directory, "terminal.log")
    check(wait_for(lambda: "rejected a message (forged)" in read(terminal_log) and "rejected a message (malformed)" in read(terminal_log), 5),
          "the terminal refuses forged and malformed key-delivery datagrams on the wire")


def pcap_udp_payloads(path):
    """The UDP payloads of an Ethernet/IPv4 pcap file, in order."""
    data = open(path, "rb").read()
    payloads, offset = [], 24
    while offset + 16 <= len(data):
        length = int.from_bytes(data[offset + 8:offset + 12], "little")
        frame = data[offset + 16:offset + 16 + length]
        offset += 16 + length
        if len(frame) > 42 and frame[12:14] == b"\x08\x00" and frame[23] == 17:
            header = (frame[14] & 0x0f) * 4
            payloads.append(frame[14 + header + 8:])
    return payloads


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FLOODER = """
import os, socket, sys, time
genuine, seconds = bytes.fromhex(sys.argv[1]), float(sys.argv[2])
forged = b"IKPD" + bytes([1, 1, 0, 0]) + (7).to_bytes(8, "big") + (1).to_bytes(8, "big") + (99).to_bytes(8, "big")
kinds = [genuine, b"\\x49" * 60000, b"garbage", forged + os.urandom(60)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
sent, end = [0, 0, 0, 0], time.time() + seconds
while time.time() < end:
    for i, payload in enumerate(kinds):
        for _ in range(16):
            try:
                s.sendto(payload, ("192.0.2.2", 9500)); sent[i] += 1
            except OSError:
                pass
print(" ".join(map(str, sent)), flush=True)
"""


def key_delivery_flood(charon, directory, terminal):
    """A host on the terminal link floods its key-delivery port for 10 s with a replayed genuine ADD_SA, oversized
    (60,000 octets), garbage and forged datagrams while strongSwan rekeys: the SAs change only by the rekey, the
    terminal's log is folded, replays are acknowledged ten a second at most, and the CPU each datagram costs is
    reported."""
    genuine = pcap_udp_payloads(os.path.join(directory, "key-delivery.pcap"))
    if not check(bool(genuine), f"a genuine key-delivery datagram was captured to replay ({len(genuine)} captured)"):
        return
    terminal_log = os.path.join(directory, "terminal.log")
    lines_before = len(read(terminal_log).splitlines())
    cpu_before = cpu_seconds(terminal.pid)
    flooder = subprocess.Popen(["ip", "netns", "exec", MID, sys.executable, "-c", FLOODER, genuine[0].hex(), "10"],
                               stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    installed_before = read(terminal_log).count("installed inbound SA")
    for _ in charon.session.rekey({"child": "ch"}):
        pass
    rekeyed = wait_for(lambda: read(terminal_log).count("installed inbound SA") > installed_before, 10)
    sent = [int(n) for n in flooder.communicate(timeout=30)[0].split()]
    cpu = cpu_seconds(terminal.pid) - cpu_before
    total = sum(sent)
    check(rekeyed, "under the flood, strongSwan's rekey still reaches the terminal over key delivery")
    ok, outcome = ping_through(PEER, "10.1.0.1", "10.2.0.2", 3)
    check(ok, f"after the flood, ESP still flows with the rekeyed SAs ({outcome})")
    text = read(terminal_log)
    new_lines = text.splitlines()[lines_before:]
    installs = [line for line in new_lines if "installed" in line or "deleted" in line]
    check(len(installs) <= 6, f"the SAs changed only by the rekey: {len(installs)} install/delete lines ({installs[:6]})")
    print(f"  flood: {sent[0]} replayed, {sent[1]} oversized, {sent[2]} garbage, {sent[3]} forged datagrams in 10 s; "
          f"terminal CPU {cpu:.2f} s, {cpu / max(1, total) * 1e6:.1f} µs per datagram sent; {len(new_lines)} log lines")
    check(len(new_lines) < 80, f"the terminal's log is folded under the flood: {len(new_lines)} lines for {total} datagrams")
    check(cpu / max(1, total) < 200e-6, f"each flood datagram costs the terminal {cpu / max(1, total) * 1e6:.1f} µs of CPU (bound 200 µs)")


def rekey_is_make_before_break(charon, directory, established):
    """Rekey started by strongSwan: the terminal gets the new SA before the old one is deleted."""
    old_in = established[0]["child"]["spi_in"] if established else ""
    for _ in charon.session.rekey({"child": "ch"}):
        pass
    terminal_log = os.path.join(directory, "terminal.log")
    wait_for(lambda: bool(old_in) and f"deleted inbound SA {old_in}" in read(terminal_log), 10)
    text = read(terminal_log)
    # The install that replaced old_in: the last one before old_in's deletion (a later rekey may follow it).
    deleted_at = text.find(f"deleted inbound SA {old_in}") if old_in else -1
    set_at = text.rfind("installed inbound SA", 0, deleted_at) if deleted_at >= 0 else -1
    set_at = set_at if set_at > text.find(f"installed inbound SA {old_in}") else -1
    check("replacement in place" in read(os.path.join(directory, "agent.log")),
          "after a CHILD SA rekey the old SA was deleted only once the new one was acknowledged")
    check(0 <= set_at < deleted_at, "the terminal installed the new SA before deleting the old one (make-before-break)")
    check(ping_through(PEER, "10.1.0.1", "10.2.0.2", 3)[0], "ping through the rekeyed SA")


def peer_delete_reaches_terminal(charon, directory):
    for _ in charon.session.terminate({"child": "ch", "timeout": 5000}):
        pass
    terminal_log = os.path.join(directory, "terminal.log")
    check(wait_for(lambda: read(terminal_log).count("deleted inbound SA") >= 2 and read(terminal_log).count("deleted outbound SA") >= 2, 10),
          "deleting the CHILD SA removed it from the terminal")


def volume_lifetimes_rekey_under_transfer(charon, directory, agent, agent_config):
    """The key agent starts again giving each SA a soft limit of 2 MB. During a 10 MB transfer the terminal reports
    each soft expiry, the agent rekeys with strongSwan, and the terminal moves to each new SA before the old one
    goes: the transfer arrives intact. Returns the new key agent."""
    for _ in charon.session.terminate({"ike": "c", "timeout": 5000}):
        pass
    stop(agent)
    with open(agent_config) as f:
        config = json.load(f)
    config["connections"][0]["terminal"].update({"rekey_bytes": 2 * 1024 * 1024, "life_bytes": 64 * 1024 * 1024})
    with open(agent_config, "w") as f:
        json.dump(config, f)
    agent = start_key_agent(directory, agent_config, "agent-volume-events.jsonl")
    initiate(charon, "ch", ike="c")
    terminal_log = os.path.join(directory, "terminal.log")
    wait_for(lambda: read(terminal_log).count("installed outbound SA") >= 3, 10)
    intact, count, _ = transfer(PEER, "10.1.0.1", TERM, None, 5003, TRANSFER_SIZE)
    check(intact, f"10 MB TCP terminal -> peer across volume rekeys, intact ({count} octets)")
    events_path = os.path.join(directory, "agent-volume-events.jsonl")
    wait_for(lambda: read(events_path).count('"child_sa_rekeyed"') >= 3, 10)
    rekeys = [e for e in (json.loads(line) for line in open(events_path) if line.strip()) if e["event"] == "child_sa_rekeyed"]
    soft = read(terminal_log).count("soft")
    check(len(rekeys) >= 3, f"the terminal's soft expiries made the agent rekey every 2 MB ({len(rekeys)} rekeys, {soft} soft expiry lines)")
    installed = [c for sa in charon.sas() for c in sa.get("child-sas", {}).values() if c["state"] == b"INSTALLED"]
    check(len(installed) == 1, f"strongSwan holds one CHILD SA after the rekeys ({len(installed)})")
    return agent


def decrypt_check(directory, event):
    child = event["child"]
    keys = child.get("keys", {})
    records = []
    # Peer -> terminal is the terminal's inbound SA; terminal -> peer its outbound SA.
    for src, dst, spi, key in (("192.0.2.1", "192.0.2.2", child["spi_in"], keys.get("encryption_in")),
                               ("192.0.2.2", "192.0.2.1", child["spi_out"], keys.get("encryption_out"))):
        records.append(f'"IPv4","{src}","{dst}","0x{spi}","AES-GCM with 16 octet ICV [RFC4106]","0x{key}","NULL",""')
    args = ["tshark", "-r", os.path.join(directory, "terminal-link.pcap"), "-o", "esp.enable_encryption_decode:TRUE"]
    for record in records:
        args += ["-o", f"uat:esp_sa:{record}"]
    result = subprocess.run(args + ["-Y", "icmp || tcp", "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "_ws.col.Protocol"],
                            capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    inner = [line for line in lines if "10.1.0.1" in line and "10.2.0.2" in line]
    # ip.src lists the outer then the decrypted inner source: "192.0.2.1,10.1.0.1".
    inner_sources = {line.split("\t")[0].split(",")[-1] for line in inner}
    check(len(inner) >= 10 and inner_sources == {"10.1.0.1", "10.2.0.2"},
          f"tshark decrypts the captured ESP with the keys: {len(inner)} inner ICMP/TCP packets seen both ways"
          + ("" if inner else f" (tshark: {result.stderr.strip()[:300]})"))


if __name__ == "__main__":
    sys.exit(main())
