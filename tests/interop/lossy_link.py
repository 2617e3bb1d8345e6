#!/usr/bin/env python3
"""The daemon's exchanges with strongSwan over an Internet link that loses a fifth of its packets.

The standard daemon lab (lib/lab.py: strongSwan, `ikeproxy daemon` as a bridge, terminals 1 and 2 with their
agents). nftables in strongSwan's namespace drops 20% of the packets on its link at random, both ways
(`numgen random mod 100 < 20`; this kernel has no netem), IKE, ESP and everything else alike. Each side
retransmits up to 6 times. Checks, each exchange in turn until both sides agree: strongSwan establishes with
terminal 1 (IKEv2 from strongSwan's side) and terminal 2 starts its own (the proxy's side); strongSwan rekeys
terminal 1's CHILD SA, then its IKE SA, and deletes the IKE SA; the proxy rekeys terminal 2's CHILD SA on its
schedule. After each, the SA the terminal's agent holds is the one strongSwan holds: nothing half installed.
Reported: each exchange's completion time and the retransmissions each side made.
Needs root, iproute2, nftables, strongSwan and the `vici` module; it fails loudly otherwise.
"""
import os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import missing_prerequisites, ns, read, wait_for  # noqa: E402
from lib.lab import PEER, PEER4, PROXY, TERMINALS, Topology, agents_ready, daemon_configuration, load_peer_connections, terminal_configuration  # noqa: E402
from lib.peer import Charon, initiate, installed_child, terminate  # noqa: E402
from lib.processes import launch, stop_all  # noqa: E402
from lib.report import check, summary  # noqa: E402

T1, T2 = TERMINALS
LOSS = 20
ROUNDS = 3


def lossy(namespace, device, percent):
    """Drops `percent` of the packets in and out of `device` at random."""
    rules = f"""table inet ikploss {{
  chain incoming {{
    type filter hook input priority 0;
    iifname "{device}" numgen random mod 100 < {percent} counter drop
  }}
  chain outgoing {{
    type filter hook output priority 0;
    oifname "{device}" numgen random mod 100 < {percent} counter drop
  }}
}}
"""
    subprocess.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=rules, text=True, check=True)


def dropped(namespace):
    output = ns(namespace, "nft", "list", "table", "inet", "ikploss", check=False).stdout
    return sum(int(n) for n in re.findall(r"packets (\d+)", output))


def agent_outbound(directory, terminal):
    """The outbound SPIs the terminal's agent holds now, from its log (installed, not deleted since)."""
    held = []
    for line in read(os.path.join(directory, f"{terminal['name']}.log")).splitlines():
        installed = re.search(r"installed outbound SA ([0-9a-f]{8})", line)
        deleted = re.search(r"deleted outbound SA ([0-9a-f]{8})", line)
        if installed and installed.group(1) not in held:  # set again (a stored SA handed anew) is still one SA
            held.append(installed.group(1))
        elif deleted and deleted.group(1) in held:
            held.remove(deleted.group(1))
    return held


def agrees(charon, directory, terminal, name):
    """Whether the terminal's agent holds exactly the outbound SA strongSwan receives with (or none, with none)."""
    _, child = installed_child(charon, name)
    return agent_outbound(directory, terminal) == ([child["spi-in"].decode()] if child else [])


class Retransmissions:
    """Both sides' retransmissions since the last `since`: the daemon's log lines and charon's."""

    def __init__(self, charon, log):
        self.charon, self.log = charon, log
        self.marks = self.counts()

    def counts(self):
        return read(self.log).count("retransmitting"), read(self.charon.log).count("retransmit ")

    def since(self):
        now = self.counts()
        delta = (now[0] - self.marks[0], now[1] - self.marks[1])
        self.marks = now
        return f"{delta[0]} retransmission(s) by the proxy, {delta[1]} by strongSwan"


def timed(label, action, done, retransmissions, timeout=60, attempts=3):
    """Runs `action` (again, up to `attempts` times, while `done()` does not hold) and reports how long until it held."""
    started = time.time()
    for attempt in range(1, attempts + 1):
        action()
        if wait_for(done, timeout / attempts):
            check(True, f"{label}: converged in {time.time() - started:.1f} s (attempt {attempt}; {retransmissions.since()})")
            return True
    check(False, f"{label}: did not converge in {attempts} attempts ({retransmissions.since()})")
    return False


def strongswan_exchanges_with_terminal_1(charon, directory, retransmissions, label):
    """strongSwan establishes with terminal 1, rekeys its CHILD SA, then its IKE SA, and deletes it."""
    timed(label + "strongSwan establishes with terminal 1", lambda: initiate(charon, "t1v4", timeout_ms=30000),
          lambda: installed_child(charon, "t1v4")[1] is not None and agrees(charon, directory, T1, "t1v4"), retransmissions)
    old = installed_child(charon, "t1v4")[1] or {"spi-in": b""}
    timed(label + "strongSwan rekeys terminal 1's CHILD SA", lambda: list(charon.session.rekey({"child": "t1v4"})),
          lambda: (lambda c: c is not None and c["spi-in"] != old["spi-in"])(installed_child(charon, "t1v4")[1])
          and agrees(charon, directory, T1, "t1v4"), retransmissions)
    old_ike = installed_child(charon, "t1v4")[0] or {"initiator-spi": b""}
    timed(label + "strongSwan rekeys terminal 1's IKE SA", lambda: list(charon.session.rekey({"ike": "t1v4"})),
          lambda: (lambda s: s is not None and s["initiator-spi"] != old_ike["initiator-spi"])(installed_child(charon, "t1v4")[0])
          and agrees(charon, directory, T1, "t1v4"), retransmissions)
    timed(label + "strongSwan deletes terminal 1's IKE SA", lambda: terminate(charon, "t1v4"),
          lambda: installed_child(charon, "t1v4")[1] is None and agrees(charon, directory, T1, "t1v4"), retransmissions)


def terminal_2_and_the_proxys_rekey(charon, directory, retransmissions):
    """Terminal 2 starts its own SA (the proxy initiates); the proxy rekeys it after 20 s, on its schedule, while
    strongSwan's exchanges with terminal 1 go on."""
    timed("terminal 2 starts its own (the proxy initiates)",
          lambda: ns(T2["ns"], "ping", "-c", "3", "-i", "0.5", "-W", "1", "-I", T2["v4"], PEER4, check=False),
          lambda: installed_child(charon, "t2v4")[1] is not None and agrees(charon, directory, T2, "t2v4"), retransmissions)
    first = installed_child(charon, "t2v4")[1] or {"spi-in": b""}
    made_at = time.time()
    strongswan_exchanges_with_terminal_1(charon, directory, retransmissions, "while the proxy's rekey is due: ")
    check(wait_for(lambda: (lambda c: c is not None and c["spi-in"] != first["spi-in"])(installed_child(charon, "t2v4")[1])
                   and agrees(charon, directory, T2, "t2v4"), max(5, 60 - (time.time() - made_at))),
          f"the proxy rekeyed terminal 2's CHILD SA on its schedule and the agent holds the new one "
          f"({time.time() - made_at:.0f} s after it was made; {retransmissions.since()})")


def run(charon, directory):
    load_peer_connections(charon)

    def configuration(control):
        config = daemon_configuration(control)
        config["settings"] = {"retransmit_timeout": 1.0, "retransmit_limit": 6}
        # The proxy rekeys its CHILD SAs after 20 s (no random part), so its own rekey happens under loss too.
        config["profiles"][0].update({"rekey_time": 20, "rand_time": 0})
        return config
    control = os.path.join(directory, "ikeproxy.sock")
    config_path, log, daemon, agents = launch(directory, PROXY, configuration(control), [(t, terminal_configuration(t)) for t in TERMINALS])
    try:
        check(wait_for(lambda: os.path.exists(control) and daemon.poll() is None, 10) and agents_ready(TERMINALS), "the daemon and both agents run")
        lossy(PEER, "ikp-dp0", LOSS)
        print(f"      strongSwan's link drops {LOSS}% of packets both ways from now on")
        retransmissions = Retransmissions(charon, log)
        started = time.time()
        terminal_2_and_the_proxys_rekey(charon, directory, retransmissions)
        for round_number in range(1, ROUNDS + 1):
            strongswan_exchanges_with_terminal_1(charon, directory, retransmissions, f"round {round_number}: ")
        lost = dropped(PEER)
        check(lost > 0, f"the link did lose packets: {lost} dropped by nftables in {time.time() - started:.0f} s")
    finally:
        stop_all(daemon, agents, log, tail=3)


def main():
    problem = missing_prerequisites("lossy link test", tools=("nft",))
    if problem:
        return problem
    directory = tempfile.mkdtemp(prefix="ikp-lossy-")
    print(f"== lossy link test (logs in {directory})")
    with Topology():
        charon = Charon(directory, PEER, settings="retransmit_tries = 6\n  retransmit_timeout = 1")
        try:
            run(charon, directory)
        finally:
            charon.stop()
    return summary("lossy link test")


if __name__ == "__main__":
    sys.exit(main())
