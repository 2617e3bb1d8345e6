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
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strongswan_interop as base  # noqa: E402
import daemon_e2e as e2e  # noqa: E402

PEER, NAT, PROXY, LAN = "ikp-n-peer", "ikp-n-nat", "ikp-n-proxy", "ikp-n-lan"
base.PEER_NS = PEER
check, sh, ns = base.check, base.sh, base.ns
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


class Topology:
    def __enter__(self):
        self.tearDown()
        base.add_namespaces(*NAMESPACES)
        sh("ip", "link", "add", "ikp-np0", "netns", PEER, "type", "veth", "peer", "name", "ikp-nn0", "netns", NAT)
        sh("ip", "link", "add", "ikp-nn1", "netns", NAT, "type", "veth", "peer", "name", "ikp-nx0", "netns", PROXY)
        sh("ip", "link", "add", "ikp-nx1", "netns", PROXY, "type", "veth", "peer", "name", "ikp-nl0", "netns", LAN)
        ns(PEER, "ip", "addr", "add", PEER4 + "/24", "dev", "ikp-np0")
        ns(PEER, "ip", "link", "set", "ikp-np0", "up")
        ns(NAT, "ip", "addr", "add", PUBLIC + "/24", "dev", "ikp-nn0")
        ns(NAT, "ip", "addr", "add", ROUTER + "/24", "dev", "ikp-nn1")
        for dev in ("ikp-nn0", "ikp-nn1"):
            ns(NAT, "ip", "link", "set", dev, "up")
        ns(NAT, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ns(NAT, "nft", "add", "table", "ip", "nat")
        ns(NAT, "nft", "add", "chain", "ip", "nat", "post", "{ type nat hook postrouting priority 100; }")
        ns(NAT, "nft", "add", "rule", "ip", "nat", "post", "oifname", "ikp-nn0", "masquerade")
        ns(LAN, "ip", "link", "add", "br0", "type", "bridge")
        ns(LAN, "ip", "link", "set", "br0", "addrgenmode", "none")
        ns(LAN, "ip", "link", "set", "ikp-nl0", "master", "br0", "up")
        for t in TERMINALS:
            sh("ip", "link", "add", t["lan"], "netns", LAN, "type", "veth", "peer", "name", t["dev"], "netns", t["ns"])
            ns(LAN, "ip", "link", "set", t["lan"], "master", "br0", "up")
            e2e.ipv4_terminal_link(t)
            # The agent's own (marked) packets and everything else leave through the router.
            ns(t["ns"], "ip", "route", "replace", "default", "via", ROUTER, "dev", t["dev"], "table", "4500")
            ns(t["ns"], "ip", "route", "add", "default", "via", ROUTER, "dev", t["dev"])
        ns(LAN, "ip", "link", "set", "br0", "up")
        return self

    def tearDown(self):
        base.remove_namespaces(*NAMESPACES)

    def __exit__(self, *exc):
        self.tearDown()


def daemon_configuration(control):
    return {
        "interfaces": {"internet": "ikp-nx0", "terminal": "ikp-nx1"},
        "control_socket": control,
        "terminal_prefixes": ["192.0.2.0/28"],
        "terminals": [{"terminal_id": t["id"], "enrollment_key_hex": t["key"], "addresses": [t["v4"]]} for t in TERMINALS],
        # No forced encapsulation: only the NAT's rewriting makes IKE and ESP move to UDP 4500.
        "profiles": [{"name": "peer", "proposals": ["aes256gcm16-prfsha256-x25519"], "esp_proposals": ["aes256gcm16"],
                      "psk": base.PSK, "mode": "tunnel", "force_encapsulation": False, "liveness_interval": LIVENESS,
                      "hard_lifetime": HARD_LIFETIME}],
        "policy": {"default": "bypass", "rules": [
            {"source": "192.0.2.0/24", "destination": PEER4 + "/32", "action": "protect", "profile": "peer"},
            # A broad rule where nobody answers IKE: start requests there show the negotiation limit.
            {"source": "192.0.2.0/24", "destination": "203.0.113.0/24", "action": "protect", "profile": "peer"}]},
        "settings": {"retransmit_timeout": 1.0, "retransmit_limit": 4, "max_negotiations_per_terminal": MAX_PER_TERMINAL},
    }


def terminal_configuration(t):
    return {"terminal_id": t["id"], "enrollment_key_hex": t["key"], "outer_addresses": [t["v4"]], "proxy_address": "169.254.0.1",
            "fwmark": int(e2e.MARK, 16), "status_interval": 0, "tun": {"name": "ikp0", "routes": [PEER4 + "/32"], "mtu": 1400}}


def load_peer(charon):
    """strongSwan cannot reach the terminals behind the NAT: it only answers, telling them apart by their IDs."""
    for t in TERMINALS:
        charon.session.load_conn({t["name"]: {
            "version": "2", "local_addrs": [PEER4], "proposals": ["aes256gcm16-prfsha256-x25519"], "encap": "no",
            "rekey_time": "0", "dpd_delay": "0",
            "local-1": {"auth": "psk", "id": PEER4}, "remote-1": {"auth": "psk", "id": t["v4"]},
            "children": {t["name"]: {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                     "local_ts": [PEER4], "remote_ts": [t["v4"]]}}}})
    charon.session.load_shared({"id": "psk-all", "type": "IKE", "data": base.PSK, "owners": [PEER4] + [t["v4"] for t in TERMINALS]})


def failures(control):
    """The daemon's counters of failed or refused negotiations."""
    status = e2e.daemon_status(control)
    return {k: v for k, v in {**status.get("proxy", {}), **status.get("engine", {})}.items() if "fail" in k or "refused" in k}


def many_destinations(charon, control, log):
    """Terminal 2 sends to a dozen addresses of a protect rule where no peer answers: the proxy starts at most
    max_negotiations_per_terminal negotiations in its name at once, counts the other start requests as drops
    and says so once; terminal 1's traffic with the peer is not held back."""
    t = TERMINALS[1]
    before = e2e.daemon_status(control)["proxy"]
    pings = [subprocess.Popen(["ip", "netns", "exec", t["ns"], "ping", "-c", "1", "-W", "1", "-I", t["v4"], f"203.0.113.{n}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in range(1, 13)]
    for p in pings:
        p.wait(timeout=10)
    after = e2e.daemon_status(control)["proxy"]
    started = after.get("negotiations_started", 0) - before.get("negotiations_started", 0)
    dropped = after.get("drop_start_request_over_negotiation_limit", 0) - before.get("drop_start_request_over_negotiation_limit", 0)
    said = f"refused: {MAX_PER_TERMINAL} negotiations are under way in its name already (max_negotiations_per_terminal {MAX_PER_TERMINAL})"
    check(started == MAX_PER_TERMINAL and dropped >= 12 - MAX_PER_TERMINAL and said in e2e.read(log),
          f"12 destinations without a peer: {started} negotiations in {t['name']}'s name (max_negotiations_per_terminal "
          f"{MAX_PER_TERMINAL}), {dropped} start requests counted as drops, said in the log")
    ok, summary = e2e.ping(TERMINALS[0]["ns"], TERMINALS[0]["v4"], PEER4, count=3)
    check(ok, f"meanwhile {TERMINALS[0]['name']}'s traffic with the peer goes on ({summary})")


def mapping_changed(charon):
    """The router forgets its mappings (as on a reboot) and hands out other ports: the terminals' next packets
    leave from new public ports. The proxy's liveness check, sent in each terminal's name through the new
    mapping, is an authenticated message from the new port, so strongSwan follows it (RFC 7296 section 2.23)
    and its ESP reaches the terminals again (on the same IKE SAs; strongSwan rekeys the CHILD SAs to move them)."""
    before = {t["name"]: e2e.installed_child(charon, t["name"]) for t in TERMINALS}
    ns(NAT, "nft", "flush", "chain", "ip", "nat", "post")
    ns(NAT, "nft", "add", "rule", "ip", "nat", "post", "oifname", "ikp-nn0", "meta", "l4proto", "udp", "masquerade", "to", ":30000-39999")
    ns(NAT, "nft", "add", "rule", "ip", "nat", "post", "oifname", "ikp-nn0", "masquerade")
    ns(NAT, "conntrack", "-F", check=False)
    started = time.time()

    def followed():
        now = {t["name"]: e2e.installed_child(charon, t["name"]) for t in TERMINALS}
        return all(sa is not None and int(sa["remote-port"]) >= 30000 for sa, _ in now.values())
    moved = e2e.wait_for(followed, 3 * LIVENESS + 10)
    now = {t["name"]: e2e.installed_child(charon, t["name"]) for t in TERMINALS}
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
        ok, summary = e2e.ping(PEER, PEER4, t["v4"], count=3)
        check(ok and "3 received" in summary, f"the peer's pings reach {t['name']} through the new mapping ({summary})")


def hard_lifetime_reached(charon, directory):
    """At the profile's hard lifetime the proxy deletes the CHILD SA with the peer too (strongSwan stops listing
    it) and in the terminal; the terminal's next packets get a new CHILD SA on the same IKE SA."""
    t = TERMINALS[0]
    sa, child = e2e.installed_child(charon, t["name"])
    if child is None:
        check(False, f"{t['name']} holds a CHILD SA before its hard lifetime")
        return
    old_spi, ike_spi = child["spi-in"], sa["initiator-spi"]
    gone = e2e.wait_for(lambda: all(c["spi-in"] != old_spi for s in e2e.peer_sas(charon).get(t["name"], [])
                                    for c in s.get("child-sas", {}).values()), HARD_LIFETIME + 10)
    check(gone, f"at the hard lifetime ({HARD_LIFETIME} s) the proxy deleted {t['name']}'s CHILD SA at strongSwan too")
    check(e2e.wait_for(lambda: "deleted outbound SA" in e2e.read(os.path.join(directory, f"{t['name']}.log")), 5),
          "and in the terminal")
    ok, summary = e2e.ping(t["ns"], t["v4"], PEER4, count=3)
    sa, child = e2e.wait_child(charon, t["name"], timeout=10)
    check(child is not None and child["spi-in"] != old_spi and sa["initiator-spi"] == ike_spi,
          f"the terminal's next packets get a new CHILD SA on the same IKE SA ({summary})")


def run(charon, directory):
    load_peer(charon)
    control = os.path.join(directory, "ikeproxy.sock")
    _, log, daemon, agents = e2e.launch(directory, PROXY, daemon_configuration(control),
                                        [(t, terminal_configuration(t)) for t in TERMINALS])
    pcap = os.path.join(directory, "public-link.pcap")
    capture = subprocess.Popen(["ip", "netns", "exec", PEER, "tcpdump", "--immediate-mode", "-i", "ikp-np0", "-U", "-n", "-w", pcap],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        check(e2e.wait_for(lambda: os.path.exists(control) and daemon.poll() is None, 10), "the daemon runs behind the NAT router")
        time.sleep(1)
        # Each terminal's first packets to the peer: start requests, the proxy negotiates in its name.
        for t in TERMINALS:
            e2e.ping(t["ns"], t["v4"], PEER4, count=2)
        sas = {}
        for t in TERMINALS:
            sa, child = e2e.wait_child(charon, t["name"], timeout=15)
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
        e2e.wait_for(lambda: all("installed outbound SA" in e2e.read(os.path.join(directory, f"{t['name']}.log")) for t in TERMINALS), 10)

        for t in TERMINALS:
            ok, summary = e2e.ping(t["ns"], t["v4"], PEER4, count=5)
            check(ok and "5 received" in summary, f"{t['name']} pings the peer through ESP across the NAT ({summary})")
            ok, summary = e2e.ping(PEER, PEER4, t["v4"], count=5)
            check(ok and "5 received" in summary, f"the peer pings {t['name']} back through the NAT's mapping ({summary})")
        ok, size, seconds = e2e.transfer(PEER, PEER4, TERMINALS[0]["ns"], TERMINALS[0]["v4"], 7001, 2_000_000)
        check(ok, f"a 2 MB TCP transfer from {TERMINALS[0]['name']} to the peer arrives intact ({size} octets in {seconds:.1f} s)")
        counts = {name: (int(child.get("packets-in", b"0")), int(child.get("packets-out", b"0")))
                  for name, (_, child) in ((t["name"], e2e.installed_child(charon, t["name"])) for t in TERMINALS) if child}
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
        for agent in agents:
            e2e.stop(agent)
        code = e2e.stop(daemon)
        check(code == 0, f"the daemon stops cleanly (exit status {code})")
        for line in e2e.read(log).splitlines()[-3:]:
            print("      " + line[:300])
    plain = subprocess.run(["tcpdump", "-r", pcap, "-n", "icmp or tcp or ip proto 50"], capture_output=True, text=True).stdout.strip().splitlines()
    encapsulated = subprocess.run(["tcpdump", "-r", pcap, "-n", "udp port 4500"], capture_output=True, text=True).stdout.strip().splitlines()
    check(not plain and len(encapsulated) > 100,
          f"the public link carried no plaintext ICMP or TCP and no bare ESP, only ESP in UDP 4500 ({len(plain)} plain, "
          f"{len(encapsulated)} UDP 4500 packets)")


def main():
    return base.run_with_charon("daemon behind NAT test", "ikp-nat-", Topology, run, tools=("ping", "tcpdump", "nft", "conntrack"))


if __name__ == "__main__":
    sys.exit(main())
