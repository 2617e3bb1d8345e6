#!/usr/bin/env python3
"""IKE negotiations per second, `ikeproxy endpoint` beside strongSwan, in one run (issue 21).

Two namespaces joined by a veth pair; N connections between the same two addresses, told apart by identity
(PSK, aes256gcm16-prfsha256-x25519, one CHILD SA each, UDP encapsulation as strongSwan's kernel-libipsec
needs). Every pair of initiator and responder (ikeproxy or strongSwan on each side) starts all N at once;
the rounds alternate the pairs so that the machine's noise falls on all of them alike. Reported per run:
SAs/s (from the trigger to the last CHILD SA established, as the initiator logs it), CPU per SA of each side
(/proc/PID/task/*/schedstat), datagrams the kernel dropped in each namespace (/proc/net/snmp Udp InErrors +
RcvbufErrors) and retransmissions the initiator sent. Both implementations run with the same tunables:
first retransmission after 1 s, no COOKIE and no per-address half-open limit (strongSwan's
cookie_threshold and block_threshold would otherwise turn away a burst from one address), logging at
their usual level. Medians per pair and size, and the ratios that issue 21 asks about, are printed at
the end.

  benchmarks/ike_rate/ike_rate.py [--connections 200 1000] [--rounds 3] [--binary .build/release/ikeproxy]
  benchmarks/ike_rate/ike_rate.py --smoke     (N=20, one round: CI checks the harness runs and every SA comes up)
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from lib.host import add_namespaces, addresses_up, ns, remove_namespaces, veth  # noqa: E402

INITIATOR_NS, RESPONDER_NS = "ikr-ini", "ikr-res"
INITIATOR_IP, RESPONDER_IP = "10.77.0.1", "10.77.0.2"
PSK = "ike-rate-benchmark-pre-shared-key"
IKE, ESP = "aes256gcm16-prfsha256-x25519", "aes256gcm16"
RESPONDER_ID = "responder.bench.example"
# --pin: the initiator on core 0, the responder on core 1 (each side then has a core of its own).
PIN = False


def pinned(role):
    return ["taskset", "-c", "0" if role == "initiator" else "1"] if PIN else []


# ikeproxy's initiations in flight at once (its `initiation_window`; --window): 1 makes every message arrive alone.
WINDOW = 64
# ikeproxy's IKE engines on worker threads (its `settings.workers`; --workers).
WORKERS = 1
# ikeproxy's `settings.log_level` (--log-level): "info" logs every negotiation as strongSwan's default does.
LOG_LEVEL = "info"
# ikeproxy's `settings.receive_coalescing` in seconds (--coalescing); None leaves its default.
COALESCING = None
# strongSwan as responder (--strongswan-responder): "each", a connection per initiator as ikeproxy has, or "one"
# for all of them (wildcard identity, narrowed selectors).
STRONGSWAN_RESPONDER = "each"


def initiator_id(k):
    return f"i{k}@bench.example"


def selectors(k):
    """Each connection its own host-to-host pair of selectors, as N distinct terminals would have."""
    return f"10.100.{k >> 8}.{k & 255}/32", f"10.200.{k >> 8}.{k & 255}/32"


def cpu_seconds(pid):
    """CPU time of every thread of the process, to the nanosecond (schedstat; /proc/PID/stat counts 10 ms ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def udp_drops(namespace):
    lines = [line.split() for line in ns(namespace, "cat", "/proc/net/snmp").stdout.splitlines() if line.startswith("Udp:")]
    table = dict(zip(lines[0][1:], map(int, lines[1][1:])))
    return table.get("InErrors", 0) + table.get("RcvbufErrors", 0)


def count_lines(path, pattern):
    if not os.path.exists(path):
        return 0
    with open(path, errors="replace") as f:
        return sum(1 for line in f if pattern in line)


class Topology:
    """The two namespaces, each also holding its side's N selector addresses (kernel-libipsec installs a route
    from each CHILD SA's local selector, and refuses the SA if that address is not the host's)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        remove_namespaces(INITIATOR_NS, RESPONDER_NS)
        add_namespaces(INITIATOR_NS, RESPONDER_NS)
        veth(INITIATOR_NS, "ini0", RESPONDER_NS, "res0")
        addresses_up(INITIATOR_NS, "ini0", INITIATOR_IP + "/24")
        addresses_up(RESPONDER_NS, "res0", RESPONDER_IP + "/24")
        for namespace, index in ((INITIATOR_NS, 0), (RESPONDER_NS, 1)):
            batch = "".join(f"addr add {selectors(k)[index]} dev lo\n" for k in range(self.n))
            subprocess.run(["ip", "netns", "exec", namespace, "ip", "-batch", "-"], input=batch, text=True, check=True)
        return self

    def __exit__(self, *exc):
        remove_namespaces(INITIATOR_NS, RESPONDER_NS)


class IKEProxySide:
    """`ikeproxy endpoint` with N connections; as initiator it is told to start them all through its control pipe."""

    name = "ikeproxy"

    def __init__(self, binary, directory, namespace, role, n):
        self.role, self.n = role, n
        self.log = os.path.join(directory, f"ikeproxy-{role}.log")
        self.events = os.path.join(directory, f"ikeproxy-{role}.events")
        self.fifo = os.path.join(directory, f"control-{role}")
        local, remote = (INITIATOR_IP, RESPONDER_IP) if role == "initiator" else (RESPONDER_IP, INITIATOR_IP)
        connections = []
        for k in range(n):
            ours, theirs = selectors(k) if role == "initiator" else reversed(selectors(k))
            connections.append({
                "name": f"c{k}", "local_address": local, "remote_address": remote, "psk": PSK, "proposals": [IKE],
                "local_id": initiator_id(k) if role == "initiator" else RESPONDER_ID,
                "remote_id": RESPONDER_ID if role == "initiator" else initiator_id(k),
                "force_encapsulation": True,
                "children": [{"name": "ch", "local_ts": [ours], "remote_ts": [theirs], "esp_proposals": [ESP]}]})
        config = {"connections": connections,
                  "settings": {"retransmit_timeout": 1.0, "retransmit_limit": 5, "cookie_threshold": 1000000,
                               "initiation_window": WINDOW, "workers": WORKERS, "log_level": LOG_LEVEL}}
        if COALESCING is not None:
            config["settings"]["receive_coalescing"] = COALESCING
        path = os.path.join(directory, f"ikeproxy-{role}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.process = subprocess.Popen(
            pinned(role) + ["ip", "netns", "exec", namespace, binary, "endpoint", "--config", path, "--control", self.fifo],
            stdout=open(self.events, "w"), stderr=open(self.log, "w"))

    def ready(self):
        return os.path.exists(self.fifo) and count_lines(self.log, "listening on") >= 2

    def start_all(self):
        fd = os.open(self.fifo, os.O_WRONLY)
        try:
            os.write(fd, "".join(f"initiate c{k}\n" for k in range(self.n)).encode())
        finally:
            os.close(fd)

    def established(self):
        return count_lines(self.events, '"event":"child_sa_established"')

    def retransmissions(self):
        return count_lines(self.log, "retransmitting")

    def stop(self):
        try:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()


class StrongSwanSide:
    """charon (kernel-libipsec, openssl) with N connections loaded over VICI; as initiator it starts them all."""

    name = "strongswan"

    def __init__(self, directory, namespace, role, n):
        import vici
        self.role, self.n = role, n
        self.dir = os.path.join(directory, f"strongswan-{role}")
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "charon.log")
        self.socket = os.path.join(self.dir, "charon.vici")
        with open(os.path.join(self.dir, "strongswan.conf"), "w") as f:
            f.write(f"""charon {{
  load = random nonce aes sha1 sha2 hmac gcm curve25519 gmp openssl kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  retransmit_timeout = 1
  retransmit_base = 2
  retransmit_tries = 5
  cookie_threshold = 1000000
  block_threshold = 1000000
  install_routes = no
  plugins {{
    vici {{ socket = unix://{self.socket} }}
    kernel-libipsec {{ allow_peer_ts = yes }}
    kernel-netlink {{ fwmark = !0x42 }}
    socket-default {{ fwmark = 0x42 }}
  }}
  filelog {{ log {{ path = {self.log}
                   time_format = %s
                   flush_line = yes
                   default = 1 }} }}
}}
""")
        env = dict(os.environ, STRONGSWAN_CONF=os.path.join(self.dir, "strongswan.conf"))
        self.process = subprocess.Popen(
            pinned(role) + ["ip", "netns", "exec", namespace, "unshare", "-m", "sh", "-c",
             "mount -t tmpfs none /run && mkdir -p /run/strongswan && exec /usr/lib/ipsec/charon"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 15
        while True:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket)
                self.session = vici.Session(s)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("charon did not open its VICI socket; see " + self.log)
                time.sleep(0.2)
        local, remote = (INITIATOR_IP, RESPONDER_IP) if role == "initiator" else (RESPONDER_IP, INITIATOR_IP)
        if role == "responder" and STRONGSWAN_RESPONDER == "one":
            # One connection for every initiator, as a strongSwan gateway serves many clients: any identity of the
            # domain, and selectors narrowed to what each initiator proposes.
            self.session.load_conn({"all": {
                "version": "2", "local_addrs": [local], "remote_addrs": [remote], "proposals": [IKE], "encap": "yes",
                "rekey_time": "0", "dpd_delay": "0", "unique": "never",
                "local-1": {"auth": "psk", "id": RESPONDER_ID}, "remote-1": {"auth": "psk", "id": "*@bench.example"},
                "children": {"ch": {"esp_proposals": [ESP], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                    "local_ts": ["10.200.0.0/16"], "remote_ts": ["10.100.0.0/16"]}}}})
        for k in range(n if role == "initiator" or STRONGSWAN_RESPONDER == "each" else 0):
            ours, theirs = selectors(k) if role == "initiator" else reversed(selectors(k))
            me = initiator_id(k) if role == "initiator" else RESPONDER_ID
            them = RESPONDER_ID if role == "initiator" else initiator_id(k)
            self.session.load_conn({f"c{k}": {
                "version": "2", "local_addrs": [local], "remote_addrs": [remote], "proposals": [IKE], "encap": "yes",
                "rekey_time": "0", "dpd_delay": "0", "unique": "never",
                "local-1": {"auth": "psk", "id": me}, "remote-1": {"auth": "psk", "id": them},
                "children": {"ch": {"esp_proposals": [ESP], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                    "local_ts": [ours], "remote_ts": [theirs]}}}})
        owners = [RESPONDER_ID] + [initiator_id(k) for k in range(n)]
        self.session.load_shared({"id": "psk-all", "type": "IKE", "data": PSK, "owners": owners})

    def ready(self):
        return True

    def start_all(self):
        # timeout -1: VICI queues the initiation and answers at once, so all N go out together.
        for k in range(self.n):
            for _ in self.session.streamed_request("initiate", "control-log", {"child": "ch", "ike": f"c{k}", "timeout": "-1"}):
                pass

    def established(self):
        return count_lines(self.log, "established with SPIs")

    def retransmissions(self):
        return count_lines(self.log, "retransmit ")

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except Exception:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass


def make(kind, binary, directory, namespace, role, n):
    return IKEProxySide(binary, directory, namespace, role, n) if kind == "ikeproxy" else StrongSwanSide(directory, namespace, role, n)


def run_once(binary, directory, initiator_kind, responder_kind, n, timeout, record=None):
    """One run; `record` is None, "perf" (where the responder's CPU goes) or "syscalls" (its system calls per SA)."""
    with Topology(n):
        responder = make(responder_kind, binary, directory, RESPONDER_NS, "responder", n)
        initiator = make(initiator_kind, binary, directory, INITIATOR_NS, "initiator", n)
        try:
            deadline = time.time() + 30
            while not (responder.ready() and initiator.ready()):
                if time.time() > deadline:
                    raise RuntimeError(f"{initiator_kind}/{responder_kind} did not start; logs in {directory}")
                time.sleep(0.05)
            time.sleep(0.3)
            drops = (udp_drops(INITIATOR_NS), udp_drops(RESPONDER_NS))
            cpu = (cpu_seconds(initiator.process.pid), cpu_seconds(responder.process.pid))
            recorder = None
            if record == "syscalls":
                # System calls of every responder thread, counted by strace (which slows it: CPU figures of such a run
                # are not comparable; the counts are).
                recorder = subprocess.Popen(["strace", "-f", "-c", "-o", os.path.join(directory, "responder.syscalls"),
                                             "-p", str(responder.process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            elif record == "perf":
                # perf's software clock (this machine has no hardware counters): where the responder's CPU goes.
                recorder = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p", str(responder.process.pid),
                                             "-o", os.path.join(directory, "responder.perf.data")],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            started = time.monotonic()
            initiator.start_all()
            done = started
            while time.monotonic() - started < timeout:
                if initiator.established() >= n:
                    done = time.monotonic()
                    break
                time.sleep(0.01)
            established = initiator.established()
            finished = done if established >= n else time.monotonic()
            # Let late retransmissions and their answers settle before reading the counters.
            time.sleep(0.2)
            if recorder:
                recorder.send_signal(signal.SIGINT)
                recorder.wait(timeout=30)
            cpu_after = (cpu_seconds(initiator.process.pid), cpu_seconds(responder.process.pid))
            if record == "syscalls":
                print(f"responder system calls per SA (strace -c; N={n}):")
                with open(os.path.join(directory, "responder.syscalls")) as f:
                    for line in f:
                        fields = line.split()
                        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] not in ("total",):
                            print(f"  {fields[-1]:<16} {int(fields[3]) / max(established, 1):8.2f}")
            drops_after = (udp_drops(INITIATOR_NS), udp_drops(RESPONDER_NS))
            return {
                "initiator": initiator_kind, "responder": responder_kind, "n": n, "established": established,
                "seconds": finished - started, "rate": established / max(finished - started, 1e-9),
                "initiator_cpu_ms": 1000 * (cpu_after[0] - cpu[0]) / max(established, 1),
                "responder_cpu_ms": 1000 * (cpu_after[1] - cpu[1]) / max(established, 1),
                "initiator_drops": drops_after[0] - drops[0], "responder_drops": drops_after[1] - drops[1],
                "retransmissions": initiator.retransmissions()}
        finally:
            initiator.stop()
            responder.stop()


def bare_crypto_ms(root):
    """One side's bare crypto per negotiation, from proxy-benchmark's line, if it was built (release)."""
    binary = os.path.join(root, ".build", "release", "proxy-benchmark")
    if not os.path.exists(binary):
        return None
    out = subprocess.run([binary, "--crypto-only"], capture_output=True, text=True).stdout
    match = re.search(r"bare crypto per side: ([0-9.]+) ms", out)
    return float(match.group(1)) if match else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "ikeproxy"))
    parser.add_argument("--pairs", nargs="+", default=["ikeproxy/ikeproxy", "strongswan/ikeproxy", "ikeproxy/strongswan", "strongswan/strongswan"],
                        help="initiator/responder pairs")
    parser.add_argument("--smoke", action="store_true", help="N=20, one round: the harness works and every SA comes up")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--perf", action="store_true", help="record the responder with perf (responder.perf.data in each run's folder)")
    parser.add_argument("--syscalls", action="store_true", help="count the responder's system calls per SA with strace")
    parser.add_argument("--pin", action="store_true", help="initiator on core 0, responder on core 1")
    parser.add_argument("--window", type=int, default=64, help="ikeproxy initiator's initiation_window (default 64)")
    parser.add_argument("--workers", type=int, default=1, help="ikeproxy's IKE engines on worker threads (settings.workers, default 1)")
    parser.add_argument("--log-level", default="info", choices=["info", "warning"],
                        help="ikeproxy's settings.log_level (default info: a line per step of every negotiation)")
    parser.add_argument("--coalescing", type=float, default=None,
                        help="ikeproxy's settings.receive_coalescing in seconds (default: ikeproxy's own default)")
    parser.add_argument("--strongswan-responder", choices=["each", "one"], default="each",
                        help="strongSwan as responder: a connection per initiator (default) or one for all")
    args = parser.parse_args()
    global WINDOW, PIN, WORKERS, LOG_LEVEL, COALESCING, STRONGSWAN_RESPONDER
    WINDOW, PIN, WORKERS, LOG_LEVEL, COALESCING = args.window, args.pin, args.workers, args.log_level, args.coalescing
    STRONGSWAN_RESPONDER = args.strongswan_responder
    if os.geteuid() != 0:
        sys.exit("ike_rate needs root (network namespaces)")
    for tool, path in (("ikeproxy", args.binary), ("charon", "/usr/lib/ipsec/charon")):
        if not os.path.exists(path):
            sys.exit(f"ike_rate needs {tool} at {path}" + (" (swift build -c release)" if tool == "ikeproxy" else " (apt-get install strongswan)"))
    if args.smoke:
        args.connections, args.rounds, args.timeout = [20], 1, 60
    directory = tempfile.mkdtemp(prefix="ike-rate-")
    bare_before = bare_crypto_ms(ROOT)
    print(f"ike_rate: {args.binary}, logs in {directory}; {os.cpu_count()} cores")
    results = []
    for round_index in range(args.rounds):
        for n in args.connections:
            pairs = args.pairs if round_index % 2 == 0 else list(reversed(args.pairs))
            for pair in pairs:
                initiator_kind, responder_kind = pair.split("/")
                run_directory = os.path.join(directory, f"r{round_index}-n{n}-{initiator_kind}-{responder_kind}")
                os.makedirs(run_directory)
                # The bare crypto just before and just after each run with ikeproxy responding, their mean: the
                # machine's speed moves between rounds, and between two readings a minute apart (0.105 to 0.175 ms
                # seen), so each run's CPU is set against readings taken on either side of it.
                before = bare_crypto_ms(ROOT) if responder_kind == "ikeproxy" and not args.smoke else None
                result = run_once(args.binary, run_directory, initiator_kind, responder_kind, n, args.timeout,
                                  "syscalls" if args.syscalls else "perf" if args.perf else None)
                after = bare_crypto_ms(ROOT) if before else None
                adjacent = (before + after) / 2 if before and after else before
                result["bare_ms"] = adjacent
                results.append(result)
                print(f"round {round_index + 1} N={n:5} {initiator_kind:>10} -> {responder_kind:<10} "
                      f"{result['established']:5}/{n} up in {result['seconds']:6.2f} s = {result['rate']:7.1f} SAs/s; "
                      f"CPU/SA initiator {result['initiator_cpu_ms']:5.2f} ms responder {result['responder_cpu_ms']:5.2f} ms; "
                      f"drops {result['initiator_drops']}/{result['responder_drops']}; retransmissions {result['retransmissions']}"
                      + (f"; bare crypto beside it {adjacent:.3f} ms ({before:.3f} before, {after:.3f} after), "
                         f"responder {result['responder_cpu_ms'] / adjacent:.1f}x" if adjacent and after else ""),
                      flush=True)
    print()
    print("| N | initiator | responder | SAs/s | responder CPU/SA | initiator CPU/SA | drops (ini/res) | retransmissions |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    medians = {}
    for n in args.connections:
        for pair in args.pairs:
            i, r = pair.split("/")
            runs = [x for x in results if x["n"] == n and x["initiator"] == i and x["responder"] == r]
            m = {key: statistics.median(x[key] for x in runs) for key in ("rate", "responder_cpu_ms", "initiator_cpu_ms")}
            m["drops"] = (max(x["initiator_drops"] for x in runs), max(x["responder_drops"] for x in runs))
            m["retransmissions"] = max(x["retransmissions"] for x in runs)
            medians[(n, i, r)] = m
            print(f"| {n} | {i} | {r} | {m['rate']:.0f} | {m['responder_cpu_ms']:.2f} ms | {m['initiator_cpu_ms']:.2f} ms | "
                  f"{m['drops'][0]}/{m['drops'][1]} | {m['retransmissions']} |")
    print()
    bare_after = bare_crypto_ms(ROOT)
    bare = min(bare_before, bare_after) if bare_before and bare_after else None
    if bare:
        print(f"bare crypto of one negotiation, one side (proxy-benchmark --crypto-only, before and after the runs): "
              f"{bare_before:.3f} ms, {bare_after:.3f} ms; the lower is used")
        for n in args.connections:
            for i in ("ikeproxy", "strongswan"):
                m = medians.get((n, i, "ikeproxy"))
                if m:
                    beside = [x["responder_cpu_ms"] / x["bare_ms"] for x in results
                              if x["n"] == n and x["initiator"] == i and x["responder"] == "ikeproxy" and x.get("bare_ms")]
                    print(f"N={n}, {i} initiating: ikeproxy's responder CPU per SA is {m['responder_cpu_ms'] / bare:.1f}x the bare crypto"
                          + (f"; run by run, against the bare crypto read beside each run: "
                             f"{', '.join(f'{r:.1f}x' for r in beside)} (median {statistics.median(beside):.1f}x)" if beside else ""))
    else:
        print("bare crypto not measured: build proxy-benchmark in release (swift build -c release --product proxy-benchmark)")
    failed = [x for x in results if x["established"] < x["n"]]
    for n in args.connections:
        def get(i, r):
            return medians.get((n, i, r))
        a, b = get("strongswan", "ikeproxy"), get("strongswan", "strongswan")
        if a and b and b["rate"] > 0:
            print(f"N={n}, strongSwan initiating: ikeproxy as responder {a['rate'] / b['rate']:.2f}x strongSwan's rate, "
                  f"{a['responder_cpu_ms'] / b['responder_cpu_ms']:.2f}x its responder CPU per SA")
        a, b = get("ikeproxy", "ikeproxy"), get("ikeproxy", "strongswan")
        if a and b and b["rate"] > 0:
            print(f"N={n}, ikeproxy initiating: ikeproxy as responder {a['rate'] / b['rate']:.2f}x strongSwan's rate, "
                  f"{a['responder_cpu_ms'] / b['responder_cpu_ms']:.2f}x its responder CPU per SA")
        a, b = get("ikeproxy", "strongswan"), get("strongswan", "strongswan")
        if a and b and b["rate"] > 0:
            print(f"N={n}, strongSwan responding: ikeproxy as initiator {a['rate'] / b['rate']:.2f}x strongSwan's rate, "
                  f"{a['initiator_cpu_ms'] / b['initiator_cpu_ms']:.2f}x its initiator CPU per SA")
    if failed:
        for x in failed:
            print(f"FAILED: N={x['n']} {x['initiator']} -> {x['responder']}: only {x['established']} CHILD SAs came up", file=sys.stderr)
        sys.exit(1)
    print(f"ike_rate: every run established all its SAs; logs in {directory}")
    if args.smoke:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
