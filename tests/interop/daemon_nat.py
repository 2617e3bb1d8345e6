#!/usr/bin/env python3
"""The proxy and its terminals behind a real NAT (a home or office router), strongSwan on the Internet.

Namespaces:

  ikp-n-peer   strongSwan (charon, kernel-libipsec), 198.51.100.1, not told about any NAT (encap no)
  ikp-n-nat    a router that masquerades (nftables) 192.0.2.0/24 behind 198.51.100.2
  ikp-n-proxy  `ikeproxy daemon` bridging ikp-nx0 (towards the router) and ikp-nx1 (terminal side), no address
  ikp-n-lan    a switch (Linux bridge) joining the proxy's terminal port and both terminals
  ikp-n-tN     terminal N, `ikeproxy terminal`, 192.0.2.(1+N), default route via the router 192.0.2.254

Nothing forces UDP encapsulation: the proxy's profile has force_encapsulation false and strongSwan encap
no, so only the NAT's real rewriting makes both sides float to UDP 4500. Checks: each terminal's first
packets to the peer make the proxy negotiate in its name, through the router (whose MAC it learns from the
terminal's own frames); strongSwan sees both IKE SAs coming from the router's one public address, on two
different ports, NAT detected; pings go both ways and a 2 MB TCP transfer passes, all in ESP-in-UDP (a
capture on the public link sees no plaintext ICMP or TCP and no protocol 50); strongSwan's counters show
the packets of each terminal. A terminal sending to a dozen addresses of a protect rule where no peer
answers gets at most max_negotiations_per_terminal negotiations at once, the rest counted drops, while the
other terminal's traffic goes on. Then the router forgets its mappings and hands out other ports: the
proxy's liveness checks, sent in each terminal's name through the new mappings, take strongSwan to the new
ports, and the peer's pings reach both terminals again on the same IKE SAs. At the profile's hard lifetime
the proxy deletes a CHILD SA with strongSwan and in the terminal, whose next packets get a new CHILD SA on
the same IKE SA. The daemon counts no failed
negotiation and stops cleanly.

Needs root, iproute2, nftables, conntrack, strongSwan, tcpdump and the `vici` module; it fails loudly otherwise.
"""
import os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import Lab, addresses_up, ns, read, switch, veth, wait_for  # noqa: E402
from lib.lab import MARK, agents_ready, daemon_file, ipv4_terminal_link, peer_profile  # noqa: E402
from lib.peer import PSK, installed_child, peer_sas, run_with_charon, wait_child  # noqa: E402
from lib.processes import daemon_status, launch_in_lab, stop_all  # noqa: E402
from lib.report import check  # noqa: E402
from lib.traffic import ping, start_capture, transfer  # noqa: E402

PEER, NAT, PROXY, LAN = "ikp-n-peer", "ikp-n-nat", "ikp-n-proxy", "ikp-n-lan"
PEER4, PUBLIC, ROUTER = "198.51.100.1", "198.51.100.2", "192.0.2.254"
TERMINALS = [{"name": f"t{n}", "ns": f"ikp-n-t{n}", "dev": f"ikp-nt{n}", "lan": f"ikp-nl{n}", "mac": f"02:00:00:00:6e:0{n}",
              "v4": f"192.0.2.{1 + n}", "id": n, "key": f"{n}{n}" * 32} for n in (1, 2)]
NAMESPACES = [PEER, NAT, PROXY, LAN] + [t["ns"] for t in TERMINALS]
# The proxy checks the peer is alive after this many seconds without a message from it.
LIVENESS = 4
# Negotiations at once in one terminal's name.
MAX_PER_TERMINAL = 4
# Each CHILD SA's hard lifetime: at the end the proxy deletes one with the peer and in the terminal.
HARD_LIFETIME = 30


class Topology(Lab):
    namespaces = NAMESPACES

    def build(self):
        veth(PEER, "ikp-np0", NAT, "ikp-nn0")
        veth(NAT, "ikp-nn1", PROXY, "ikp-nx0")
        veth(PROXY, "ikp-nx1", LAN, "ikp-nl0")
        addresses_up(PEER, "ikp-np0", PEER4 + "/24")
        addresses_up(NAT, "ikp-nn0", PUBLIC + "/24")
        addresses_up(NAT, "ikp-nn1", ROUTER + "/24")
        ns(NAT, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ns(NAT, "nft", "add", "table", "ip", "nat")
        ns(NAT, "nft", "add", "chain", "ip", "nat", "post", "{ type nat hook postrouting priority 100; }")
        ns(NAT, "nft", "add", "rule", "ip", "nat", "post", "oifname", "ikp-nn0", "masquerade")
        for t in TERMINALS:
            veth(LAN, t["lan"], t["ns"], t["dev"])
            ipv4_terminal_link(t)
            # The agent's own (marked) packets and everything else leave through the router.
            ns(t["ns"], "ip", "route", "replace", "default", "via", ROUTER, "dev", t["dev"], "table", "4500")
            ns(t["ns"], "ip", "route", "add", "default", "via", ROUTER, "dev", t["dev"])
        switch(LAN, ["ikp-nl0"] + [t["lan"] for t in TERMINALS])


def daemon_configuration(control):
    # No forced encapsulation: only the NAT's rewriting makes IKE and ESP move to UDP 4500.
    profiles = [peer_profile(force_encapsulation=False, liveness_interval=LIVENESS, hard_lifetime=HARD_LIFETIME)]
    rules = [
        {"source": "192.0.2.0/24", "destination": PEER4 + "/32", "action": "protect", "profile": "peer"},
        # A broad rule where nobody answers IKE: start requests there show the negotiation limit.
        {"source": "192.0.2.0/24", "destination": "203.0.113.0/24", "action": "protect", "profile": "peer"}]
    return daemon_file("ikp-nx0", "ikp-nx1", control, ["192.0.2.0/28"], TERMINALS, profiles, rules,
                       settings={"retransmit_timeout": 1.0, "retransmit_limit": 4, "max_negotiations_per_terminal": MAX_PER_TERMINAL})


def terminal_configuration(t):
    return {"terminal_id": t["id"], "enrollment_key_hex": t["key"], "outer_addresses": [t["v4"]], "proxy_address": "169.254.0.1",
            "fwmark": int(MARK, 16), "status_interval": 0, "tun": {"name": "ikp0", "routes": [PEER4 + "/32"], "mtu": 1400}}


def load_peer(charon):
    """strongSwan cannot reach the terminals behind the NAT: it only answers, telling them apart by their IDs."""
    for t in TERMINALS:
        charon.session.load_conn({t["name"]: {
            "version": "2", "local_addrs": [PEER4], "proposals": ["aes256gcm16-prfsha256-x25519"], "encap": "no",
            "rekey_time": "0", "dpd_delay": "0",
            "local-1": {"auth": "psk", "id": PEER4}, "remote-1": {"auth": "psk", "id": t["v4"]},
            "children": {t["name"]: {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                     "local_ts": [PEER4], "remote_ts": [t["v4"]]}}}})
    charon.session.load_shared({"id": "psk-all", "type": "IKE", "data": PSK, "owners": [PEER4] + [t["v4"] for t in TERMINALS]})


def failures(control):
    """The daemon's counters of failed or refused negotiations."""
    status = daemon_status(control)
    return {k: v for k, v in {**status.get("proxy", {}), **status.get("engine", {})}.items() if "fail" in k or "refused" in k}


def many_destinations(charon, control, log):
    """Terminal 2 sends to a dozen addresses of a protect rule where no peer answers: the proxy starts at most
    max_negotiations_per_terminal negotiations in its name at once, counts the other start requests as drops
    and says so once; terminal 1's traffic with the peer is not held back."""
    t = TERMINALS[1]
    before = daemon_status(control)["proxy"]
    pings = [subprocess.Popen(["ip", "netns", "exec", t["ns"], "ping", "-c", "1", "-W", "1", "-I", t["v4"], f"203.0.113.{n}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in range(1, 13)]
    for p in pings:
        p.wait(timeout=10)
    after = daemon_status(control)["proxy"]
    started = after.get("negotiations_started", 0) - before.get("negotiations_started", 0)
    dropped = after.get("drop_start_request_over_negotiation_limit", 0) - before.get("drop_start_request_over_negotiation_limit", 0)
    said = f"refused: {MAX_PER_TERMINAL} negotiations are under way in its name already (max_negotiations_per_terminal {MAX_PER_TERMINAL})"
    check(started == MAX_PER_TERMINAL and dropped >= 12 - MAX_PER_TERMINAL and said in read(log),
          f"12 destinations without a peer: {started} negotiations in {t['name']}'s name (max_negotiations_per_terminal "
          f"{MAX_PER_TERMINAL}), {dropped} start requests counted as drops, said in the log")
    ok, summary = ping(TERMINALS[0]["ns"], TERMINALS[0]["v4"], PEER4, count=3)
    check(ok, f"meanwhile {TERMINALS[0]['name']}'s traffic with the peer goes on ({summary})")


def mapping_changed(charon):
    """The router forgets its mappings (as on a reboot) and hands out other ports: the terminals' next packets
    leave from new public ports. The proxy's liveness check, sent in each terminal's name through the new
    mapping, is an authenticated message from the new port, so strongSwan follows it (RFC 7296 section 2.23)
    and its ESP reaches the terminals again (on the same IKE SAs; strongSwan rekeys the CHILD SAs to move them)."""
    before = {t["name"]: installed_child(charon, t["name"]) for t in TERMINALS}
    ns(NAT, "nft", "flush", "chain", "ip", "nat", "post")
    ns(NAT, "nft", "add", "rule", "ip", "nat", "post", "oifname", "ikp-nn0", "meta", "l4proto", "udp", "masquerade", "to", ":30000-39999")
    ns(NAT, "nft", "add", "rule", "ip", "nat", "post", "oifname", "ikp-nn0", "masquerade")
    ns(NAT, "conntrack", "-F", check=False)
    started = time.time()

    def followed():
        now = {t["name"]: installed_child(charon, t["name"]) for t in TERMINALS}
        return all(sa is not None and int(sa["remote-port"]) >= 30000 for sa, _ in now.values())
    moved = wait_for(followed, 3 * LIVENESS + 10)
    now = {t["name"]: installed_child(charon, t["name"]) for t in TERMINALS}
    ports = {name: int(sa["remote-port"]) if sa else None for name, (sa, _) in now.items()}
    check(moved, f"after the router lost its mappings, strongSwan follows both terminals to their new public ports {ports} "
                 f"({time.time() - started:.1f} s, the proxy checking liveness every {LIVENESS} s)")
    same = all(before[n][0] is not None and now[n][0] is not None and before[n][0]["initiator-spi"] == now[n][0]["initiator-spi"] for n in now)
    moved_children = all(before[n][1] is not None and now[n][1] is not None and before[n][1]["spi-in"] != now[n][1]["spi-in"] for n in now)
    # kernel-libipsec cannot change an installed SA's UDP ports, so strongSwan moves each CHILD SA by rekeying it.
    check(same and moved_children, "on the same IKE SAs, nothing renegotiated; strongSwan moved its CHILD SAs to the new ports by "
                                   "rekeying them (kernel-libipsec cannot change an SA's ports in place), which the proxy took "
                                   "make-before-break")
    for t in TERMINALS:
        ok, summary = ping(PEER, PEER4, t["v4"], count=3)
        check(ok and "3 received" in summary, f"the peer's pings reach {t['name']} through the new mapping ({summary})")


def hard_lifetime_reached(charon, directory):
    """At the profile's hard lifetime the proxy deletes the CHILD SA with the peer too (strongSwan stops listing
    it) and in the terminal; the terminal's next packets get a new CHILD SA on the same IKE SA."""
    t = TERMINALS[0]
    sa, child = installed_child(charon, t["name"])
    if child is None:
        check(False, f"{t['name']} holds a CHILD SA before its hard lifetime")
        return
    old_spi, ike_spi = child["spi-in"], sa["initiator-spi"]
    gone = wait_for(lambda: all(c["spi-in"] != old_spi for s in peer_sas(charon).get(t["name"], [])
                                    for c in s.get("child-sas", {}).values()), HARD_LIFETIME + 10)
    check(gone, f"at the hard lifetime ({HARD_LIFETIME} s) the proxy deleted {t['name']}'s CHILD SA at strongSwan too")
    check(wait_for(lambda: "deleted outbound SA" in read(os.path.join(directory, f"{t['name']}.log")), 5),
          "and in the terminal")
    ok, summary = ping(t["ns"], t["v4"], PEER4, count=3)
    sa, child = wait_child(charon, t["name"], timeout=10)
    check(child is not None and child["spi-in"] != old_spi and sa["initiator-spi"] == ike_spi,
          f"the terminal's next packets get a new CHILD SA on the same IKE SA ({summary})")


def run(charon, directory):
    load_peer(charon)
    control, _, log, daemon, agents = launch_in_lab(directory, PROXY, daemon_configuration, TERMINALS, terminal_configuration)
    pcap = os.path.join(directory, "public-link.pcap")
    capture = start_capture(PEER, "ikp-np0", pcap)
    try:
        check(wait_for(lambda: os.path.exists(control) and daemon.poll() is None, 10), "the daemon runs behind the NAT router")
        agents_ready(TERMINALS)
        # Each terminal's first packets to the peer: start requests, the proxy negotiates in its name.
        for t in TERMINALS:
            ping(t["ns"], t["v4"], PEER4, count=2)
        sas = {}
        for t in TERMINALS:
            sa, child = wait_child(charon, t["name"], timeout=15)
            sas[t["name"]] = (sa, child)
            check(child is not None, f"terminal {t['name']}'s flow to the peer made the proxy negotiate in its name, through the NAT")
        found = [sa for sa, _ in sas.values() if sa is not None]
        remotes = sorted((sa["remote-host"].decode(), int(sa["remote-port"])) for sa in found)
        check(len(found) == 2 and all(host == PUBLIC for host, _ in remotes) and len({port for _, port in remotes}) == 2,
              f"strongSwan sees both IKE SAs from the router's public address on two different ports {remotes}")
        check(all(sa.get("nat-remote") == b"yes" for sa in found) and all(child.get("encap") == b"yes" for _, child in sas.values() if child),
              "strongSwan detected the NAT in front of the terminals and encapsulates their ESP in UDP (nothing forced it)")
        check(all(sa["remote-id"].decode() == t["v4"] for t, (sa, _) in zip(TERMINALS, sas.values()) if sa),
              "each IKE SA carries its terminal's own identity")
        wait_for(lambda: all("installed outbound SA" in read(os.path.join(directory, f"{t['name']}.log")) for t in TERMINALS), 10)

        for t in TERMINALS:
            ok, summary = ping(t["ns"], t["v4"], PEER4, count=5)
            check(ok and "5 received" in summary, f"{t['name']} pings the peer through ESP across the NAT ({summary})")
            ok, summary = ping(PEER, PEER4, t["v4"], count=5)
            check(ok and "5 received" in summary, f"the peer pings {t['name']} back through the NAT's mapping ({summary})")
        ok, size, seconds = transfer(PEER, PEER4, TERMINALS[0]["ns"], TERMINALS[0]["v4"], 7001, 2_000_000)
        check(ok, f"a 2 MB TCP transfer from {TERMINALS[0]['name']} to the peer arrives intact ({size} octets in {seconds:.1f} s)")
        counts = {name: (int(child.get("packets-in", b"0")), int(child.get("packets-out", b"0")))
                  for name, (_, child) in ((t["name"], installed_child(charon, t["name"])) for t in TERMINALS) if child}
        check(len(counts) == 2 and all(i >= 5 and o >= 5 for i, o in counts.values()),
              f"strongSwan's counters show each terminal's ESP in and out {counts}")
        check(not failures(control), f"the daemon counts no failed negotiation ({failures(control) or 'none'})")
        many_destinations(charon, control, log)
        mapping_changed(charon)
        hard_lifetime_reached(charon, directory)
        unexpected = {k: v for k, v in failures(control).items() if k not in ("ike_sa_failed", "negotiation_failed") or v != MAX_PER_TERMINAL}
        check(not unexpected, f"and none since but the {MAX_PER_TERMINAL} to addresses without a peer ({failures(control)})")
    finally:
        time.sleep(0.5)
        capture.terminate()
        capture.wait(timeout=10)
        stop_all(daemon, agents, log, tail=3)
    plain = subprocess.run(["tcpdump", "-r", pcap, "-n", "icmp or tcp or ip proto 50"], capture_output=True, text=True).stdout.strip().splitlines()
    encapsulated = subprocess.run(["tcpdump", "-r", pcap, "-n", "udp port 4500"], capture_output=True, text=True).stdout.strip().splitlines()
    check(not plain and len(encapsulated) > 100,
          f"the public link carried no plaintext ICMP or TCP and no bare ESP, only ESP in UDP 4500 ({len(plain)} plain, "
          f"{len(encapsulated)} UDP 4500 packets)")


def main():
    return run_with_charon("daemon behind NAT test", "ikp-nat-", Topology, run, peer_namespace=PEER, tools=("ping", "tcpdump", "nft", "conntrack"))


if __name__ == "__main__":
    sys.exit(main())
