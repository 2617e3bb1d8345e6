#!/usr/bin/env python3
"""`ikeproxy daemon` with two terminal-side ports and no switch: each terminal on a port of its own.

Four network namespaces:

  ikp-m-peer   strongSwan (charon, kernel-libipsec: ESP always in UDP 4500), 192.0.2.1
  ikp-m-proxy  `ikeproxy daemon`: Internet port ikp-mx0, terminal ports ikp-mx1 and ikp-mx2, no address
  ikp-m-t1     terminal 1, `ikeproxy terminal`, 192.0.2.2, cabled to ikp-mx1
  ikp-m-t2     terminal 2, `ikeproxy terminal`, 192.0.2.3, cabled to ikp-mx2

Checks: strongSwan initiates to each terminal and the proxy answers in its name, the key-delivery
datagrams and IKE replies leaving by the right port; ping goes through ESP to terminal 1, whose policy
protects everything; terminal 2's policy bypasses TCP to the peer's port 7300, then protects TCP (profile
"peer", AES-GCM) and ICMP echo, types 0 to 8 (profile "echo", ChaCha20-Poly1305), so the proxy narrows
strongSwan's host-to-host CHILD SA to TCP without port 7300, and the terminal's first ping adds profile
echo's CHILD SA, ICMP echo only, to the same IKE SA: its pings go through ESP, while its ICMP timestamp
requests and its TCP segments to port 7300 leave in the clear (a capture at the peer sees them); terminal 2
opens a TCP flow itself and the proxy initiates with the TCP selectors, which strongSwan narrows to; the two terminals reach each other directly (ARP
flooded, their frames switched between the ports unjudged, never out of the Internet port); `ikeproxy
terminals` lists both; the file's policy edited to bypass terminal 1 and read again on SIGHUP has its SA
deleted at once; no port holds an address; the daemon stops cleanly.

Needs root, iproute2, strongSwan, ping, tcpdump and the `vici` module; it fails loudly otherwise.
"""
import json, os, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import BINARY, Lab, addresses_up, ns, read, veth, wait_for  # noqa: E402
from lib.lab import agents_ready, daemon_file, ipv4_terminal_link, peer_deletes_child, peer_profile, terminal_configuration  # noqa: E402
from lib.peer import PSK, initiate, installed_child, normalized_ts, peer_sas, run_with_charon, wait_child  # noqa: E402
from lib.processes import daemon_status, launch_in_lab, stop_all  # noqa: E402
from lib.report import check  # noqa: E402
from lib.traffic import ping, start_capture, transfer  # noqa: E402

PEER, PROXY = "ikp-m-peer", "ikp-m-proxy"
PEER4 = "192.0.2.1"
# Terminal 2's TCP to this port of the peer is bypassed, before its rule protecting TCP.
CLEAR_PORT = 7300
TERMINALS = [
    {"name": "t1", "ns": "ikp-m-t1", "dev": "ikp-mt1", "port": "ikp-mx1", "mac": "02:00:00:00:e0:02", "v4": "192.0.2.2",
     "id": 1, "key": "31" * 32},
    {"name": "t2", "ns": "ikp-m-t2", "dev": "ikp-mt2", "port": "ikp-mx2", "mac": "02:00:00:00:e0:03", "v4": "192.0.2.3",
     "id": 2, "key": "32" * 32},
]
NAMESPACES = [PEER, PROXY] + [t["ns"] for t in TERMINALS]
PORTS = ["ikp-mx0"] + [t["port"] for t in TERMINALS]


class Topology(Lab):
    namespaces = NAMESPACES

    def build(self):
        veth(PEER, "ikp-mp0", PROXY, "ikp-mx0")
        addresses_up(PEER, "ikp-mp0", PEER4 + "/24")
        for t in TERMINALS:
            veth(PROXY, t["port"], t["ns"], t["dev"])
            ipv4_terminal_link(t)
        # The proxy's ports stay down and bare: the daemon brings them up without addresses.
        # The proxy's ports stay down and bare: the daemon brings them up without addresses.


def daemon_configuration(control):
    profiles = [peer_profile(force_encapsulation=True),
                # Terminal 2's ICMP echo has a profile of its own: its CHILD SA, ChaCha20-Poly1305, on the same IKE SA.
                peer_profile(name="echo", esp_proposals=["chacha20poly1305"], force_encapsulation=True)]
    # Terminal 1: everything with the peer protected; terminal 2: TCP but port 7300, and ICMP echo (the rest
    # of its ICMP passes in the clear).
    rules = [
        {"source": TERMINALS[0]["v4"] + "/32", "destination": PEER4 + "/32", "action": "protect", "profile": "peer"},
        {"source": TERMINALS[1]["v4"] + "/32", "destination": PEER4 + "/32", "protocol": "tcp", "destination_ports": str(CLEAR_PORT),
         "action": "bypass"},
        {"source": TERMINALS[1]["v4"] + "/32", "destination": PEER4 + "/32", "protocol": "tcp", "action": "protect", "profile": "peer"},
        {"source": TERMINALS[1]["v4"] + "/32", "destination": PEER4 + "/32", "protocol": "icmp", "source_ports": "0-8",
         "action": "protect", "profile": "echo"}]
    return daemon_file("ikp-mx0", [t["port"] for t in TERMINALS], control, ["192.0.2.0/28"], TERMINALS, profiles, rules,
                       settings={"retransmit_timeout": 1.0, "retransmit_limit": 3})


def load_peer(charon):
    for t in TERMINALS:
        name = f"{t['name']}v4"
        charon.session.load_conn({name: {
            "version": "2", "local_addrs": [PEER4], "remote_addrs": [t["v4"]],
            "proposals": ["aes256gcm16-prfsha256-x25519"], "encap": "yes", "rekey_time": "0", "dpd_delay": "0",
            "local-1": {"auth": "psk", "id": PEER4}, "remote-1": {"auth": "psk", "id": t["v4"]},
            "children": {name: {"esp_proposals": ["aes256gcm16", "chacha20poly1305"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                "local_ts": [PEER4], "remote_ts": [t["v4"]]}}}})
    charon.session.load_shared({"id": "psk-all", "type": "IKE", "data": PSK, "owners": [PEER4] + [t["v4"] for t in TERMINALS]})


def icmp_seen_at_peer(directory, hosts, action, match="icmp"):
    """Runs `action` while capturing on the peer's link; how many plaintext packets of all `hosts` that `match`
    (a tcpdump filter, ICMP by default) crossed it (-1 when the capture did not run)."""
    pcap = os.path.join(directory, f"{match.split()[0]}-" + "-".join(hosts) + ".pcap")
    capture = start_capture(PEER, "ikp-mp0", pcap, match + "".join(f" and host {host}" for host in hosts))
    result = action()
    time.sleep(0.5)
    capture.terminate()
    capture.wait(timeout=10)
    if not os.path.exists(pcap):
        return result, -1  # no capture: every check on it fails
    return result, len(subprocess.run(["tcpdump", "-r", pcap], capture_output=True, text=True).stdout.strip().splitlines())


def selectors(child, key):
    return sorted(normalized_ts(ts) for ts in child.get(key, []))


def terminal2_tcp_selectors():
    """What terminal 2's rules for profile "peer" give, as strongSwan lists it: (its local, its remote)."""
    return sorted([f"{PEER4}/32[tcp/0-{CLEAR_PORT - 1}]", f"{PEER4}/32[tcp/{CLEAR_PORT + 1}-65535]"]), [f"{TERMINALS[1]['v4']}/32[tcp]"]


def terminal2_echo_selectors():
    """What terminal 2's rule for profile "echo" gives, as strongSwan lists it."""
    return [f"{PEER4}/32[icmp/0-8(255)]"], [f"{TERMINALS[1]['v4']}/32[icmp/0-8(255)]"]


def children_of(charon, name):
    """strongSwan's installed CHILD SAs of a connection, on its established IKE SAs: [(IKE SA, CHILD SA)]."""
    return [(sa, child) for sa in peer_sas(charon).get(name, []) if sa["state"] == b"ESTABLISHED"
            for child in sa.get("child-sas", {}).values() if child["state"] == b"INSTALLED"]


def send_from(namespace, code):
    """Runs Python `code` in a namespace (socket imported); failures are the checks' business, not an exception here."""
    return subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", "import socket, struct\n" + code],
                          capture_output=True, text=True, timeout=20)


def icmp_timestamp_requests(source, destination, count=3):
    """ICMP timestamp requests (type 13, outside the echo types the policy protects) from a raw socket."""
    body = "struct.pack('!BBHHHIII', 13, 0, 0, 0x1234, n, 0, 0, 0)"
    return (f"s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.bind(('{source}', 0))\n"
            f"def checksum(b):\n    t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); return ~(t + (t >> 16)) & 0xffff\n"
            f"for n in range({count}):\n    m = {body}\n    m = m[:2] + struct.pack('!H', checksum(m)) + m[4:]\n    s.sendto(m, ('{destination}', 0))\n")


def run(charon, directory):
    load_peer(charon)
    control, config_path, log, daemon, agents = launch_in_lab(directory, PROXY, daemon_configuration, TERMINALS, terminal_configuration)
    try:
        check(wait_for(lambda: "switched between them by learnt MAC address" in read(log), 10) and daemon.poll() is None,
              "the daemon bridges the Internet port and two terminal ports")
        agents_ready(TERMINALS)
        terminal_1_keyed_out_of_its_port(charon, directory)
        terminal_2_profiles_narrowed_and_added(charon, directory)
        children = [installed_child(charon, f"{t['name']}v4")[1] for t in TERMINALS]
        check(all(children) and children[0]["spi-in"] != children[1]["spi-in"], "strongSwan holds a separate CHILD SA per terminal")
        terminal_2_flow_narrowed_by_peer(charon, directory)
        terminals_switched_inside_daemon(control, directory)
        edited_policy_taken_on_sighup(charon, daemon, control, config_path, log)
    finally:
        stop_all(daemon, agents, log, tail=4)


def peer_initiates(charon, directory, t):
    """strongSwan initiates to terminal `t`; returns its CHILD SA as charon lists it."""
    label = f"terminal {t['id']} on {t['port']}"
    result = initiate(charon, f"{t['name']}v4")
    _, child = wait_child(charon, f"{t['name']}v4")
    check(child is not None, f"{label}: strongSwan initiated to {t['v4']} and the proxy answered in its name ({result})")
    check(wait_for(lambda: "installed outbound SA" in read(os.path.join(directory, f"{t['name']}.log")), 10),
          f"{label}: the SA reached the terminal over key delivery, out of its own port")
    return child


def terminal_1_keyed_out_of_its_port(charon, directory):
    t = TERMINALS[0]
    peer_initiates(charon, directory, t)
    (ok, outcome), plain = icmp_seen_at_peer(directory, [t["v4"]], lambda: ping(PEER, PEER4, t["v4"]))
    check(ok and plain == 0, f"terminal {t['id']} on {t['port']}: ping peer -> terminal through ESP ({outcome}; {plain} plaintext ICMP on the Internet side)")


def terminal_2_profiles_narrowed_and_added(charon, directory):
    t = TERMINALS[1]
    label = f"terminal {t['id']} on {t['port']}"
    child = peer_initiates(charon, directory, t)
    # TCP but port 7300 is profile "peer": the proxy narrowed strongSwan's host-to-host proposal to it, the
    # bypassed port cut out of the peer's side (RFC 4301 decorrelation); the first profile's CHILD SA
    # is the one IKE_AUTH makes.
    ts = (selectors(child, "local-ts"), selectors(child, "remote-ts")) if child else None
    check(ts == terminal2_tcp_selectors(),
          f"{label}: the proxy narrowed strongSwan's host-to-host CHILD SA to the policy's TCP without port {CLEAR_PORT} ({ts})")
    # ICMP echo is profile "echo": the terminal's first ping is a start request, and the proxy adds that
    # profile's CHILD SA to the same IKE SA with CREATE_CHILD_SA, ChaCha20-Poly1305, the ICMP types carried
    # as type and code (RFC 7296 section 3.13.1).
    (ok, outcome), plain = icmp_seen_at_peer(directory, [t["v4"]], lambda: ping(t["ns"], t["v4"], PEER4))
    check(ok and plain == 0, f"{label}: the terminal's pings go through ESP and come back ({outcome}; {plain} plaintext ICMP)")
    pairs = children_of(charon, f"{t['name']}v4")
    by_cipher = {c.get("encr-alg", b"").decode(): (s, c) for s, c in pairs}
    echo = by_cipher.get("CHACHA20_POLY1305")
    check(len(pairs) == 2 and len({s["uniqueid"] for s, _ in pairs}) == 1 and echo is not None
          and (selectors(echo[1], "local-ts"), selectors(echo[1], "remote-ts")) == terminal2_echo_selectors()
          and "AES_GCM_16" in by_cipher,
          f"{label}: one IKE SA, two CHILD SAs: profile peer's (AES-GCM, TCP) and profile echo's (ChaCha20-Poly1305, "
          f"ICMP echo) ({sorted((k, selectors(c, 'local-ts')) for k, (_, c) in by_cipher.items())})")
    # Timestamp requests are not echo: outside the SA, the terminal sends them as they are and the policy
    # passes them. (What comes back is strongSwan's business: kernel-libipsec routes by address and
    # protocol, so its answers go into its tunnel device.)
    _, plain = icmp_seen_at_peer(directory, [t["v4"]], lambda: send_from(t["ns"], icmp_timestamp_requests(t["v4"], PEER4)),
                                 match="icmp[icmptype] == 13")
    check(plain >= 3, f"{label}: its ICMP timestamp requests, outside the SA, reach the peer's link in the clear ({plain})")
    _, plain = icmp_seen_at_peer(directory, [t["v4"]], lambda: send_from(
        t["ns"], f"try: socket.create_connection(('{PEER4}', {CLEAR_PORT}), timeout=2, source_address=('{t['v4']}', 0))\nexcept OSError: pass"),
        match=f"tcp dst port {CLEAR_PORT}")
    check(plain >= 1, f"{label}: its TCP to port {CLEAR_PORT}, cut out of the SA, reaches the peer's link in the clear ({plain} segments)")


def terminal_2_flow_narrowed_by_peer(charon, directory):
    """Terminal 2 opens a flow itself: the proxy initiates in its name."""
    peer_deletes_child(charon, "t2v4", os.path.join(directory, "t2.log"))
    ok, _, seconds = transfer(PEER, PEER4, TERMINALS[1]["ns"], TERMINALS[1]["v4"], 7201, 1024 * 1024, timeout=30)
    sa, child = installed_child(charon, "t2v4")
    check(ok and child is not None and sa.get("initiator", b"no") != b"yes",
          f"terminal 2 opens a TCP flow, the proxy initiates IKE in its name, 1 MB passes through ESP ({seconds:.1f} s)")
    ts = (selectors(child, "local-ts"), selectors(child, "remote-ts")) if child else None
    check(ts == terminal2_tcp_selectors(),
          f"the proxy asked for its TCP profile's selectors and strongSwan, configured host to host, narrowed to them ({ts})")


def terminals_switched_inside_daemon(control, directory):
    """The terminals talk to each other: the switch inside the daemon carries it, the policy is not asked."""
    before = daemon_status(control)
    (ok, outcome), leaked = icmp_seen_at_peer(directory, [TERMINALS[0]["v4"], TERMINALS[1]["v4"]],
                                              lambda: ping(TERMINALS[0]["ns"], TERMINALS[0]["v4"], TERMINALS[1]["v4"]))
    after = daemon_status(control)
    counter = "frames_switched_between_terminal_ports"
    switched = after["data_path"].get(counter, 0) - before["data_path"].get(counter, 0)
    check(ok and switched >= 10, f"terminal 1 pings terminal 2 across the proxy's ports ({outcome}; {switched} frames switched)")
    check(leaked == 0, f"and none of it left by the Internet port (capture at the peer: {leaked} ICMP packets between them)")
    check(after["interfaces"].get("terminal_ports") == [t["port"] for t in TERMINALS], f"status lists the terminal ports {after['interfaces']}")
    listing = subprocess.run(["ip", "netns", "exec", PROXY, BINARY, "terminals", "--control", control, "--json"],
                             capture_output=True, text=True, timeout=20)
    rows = json.loads(listing.stdout).get("terminals", []) if listing.returncode == 0 else []
    registered = sorted((r["mac"], r.get("port")) for r in rows if r["status"] == "registered" and r["mac"])
    check(registered == sorted((t["mac"], t["port"]) for t in TERMINALS),
          f"`ikeproxy terminals` lists both terminals as registered, each on its port ({registered or listing.stderr.strip()})")


def edited_policy_taken_on_sighup(charon, daemon, control, config_path, log):
    """The file's policy edited and the daemon told with SIGHUP: terminal 1 bypassed from now on, its SA goes at once."""
    check(installed_child(charon, "t1v4")[1] is not None, "terminal 1's SA with strongSwan is up")
    configuration = daemon_configuration(control)
    configuration["policy"]["rules"].insert(0, {"source": TERMINALS[0]["v4"] + "/32", "destination": PEER4 + "/32", "action": "bypass"})
    with open(config_path, "w") as f:
        json.dump(configuration, f, indent=1)
    daemon.send_signal(signal.SIGHUP)
    check(wait_for(lambda: "reload: policy: 5 rule(s) from the file, default bypass; the SAs follow" in read(log), 10)
          and wait_for(lambda: installed_child(charon, "t1v4")[1] is None, 10),
          "SIGHUP takes the edited file's policy: terminal 1, bypassed now, has its SA deleted at once, at strongSwan too")
    bare = [ns(PROXY, "ip", "-o", "addr", "show", "dev", dev).stdout.strip() for dev in PORTS]
    check(all(line == "" for line in bare), f"`ip addr` shows no address on the three bridged ports {bare}")


def main():
    return run_with_charon("daemon ports test", "ikp-ports-", Topology, run, peer_namespace=PEER, tools=("ping", "tcpdump"), readable=True)


if __name__ == "__main__":
    sys.exit(main())
