#!/usr/bin/env python3
"""Forwarding benchmark: frames per second through `ikeproxy daemon` (bypass traffic) side by side with a
Linux kernel bridge between the same namespaces, in the same run.

  ikp-b-gen  --veth--  ikp-b-dut  --veth--  ikp-b-sink

`forwarding-load` (release build) sends one IPv4/UDP frame of the given size in sendmmsg batches from
ikp-b-gen as fast as the kernel takes it, for a few seconds; the rate is what arrives in ikp-b-sink,
counted by the kernel (rx_packets of the sink's interface). The device under test is, in turns, a
kernel bridge (br0 over the two ports) and the daemon (policy: bypass) on the same two ports with no
address. Rounds alternate so that machine noise hits both alike; the median of the rounds is reported.

Usage (root): python3 benchmarks/forwarding.py [--seconds 3] [--rounds 3] [--sizes 64,1400]
Builds first with: swift build -c release --product ikeproxy --product forwarding-load
"""
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, ".build", "release")
GEN, DUT, SINK = "ikp-b-gen", "ikp-b-dut", "ikp-b-sink"
SINK_MAC = "02:00:00:00:b0:02"

sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from lib.host import ns, remove_namespaces, sh  # noqa: E402


def teardown():
    remove_namespaces(GEN, DUT, SINK)


def setup():
    teardown()
    for name in (GEN, DUT, SINK):
        sh("ip", "netns", "add", name)
        ns(name, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "ikp-bg0", "netns", GEN, "type", "veth", "peer", "name", "ikp-bd0", "netns", DUT)
    sh("ip", "link", "add", "ikp-bd1", "netns", DUT, "type", "veth", "peer", "name", "ikp-bs0", "netns", SINK)
    ns(SINK, "ip", "link", "set", "ikp-bs0", "address", SINK_MAC)
    for name, dev in ((GEN, "ikp-bg0"), (DUT, "ikp-bd0"), (DUT, "ikp-bd1"), (SINK, "ikp-bs0")):
        ns(name, "ip", "link", "set", dev, "addrgenmode", "none")
        ns(name, "ip", "link", "set", dev, "up")


def rx_packets():
    return int(ns(SINK, "cat", "/sys/class/net/ikp-bs0/statistics/rx_packets").stdout)


def measure(size, seconds):
    before = rx_packets()
    out = ns(GEN, os.path.join(RELEASE, "forwarding-load"), "--interface", "ikp-bg0", "--seconds", str(seconds),
             "--size", str(size), "--destination-mac", SINK_MAC).stdout
    time.sleep(0.3)  # let the last frames drain
    load = json.loads(out)
    received = rx_packets() - before
    return received / load["seconds"], load["sent"] / load["seconds"]


def with_kernel_bridge(body):
    ns(DUT, "ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
    ns(DUT, "ip", "link", "set", "br0", "addrgenmode", "none")
    for dev in ("ikp-bd0", "ikp-bd1"):
        ns(DUT, "ip", "link", "set", dev, "master", "br0")
    ns(DUT, "ip", "link", "set", "br0", "up")
    try:
        return body()
    finally:
        ns(DUT, "ip", "link", "del", "br0")


def with_daemon(directory, body):
    config = os.path.join(directory, "daemon.json")
    with open(config, "w") as f:
        json.dump({"interfaces": {"internet": "ikp-bd0", "terminal": "ikp-bd1"},
                   "control_socket": os.path.join(directory, "ikeproxy.sock"),
                   "terminal_prefixes": ["198.18.0.0/24"], "terminals": [],
                   "profiles": [{"name": "unused", "psk": "benchmark"}],
                   "policy": {"default": "discard", "rules": [
                       {"source": "198.18.0.0/24", "destination": "198.18.0.0/24", "action": "bypass"}]}}, f)
    log = open(os.path.join(directory, "daemon.log"), "a")
    daemon = subprocess.Popen(["ip", "netns", "exec", DUT, os.path.join(RELEASE, "ikeproxy"), "daemon", "--config", config],
                              stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    time.sleep(1.0)
    if daemon.poll() is not None:
        raise RuntimeError("the daemon did not start; see " + log.name)
    try:
        return body()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="64,1400")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the forwarding benchmark needs root (namespaces, AF_PACKET)", file=sys.stderr)
        return 1
    for binary in ("ikeproxy", "forwarding-load"):
        if not os.path.exists(os.path.join(RELEASE, binary)):
            print(f"build first: swift build -c release --product ikeproxy --product forwarding-load ({binary} missing)", file=sys.stderr)
            return 1
    sizes = [int(s) for s in args.sizes.split(",")]
    directory = tempfile.mkdtemp(prefix="ikp-forwarding-")
    results = {size: {"bridge": [], "daemon": [], "offered_bridge": [], "offered_daemon": []} for size in sizes}
    setup()
    try:
        for round_number in range(args.rounds):
            for size in sizes:
                rate, offered = with_kernel_bridge(lambda: measure(size, args.seconds))
                results[size]["bridge"].append(rate)
                results[size]["offered_bridge"].append(offered)
                rate, offered = with_daemon(directory, lambda: measure(size, args.seconds))
                results[size]["daemon"].append(rate)
                results[size]["offered_daemon"].append(offered)
                print(f"round {round_number + 1} size {size}: bridge {results[size]['bridge'][-1]:,.0f} fps, "
                      f"daemon {results[size]['daemon'][-1]:,.0f} fps", file=sys.stderr)
    finally:
        teardown()
    print(f"Forwarding rate, bypass traffic, {args.rounds} alternating rounds of {args.seconds:g} s, median (min-max); "
          f"frames per second received behind the device under test")
    print()
    print("| frame | kernel bridge | ikeproxy daemon | daemon / bridge | offered load (bridge, daemon) |")
    print("|---|---|---|---|---|")
    for size in sizes:
        r = results[size]
        bridge, daemon = statistics.median(r["bridge"]), statistics.median(r["daemon"])
        print(f"| {size} B | {bridge:,.0f} ({min(r['bridge']):,.0f}-{max(r['bridge']):,.0f}) "
              f"| {daemon:,.0f} ({min(r['daemon']):,.0f}-{max(r['daemon']):,.0f}) | {daemon / bridge:.2f} "
              f"| {statistics.median(r['offered_bridge']):,.0f}, {statistics.median(r['offered_daemon']):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
