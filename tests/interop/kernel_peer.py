#!/usr/bin/env python3
"""A peer with the kernel's ESP (strongSwan, then libreswan), a terminal with the kernel's ESP, and `ikeproxy daemon`
between: plain ESP (IP protocol 50, no UDP) in transport mode end to end, which the libipsec peer cannot do.

  guest p      the peer: strongSwan (charon, kernel-netlink) or libreswan (pluto, XFRM), 192.0.2.1 and 2001:db8::1
  ikp-kk-proxy `ikeproxy daemon` bridging the two guests' TAP devices (ikp-kkp to the peer, ikp-kkt to the terminal)
  guest t1     `ikeproxy terminal` with "backend": "kernel", 192.0.2.2 and 2001:db8::2

The profile says transport mode without forced encapsulation. Checks, for each peer (with strongSwan also
ChaCha20-Poly1305 with extended sequence numbers and AES-CBC with HMAC-SHA2 in both kernels): the peer initiates (IPv4, then
IPv6) and both kernels hold the same SAs (SPIs and keys), in transport mode, not in UDP; ping passes as ESP
(protocol 50) on the Internet side and never in the clear; the terminal's first packet with no SA makes its kernel
ask and the proxy negotiate in transport mode too; the peer's rekey under a ping flood loses nothing; and iperf3
TCP throughput between the two kernels through the daemon, against the same SAs with a kernel bridge in the
daemon's place, in the same run. `kernel_peer.py strongswan` or `kernel_peer.py libreswan` runs one peer only.
Needs root, iproute2, strongSwan, libreswan unpacked (scripts/test.sh), tcpdump, iperf3, user-mode-linux and kmod;
it fails loudly otherwise.
"""
import json, os, re, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.guest_libreswan import TREE, GuestPluto  # noqa: E402
from lib.guest_libreswan import connection as libreswan_connection  # noqa: E402
from lib.guest_peer import GuestCharon, configuration, connection  # noqa: E402
from lib.guests import Guest  # noqa: E402
from lib.host import Lab, missing_prerequisites, ns, read, sh, wait_for  # noqa: E402
from lib.lab import PEER4, PEER6, daemon_file, peer_profile  # noqa: E402
from lib.processes import start, start_agent_in_guest, stop_all  # noqa: E402
from lib.report import check, summary  # noqa: E402
from lib.traffic import start_capture  # noqa: E402

PROXY = "ikp-kk-proxy"
IKE_LIBRESWAN, ESP_LIBRESWAN = "aes_gcm256-sha2_256-dh31", "aes_gcm256"  # the profile's proposals in libreswan's notation
PEER_TAP, TERMINAL_TAP = "ikp-kkp", "ikp-kkt"
T1 = {"name": "t1", "id": 1, "key": "6b" * 32, "mac": "02:00:00:00:d0:02", "v4": "192.0.2.2", "v6": "2001:db8::2"}


class Topology(Lab):
    namespaces = (PROXY,)

    def build(self):
        pass  # the guests bring their TAP devices


def daemon_configuration(control, bypass_terminal=False):
    rules = [{"source": "::/0", "destination": "::/0", "protocol": "icmpv6", "source_ports": "133-137", "action": "bypass"},
             {"source": "192.0.2.0/24", "destination": PEER4 + "/32", "action": "protect", "profile": "peer"},
             {"source": "2001:db8::/64", "destination": PEER6 + "/128", "action": "protect", "profile": "peer"}]
    if bypass_terminal:
        rules.insert(0, {"source": T1["v4"] + "/32", "destination": PEER4 + "/32", "action": "bypass"})
    configuration = daemon_file(PEER_TAP, TERMINAL_TAP, control, ["192.0.2.0/28", "2001:db8::/124"], [T1],
                                [peer_profile(mode="transport", force_encapsulation=False,
                                              esp_proposals=["aes256gcm16", "chacha20poly1305-esn", "aes256-sha256"])], rules,
                                settings={"retransmit_timeout": 1.0, "retransmit_limit": 3})
    configuration["terminals"][0]["addresses"] = [T1["v4"], T1["v6"]]
    return configuration


def terminal_configuration():
    return {"terminal_id": T1["id"], "enrollment_key_hex": T1["key"], "outer_addresses": [T1["v4"], T1["v6"]],
            "proxy_address": "169.254.0.1", "status_interval": 5, "backend": "kernel",
            "kernel": {"trap": [{"local": T1["v4"] + "/32", "remote": PEER4 + "/32"}, {"local": T1["v6"] + "/128", "remote": PEER6 + "/128"}]}}


# More ESP transforms into both kernels, each its own connection at strongSwan: (connection, what, strongSwan's ESP
# proposal, the kernel's cipher, integrity and ESN flag). With libreswan these run in libreswan_interop.py instead
# (pluto's kernel against the endpoint's keys): pluto answers a host pair with the first of its connections for it.
TRANSFORMS = [("t1v4c", "ChaCha20-Poly1305 with 64-bit sequence numbers", "chacha20poly1305-esn", ("CHACHA20_POLY1305", None, True)),
              ("t1v4b", "AES-CBC-256 with HMAC-SHA2-256-128", "aes256-sha256", ("AES_CBC_256", "AUTH_HMAC_SHA2_256_128", False))]


def start_peer(implementation, peer):
    if implementation == "libreswan":
        pluto = GuestPluto(peer)
        if pluto.started:
            pluto.load([libreswan_connection("t1v4", PEER4, T1["v4"], IKE_LIBRESWAN, ESP_LIBRESWAN, encapsulation=False, mode="transport"),
                        libreswan_connection("t1v6", PEER6, T1["v6"], IKE_LIBRESWAN, ESP_LIBRESWAN, encapsulation=False, mode="transport")],
                       [PEER4, PEER6, T1["v4"], T1["v6"]])
        return pluto
    extra = [connection(name, PEER4, T1["v4"], "transport", esp=esp) for name, _, esp, _ in TRANSFORMS]
    return GuestCharon(peer, configuration(
        [connection("t1v4", PEER4, T1["v4"], "transport"), connection("t1v6", PEER6, T1["v6"], "transport")] + extra,
        [PEER4, PEER6, T1["v4"], T1["v6"]]))


def other_transforms_in_both_kernels(charon, peer, terminal, agent_log):
    """ChaCha20-Poly1305 with extended sequence numbers and AES-CBC with HMAC-SHA2, negotiated by strongSwan one after
    the other (the earlier SAs deleted first): both kernels hold the same SAs, keys and flags, and ping passes."""
    for name in ("t1v4", "t1v6"):
        charon.terminate(name)
    for name, what, _, (cipher, integrity, esn) in TRANSFORMS:
        installed_before = read(agent_log).count("installed outbound SA")
        ok, said = charon.initiate(name)
        child = charon.child(name)
        wait_for(lambda: read(agent_log).count("installed outbound SA") > installed_before, 10)
        both = same_sas_in_both_kernels(peer, terminal, [child["spi_in"], child["spi_out"]]) if child else {}
        check(ok and child is not None and len(both) == 2 and all(
                  p is not None and t is not None and (p.key, p.integrity_key) == (t.key, t.integrity_key) and p.key
                  and t.transforms == (cipher, integrity) and p.extended_sequence_numbers == t.extended_sequence_numbers == esn
                  for p, t in both.values()),
              f"{what}: the peer's kernel and the terminal's hold the same SAs, keys and flags "
              f"({[t.transforms + (t.extended_sequence_numbers,) for _, t in both.values() if t]}; {said[:80]})")
        status, output = peer.run(f"ping -c 3 -i 0.2 -W 2 {T1['v4']}")
        check(status == 0, f"{what}: ping through both kernels' ESP ({(re.findall(r'[0-9]+ received', output) or [output[-80:]])[0]})")
        charon.terminate(name)
        wait_for(lambda: not terminal.xfrm_states(), 10)
    charon.initiate("t1v4")  # the SA the throughput is measured over


def run(directory, implementation):
    peer = Guest("p", PROXY, PEER_TAP, directory, "02:00:00:00:d0:01", [PEER4 + "/24", PEER6 + "/64"])
    terminal = Guest("t1", PROXY, TERMINAL_TAP, directory, T1["mac"], [T1["v4"] + "/24", T1["v6"] + "/64"], routes=["169.254.0.1/32@vec0"])
    peer.start()
    terminal.start()
    control = os.path.join(directory, "ikeproxy.sock")
    log = os.path.join(directory, "daemon.log")
    config_path = os.path.join(directory, "daemon.json")
    daemon = None
    try:
        check(peer.wait_ready() and terminal.wait_ready(),
              f"the peer's and the terminal's UML guests booted ({peer.boot_seconds:.1f} s, {terminal.boot_seconds:.1f} s, started together)")
        with open(config_path, "w") as f:
            json.dump(daemon_configuration(control), f, indent=1)
        daemon = start(PROXY, ["daemon", "--config", config_path], log)
        check(wait_for(lambda: "bridging" in read(log), 15) and daemon.poll() is None, "the daemon bridges the two guests' TAP devices")
        agent_log = start_agent_in_guest(terminal, "t1", terminal_configuration())
        check(wait_for(lambda: os.path.exists(agent_log) and "kernel backend (XFRM)" in read(agent_log), 20), "the terminal's agent runs with the kernel backend")
        charon = start_peer(implementation, peer)
        check(charon.started, f"{charon.name} runs in the peer's guest {charon.output.strip()[-200:]}")
        for v6 in (False, True):
            plain_transport_esp_end_to_end(charon, peer, terminal, directory, agent_log, v6)
        terminal_first_packet_negotiates_transport(charon, peer, terminal, agent_log)
        rekey_under_flood_loses_nothing(charon, peer, terminal)
        if isinstance(charon, GuestCharon):
            other_transforms_in_both_kernels(charon, peer, terminal, agent_log)
        throughput_through_daemon_and_without(peer, terminal, daemon, log, directory)
    finally:
        for guest in (peer, terminal):
            guest.stop()
        if daemon is not None and daemon.poll() is None:
            stop_all(daemon, [], log, tail=3)


def same_sas_in_both_kernels(peer, terminal, spis):
    """{SPI: (peer's state, terminal's state)} for the SPIs, from both kernels."""
    at_peer, at_terminal = peer.xfrm_states(), terminal.xfrm_states()
    return {spi: (at_peer.get(spi), at_terminal.get(spi)) for spi in spis}


def plain_transport_esp_end_to_end(charon, peer, terminal, directory, agent_log, v6):
    label, name, peer_address, own = ("IPv6", "t1v6", PEER6, T1["v6"]) if v6 else ("IPv4", "t1v4", PEER4, T1["v4"])
    installed_before = read(agent_log).count("installed outbound SA")
    ok, said = charon.initiate(name)
    child = charon.child(name)
    check(ok and child is not None, f"{label}: {charon.name} initiated to the terminal and the proxy answered ({said[:200]})")
    check(wait_for(lambda: read(agent_log).count("installed outbound SA") > installed_before, 10), f"{label}: the agent set the SAs into the terminal's kernel")
    if child is None:
        return
    spis = [child["spi_in"], child["spi_out"]]
    both = same_sas_in_both_kernels(peer, terminal, spis)
    check(all(p is not None and t is not None and p.key == t.key and p.key and (p.source, p.destination) == (t.source, t.destination)
              for p, t in both.values()),
          f"{label}: the peer's kernel and the terminal's kernel hold the same two SAs ({', '.join(spis)}), keys equal")
    check(all(p is not None and t is not None and p.mode == t.mode == "transport" and not p.encapsulated and not t.encapsulated for p, t in both.values()),
          f"{label}: both in transport mode, not in UDP (plain ESP)")
    # Two captures: the daemon sends with the queueing discipline bypassed, which packet taps do not see, so each
    # TAP device shows what its guest sent: the peer's requests on one, the terminal's replies on the other.
    paths = [os.path.join(directory, f"{side}-{name}.pcap") for side in ("peer", "terminal")]
    captures = [start_capture(PROXY, device, path, "ip proto 50 or ip6 proto 50 or icmp or icmp6 or udp port 4500")
                for device, path in zip((PEER_TAP, TERMINAL_TAP), paths)]
    status, output = peer.run(f"ping -c 5 -i 0.2 -W 2 {own}")
    time.sleep(0.5)  # the capture's last packets: nothing to wait on but tcpdump's buffer
    for capture in captures:
        capture.terminate()
        capture.wait(timeout=10)
    lines = [line for path in paths for line in sh("tcpdump", "-r", path, "-n", check=False).stdout.splitlines()]
    esp_out = [line for line in lines if "ESP(spi=" in line and f"{peer_address} > {own}" in line]
    esp_back = [line for line in lines if "ESP(spi=" in line and f"{own} > {peer_address}" in line]
    plain = [line for line in lines if "echo" in line]
    udp = [line for line in lines if ".4500" in line]
    received = re.search(r"(\d+) received", output)
    check(status == 0 and len(esp_out) >= 5 and len(esp_back) >= 5 and not plain and not udp,
          f"{label}: ping peer -> terminal ({received.group(0) if received else output[-100:]}) goes as ESP, IP protocol 50, both ways "
          f"({len(esp_out)} out, {len(esp_back)} back; {len(plain)} plaintext echo, {len(udp)} in UDP 4500)")


def terminal_first_packet_negotiates_transport(charon, peer, terminal, agent_log):
    """The peer deletes the IPv4 SA; the terminal's next ping has no SA, its kernel asks (ACQUIRE), the proxy
    negotiates in transport mode in its name, and the pings pass."""
    charon.terminate("t1v4")
    check(wait_for(lambda: charon.child("t1v4") is None and not [s for s in terminal.xfrm_states().values() if s.source == T1["v4"]], 10),
          "the peer deleted the IPv4 SA and the terminal's kernel no longer holds it")
    acquires = read(agent_log).count("the kernel asked for one")
    status, output = terminal.run(f"ping -c 12 -i 0.5 -W 1 {PEER4}", timeout=30)
    replies = re.search(r"(\d+) received", output)
    child = charon.child("t1v4")
    mode = peer.xfrm_states().get(child["spi_in"]).mode if child and child["spi_in"] in peer.xfrm_states() else None
    check(read(agent_log).count("the kernel asked for one") > acquires and child is not None and not child["peer_initiated"]
          and mode == "transport" and replies is not None and int(replies.group(1)) >= 6,
          f"the terminal's ping with no SA: kernel ACQUIRE, the proxy initiated in transport mode (the peer responder, mode "
          f"{mode}), pings through ({replies.group(0) if replies else output[-100:]})")


def rekey_under_flood_loses_nothing(charon, peer, terminal):
    child = charon.child("t1v4")
    old = child["spi_in"] if child else ""
    outcome = {}
    flood = threading.Thread(target=lambda: outcome.setdefault("ping", peer.run(f"ping -c 80 -i 0.05 -W 2 {T1['v4']}", timeout=60)))
    flood.start()
    time.sleep(1.5)
    charon.rekey_child("t1v4")
    flood.join(timeout=60)
    status, output = outcome.get("ping", (None, ""))
    wait_for(lambda: (charon.child("t1v4") or {}).get("spi_in") not in ("", old, None), 10)
    child = charon.child("t1v4")
    new = child["spi_in"] if child else ""
    both = same_sas_in_both_kernels(peer, terminal, [new])
    check(bool(new) and new != old and all(p is not None and t is not None and p.key == t.key for p, t in both.values())
          and old not in terminal.xfrm_states(),
          f"the peer's rekey: both kernels hold the new SA ({new}) with equal keys, the terminal's no longer the old one ({old})")
    check(" 0% packet loss" in output, "no ping of the flood across the rekey was lost (" + ", ".join(re.findall(r"\d+ (?:packets transmitted|received)", output)) + ")")


def iperf(peer, terminal, seconds=5):
    """TCP from the peer's guest to the terminal's through ESP: bits per second received, or None."""
    terminal.run("pkill iperf3; iperf3 -s -D -1 -B " + T1["v4"])
    wait_for(lambda: terminal.run("ss -ltn | grep -q ':5201'")[0] == 0, 10)
    status, output = peer.run(f"iperf3 -c {T1['v4']} -t {seconds} -J", timeout=seconds + 60)
    try:
        return json.loads(output)["end"]["sum_received"]["bits_per_second"] if status == 0 else None
    except (ValueError, KeyError):
        return None


def throughput_through_daemon_and_without(peer, terminal, daemon, log, directory):
    """iperf3 through the daemon, then the daemon replaced by a kernel bridge over the same two TAP devices, the same
    SAs still in both kernels: the ratio of the two rates, measured in one run."""
    states = terminal.xfrm_states()
    through = iperf(peer, terminal)
    stop_all(daemon, [], log, tail=1)
    ns(PROXY, "ip", "link", "add", "br0", "type", "bridge")
    for device in (PEER_TAP, TERMINAL_TAP, "br0"):
        if device != "br0":
            ns(PROXY, "ip", "link", "set", device, "master", "br0")
        ns(PROXY, "ip", "link", "set", device, "up")
    direct = iperf(peer, terminal)
    # No SA came in between (the daemon is gone, nothing can set one): the bridge's run used the same keys. One the
    # terminal held before may have gone meanwhile (a replaced SA's Delete, an expiry), which changes nothing.
    after = set(terminal.xfrm_states())
    added, gone = after - set(states), set(states) - after
    ratio = through / direct if through and direct else None
    check(through is not None and direct is not None and not added,
          f"iperf3 TCP peer -> terminal over the same kernel ESP SAs: {through / 1e6 if through else 0:.1f} Mbit/s through the daemon, "
          f"{direct / 1e6 if direct else 0:.1f} Mbit/s through a kernel bridge instead (ratio {ratio if ratio else 0:.2f}; UML guests on the 2-core machine)"
          + (f"; SAs new in the terminal since: {sorted(added)}" if added else "") + (f"; gone meanwhile: {sorted(gone)}" if gone else ""))


def main():
    problem = missing_prerequisites("kernel peer test", tools=("tcpdump", "iperf3", "linux.uml", "modprobe", "swanctl"),
                                    paths=(TREE + "/usr/libexec/ipsec/pluto",))
    if problem:
        return problem
    for implementation in sys.argv[1:] or ["strongswan", "libreswan"]:
        directory = tempfile.mkdtemp(prefix=f"ikp-kernel-peer-{implementation}-")
        os.chmod(directory, 0o755)
        print(f"== kernel peer test, {implementation} as the peer (logs in {directory})")
        with Topology():
            run(directory, implementation)
    return summary("kernel peer test")


if __name__ == "__main__":
    sys.exit(main())
