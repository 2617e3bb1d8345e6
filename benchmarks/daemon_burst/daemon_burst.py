#!/usr/bin/env python3
"""The daemon's burst: N terminals behind one `ikeproxy daemon` all need keys at the same moment (issue 21).

Namespaces:

  ikb-peer    strongSwan (charon, kernel-libipsec, openssl), 192.0.2.1, a connection per terminal
  ikb-proxy   `ikeproxy daemon` bridging ikb-x0 (Internet side) and ikb-x1 (terminal side), no address,
              its SAs stored in SQLite (sealed with a key file)
  ikb-swarm   N terminals in one process (`terminal-swarm`): each its own address in 198.18.0.0/22, its own
              key-delivery socket and channel (terminal role, its enrollment key), as the daemon sees an agent

At one moment strongSwan initiates to the first half of the terminals and the second half each send the proxy
an ACQUIRE (an agent's request for an SA for its host's first packet to the peer), so the daemon answers half
the negotiations in its terminals' names and initiates the other half. Measured: the time from that moment
until every terminal holds an inbound and an outbound SA (delivered and acknowledged over key delivery), the
daemon's CPU per negotiation (/proc/PID/task/*/schedstat, everything from the first IKE_SA_INIT to the last
key acknowledged, SQLite writes included), its resident memory, and its counters of failures and
retransmissions. strongSwan runs with the tunables of benchmarks/ike_rate (no COOKIE, no per-address limit).

  benchmarks/daemon_burst/daemon_burst.py [--terminals 1000] [--rounds 1]
  benchmarks/daemon_burst/daemon_burst.py --smoke      (N=20: CI checks the harness runs and every terminal is keyed)
"""
import argparse, json, os, queue, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks", "ike_rate"))
from ike_rate import cpu_seconds  # noqa: E402
from lib.host import Lab, addresses_up, missing_prerequisites, ns, veth, wait_for  # noqa: E402
from lib.lab import daemon_file, peer_profile  # noqa: E402
from lib.peer import PSK, Charon, peer_sas  # noqa: E402
from lib.processes import daemon_status, stop  # noqa: E402

PEER, PROXY, SWARM = "ikb-peer", "ikb-proxy", "ikb-swarm"
PEER4, PREFIX = "192.0.2.1", "198.18.0.0/22"
# The same tunables as benchmarks/ike_rate: no COOKIE and no per-address half-open limit, 1 s first retransmission.
PEER_SETTINGS = """retransmit_timeout = 1
  retransmit_base = 2
  retransmit_tries = 5
  cookie_threshold = 1000000
  block_threshold = 1000000
  install_routes = no"""


def terminals(n):
    """Terminal k: 198.18.(k / 250).(k % 250 + 1), its id k + 1 and its own key; the first half started by the peer."""
    return [{"name": f"t{k}", "id": k + 1, "v4": f"198.18.{k // 250}.{k % 250 + 1}", "key": f"{(k * 7919) % (1 << 64):016x}" * 4,
             "by_peer": k < n // 2} for k in range(n)]


class Topology(Lab):
    namespaces = (PEER, PROXY, SWARM)

    def __init__(self, hosts):
        self.hosts = hosts

    def build(self):
        veth(PEER, "ikb-p0", PROXY, "ikb-x0")
        addresses_up(PEER, "ikb-p0", PEER4 + "/24")
        ns(PEER, "ip", "route", "add", PREFIX, "dev", "ikb-p0")
        veth(PROXY, "ikb-x1", SWARM, "ikb-s0")
        for namespace in (PEER, SWARM):
            # The peer's neighbour table holds every terminal's address (the default limit is 1,024).
            ns(namespace, "sysctl", "-qw", "net.ipv4.neigh.default.gc_thresh3=8192", "net.ipv4.neigh.default.gc_thresh2=4096", check=False)
        batch = "".join(f"addr add {h['v4']}/32 dev ikb-s0\n" for h in self.hosts)
        subprocess.run(["ip", "netns", "exec", SWARM, "ip", "-batch", "-"], input=batch, text=True, check=True)
        ns(SWARM, "ip", "link", "set", "ikb-s0", "up")
        ns(PROXY, "ip", "link", "set", "ikb-x0", "up")
        ns(PROXY, "ip", "link", "set", "ikb-x1", "up")
        ns(SWARM, "ip", "route", "add", "192.0.2.0/24", "dev", "ikb-s0")
        ns(SWARM, "ip", "route", "add", "169.254.0.1/32", "dev", "ikb-s0")


def resident_megabytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def load_peer(charon, hosts):
    for h in hosts:
        charon.session.load_conn({h["name"]: {
            "version": "2", "local_addrs": [PEER4], "remote_addrs": [h["v4"]], "proposals": ["aes256gcm16-prfsha256-x25519"],
            "encap": "yes", "rekey_time": "0", "dpd_delay": "0",
            "local-1": {"auth": "psk", "id": PEER4}, "remote-1": {"auth": "psk", "id": h["v4"]},
            "children": {h["name"]: {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                     "local_ts": [PEER4], "remote_ts": [h["v4"]]}}}})
    charon.session.load_shared({"id": "psk-all", "type": "IKE", "data": PSK, "owners": [PEER4] + [h["v4"] for h in hosts]})


def daemon_configuration(directory, hosts, workers=1):
    profiles = [peer_profile(force_encapsulation=True)]
    rules = [{"source": PREFIX, "destination": PEER4 + "/32", "action": "protect", "profile": "peer"}]
    enrolled = [{"name": h["name"], "v4": h["v4"], "id": h["id"], "key": h["key"]} for h in hosts]
    return daemon_file("ikb-x0", "ikb-x1", os.path.join(directory, "ikeproxy.sock"), [PREFIX], enrolled, profiles, rules,
                       settings={"retransmit_timeout": 1.0, "retransmit_limit": 5, "workers": workers,
                                 "max_negotiations": 1000},
                       store={"path": os.path.join(directory, "state.db"), "key_file": os.path.join(directory, "state.key"),
                              "create_key_file": True})


def daemon_counters(control):
    """The proxy's and the engine's counters from the daemon's status."""
    status = daemon_status(control)
    return {**status.get("proxy", {}), **status.get("engine", {})}


def lines_of(process, into):
    for line in process.stdout:
        into.put(json.loads(line))
    into.put(None)


def run_once(binary, swarm_binary, directory, n, timeout, workers=1):
    hosts = terminals(n)
    with Topology(hosts):
        charon = Charon(directory, PEER, PEER_SETTINGS, log_levels="default = 1")
        daemon = swarm = None
        try:
            load_peer(charon, hosts)
            config = os.path.join(directory, "daemon.json")
            with open(config, "w") as f:
                json.dump(daemon_configuration(directory, hosts, workers), f, indent=1)
            control = os.path.join(directory, "ikeproxy.sock")
            daemon = subprocess.Popen(["ip", "netns", "exec", PROXY, binary, "daemon", "--config", config],
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(directory, "daemon.log"), "w"))
            swarm_config = os.path.join(directory, "swarm.json")
            with open(swarm_config, "w") as f:
                json.dump({"proxy_address": "169.254.0.1", "peer": PEER4,
                           "terminals": [{"id": h["id"], "key_hex": h["key"], "address": h["v4"], "acquire": not h["by_peer"]} for h in hosts]}, f)
            swarm = subprocess.Popen(["ip", "netns", "exec", SWARM, swarm_binary, swarm_config], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(directory, "swarm.log"), "w"), text=True)
            said = queue.Queue()
            threading.Thread(target=lines_of, args=(swarm, said), daemon=True).start()
            first = said.get(timeout=30)
            if not first or first.get("ready") != n:
                raise RuntimeError(f"terminal-swarm did not start: {first}; see {directory}/swarm.log")
            if not wait_for(lambda: os.path.exists(control) and daemon.poll() is None, 20):
                raise RuntimeError(f"the daemon did not start; see {directory}/daemon.log")
            time.sleep(0.5)
            counters_before = daemon_counters(control)
            cpu_before = cpu_seconds(daemon.pid)
            started = time.monotonic()
            swarm.stdin.write("go\n")
            swarm.stdin.flush()
            # timeout -1: VICI queues each initiation and answers at once, so the half go out together.
            for h in hosts:
                if h["by_peer"]:
                    for _ in charon.session.streamed_request("initiate", "control-log", {"child": h["name"], "ike": h["name"], "timeout": "-1"}):
                        pass
            keyed = {}
            while len(keyed) < n and time.monotonic() - started < timeout:
                try:
                    line = said.get(timeout=1)
                except queue.Empty:
                    continue
                if line is None:
                    break
                if "keyed" in line:
                    keyed[line["keyed"]] = line["after"]
            elapsed = max(keyed.values(), default=time.monotonic() - started) if len(keyed) == n else time.monotonic() - started
            time.sleep(0.5)
            cpu = cpu_seconds(daemon.pid) - cpu_before
            rss = resident_megabytes(daemon.pid)
            counters = {k: v - counters_before.get(k, 0) for k, v in daemon_counters(control).items() if v != counters_before.get(k, 0)}
            installed = sum(1 for sas in peer_sas(charon).values() for sa in sas
                            if sa["state"] == b"ESTABLISHED" and any(c["state"] == b"INSTALLED" for c in sa.get("child-sas", {}).values()))
            swarm.stdin.write("stop\n")
            swarm.stdin.flush()
            summary = None
            try:
                while (line := said.get(timeout=10)) is not None:
                    if "summary" in line:
                        summary = line["summary"]
                        break
            except queue.Empty:
                pass
            return {"n": n, "keyed": len(keyed), "seconds": elapsed, "daemon_cpu_ms": 1000 * cpu / max(len(keyed), 1),
                    "rss_mb": rss, "peer_installed": installed, "counters": counters, "swarm": summary,
                    "by_peer_half": max((keyed.get(h["id"], 0) for h in hosts if h["by_peer"]), default=0),
                    "by_terminal_half": max((keyed.get(h["id"], 0) for h in hosts if not h["by_peer"]), default=0)}
        finally:
            if swarm:
                stop(swarm)
            if daemon:
                stop(daemon)
            charon.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terminals", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "ikeproxy"))
    parser.add_argument("--swarm", default=None, help="terminal-swarm binary (default: beside --binary)")
    parser.add_argument("--smoke", action="store_true", help="N=20, one round: the harness works and every terminal is keyed")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="the daemon's IKE engines (settings.workers); several values alternate within each round")
    args = parser.parse_args()
    if args.smoke:
        args.terminals, args.rounds = 20, 1
    if args.terminals > 1000:
        parser.error("at most 1,000 terminals (198.18.0.0/22 with 250 per /24)")
    swarm_binary = args.swarm or os.path.join(os.path.dirname(args.binary), "terminal-swarm")
    problem = missing_prerequisites("daemon_burst", tools=["ip", "/usr/lib/ipsec/charon"], paths=[args.binary, swarm_binary])
    if problem:
        return problem
    print(f"daemon_burst: {args.binary}, {args.terminals} terminals, {os.cpu_count()} cores")
    results, failed = [], False
    for r, workers in ((r, w) for r in range(args.rounds) for w in args.workers):
        directory = tempfile.mkdtemp(prefix="daemon-burst-")
        result = run_once(args.binary, swarm_binary, directory, args.terminals, args.timeout, workers)
        result["workers"] = workers
        results.append(result)
        problems = [k for k in counters_of_trouble(result["counters"])]
        print(f"round {r + 1}, {workers} IKE engine(s): {result['keyed']}/{args.terminals} terminals keyed in {result['seconds']:.2f} s "
              f"(the peer's half by {result['by_peer_half']:.2f} s, the terminals' half by {result['by_terminal_half']:.2f} s); "
              f"daemon CPU per negotiation {result['daemon_cpu_ms']:.2f} ms; resident {result['rss_mb']:.1f} MB; "
              f"strongSwan holds {result['peer_installed']} CHILD SAs; logs in {directory}")
        print(f"         daemon counters during the burst: {json.dumps(result['counters'], sort_keys=True)}")
        print(f"         terminals: {json.dumps(result['swarm'], sort_keys=True)}")
        if result["keyed"] != args.terminals or result["peer_installed"] != args.terminals or problems:
            print(f"daemon_burst: FAILED: {result['keyed']} keyed, {result['peer_installed']} at strongSwan, trouble: {problems}")
            failed = True
    if len(args.workers) > 1 or args.rounds > 1:
        for workers in args.workers:
            mine = [r for r in results if r["workers"] == workers]
            print(f"{workers} IKE engine(s), median of {len(mine)}: every terminal keyed in "
                  f"{statistics.median(r['seconds'] for r in mine):.2f} s, daemon CPU per negotiation "
                  f"{statistics.median(r['daemon_cpu_ms'] for r in mine):.2f} ms")
    return 1 if failed else 0


def counters_of_trouble(counters):
    """Counters that say a negotiation or a key delivery went wrong."""
    return {k: v for k, v in counters.items() if any(word in k for word in ("fail", "refused", "abandoned", "rejected"))}


if __name__ == "__main__":
    sys.exit(main())
