#!/usr/bin/env python3
"""How many IKE_SA_INIT requests `ikeproxy endpoint` answers a second as its engines' worker threads grow
(settings.workers; issue 21: both cores used).

The same two namespaces as ike_rate.py. `ike-init-load` (benchmarks/IKEInitLoad) sends genuine IKE_SA_INIT
requests (aes256gcm16-prfsha256-x25519, a real X25519 public value, a fresh initiator SPI each) at a set rate
from one socket, and counts the answers that made an IKE SA: every request costs the responder a key pair,
the shared secret and the key derivation, and the generator, doing no crypto, leaves it the machine. The
rate is set above what one core answers, so the responder is the bound: its socket drops the rest (counted).
The endpoint runs with no COOKIE (cookie_threshold very high) and a half-open timeout of 2 s (the half-open
SAs of the load do not pile up); rounds alternate the number of workers. Reported per run: IKE SAs made per
second while the load was on, the endpoint's CPU (all its threads, schedstat) per answer, and its socket's
drops (/proc/net/snmp).

  benchmarks/ike_rate/responder_load.py [--workers 1 2] [--rounds 3] [--rate 40000] [--seconds 8]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from ike_rate import INITIATOR_IP, INITIATOR_NS, PSK, RESPONDER_IP, RESPONDER_NS, Topology, count_lines, cpu_seconds, udp_drops  # noqa: E402


def endpoint_configuration(workers):
    return {"connections": [{
        "name": "load", "local_address": RESPONDER_IP, "remote_address": INITIATOR_IP, "psk": PSK,
        "proposals": ["aes256gcm16-prfsha256-x25519"], "local_id": "responder.bench.example", "remote_id": "load@bench.example",
        "children": [{"name": "ch", "local_ts": ["10.200.0.0/32"], "remote_ts": ["10.100.0.0/32"], "esp_proposals": ["aes256gcm16"]}]}],
        "settings": {"cookie_threshold": 100000000, "half_open_timeout": 2, "workers": workers}}


def run_once(binary, load_binary, directory, workers, rate, seconds):
    with Topology(1):
        path = os.path.join(directory, f"endpoint-{workers}.json")
        with open(path, "w") as f:
            json.dump(endpoint_configuration(workers), f)
        log = os.path.join(directory, f"endpoint-{workers}.log")
        endpoint = subprocess.Popen(["ip", "netns", "exec", RESPONDER_NS, binary, "endpoint", "--config", path],
                                    stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        try:
            deadline = time.time() + 20
            while count_lines(log, "listening on") < 2:
                if time.time() > deadline or endpoint.poll() is not None:
                    raise RuntimeError(f"the endpoint did not start; see {log}")
                time.sleep(0.05)
            time.sleep(0.3)
            drops, cpu = udp_drops(RESPONDER_NS), cpu_seconds(endpoint.pid)
            out = subprocess.run(["ip", "netns", "exec", INITIATOR_NS, load_binary, INITIATOR_IP, RESPONDER_IP, str(rate), str(seconds)],
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out)
            cpu = cpu_seconds(endpoint.pid) - cpu
            result.update(workers=workers, rate=result["answered_in_time"] / seconds, drops=udp_drops(RESPONDER_NS) - drops,
                          cpu_us=1e6 * cpu / max(result["answered"], 1))
            return result
        finally:
            endpoint.terminate()
            try:
                endpoint.wait(timeout=10)
            except subprocess.TimeoutExpired:
                endpoint.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=40000, help="IKE_SA_INIT requests a second (above what the responder answers)")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "ikeproxy"))
    args = parser.parse_args()
    load_binary = os.path.join(os.path.dirname(args.binary), "ike-init-load")
    if os.geteuid() != 0:
        sys.exit("responder_load needs root (network namespaces)")
    for path in (args.binary, load_binary):
        if not os.path.exists(path):
            sys.exit(f"responder_load needs {path} (swift build -c release --product ikeproxy --product ike-init-load)")
    directory = tempfile.mkdtemp(prefix="responder-load-")
    print(f"responder_load: {args.binary}, {args.rate} requests/s for {args.seconds} s, {os.cpu_count()} cores; logs in {directory}")
    results = []
    for r in range(args.rounds):
        order = args.workers if r % 2 == 0 else list(reversed(args.workers))
        for workers in order:
            result = run_once(args.binary, load_binary, directory, workers, args.rate, args.seconds)
            results.append(result)
            print(f"round {r + 1} workers {workers}: {result['rate']:8.0f} IKE SAs/s answered while loaded "
                  f"({result['answered']} of {result['sent']} sent, {result['other']} other answers); "
                  f"endpoint CPU {result['cpu_us']:.0f} us per answer; socket drops {result['drops']}", flush=True)
    print()
    print("| workers | IKE_SA_INIT answered/s (median) | endpoint CPU per answer | socket drops (median) |")
    print("|---:|---:|---:|---:|")
    medians = {}
    for workers in args.workers:
        mine = [r for r in results if r["workers"] == workers]
        medians[workers] = statistics.median(r["rate"] for r in mine)
        print(f"| {workers} | {medians[workers]:.0f} | {statistics.median(r['cpu_us'] for r in mine):.0f} us | "
              f"{statistics.median(r['drops'] for r in mine):.0f} |")
    if 1 in medians:
        for workers in args.workers:
            if workers != 1:
                print(f"workers {workers}: {medians[workers] / medians[1]:.2f}x the answers a second of one engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
