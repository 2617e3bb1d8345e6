#!/usr/bin/env python3
"""End to end: strongSwan -- `ikeproxy daemon` (a two-port bridge with no IP address) -- terminals.

Six network namespaces:

  ikp-d-peer   strongSwan (charon, kernel-libipsec: ESP always in UDP 4500): 192.0.2.1 and 2001:db8::1;
               also a host for bypass flows (.10 / ::10) and one for discarded flows (.11 / ::11)
  ikp-d-proxy  `ikeproxy daemon` bridging ikp-dx0 (Internet side) and ikp-dx1 (terminal side), no address
  ikp-d-lan    a switch (Linux bridge) joining the proxy's terminal port and the three hosts below
  ikp-d-t1     terminal 1, `ikeproxy terminal`, 192.0.2.2 / 2001:db8::2, enrolled by its MAC address
  ikp-d-t2     terminal 2, `ikeproxy terminal`, 192.0.2.3 / 2001:db8::3, enrolled by its addresses
  ikp-d-t3     a stranger, 192.0.2.50 / 2001:db8::50, outside the terminal prefixes: never gets an SA
  ikp-d-t4     terminal 4, `ikeproxy terminal`, IPv6 only (2001:db8::4): key delivery over IPv6 from fe80::1

For IPv4 and then IPv6: strongSwan initiates to each terminal's address and the proxy answers in its
name (a separate CHILD SA per terminal), ping and a 10 MB TCP transfer go through ESP both ways; then a
terminal opens a flow itself and the proxy initiates; a bypass flow passes in the clear, a discard flow
is dropped, the stranger gets no SA. The IPv6-only terminal gets its keys over IPv6 (the proxy answers
neighbour solicitations for its key-delivery address fe80::1) in both flows. A capture of the Internet-side link shows ESP and bypass traffic
but no plaintext of a protected flow. `ip addr` shows no address on the bridged ports, `ikeproxy
terminals` lists what discovery learnt, the daemon refuses a missing interface, a port holding an
address and an unprivileged user with clear errors, and stops cleanly on SIGTERM.

Needs root, iproute2, strongSwan, tcpdump, tshark and the `vici` module; it fails loudly otherwise.
"""
import json, os, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import BINARY, ROOT, ns, read, wait_for  # noqa: E402
from lib.lab import AGENTS, BYPASS4, BYPASS6, DISCARD4, DISCARD6, Daemon, JUMBO_MTU, PEER, PEER4, PEER6, PROXY, STRANGER, TERMINALS, Topology, V6ONLY, load_peer_connections, peer_deletes_child, terminal_configuration  # noqa: E402
from lib.peer import PSK, initiate, installed_child, run_with_charon, terminate, wait_child  # noqa: E402
from lib.processes import start, stop  # noqa: E402
from lib.report import check  # noqa: E402
from lib.traffic import ping, start_capture, tcp_connect_fails, transfer  # noqa: E402


MARKER = b"ikp-e2e-frame-marker"


def main():
    return run_with_charon("daemon end-to-end test", "ikp-daemon-", Topology, run, peer_namespace=PEER, tools=("tshark", "tcpdump", "ping", "setpriv"),
                                readable=True)


def refusals(directory, config_path):
    """`--check` of a good and a bad file; clear errors at start: a missing interface, a port that holds an
    address, no privileges."""
    result = ns(PROXY, BINARY, "daemon", "--check", "--config", config_path, check=False)
    check(result.returncode == 0 and f"{config_path}: valid" in result.stdout and "policy: " in result.stdout and PSK not in result.stdout,
          f"`ikeproxy daemon --check` says the file is valid and what it would run with, no secret ({len(result.stdout.splitlines())} lines)")
    with open(config_path) as f:
        config = json.load(f)
    broken = dict(config, policy={"rules": [{"source": "192.0.2.0/33", "destination": "0.0.0.0/0", "action": "protect", "profile": "peer"}]})
    path = os.path.join(directory, "broken.json")
    with open(path, "w") as f:
        json.dump(broken, f)
    result = ns(PROXY, BINARY, "daemon", "--check", "--config", path, check=False)
    check(result.returncode == 2 and "not valid" in result.stderr and "policy.rules[0].source" in result.stderr,
          f"and of a broken one names the key: {result.stderr.strip()[-160:]}")
    config["control_socket"] = os.path.join(directory, "refused.sock")

    def start_with(name, interfaces):
        """The daemon started with `config` on other ports: its exit status and standard error."""
        path = os.path.join(directory, name + ".json")
        with open(path, "w") as f:
            json.dump(dict(config, interfaces=interfaces), f)
        return ns(PROXY, BINARY, "daemon", "--config", path, check=False)

    result = start_with("missing", {"internet": "ikp-nosuch", "terminal": "ikp-dx1"})
    check(result.returncode == 2 and "interface 'ikp-nosuch' does not exist" in result.stderr,
          f"a missing interface is refused with a clear error: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    ns(PROXY, "ip", "link", "add", "ikp-dz0", "type", "veth", "peer", "name", "ikp-dz1")
    ns(PROXY, "ip", "addr", "add", "198.18.0.1/24", "dev", "ikp-dz0")
    held = dict(config, interfaces={"internet": "ikp-dz0", "terminal": "ikp-dz1"})
    result = start_with("held", held["interfaces"])
    check(result.returncode == 2 and "holds the address(es) 198.18.0.1" in result.stderr,
          f"a port holding an IP address is refused: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    ns(PROXY, "ip", "addr", "flush", "dev", "ikp-dz0")
    path = os.path.join(directory, "unprivileged.json")
    with open(path, "w") as f:
        json.dump(dict(held, control_socket="/tmp/ikp-unprivileged.sock"), f)
    os.chmod(path, 0o644)
    result = ns(PROXY, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BINARY, "daemon", "--config", path, check=False)
    check(result.returncode == 2 and "needs root or CAP_NET_RAW" in result.stderr,
          f"an unprivileged start is refused: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    unit_capabilities(held, directory)
    ns(PROXY, "ip", "link", "del", "ikp-dz0", check=False)


def unit_capabilities(config, directory):
    """The systemd unit of docs/examples runs the daemon as an unprivileged user with only its
    AmbientCapabilities: started that way (user nobody, those capabilities and no others), it bridges and
    stops cleanly."""
    unit = open(os.path.join(ROOT, "docs", "examples", "ikeproxy-daemon.service")).read()
    lines = [l for l in unit.splitlines() if l.startswith("AmbientCapabilities=")]
    caps = [c.lower().removeprefix("cap_") for c in lines[0].split("=", 1)[1].split()] if lines else []
    path = os.path.join(directory, "capabilities.json")
    with open(path, "w") as f:
        json.dump(dict(config, control_socket="/tmp/ikp-capabilities.sock"), f)
    os.chmod(path, 0o644)
    log_path = os.path.join(directory, "capabilities.log")
    wanted = ",".join("+" + c for c in caps)
    process = subprocess.Popen(["ip", "netns", "exec", PROXY, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                f"--inh-caps=-all,{wanted}", f"--ambient-caps={wanted}", f"--bounding-set=-all,{wanted}",
                                BINARY, "daemon", "--config", path], stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    bridging = wait_for(lambda: "bridging ikp-dz0" in read(log_path) or process.poll() is not None, 10)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        code = None
    check(caps == ["net_raw", "net_admin"] and bridging and "bridging ikp-dz0" in read(log_path) and code == 0,
          f"as user nobody with only the unit file's capabilities {caps}, the daemon bridges and stops cleanly "
          f"(exit {code}; {read(log_path).strip().splitlines()[-1][:160] if read(log_path).strip() else 'no output'})")


def restarted_without_store(charon, daemon, directory):
    """The daemon keeps no store here: killed with SIGKILL and started again, it has forgotten every SA while
    terminal 2 still holds its own. Terminal 2's ESP on that SA is dropped and the proxy tells it to delete the
    SA, so its next packets start a new negotiation: its traffic resumes instead of vanishing for the SA's
    lifetime. The IPv6-only terminal sends nothing meanwhile; the SAs its periodic STATUS lists are the ones the
    proxy forgot, and it is told to delete them too."""
    t2, t4 = TERMINALS[1], V6ONLY
    t4_log = os.path.join(directory, f"{t4['name']}.log")
    if installed_child(charon, "t4v6")[1] is None:
        initiate(charon, "t4v6")
    t4_held = wait_child(charon, "t4v6", timeout=10)[1]
    ok, summary = ping(t2["ns"], t2["v4"], PEER4, count=5)
    before = installed_child(charon, "t2v4")[1]
    check(ok and before is not None and t4_held is not None,
          f"terminal 2 talks to the peer through its SA before the restart ({summary}); terminal 4 holds one too")
    t4_deleted_before = read(t4_log).count(f"deleted inbound SA {t4_held['spi-out'].decode()}")
    daemon.process.kill()
    daemon.process.wait(timeout=10)
    daemon.process = start(PROXY, ["daemon", "--config", daemon.config, "--show-keys"], daemon.log, stdout=open(daemon.events, "a"))
    wait_for(lambda: "bridging" in read(daemon.log).rsplit("stopping;", 1)[-1] and os.path.exists(daemon.control), 10)
    time.sleep(1)
    ok, summary = ping(t2["ns"], t2["v4"], PEER4, count=10)
    after = installed_child(charon, "t2v4")[1]
    told = daemon.counter("stale_sa_deleted_in_terminal")
    check(ok and told >= 1 and after is not None and before is not None and after["spi-in"] != before["spi-in"],
          f"kill -9 and a restart without a store: terminal 2's ESP on the forgotten SA makes the proxy tell it to delete it "
          f"({told} told), its next packets negotiate a new SA, and its pings get through again ({summary})")
    spi = t4_held["spi-out"].decode()
    deleted = wait_for(lambda: read(t4_log).count(f"deleted inbound SA {spi}") > t4_deleted_before, 10)
    said = f"terminal {t4['id']} holds inbound SA {spi}, which the proxy does not" in read(daemon.log).rsplit("stopping;", 1)[-1]
    unknown = daemon.counter("status_of_unknown_sa")
    check(deleted and said and unknown >= 1,
          f"terminal 4, silent, lists in its STATUS the SA {spi} the restarted proxy forgot ({unknown} such reports); "
          f"the proxy has it deleted in the terminal ({'deleted' if deleted else 'still there'})")


def lease_moves(charon, daemon):
    """A DHCP server leases terminal 1 (enrolled by MAC) another IPv4 address: the proxy acts for it there from
    now on, and lets the old address go with the SAs it had there (strongSwan's IKE SA with the old address is
    deleted)."""
    t1 = TERMINALS[0]
    e2e_new = "192.0.2.12"
    if installed_child(charon, "t1v4")[1] is None:
        initiate(charon, "t1v4")
    had = wait_child(charon, "t1v4", timeout=10)[1] is not None
    peer_mac = ns(PEER, "cat", "/sys/class/net/ikp-dp0/address").stdout.strip()
    send_frames(PEER, "ikp-dp0", [b"\xff" * 6 + mac_bytes(peer_mac) + b"\x08\x00"
                                  + ipv4_udp(BYPASS4, "255.255.255.255", 67, 68, dhcp_ack(t1["mac"], e2e_new, BYPASS4))])
    said = wait_for(lambda: f"terminal 1: {t1['v4']} is no longer its address (DHCP lease)" in read(daemon.log), 5)
    gone = wait_for(lambda: installed_child(charon, "t1v4")[1] is None, 10)
    rows = json.loads(ns(PROXY, BINARY, "terminals", "--control", daemon.control, "--json", check=False).stdout or "{}").get("terminals", [])
    row = next((r for r in rows if r["mac"] == t1["mac"]), {})
    # The terminal's namespace keeps its old address (no DHCP client there), so its agent's next key-delivery
    # acknowledgement from it may make discovery learn it again: the old address is judged by the log line and the
    # SA deleted at strongSwan, not by its absence from the listing.
    check(had and said and gone and e2e_new in row.get("ipv4", []) and row.get("status") == "registered",
          f"a DHCP lease moves terminal 1 (enrolled by MAC) to {e2e_new}: registered there ({row.get('ipv4')}), its old address let go "
          f"with its SA at strongSwan ({'deleted' if gone else 'still there'})")


def mac_bytes(text):
    return bytes(int(part, 16) for part in text.split(":"))


def ipv4_udp(source, destination, source_port, destination_port, payload):
    import struct
    def checksum(data):
        if len(data) % 2:
            data += b"\0"
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while total >> 16:
            total = (total & 0xffff) + (total >> 16)
        return ~total & 0xffff
    src, dst = socket.inet_aton(source), socket.inet_aton(destination)
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload
    udp_sum = checksum(src + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + udp


def dhcp_ack(client_mac, offered, server):
    import struct
    body = struct.pack("!BBBBIHH4s4s4s4s", 2, 1, 6, 0, 0x1234, 0, 0x8000, b"\0" * 4, socket.inet_aton(offered),
                       socket.inet_aton(server), b"\0" * 4)
    body += mac_bytes(client_mac) + b"\0" * 10 + b"\0" * 192 + bytes([99, 130, 83, 99])
    body += bytes([53, 1, 5, 54, 4]) + socket.inet_aton(server) + bytes([51, 4, 0, 0, 14, 16, 255])
    return body


def send_frames(namespace, device, frames):
    code = ("import socket, sys\n"
            f"s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(({device!r}, 0))\n"
            f"for frame in {[f.hex() for f in frames]!r}:\n"
            "    s.send(bytes.fromhex(frame))\n")
    ns(namespace, sys.executable, "-c", code)


def frames_cross_unchanged(directory):
    """Raw frames the policy allows cross the bridge unchanged both ways: 802.1Q-tagged, jumbo, DHCP."""
    t1 = TERMINALS[0]
    peer_mac = ns(PEER, "cat", "/sys/class/net/ikp-dp0/address").stdout.strip()
    def udp_frame(dst_mac, src_mac, src, dst, size, vlan=None):
        payload = MARKER + bytes(range(256)) * (size // 256 + 1)
        packet = ipv4_udp(src, dst, 7777, 7777, payload[:max(len(MARKER), size - 14 - 28 - (4 if vlan else 0))])
        tag = bytes([0x81, 0x00, 0, vlan]) if vlan else b""
        return mac_bytes(dst_mac) + mac_bytes(src_mac) + tag + b"\x08\x00" + packet
    inbound = [udp_frame(t1["mac"], peer_mac, BYPASS4, t1["v4"], 200, vlan=7),
               udp_frame(t1["mac"], peer_mac, BYPASS4, t1["v4"], JUMBO_MTU + 14),
               b"\xff" * 6 + mac_bytes(peer_mac) + b"\x08\x00"
               + ipv4_udp(BYPASS4, "255.255.255.255", 67, 68, dhcp_ack("02:00:00:00:d0:99", "192.0.2.9", BYPASS4))]
    outbound = [udp_frame(peer_mac, t1["mac"], t1["v4"], BYPASS4, 200, vlan=7),
                udp_frame(peer_mac, t1["mac"], t1["v4"], BYPASS4, JUMBO_MTU + 14)]
    for label, (sender_ns, sender_dev, receiver_ns, receiver_dev, frames) in {
            "Internet -> terminal": (PEER, "ikp-dp0", t1["ns"], t1["dev"], inbound),
            "terminal -> Internet": (t1["ns"], t1["dev"], PEER, "ikp-dp0", outbound)}.items():
        pcap = os.path.join(directory, f"raw-{receiver_dev}.pcap")
        capture = start_capture(receiver_ns, receiver_dev, pcap)
        send_frames(sender_ns, sender_dev, frames)
        time.sleep(1.0)
        capture.send_signal(signal.SIGINT)
        capture.wait(timeout=10)
        seen = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "frame.len", "-e", "vlan.id", "-e", "dhcp.hw.mac_addr",
                               "-Y", "udp.port == 7777 || dhcp"], capture_output=True, text=True).stdout.splitlines()
        rows = [line.split("\t") for line in seen if line.strip()]
        tagged = any(r[1] == "7" and r[0] == str(len(frames[0])) for r in rows)
        jumbo = any(r[0] == str(len(frames[1])) and r[1] == "" for r in rows)
        check(tagged, f"{label}: an 802.1Q-tagged frame (VLAN 7) crosses with its tag ({rows})")
        check(jumbo, f"{label}: a {len(frames[1])}-octet jumbo frame crosses whole")
        if len(frames) > 2:
            check(any(r[2] == "02:00:00:00:d0:99" for r in rows), f"{label}: a DHCP acknowledgement crosses")


def bridged_ports_bare():
    lines = [ns(PROXY, "ip", "-o", "addr", "show", "dev", dev).stdout.strip() for dev in ("ikp-dx0", "ikp-dx1")]
    return all(line == "" for line in lines), lines


def start_agents(directory):
    agents = {}
    for t in AGENTS:
        path = os.path.join(directory, f"{t['name']}.json")
        with open(path, "w") as f:
            json.dump(terminal_configuration(t), f)
        agents[t["name"]] = start(t["ns"], ["terminal", "--config", path], os.path.join(directory, f"{t['name']}.log"))
    checked = ns(TERMINALS[0]["ns"], BINARY, "terminal", "--check", "--config", os.path.join(directory, "t1.json"), check=False)
    check(checked.returncode == 0 and "terminal 1: key delivery on" in checked.stdout and TERMINALS[0]["key"] not in checked.stdout,
          f"`ikeproxy terminal --check` says what the agent would run with, not its key ({len(checked.stdout.splitlines())} lines)")
    return agents


def run(charon, directory):
    load_peer_connections(charon)
    daemon = Daemon(directory)
    refusals(directory, daemon.config)
    agents = start_agents(directory)
    internet_pcap = os.path.join(directory, "internet-link.pcap")
    capture = start_capture(PEER, "ikp-dp0", internet_pcap)
    try:
        check(wait_for(lambda: os.path.exists(daemon.control), 10) and daemon.process.poll() is None, "ikeproxy daemon is running")
        check(all(a.poll() is None for a in agents.values()), "the three terminal agents are running")
        bare, lines = bridged_ports_bare()
        check(bare, f"`ip addr` in the proxy namespace shows no address on the bridged ports {lines}")
        # The stranger speaks, so discovery sees it.
        ping(STRANGER["ns"], STRANGER["v4"], BYPASS4, count=1)
        ping(STRANGER["ns"], STRANGER["v6"], BYPASS6, count=1)
        for v6 in (False, True):
            family("IPv6" if v6 else "IPv4", v6, charon, daemon, directory)
        ipv6_only_terminal(charon, daemon, directory)
        frames_cross_unchanged(directory)
        key_delivery_from_internet_dropped(daemon)
        discovery_listed(daemon)
        time.sleep(0.5)  # the capture's last packets: nothing to wait on but tcpdump's buffer
        capture.send_signal(signal.SIGINT)
        capture.wait(timeout=10)
        capture_checks(internet_pcap)
        bare, lines = bridged_ports_bare()
        check(bare, "still no address on the bridged ports after the run")
        lease_moves(charon, daemon)
        restarted_without_store(charon, daemon, directory)
        dead_peer_given_up(charon, daemon, directory)
    finally:
        if capture.poll() is None:
            capture.kill()
        for agent in agents.values():
            stop(agent)
        code = stop(daemon.process)
        check(code == 0 and "stopping;" in read(daemon.log), f"the daemon stops cleanly on SIGTERM (exit status {code})")
        for name in ["daemon.log"] + [f"{t['name']}.log" for t in AGENTS]:
            lines = read(os.path.join(directory, name)).splitlines()
            print(f"  --- last lines of {name}:")
            for line in lines[-4:]:
                print("      " + line[:400])


def key_delivery_from_internet_dropped(daemon):
    """Key delivery never comes from the Internet side."""
    before = daemon.counter("drop_key_delivery_from_internet")
    send_frames(PEER, "ikp-dp0", [mac_bytes(TERMINALS[0]["mac"]) + mac_bytes(ns(PEER, "cat", "/sys/class/net/ikp-dp0/address").stdout.strip())
                                  + b"\x08\x00" + ipv4_udp(PEER4, TERMINALS[0]["v4"], 9500, 9500, b"IKPD" + bytes(60))])
    check(wait_for(lambda: daemon.counter("drop_key_delivery_from_internet") > before, 5),
          "a key-delivery datagram arriving from the Internet side is dropped (counted)")


def discovery_listed(daemon):
    """Discovery, as an administrator sees it."""
    table = subprocess.run(["ip", "netns", "exec", PROXY, BINARY, "terminals", "--control", daemon.control],
                           capture_output=True, text=True)
    print("  `ikeproxy terminals`:")
    for line in table.stdout.splitlines():
        print("      " + line)
    rows = json.loads(subprocess.run(["ip", "netns", "exec", PROXY, BINARY, "terminals", "--control", daemon.control, "--json"],
                                     capture_output=True, text=True).stdout)["terminals"]
    by_mac = {row["mac"]: row for row in rows}
    t1, t2 = TERMINALS
    check(by_mac.get(t1["mac"], {}).get("status") == "registered" and by_mac[t1["mac"]].get("terminal_id") == 1
          and t1["v4"] in by_mac[t1["mac"]]["ipv4"] and t1["v6"] in by_mac[t1["mac"]]["ipv6"],
          "terminal 1 (enrolled by MAC) is registered at the IPv4 and IPv6 addresses discovery learnt")
    check(by_mac.get(t2["mac"], {}).get("status") == "registered", "terminal 2 (enrolled by address) is listed as registered")
    check(by_mac.get("02:00:00:00:d0:99", {}).get("status") == "unenrolled" and "dhcp" in by_mac["02:00:00:00:d0:99"]["learnt_from"],
          "a host learnt from a DHCP acknowledgement inside the prefixes is listed (unenrolled: no key for it)")
    check(by_mac.get(STRANGER["mac"], {}).get("status") == "pending"
          and STRANGER["v4"] in by_mac[STRANGER["mac"]]["ipv4"], "the stranger outside the prefixes is listed as pending")
    check(table.returncode == 0 and "pending" in table.stdout and "registered" in table.stdout, "`ikeproxy terminals` prints the table")


def dead_peer_given_up(charon, daemon, directory):
    """strongSwan dies without a word: the proxy's liveness checks (liveness_interval 5 s, then retransmissions
    after 1, 2, 4 and 8 s) go unanswered, it gives the IKE SAs up and deletes the terminals' SAs through key delivery."""
    def deleted_outbound():
        return sum(read(os.path.join(directory, f"{t['name']}.log")).count("deleted outbound SA") for t in AGENTS)
    deleted_before = deleted_outbound()
    charon.stop(crash=True)
    check(wait_for(lambda: "giving up" in read(daemon.log), 40),
          "with the peer dead, the proxy's liveness checks go unanswered and it gives the IKE SAs up")
    check(wait_for(lambda: deleted_outbound() > deleted_before, 10),
          "and the terminals' SAs with the dead peer are deleted through key delivery")


def family(label, v6, charon, daemon, directory):
    print(f"  -- {label}")
    peer_initiates_to_each_terminal(label, v6, charon, directory)
    t = TERMINALS[0] if not v6 else TERMINALS[1]
    terminal_flow_starts_negotiation(label, v6, t, charon, daemon, directory)
    bypass_discard_unregistered(label, v6, t, charon, daemon)


def peer_initiates_to_each_terminal(label, v6, charon, directory):
    """strongSwan initiates to each terminal's address; the proxy answers in its name."""
    key, peer, port_base = ("v6", PEER6, 6000) if v6 else ("v4", PEER4, 5000)
    size = 10 * 1024 * 1024
    children = {}
    for t in TERMINALS:
        name = f"{t['name']}v{6 if v6 else 4}"
        log_path = os.path.join(directory, f"{t['name']}.log")
        installed_before = read(log_path).count("installed outbound SA")
        result = initiate(charon, name)
        _, child = wait_child(charon, name)
        check(child is not None, f"{label}: strongSwan initiated to {t[key]} and the proxy answered in its name ({result})")
        children[t["name"]] = child
        check(wait_for(lambda: read(log_path).count("installed outbound SA") > installed_before, 10),
              f"{label}: terminal {t['name']} received the SA over key delivery")
        ok, outcome = ping(PEER, peer, t[key])
        check(ok, f"{label}: ping peer -> {t['name']} through ESP ({outcome})")
        ok, outcome = ping(t["ns"], t[key], peer)
        check(ok, f"{label}: ping {t['name']} -> peer through ESP ({outcome})")
        ok, count, seconds = transfer(t["ns"], t[key], PEER, peer, port_base + t["id"], size)
        check(ok, f"{label}: 10 MB TCP peer -> {t['name']} through ESP, intact ({count} octets, {seconds:.1f} s)")
        ok, count, seconds = transfer(PEER, peer, t["ns"], t[key], port_base + 10 + t["id"], size)
        check(ok, f"{label}: 10 MB TCP {t['name']} -> peer through ESP, intact ({count} octets, {seconds:.1f} s)")
    spis = {n: (c.get("spi-in"), c.get("spi-out")) for n, c in children.items() if c}
    counters = {}
    for t in TERMINALS:
        _, child = installed_child(charon, f"{t['name']}v{6 if v6 else 4}")
        counters[t["name"]] = (int(child["packets-in"]), int(child["packets-out"])) if child else (0, 0)
    check(len(spis) == 2 and len(set(spis.values())) == 2 and all(i > 1000 and o > 1000 for i, o in counters.values()),
          f"{label}: strongSwan shows a separate CHILD SA per terminal, packets in/out {counters}")


def terminal_flow_starts_negotiation(label, v6, t, charon, daemon, directory):
    """A terminal opens a flow itself: the proxy initiates IKE in its name."""
    key, peer, port_base = ("v6", PEER6, 6000) if v6 else ("v4", PEER4, 5000)
    name = f"{t['name']}v{6 if v6 else 4}"
    log_path = os.path.join(directory, f"{t['name']}.log")
    check(peer_deletes_child(charon, name, log_path), f"{label}: strongSwan deleted {t['name']}'s SA, and so did its agent")
    started_before = daemon.counter("negotiations_started")
    if not v6:
        result = ns(t["ns"], "ping", "-c", "10", "-i", "0.3", "-W", "2", "-I", t[key], peer, check=False)
        replies = [line for line in result.stdout.splitlines() if "packets transmitted" in line]
        check(" 0 received" not in result.stdout and result.returncode in (0, 1) and replies,
              f"{label}: {t['name']} pings the peer with no SA; after the proxy's negotiation replies come back "
              f"({replies[0] if replies else result.stderr.strip()})")
    ok, _, seconds = transfer(PEER, peer, t["ns"], t[key], port_base + 50, 1024 * 1024, timeout=30)
    check(ok, f"{label}: {t['name']} opens a TCP connection to the peer; 1 MB passes through ESP ({seconds:.1f} s)")
    sa, child = installed_child(charon, name)
    check(child is not None and sa.get("initiator", b"no") != b"yes" and daemon.counter("negotiations_started") > started_before,
          f"{label}: the proxy initiated IKE for {t['name']} (strongSwan is the responder: initiator={sa.get('initiator') if sa else None})")


def bypass_discard_unregistered(label, v6, t, charon, daemon):
    key, port_base = ("v6", 6000) if v6 else ("v4", 5000)
    bypass, discard = (BYPASS6, DISCARD6) if v6 else (BYPASS4, DISCARD4)
    ok, _, _ = transfer(PEER, bypass, t["ns"], t[key], port_base + 60, 256 * 1024, timeout=30)
    check(ok, f"{label}: a bypass flow to {bypass} passes in the clear")
    drops_before = daemon.counter("drop_policy_discard")
    check(tcp_connect_fails(t["ns"], t[key], discard, 23), f"{label}: a discarded flow (TCP to {discard} port 23) gets nowhere")
    check(daemon.counter("drop_policy_discard") > drops_before, f"{label}: the proxy counted the discarded packets")
    unregistered_before = daemon.counter("drop_ike_for_unregistered_terminal")
    name = f"t3v{6 if v6 else 4}"
    result = initiate(charon, name, timeout_ms=4000)
    check(result is not True and installed_child(charon, name)[1] is None
          and daemon.counter("drop_ike_for_unregistered_terminal") > unregistered_before,
          f"{label}: strongSwan's IKE to the unregistered {STRANGER[key]} is dropped; no SA")
    terminate(charon, name)


def ipv6_only_terminal(charon, daemon, directory):
    """A terminal with no IPv4 at all: key delivery runs over IPv6, from the proxy's fe80::1 to the terminal's
    address, and back to fe80::1, which the proxy answers neighbour solicitations for on the terminal link."""
    label, t, name = "IPv6-only terminal", V6ONLY, "t4v6"
    print(f"  -- {label}")
    log_path = os.path.join(directory, f"{t['name']}.log")
    acknowledged = lambda: read(daemon.log).count(f"terminal {t['id']} acknowledged")
    acks_before = acknowledged()
    result = initiate(charon, name)
    sa, child = wait_child(charon, name)
    check(child is not None, f"{label}: strongSwan initiated to {t['v6']} and the proxy answered in its name ({result})")
    check(wait_for(lambda: "installed outbound SA" in read(log_path), 10), f"{label}: the terminal received the SA over IPv6 key delivery")
    check(wait_for(lambda: acknowledged() > acks_before, 10), f"{label}: the proxy got the terminal's acknowledgements over IPv6")
    # Its periodic STATUS may have resolved it before this step: counted since the start, it is the only agent
    # that uses fe80::1.
    answered = daemon.counter("nd_answered_for_key_delivery_address")
    check(answered > 0, f"{label}: the terminal resolved fe80::1 through the proxy's neighbour advertisements ({answered} answered)")
    ok, summary = ping(PEER, PEER6, t["v6"])
    check(ok, f"{label}: ping peer -> t4 through ESP ({summary})")
    ok, summary = ping(t["ns"], t["v6"], PEER6)
    check(ok, f"{label}: ping t4 -> peer through ESP ({summary})")
    ok, count, seconds = transfer(t["ns"], t["v6"], PEER, PEER6, 6070, 1024 * 1024, timeout=60)
    check(ok, f"{label}: 1 MB TCP peer -> t4 through ESP, intact ({count} octets, {seconds:.1f} s)")
    # The terminal opens a flow itself: the proxy initiates IKE in its name and delivers over IPv6 again. Counted
    # from before strongSwan's delete: a late packet of the last transfer may start that negotiation already.
    installed_before = read(log_path).count("installed outbound SA")
    check(peer_deletes_child(charon, name, log_path), f"{label}: strongSwan deleted t4's SA, and so did its agent")
    ok, count, seconds = transfer(PEER, PEER6, t["ns"], t["v6"], 6071, 1024 * 1024, timeout=30)
    check(ok, f"{label}: t4 opens a TCP connection to the peer; 1 MB passes through ESP ({seconds:.1f} s)")
    sa, child = installed_child(charon, name)
    check(child is not None and sa.get("initiator", b"no") != b"yes" and read(log_path).count("installed outbound SA") > installed_before,
          f"{label}: the proxy initiated IKE for t4 and set the new SA into it over IPv6")


def capture_checks(pcap):
    def count(display_filter):
        result = subprocess.run(["tshark", "-r", pcap, "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"tshark refused the filter {display_filter!r}: {result.stderr.strip()[-300:]}")
        return len([line for line in result.stdout.splitlines() if line.strip()])
    def any_of(field, addresses):
        return "(" + " || ".join(f"{field} == {a}" for a in addresses) + ")"
    terminals4, terminals6 = [t["v4"] for t in TERMINALS], [t["v6"] for t in TERMINALS]
    protected4 = (f"((ip.src == {PEER4} && {any_of('ip.dst', terminals4)}) || (ip.dst == {PEER4} && {any_of('ip.src', terminals4)}))")
    protected6 = (f"((ipv6.src == {PEER6} && {any_of('ipv6.dst', terminals6)}) || (ipv6.dst == {PEER6} && {any_of('ipv6.src', terminals6)}))")
    plain = "(tcp || icmp || (icmpv6 && !(icmpv6.type >= 133 && icmpv6.type <= 137)) || (udp && !(udp.port == 500 || udp.port == 4500)))"
    # The key-delivery datagram the test itself sends from the peer (to prove it is dropped) is not a leak.
    leaked = count(f"({protected4} || {protected6}) && {plain} && !(ip.src == {PEER4} && udp.dstport == 9500)")
    esp4, esp6 = count(f"{protected4} && esp"), count(f"{protected6} && esp")
    ike = count(f"({protected4} || {protected6}) && isakmp")
    bypass = count(f"(ip.addr == {BYPASS4} || ipv6.addr == {BYPASS6}) && tcp")
    check(esp4 > 10000 and esp6 > 10000 and ike > 0,
          f"the Internet-side capture holds ESP of the protected flows ({esp4} IPv4, {esp6} IPv6 packets) and IKE ({ike})")
    check(leaked == 0, f"no plaintext packet of a protected flow on the Internet-side link ({leaked} seen)")
    check(bypass > 0, f"the bypass flows crossed in the clear ({bypass} TCP packets)")
    for t in TERMINALS:
        own = count(f"isakmp && (ip.src == {t['v4']} || ipv6.src == {t['v6']}) && eth.src == {t['mac']}")
        foreign = count(f"isakmp && (ip.src == {t['v4']} || ipv6.src == {t['v6']}) && eth.src != {t['mac']}")
        check(own > 0 and foreign == 0, f"IKE in {t['name']}'s name leaves from its address and its MAC ({own} messages, {foreign} otherwise)")
    key_delivery = count("udp.port == 9500 && !(ip.src == " + PEER4 + ")")
    check(key_delivery == 0, f"no key-delivery datagram reached the Internet-side link ({key_delivery})")


if __name__ == "__main__":
    sys.exit(main())
