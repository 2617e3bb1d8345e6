#!/usr/bin/env python3
"""`ikeproxy daemon` with a terminal whose own Linux kernel does the ESP: the agent's kernel backend (XFRM).

  ikp-k-peer   strongSwan (kernel-libipsec: ESP in UDP 4500), 192.0.2.1 and 2001:db8::1
  ikp-k-proxy  `ikeproxy daemon`: a bridge with no address between ikp-kx0 (to the peer) and ikp-kt1, the TAP
               device of a User-Mode Linux guest (lib/guests.py)
  guest t1     a Linux 6.1 kernel with ESP, 192.0.2.2 and 2001:db8::2 on its interface; `ikeproxy terminal`
               with "backend": "kernel" and trap policies towards the peer, the host's binary run in the guest

Checks: the peer initiates to the terminal (IPv4, then IPv6) and the SAs land in the guest's kernel (`ip xfrm
state`: SPIs as strongSwan lists them, keys as strongSwan derived them, policies in and out), ping passes
through the kernel's ESP and no plaintext of it crosses the Internet link, the kernel's counters reach the
daemon in the agent's STATUS; strongSwan's delete takes the SAs out of the kernel and the trap comes back; a
ping from the terminal with no SA makes the kernel ask for one (ACQUIRE), the agent passes it on and the proxy
negotiates in the terminal's name; a CHILD SA rekeyed by strongSwan under a ping flood loses nothing (make
before break); an SA deleted at the proxy goes from the kernel and strongSwan; the agent's resident memory with
each backend.
Needs root, iproute2, strongSwan, tcpdump, user-mode-linux and kmod; it fails loudly otherwise.
"""
import json, os, re, signal, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.guests import Guest, quote  # noqa: E402
from lib.host import BINARY, Lab, addresses_up, ns, read, sh, veth, wait_for  # noqa: E402
from lib.lab import PEER4, PEER6, daemon_file, load_host_to_host, peer_profile  # noqa: E402
from lib.peer import initiate, installed_child, run_with_charon, terminate, wait_child  # noqa: E402
from lib.processes import control_query, start, start_agent_in_guest, stop_all  # noqa: E402
from lib.report import check  # noqa: E402
from lib.traffic import ping, start_capture, transfer  # noqa: E402

PEER, PROXY = "ikp-k-peer", "ikp-k-proxy"
T1 = {"name": "t1", "id": 1, "key": "5a" * 32, "mac": "02:00:00:00:d0:02", "v4": "192.0.2.2", "v6": "2001:db8::2", "tap": "ikp-kt1"}


class Topology(Lab):
    namespaces = (PEER, PROXY)

    def build(self):
        veth(PEER, "ikp-kp0", PROXY, "ikp-kx0")
        addresses_up(PEER, "ikp-kp0", PEER4 + "/24", PEER6 + "/64")


def daemon_configuration(control):
    rules = [{"source": "::/0", "destination": "::/0", "protocol": "icmpv6", "source_ports": "133-137", "action": "bypass"},
             {"source": "192.0.2.0/24", "destination": PEER4 + "/32", "action": "protect", "profile": "peer"},
             {"source": "2001:db8::/64", "destination": PEER6 + "/128", "action": "protect", "profile": "peer"}]
    configuration = daemon_file("ikp-kx0", T1["tap"], control, ["192.0.2.0/28", "2001:db8::/124"], [T1],
                                # The terminal's kernel counts the bytes: at 400 kB it reports a soft expiry and the proxy rekeys.
                                [peer_profile(force_encapsulation=True, rekey_bytes=400_000, life_bytes=50_000_000)], rules,
                                settings={"retransmit_timeout": 1.0, "retransmit_limit": 3})
    configuration["terminals"][0]["addresses"] = [T1["v4"], T1["v6"]]
    return configuration


def terminal_configuration(backend):
    configuration = {"terminal_id": T1["id"], "enrollment_key_hex": T1["key"], "outer_addresses": [T1["v4"], T1["v6"]],
                     "proxy_address": "169.254.0.1", "status_interval": 2}
    if backend == "kernel":
        configuration.update({"backend": "kernel", "kernel": {"trap": [{"local": T1["v4"] + "/32", "remote": PEER4 + "/32"},
                                                                       {"local": T1["v6"] + "/128", "remote": PEER6 + "/128"}]}})
    else:
        configuration["tun"] = {"name": "ikp0", "routes": [PEER4 + "/32"], "mtu": 1400}
    return configuration


def run(charon, directory):
    load_host_to_host(charon, [T1], psk_id="psk-k")
    guest = Guest(T1["name"], PROXY, T1["tap"], directory, T1["mac"], [T1["v4"] + "/24", T1["v6"] + "/64"], routes=["169.254.0.1/32@vec0"])
    guest.start()
    control = os.path.join(directory, "ikeproxy.sock")
    log = os.path.join(directory, "daemon.log")
    daemon = None
    # The guest writes through to the host only in its own directory: logs and configurations live there.
    agent_log = os.path.join(guest.directory, "t1.log")
    try:
        check(guest.wait_ready(), f"the terminal's UML guest (Linux with ESP) booted in {guest.boot_seconds:.1f} s")
        config_path = os.path.join(directory, "daemon.json")
        with open(config_path, "w") as f:
            json.dump(daemon_configuration(control), f, indent=1)
        daemon = start(PROXY, ["daemon", "--config", config_path, "--show-keys"], log, stdout=open(os.path.join(directory, "events.jsonl"), "w"))
        check(wait_for(lambda: "bridging" in read(log), 15) and daemon.poll() is None, "the daemon bridges the peer and the guest's TAP device")
        agent_started_in_kernel_mode(guest, agent_log)
        for v6 in (False, True):
            peer_initiated_sa_lands_in_kernel(charon, guest, directory, agent_log, v6)
        status_carries_kernel_counters(charon, guest, control)
        peer_delete_empties_kernel_and_trap_returns(charon, guest, agent_log, "t1v6")
        peer_delete_empties_kernel_and_trap_returns(charon, guest, agent_log, "t1v4")
        kernel_acquire_starts_negotiation(charon, guest, agent_log)
        rekey_under_traffic_loses_nothing(charon, guest, agent_log)
        kernel_soft_expiry_rekeys_under_transfer(charon, guest, agent_log)
        policy_change_at_proxy_empties_kernel(charon, guest, daemon, config_path, control, log)
        resident_memory_of_each_backend(guest)
    finally:
        guest.run("pkill -TERM -f 'ikeproxy terminal'", timeout=5)
        guest.stop()
        if daemon is not None:
            stop_all(daemon, [], log, tail=3)
        print(f"  --- last lines of {agent_log}:")
        for line in (read(agent_log).splitlines() if os.path.exists(agent_log) else [])[-5:]:
            print("      " + line[:300])


def agent_started_in_kernel_mode(guest, agent_log):
    start_agent_in_guest(guest, "t1", terminal_configuration("kernel"))
    check(wait_for(lambda: os.path.exists(agent_log) and "kernel backend (XFRM)" in read(agent_log), 20),
          "the agent runs in the guest with the kernel backend: " + (read(agent_log).strip().splitlines() if os.path.exists(agent_log) else [""])[0][21:220])
    traps = [p for p in guest.xfrm_policies() if p[2] == "out"]
    check(sorted(traps) == sorted([(T1["v4"] + "/32", PEER4 + "/32", "out"), (T1["v6"] + "/128", PEER6 + "/128", "out")]),
          f"the kernel holds the two trap policies towards the peer and nothing else ({traps})")


def peer_initiated_sa_lands_in_kernel(charon, guest, directory, agent_log, v6):
    label, name, peer, own = ("IPv6", "t1v6", PEER6, T1["v6"]) if v6 else ("IPv4", "t1v4", PEER4, T1["v4"])
    installed_before = read(agent_log).count("installed outbound SA")
    result = initiate(charon, name)
    _, child = wait_child(charon, name)
    check(child is not None, f"{label}: strongSwan initiated to the terminal and the proxy answered in its name ({result})")
    check(wait_for(lambda: read(agent_log).count("installed outbound SA") > installed_before, 10),
          f"{label}: the agent set both SAs into the guest's kernel")
    if child is None:
        return
    spi_in, spi_out = child["spi-in"].decode(), child["spi-out"].decode()
    states = guest.xfrm_states()
    check(spi_out in states and spi_in in states and states[spi_out][:2] == (peer, own) and states[spi_in][:2] == (own, peer),
          f"{label}: `ip xfrm state` in the guest holds SPI {spi_out} ({peer} -> {own}) and {spi_in} ({own} -> {peer}), as strongSwan lists them")
    keys = charon.child_keys() or {}
    peer_keys = {keys.get("encryption initiator key"), keys.get("encryption responder key")}
    kernel_keys = {states.get(spi_out, (0, 0, None))[2], states.get(spi_in, (0, 0, None))[2]}
    check(None not in kernel_keys and kernel_keys == peer_keys, f"{label}: the keys in the terminal's kernel are the keys strongSwan derived")
    policies = guest.xfrm_policies()
    prefix = "/128" if v6 else "/32"
    check((own + prefix, peer + prefix, "out") in policies and (peer + prefix, own + prefix, "in") in policies,
          f"{label}: the kernel has the policies out and in for the SA's selectors")
    capture_path = os.path.join(directory, f"internet-{name}.pcap")
    capture = start_capture(PEER, "ikp-kp0", capture_path, "icmp or icmp6")
    ok, outcome = ping(PEER, peer, own, count=5)
    time.sleep(0.5)  # the capture's last packets: nothing to wait on but tcpdump's buffer
    capture.terminate()
    capture.wait(timeout=10)
    plain = [line for line in sh("tcpdump", "-r", capture_path, "-n", check=False).stdout.splitlines()
             if "echo" in line and own in line]
    check(ok and not plain, f"{label}: ping peer -> terminal through the kernel's ESP ({outcome}); no plaintext echo on the Internet link ({len(plain)})")
    counted = guest.xfrm_states().get(spi_out, (0, 0, None, 0))[3]
    check(counted is not None and counted >= 5, f"{label}: the kernel counted the ESP packets it decrypted ({counted})")


def status_carries_kernel_counters(charon, guest, control):
    """The agent's STATUS (every 2 s) reports the kernel's counters; the daemon shows them per SA."""
    _, child = installed_child(charon, "t1v4")
    spi = child["spi-out"].decode() if child else ""

    def row():
        return next((r for r in control_query(control, "sas").get("sas", []) if r.get("spi_in") == spi), {})
    ping(PEER, PEER4, T1["v4"], count=3)
    kernel = lambda: guest.xfrm_states().get(spi, (0, 0, None, -1))[3]  # noqa: E731
    check(wait_for(lambda: row().get("packets_in") is not None and row()["packets_in"] == kernel(), 10),
          f"the daemon lists the SA's traffic as the kernel counts it, reported by the agent ({row().get('packets_in')} packets in, kernel {kernel()})")


def peer_delete_empties_kernel_and_trap_returns(charon, guest, agent_log, name):
    _, child = installed_child(charon, name)
    spis = {child["spi-in"].decode(), child["spi-out"].decode()} if child else set()
    deleted_before = read(agent_log).count("deleted outbound SA")
    terminate(charon, name)
    check(wait_for(lambda: read(agent_log).count("deleted outbound SA") > deleted_before, 10) and not spis & set(guest.xfrm_states()),
          f"{name}: strongSwan's delete takes the SAs out of the guest's kernel")
    v6 = name.endswith("6")
    own, peer, prefix = (T1["v6"], PEER6, "/128") if v6 else (T1["v4"], PEER4, "/32")
    policies = guest.xfrm_policies()
    check((own + prefix, peer + prefix, "out") in policies and (peer + prefix, own + prefix, "in") not in policies,
          f"{name}: the outbound policy is a trap again, the inbound one is gone")


def kernel_acquire_starts_negotiation(charon, guest, agent_log):
    """A ping from the terminal with no SA: the kernel holds it back and asks (ACQUIRE), the agent tells the proxy,
    the proxy negotiates in the terminal's name, and the next pings pass."""
    acquires_before = read(agent_log).count("the kernel asked for one")
    status, output = guest.run(f"ping -c 12 -i 0.5 -W 1 {PEER4}", timeout=30)
    replies = re.search(r"(\d+) received", output)
    check(read(agent_log).count("the kernel asked for one") > acquires_before,
          "the terminal's ping with no SA made its kernel send ACQUIRE, which the agent passed to the proxy")
    sa, child = installed_child(charon, "t1v4")
    check(child is not None and sa.get("initiator", b"no") != b"yes" and replies is not None and int(replies.group(1)) >= 6,
          f"the proxy negotiated in the terminal's name (strongSwan responder) and the pings got through ({replies.group(0) if replies else output[-200:]})")


def rekey_under_traffic_loses_nothing(charon, guest, agent_log):
    """strongSwan rekeys the CHILD SA while the peer pings the terminal 20 times a second: the new SA is in the
    kernel before the old one goes, and no ping is lost."""
    _, child = installed_child(charon, "t1v4")
    old = child["spi-out"].decode() if child else ""
    outcome = {}
    flood = threading.Thread(target=lambda: outcome.setdefault("ping", ns(PEER, "ping", "-c", "80", "-i", "0.05", "-W", "2", T1["v4"], check=False)))
    flood.start()
    time.sleep(1.5)
    for _ in charon.session.rekey({"child": "t1v4"}):
        pass
    flood.join(timeout=30)
    result = outcome.get("ping")
    summary = [line for line in (result.stdout.splitlines() if result else []) if "packets transmitted" in line]
    _, child = installed_child(charon, "t1v4")
    new = child["spi-out"].decode() if child else ""
    states = guest.xfrm_states()
    check(bool(new) and new != old and new in states and old not in states,
          f"after strongSwan's rekey the kernel holds the new SA ({new}) and not the old one ({old})")
    check(result is not None and " 0% packet loss" in result.stdout,
          f"no ping of the flood across the rekey was lost ({summary[0] if summary else 'no ping output'})")
    text = read(agent_log)
    check(old != "" and 0 <= text.rfind(f"installed inbound SA {new}") < text.find(f"deleted inbound SA {old}"),
          "the agent set the new inbound SA into the kernel before it took the old one out")


def kernel_soft_expiry_rekeys_under_transfer(charon, guest, agent_log):
    """The profile gives SAs a soft limit of 400 kB: during a 2 MB transfer from the terminal its kernel reports
    each soft expiry, the agent passes it on, the proxy rekeys with strongSwan and sets the new SAs into the kernel;
    the transfer arrives intact."""
    soft_before = read(agent_log).count("soft lifetime in the kernel")
    ok, count, seconds = transfer(PEER, PEER4, None, None, 7301, 2_000_000, timeout=90,
                                  run_client=lambda code: guest.run(f"python3 -c {quote(code)}", timeout=100))
    soft = read(agent_log).count("soft lifetime in the kernel") - soft_before
    check(ok and soft >= 2, f"2 MB from the terminal through the kernel's ESP arrive intact ({count} octets, {seconds:.1f} s) across "
                            f"{soft} soft expiries the kernel reported, each rekeyed by the proxy")
    check(installed_child(charon, "t1v4")[1] is not None and len([s for s in guest.xfrm_states().values() if s[0] == T1["v4"]]) >= 1,
          "strongSwan and the kernel hold the latest SA")


def policy_change_at_proxy_empties_kernel(charon, guest, daemon, config_path, control, log):
    """The proxy's side deletes: the policy edited to bypass the terminal's IPv4 flow and the daemon told with SIGHUP,
    the SA is deleted with strongSwan and taken out of the terminal's kernel."""
    _, child = installed_child(charon, "t1v4")
    spi = child["spi-out"].decode() if child else ""
    configuration = daemon_configuration(control)
    configuration["policy"]["rules"].insert(0, {"source": T1["v4"] + "/32", "destination": PEER4 + "/32", "action": "bypass"})
    with open(config_path, "w") as f:
        json.dump(configuration, f, indent=1)
    daemon.send_signal(signal.SIGHUP)
    check(bool(spi) and wait_for(lambda: "reload: policy" in read(log), 10) and wait_for(lambda: installed_child(charon, "t1v4")[1] is None, 10)
          and wait_for(lambda: spi not in guest.xfrm_states(), 10),
          f"a policy change at the proxy deletes the SA ({spi}) at strongSwan and in the terminal's kernel")


def resident_memory_of_each_backend(guest):
    """The agent's resident memory in the guest with the kernel backend (running) and with the user-space one
    (started beside it on other ports, for the measurement only); one binary serves both."""
    kernel = guest.resident_kilobytes("terminal --config .*/t1.json")
    configuration = dict(terminal_configuration("user-space"), key_delivery_port=9501, encapsulation_port=4501)
    log = start_agent_in_guest(guest, "t1-user-space", configuration)
    wait_for(lambda: os.path.exists(log) and "TUN ikp0 up" in read(log), 20)
    time.sleep(1)  # past start-up: both agents measured once idle
    user_space = guest.resident_kilobytes("terminal --config .*t1-user-space.json")
    guest.run("pkill -TERM -f t1-user-space.json", timeout=5)
    size = os.path.getsize(BINARY)
    check(kernel is not None and user_space is not None,
          f"agent resident memory in the guest: kernel backend {kernel} kB, user-space backend {user_space} kB; "
          f"binary {size / 1e6:.1f} MB ({'debug' if '/debug/' in BINARY else 'release'} build) for both")


def main():
    return run_with_charon("kernel terminal test", "ikp-kernel-", Topology, run, peer_namespace=PEER,
                           tools=("tcpdump", "linux.uml", "modprobe"), readable=True)


if __name__ == "__main__":
    sys.exit(main())
