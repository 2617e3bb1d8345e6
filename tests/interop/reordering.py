#!/usr/bin/env python3
"""Loss and reordering on the link between strongSwan and `ikeproxy endpoint`: every exchange converges.

The kernel here has no netem, so the link is a user-space bump in the wire (lib/delay_bridge.py, AF_PACKET on two
interfaces in a middle namespace) that drops 20% of frames both ways and holds back another 25% for 0.5-2.5 s, so
that later frames (retransmissions among them) overtake them. Through it, each side in turn establishes, rekeys the CHILD SA, rekeys the IKE SA,
deletes the CHILD SA and deletes the IKE SA, three rounds; each step must complete with both sides agreeing, and its
time and the retransmissions on both sides are reported, with the totals at the end.

Needs root, iproute2, strongSwan and the `vici` Python module; it fails loudly if any is missing.
"""
import os, re, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib.endpoint  # noqa: E402
from lib.host import BINARY, Lab, missing_prerequisites, ns, read, sh  # noqa: E402
from lib.peer import Charon, decode  # noqa: E402
from lib.report import check, summary  # noqa: E402

PEER_NS, MID_NS, EP_NS = "ikp-ro-peer", "ikp-ro-mid", "ikp-ro-ep"
V4 = ("192.0.2.1", "192.0.2.2")
IKE, ESP = "aes256gcm16-prfsha256-x25519", "aes256gcm16"
# Held back longer than a first retransmission timeout: retransmissions overtake their originals, and answers and
# duplicates arrive after newer messages.
DROP, DELAY, DELAY_MS = 20, 25, (500, 2500)
ROUNDS = 3
# On a link this bad both sides are given more patience than their defaults (a request is lost or unanswered with
# probability 1 - 0.8 * 0.8 = 0.36 per transmission here: five transmissions fail 0.6% of exchanges, nine 0.01%).
ENDPOINT_SETTINGS = {"retransmit_timeout": 1.0, "retransmit_limit": 8}


class Network(Lab):
    namespaces = (PEER_NS, MID_NS, EP_NS)

    def build(self):
        sh("ip", "link", "add", "ikp-ro0", "netns", PEER_NS, "type", "veth", "peer", "name", "ikp-ro1", "netns", MID_NS)
        sh("ip", "link", "add", "ikp-ro2", "netns", MID_NS, "type", "veth", "peer", "name", "ikp-ro3", "netns", EP_NS)
        ns(PEER_NS, "ip", "addr", "add", V4[0] + "/24", "dev", "ikp-ro0")
        ns(EP_NS, "ip", "addr", "add", V4[1] + "/24", "dev", "ikp-ro3")
        for name, dev in ((PEER_NS, "ikp-ro0"), (MID_NS, "ikp-ro1"), (MID_NS, "ikp-ro2"), (EP_NS, "ikp-ro3")):
            ns(name, "ip", "link", "set", dev, "up")
            # Checksums computed when sent, not left to an offload the user-space bridge would pass on unfinished.
            ns(name, "ethtool", "-K", dev, "tx", "off", "rx", "off", "gso", "off", "gro", "off", "tso", "off", check=False)
        # Neighbours fixed, so that the experiment is on IKE, not on ARP through a lossy link.
        mac = lambda n, d: re.search(r"link/ether (\S+)", ns(n, "ip", "link", "show", d).stdout).group(1)
        ns(PEER_NS, "ip", "neigh", "replace", V4[1], "lladdr", mac(EP_NS, "ikp-ro3"), "dev", "ikp-ro0", "nud", "permanent")
        ns(EP_NS, "ip", "neigh", "replace", V4[0], "lladdr", mac(PEER_NS, "ikp-ro0"), "dev", "ikp-ro3", "nud", "permanent")


class Endpoint(lib.endpoint.Endpoint):
    namespace = EP_NS


def retransmissions(charon, directory):
    """Retransmissions so far: (the endpoint's, charon's), from their logs."""
    ours = read(os.path.join(directory, "endpoint.log")).count("retransmitting ")
    theirs = read(charon.log).count("retransmit ")
    return ours, theirs


def step(label, charon, directory, action, done, timeout=120):
    """Runs `action`, waits until `done()` holds; reports its time and the retransmissions it took."""
    before = retransmissions(charon, directory)
    started = time.time()
    action()
    deadline = started + timeout
    ok = False
    while time.time() < deadline:
        if done():
            ok = True
            break
        time.sleep(0.2)
    after = retransmissions(charon, directory)
    check(ok, f"{label}: converged in {time.time() - started:.1f} s "
              f"(retransmissions: ikeproxy {after[0] - before[0]}, strongSwan {after[1] - before[1]})")
    return ok


def children(charon):
    return [c for s in charon.sas() if s["state"] == b"ESTABLISHED" for c in s.get("child-sas", {}).values() if c["state"] == b"INSTALLED"]


def events(endpoint, kind):
    endpoint.wait_event("none", timeout=0.05)
    return [e for e in endpoint.events if e["event"] == kind]


def load_charon(charon):
    charon.load(IKE, ESP, V4)


def run_side(initiator, charon, directory, round):
    endpoint = Endpoint(directory, IKE, ESP, V4, settings=ENDPOINT_SETTINGS)
    try:
        label = f"round {round}, initiated by {initiator}"
        if initiator == "ikeproxy":
            establish = lambda: endpoint.command("initiate c")
            rekey_child = lambda: endpoint.command("rekey-child c")
            rekey_ike = lambda: endpoint.command("rekey-ike c")
            delete_child = lambda: endpoint.command("delete-child c")
            delete_ike = lambda: endpoint.command("delete-ike c")
        else:
            establish = lambda: list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": -1}))
            rekey_child = lambda: list(charon.session.rekey({"child": "ch"}))
            rekey_ike = lambda: list(charon.session.rekey({"ike": "c"}))
            delete_child = lambda: list(charon.session.terminate({"child": "ch", "timeout": -1}))
            delete_ike = lambda: list(charon.session.terminate({"ike": "c", "timeout": -1}))
        if not step(f"{label}: establishment", charon, directory, establish,
                    lambda: events(endpoint, "child_sa_established") and len(children(charon)) == 1):
            return
        first = events(endpoint, "child_sa_established")[0]
        step(f"{label}: CHILD SA rekey", charon, directory, rekey_child,
             lambda: (rekeyed := events(endpoint, "child_sa_rekeyed")) and len(children(charon)) == 1
             and decode(children(charon)[0]["spi-in"]) == rekeyed[-1]["child"]["spi_out"]
             and all(decode(c["spi-in"]) != first["child"]["spi_out"] for c in children(charon)))
        step(f"{label}: IKE SA rekey", charon, directory, rekey_ike,
             lambda: (rekeyed := events(endpoint, "ike_sa_rekeyed")) and len(charon.sas()) == 1
             and decode(charon.sas()[0]["initiator-spi"]) == rekeyed[-1]["ike_spi_i"] and len(children(charon)) == 1)
        step(f"{label}: CHILD SA delete", charon, directory, delete_child,
             lambda: len(events(endpoint, "child_sa_deleted")) >= 2 and not children(charon))
        step(f"{label}: IKE SA delete", charon, directory, delete_ike,
             lambda: events(endpoint, "ike_sa_deleted") and not charon.sas())
    finally:
        endpoint.stop()


def main():
    problem = missing_prerequisites("reordering", tools=("ip", "ethtool"), paths=("/usr/lib/ipsec/charon", BINARY))
    if problem:
        return problem
    directory = tempfile.mkdtemp(prefix="ikp-reorder-")
    print(f"== reordering (logs in {directory}; {DROP}% dropped, {DELAY}% held back {DELAY_MS[0]}-{DELAY_MS[1]} ms)")
    stats = os.path.join(directory, "bridge.stats")
    with Network():
        bridge = subprocess.Popen(["ip", "netns", "exec", MID_NS, sys.executable, os.path.join(os.path.dirname(__file__), "lib", "delay_bridge.py"),
                                   "ikp-ro1", "ikp-ro2", str(DROP), str(DELAY), str(DELAY_MS[0]), str(DELAY_MS[1]), stats])
        charon = Charon(directory, PEER_NS, settings="retransmit_tries = 8\n  retransmit_timeout = 1\n  retransmit_base = 1.4")
        try:
            load_charon(charon)
            started = time.time()
            for round in range(1, ROUNDS + 1):
                for initiator in ("ikeproxy", "strongSwan"):
                    run_side(initiator, charon, directory, round)
            ours, theirs = retransmissions(charon, directory)
            print(f"all {ROUNDS * 10} steps in {time.time() - started:.0f} s; retransmissions: ikeproxy {ours}, strongSwan {theirs}")
        finally:
            charon.stop()
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(timeout=10)
    figures = dict(zip(*[iter(read(stats).split())] * 2)) if os.path.exists(stats) else {}
    print(f"bridge: {figures}")
    check(int(figures.get("dropped", 0)) > 0 and int(figures.get("overtaken", 0)) >= 5,
          f"the link did drop ({figures.get('dropped')}) and reorder ({figures.get('overtaken')} frames overtaken) frames")
    return summary("reordering")


if __name__ == "__main__":
    sys.exit(main())
