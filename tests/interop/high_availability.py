#!/usr/bin/env python3
"""High availability: two `ikeproxy daemon`s cabled in parallel, sharing their state and a lease in PostgreSQL.

  peer (strongSwan) -- Internet switch --+-- daemon a --+-- terminal switch -- t1, t2 (agents)
                                         +-- daemon b --+
  daemon a, b -- database link -- PostgreSQL (its own namespace, started here as the postgres user)

Both daemons are bridges between the same two segments: if both forwarded, frames would loop and double. One
holds the lease and acts; the other reads its ports and drops everything.

  1. Exactly one daemon is active; the standby forwards nothing.
  2. strongSwan makes an IKE SA and CHILD SA with each terminal through the active; pings pass.
  3. Under continuous pings from the peer to both terminals (0.2 s apart), the active is killed with SIGKILL five
     times at random moments (seeded; the third while strongSwan negotiates a new SA, the fourth while it rekeys
     a CHILD SA); each time the other takes over: strongSwan's IKE and CHILD SPIs are unchanged (no
     renegotiation), its liveness checks go on being answered, and pings pass again. Takeover time (kill to the
     standby reporting active) and pings lost are reported; the killed daemon is started again as the standby.
  4. After the last takeover strongSwan rekeys a CHILD SA and the IKE SA through the new active: both succeed.
  5. A planned switchover (`ikeproxy ha switchover`) loses at most one ping at 0.2 s.
  6. The active cut off from PostgreSQL (nftables in its namespace), not killed: it stops forwarding before its
     lease can end, the other takes over, and captures of what each daemon sends into both switches show no
     frame sent by both and none by the old active after the new one's first; reconnected, the old active
     comes back as the standby.
  7. An administrator's change made over the standby's API is carried out by the active and seen on both.
  8. The proxy's own scheduled rekeys (an IKE SA made before all the takeovers, a CHILD SA made in the third
     round) come on time through the node active then.
"""
import hashlib, json, os, random, re, signal, struct, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import BINARY, Lab, addresses_up, ns, read, sh, switch, veth, wait_for  # noqa: E402
from lib.lab import daemon_file, ipv4_terminal_link, peer_profile, terminal_configuration  # noqa: E402
from lib.peer import PSK, initiate, installed_child, run_with_charon, terminate  # noqa: E402
from lib.processes import control_query, start, start_agent, stop  # noqa: E402
from lib.report import check  # noqa: E402

PEER, INET, LAN, DB = "ikp-h-peer", "ikp-h-inet", "ikp-h-lan", "ikp-h-db"
NODES = {"a": "ikp-h-pxa", "b": "ikp-h-pxb"}
PEER4 = "192.0.2.1"
DB4 = "10.99.0.1"
T1 = {"name": "t1", "ns": "ikp-h-t1", "dev": "ikp-ht1", "mac": "02:00:00:00:e0:02", "v4": "192.0.2.2", "v6": None, "id": 1,
      "key": "11" * 32}
T2 = {"name": "t2", "ns": "ikp-h-t2", "dev": "ikp-ht2", "mac": "02:00:00:00:e0:03", "v4": "192.0.2.3", "v6": None, "id": 2,
      "key": "22" * 32}
TERMINALS = [T1, T2]
LEASE, CLAIM, MARGIN = 2.0, 0.4, 0.3
# The proxy rekeys each CHILD SA and IKE SA this long after it was made, across the takeovers in between.
CHILD_REKEY, IKE_REKEY = 65, 70
PG_BIN = max((f"/usr/lib/postgresql/{v}/bin" for v in os.listdir("/usr/lib/postgresql")), default="") if os.path.isdir("/usr/lib/postgresql") else ""


class Topology(Lab):
    namespaces = [PEER, INET, LAN, DB] + list(NODES.values()) + [t["ns"] for t in TERMINALS]

    def build(self):
        veth(PEER, "ikp-hp0", INET, "ikp-hi0")
        inet_ports, lan_ports, db_ports = ["ikp-hi0"], [], []
        for node, namespace in NODES.items():
            veth(namespace, f"ikp-h{node}0", INET, f"ikp-hi{node}")
            veth(namespace, f"ikp-h{node}1", LAN, f"ikp-hl{node}")
            veth(namespace, f"ikp-h{node}d", DB, f"ikp-hd{node}")
            inet_ports.append(f"ikp-hi{node}")
            lan_ports.append(f"ikp-hl{node}")
            db_ports.append(f"ikp-hd{node}")
            addresses_up(namespace, f"ikp-h{node}d", "10.99.0.%d/24" % (2 if node == "a" else 3))
        for t in TERMINALS:
            veth(LAN, f"ikp-hl{t['name']}", t["ns"], t["dev"])
            lan_ports.append(f"ikp-hl{t['name']}")
            ipv4_terminal_link(t)
        switch(INET, inet_ports)
        switch(LAN, lan_ports)
        switch(DB, db_ports, name="dbbr")
        addresses_up(DB, "dbbr", DB4 + "/24")
        addresses_up(PEER, "ikp-hp0", PEER4 + "/24")


class PostgreSQL:
    """A server of the test's own in the database namespace, run as the postgres user (it refuses root)."""

    def __init__(self, directory):
        self.directory = os.path.join(directory, "postgresql")
        os.makedirs(self.directory)
        sh("chown", "postgres:postgres", self.directory)
        self.run("initdb", "-D", self.directory + "/data", "-A", "trust", "-U", "postgres", "--no-sync")
        with open(self.directory + "/data/pg_hba.conf", "a") as f:
            f.write("host all all 10.99.0.0/24 trust\n")
        self.run("pg_ctl", "-D", self.directory + "/data", "-l", self.directory + "/server.log", "-w", "-o",
                 f"-p 5432 -k {self.directory} -c listen_addresses={DB4} -c fsync=off", "start")
        self.run("psql", "-h", DB4, "-U", "postgres", "-d", "postgres", "-q", "-c", "CREATE DATABASE ikeproxy")

    def run(self, program, *args):
        result = ns(DB, "runuser", "-u", "postgres", "--", f"{PG_BIN}/{program}", *args, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stdout[-300:]} {result.stderr[-300:]}")
        return result.stdout

    def stop(self):
        ns(DB, "runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D", self.directory + "/data", "-m", "immediate", "stop", check=False)


class Node:
    """One daemon of the pair: its configuration, process, log and control socket."""

    def __init__(self, name, directory, key_file):
        self.name = name
        self.api = "10.99.0.%d" % (2 if name == "a" else 3)
        cert, key = os.path.join(directory, f"api-{name}.pem"), os.path.join(directory, f"api-{name}.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", f"/CN={self.api}", "-addext", f"subjectAltName=IP:{self.api}"],
                       check=True, capture_output=True)
        self.namespace = NODES[name]
        self.control = os.path.join(directory, f"{name}.sock")
        self.config = os.path.join(directory, f"daemon-{name}.json")
        self.log = os.path.join(directory, f"daemon-{name}.log")
        rules = [{"source": "192.0.2.0/28", "destination": PEER4 + "/32", "action": "protect", "profile": "peer"}]
        configuration = daemon_file(f"ikp-h{name}0", f"ikp-h{name}1", self.control, ["192.0.2.0/28"], TERMINALS,
                                    [peer_profile(force_encapsulation=True, rekey_time=CHILD_REKEY, rand_time=0,
                                                  ike_rekey_time=IKE_REKEY, ike_rand_time=0)], rules,
                                    store={"postgresql": {"url": f"postgresql://postgres@{DB4}:5432/ikeproxy"}, "key_file": key_file},
                                    high_availability={"node": name, "lease_duration": LEASE, "claim_interval": CLAIM, "margin": MARGIN},
                                    settings={"retransmit_timeout": 1.0, "retransmit_limit": 3},
                                    management={"listen": self.api, "port": 8443, "certificate": cert, "private_key": key,
                                                "administrators": [{"name": "alice", "role": "admin",
                                                                    "token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}]})
        with open(self.config, "w") as f:
            json.dump(configuration, f, indent=1)
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        with open(self.log, "a") as f:
            f.write(f"==== start {self.starts}\n")
        self.process = start(self.namespace, ["daemon", "--config", self.config], self.log)

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def status(self):
        try:
            return control_query(self.control, "status")
        except (OSError, ValueError):
            return None

    def role(self):
        status = self.status()
        return (status or {}).get("high_availability", {}).get("role")

    def forwarded(self):
        status = self.status() or {}
        path = status.get("data_path", {})
        return path.get("frames_forwarded_to_internet", 0) + path.get("frames_forwarded_to_terminal", 0)


class Pings:
    """`ping -D -O -i 0.2` from the peer to one terminal for the whole test: which sequence numbers came back, when."""

    def __init__(self, directory, terminal):
        self.path = os.path.join(directory, f"ping-{terminal['name']}.log")
        self.process = subprocess.Popen(["ip", "netns", "exec", PEER, "ping", "-D", "-O", "-i", "0.2", "-W", "1", terminal["v4"]],
                                        stdout=open(self.path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.time()

    def replies(self):
        """{sequence number: time of the reply}"""
        return {int(m.group(2)): float(m.group(1)) for m in re.finditer(r"\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", read(self.path))}

    def lost_between(self, start, end):
        """Sequence numbers sent in [start, end] (0.2 s apart from the first) that never came back."""
        replies = self.replies()
        first = min(replies) if replies else 1
        origin = replies[first] - (first - 1) * 0.2 if replies else self.started
        sent = [s for s in range(1, int((end - origin) / 0.2) + 1) if start <= origin + (s - 1) * 0.2 <= end - 1.5]
        return [s for s in sent if s not in replies]

    def first_reply_after(self, moment):
        times = [t for t in self.replies().values() if t > moment]
        return min(times) if times else None

    def stop(self):
        os.killpg(self.process.pid, signal.SIGINT)


ADMIN_TOKEN = "ha-admin-token-2026"


def api(node, method, path, body=None):
    """(HTTP status, JSON answer) of a call to a node's management API, from the database namespace (its link)."""
    command = ["curl", "-sk", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
               f"https://{node.api}:8443{path}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    result = ns(DB, *command, check=False)
    text, _, code = result.stdout.rpartition("\n")
    try:
        return int(code), json.loads(text) if text.strip() else {}
    except ValueError:
        return 0, {"raw": result.stdout[-200:] + result.stderr[-200:]}


MADE = {}  # when strongSwan's SAs with each terminal were made (t2's again in the third round)


def load_peer(charon):
    for t in TERMINALS:
        name = t["name"]
        charon.session.load_conn({name: {
            "version": "2", "local_addrs": [PEER4], "remote_addrs": [t["v4"]], "proposals": ["aes256gcm16-prfsha256-x25519"],
            "encap": "yes", "rekey_time": "0", "dpd_delay": "2",
            "local-1": {"auth": "psk", "id": PEER4}, "remote-1": {"auth": "psk", "id": t["v4"]},
            "children": {name: {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                "local_ts": [PEER4], "remote_ts": [t["v4"]]}}}})
    charon.session.load_shared({"id": "psk-ha", "type": "IKE", "data": PSK, "owners": [PEER4] + [t["v4"] for t in TERMINALS]})


def in_own_session(charon, command):
    """One VICI command (`initiate` or `rekey`) on a connection of its own: a session is not shared between threads."""
    import socket as sockets
    import vici
    connection = sockets.socket(sockets.AF_UNIX)
    connection.connect(charon.socket)
    try:
        session = vici.Session(connection)
        (verb, arguments), = command.items()
        result = getattr(session, verb)(arguments)
        if verb == "initiate":
            for _ in result:
                pass
    except Exception:
        pass
    finally:
        connection.close()


def spis(charon, name):
    sa, child = installed_child(charon, name)
    if not child:
        return None
    return (sa["initiator-spi"].decode(), sa["responder-spi"].decode(), child["spi-in"].decode(), child["spi-out"].decode())


def active_and_standby(nodes, timeout=10):
    """(active, standby) once exactly one reports active, else (None, None)."""
    def roles():
        return {n.name: n.role() for n in nodes.values()}
    wait_for(lambda: sorted(map(str, roles().values())) == ["active", "standby"], timeout, interval=0.05)
    current = roles()
    if sorted(map(str, current.values())) != ["active", "standby"]:
        return None, None
    active = next(n for n in nodes.values() if current[n.name] == "active")
    return active, next(n for n in nodes.values() if n is not active)


def main():
    return run_with_charon("high availability test", "ikp-ha-", Topology, run, peer_namespace=PEER,
                           tools=("ping", "nft", "runuser", "tcpdump", "curl", "openssl"), paths=(PG_BIN + "/initdb",), readable=True)


def run(charon, directory):
    load_peer(charon)
    database = PostgreSQL(directory)
    key_file = os.path.join(directory, "sealing.key")
    with open(key_file, "wb") as f:
        f.write(os.urandom(32))
    nodes = {name: Node(name, directory, key_file) for name in NODES}
    agents = [start_agent(directory, t, terminal_configuration(t)) for t in TERMINALS]
    pings = []
    try:
        nodes["a"].start()
        time.sleep(0.5)
        nodes["b"].start()
        one_active(nodes)
        first = sas_made(charon, nodes)
        pings = [Pings(directory, t) for t in TERMINALS]
        time.sleep(2)
        kill_nine_five_times(charon, nodes, first, pings)
        rekeys_after_takeover(charon, nodes, first)
        planned_switchover(nodes, pings)
        cut_off_from_the_database(nodes, directory)
        changes_on_either_node(nodes)
        rekeyed_on_schedule(charon, first)
    finally:
        for p in pings:
            p.stop()
        for agent in agents:
            stop(agent)
        for node in nodes.values():
            if node.process and node.process.poll() is None:
                stop(node.process)
        database.stop()
        for node in nodes.values():
            print(f"  --- last lines of {os.path.basename(node.log)}:")
            for line in read(node.log).splitlines()[-5:]:
                print("      " + line[:300])


def one_active(nodes):
    active, standby = active_and_standby(nodes)
    check(active is not None, f"exactly one daemon is active ({active.name if active else None}), the other standby "
          f"({ {n.name: n.role() for n in nodes.values()} })")
    if active:
        # Its first claim may still be on its way (a loaded machine): its answer names the holder.
        wait_for(lambda: (standby.status() or {}).get("high_availability", {}).get("lease_holder") is not None, 5, interval=0.05)
        status = (standby.status() or {}).get("high_availability", {})
        check(status.get("lease_holder") == active.name and status.get("fencing", 0) >= 1,
              f"the standby names the active as the lease holder ({status})")


def sas_made(charon, nodes):
    first = {}
    for t in TERMINALS:
        initiate(charon, t["name"])
        first[t["name"]] = spis(charon, t["name"])
    check(all(first.values()), f"strongSwan established an IKE SA and a CHILD SA with each terminal through the active ({first})")
    MADE["t1"] = MADE["t2"] = time.time()
    ok = wait_for(lambda: all(ns(PEER, "ping", "-c", "1", "-W", "1", t["v4"], check=False).returncode == 0 for t in TERMINALS), 10)
    check(ok, "the peer's pings reach both terminals through ESP")
    active, standby = active_and_standby(nodes)
    if standby:
        check(standby.forwarded() == 0, f"the standby forwarded nothing ({standby.forwarded()} frames)")
    return first


def kill_nine_five_times(charon, nodes, first, pings):
    rng = random.Random(20261203)
    takeovers = []
    for round_number in range(1, 6):
        active, standby = active_and_standby(nodes)
        if active is None:
            check(False, f"kill -9 #{round_number}: no single active daemon to kill")
            return
        time.sleep(rng.uniform(0.5, 3.0))
        during = ""
        if round_number == 3:
            # A negotiation under way: t2's SAs closed, and strongSwan starts them again just before the kill.
            terminate(charon, "t2")
            MADE["t2"] = time.time()  # its SAs are made after this, through one node or the other
            threading.Thread(target=in_own_session, args=(charon, {"initiate": {"child": "t2", "ike": "t2", "timeout": 8000}}), daemon=True).start()
            during = " while strongSwan negotiates t2's SAs anew"
            time.sleep(0.02)
        elif round_number == 4:
            threading.Thread(target=in_own_session, args=(charon, {"rekey": {"child": "t1"}}), daemon=True).start()
            during = " while strongSwan rekeys t1's CHILD SA"
            time.sleep(0.02)
        killed_at = time.time()
        active.kill()
        became = wait_for(lambda: standby.role() == "active", 10, interval=0.05)
        took = time.time() - killed_at
        back = [p.first_reply_after(killed_at) for p in pings]
        wait_for(lambda: all(p.first_reply_after(killed_at) for p in pings), 10)
        back = [p.first_reply_after(killed_at) for p in pings]
        active.start()
        rejoined = wait_for(lambda: active.role() == "standby", 10, interval=0.1)
        lost = [len(p.lost_between(killed_at - 0.2, time.time())) for p in pings]
        takeovers.append(took)
        # In the third round t2's SAs are being made anew: its pings wait for them, not for the takeover.
        check(became and took < 3, f"kill -9 #{round_number} of {active.name}{during}: {standby.name} took over in {took:.2f} s "
              f"(target under 3 s); pings back after {', '.join(f'{b - killed_at:.2f} s' if b else 'never' for b in back)}, "
              f"lost {lost[0]} and {lost[1]} at 0.2 s")
        check(rejoined, f"kill -9 #{round_number}: {active.name}, started again, is the standby")
        if round_number == 3:
            # The cut negotiation either completed through the new active or failed with it; t2 gets its SAs either way.
            if not wait_for(lambda: spis(charon, "t2") is not None, 12):
                initiate(charon, "t2")
            first["t2"] = spis(charon, "t2")
            check(first["t2"] is not None, f"kill -9 #3: t2's SAs, cut in their negotiation, are made through the new active {first['t2']}")
        wait_for(lambda: all(spis(charon, t["name"]) for t in TERMINALS), 10)
        now = {t["name"]: spis(charon, t["name"]) for t in TERMINALS}
        same_ike = all(now[n] and first[n] and now[n][:2] == first[n][:2] for n in now)
        check(same_ike, f"kill -9 #{round_number}: strongSwan's IKE SAs are the ones it had, nothing renegotiated ({now})")
        if round_number != 4:
            check(all(now[n] == first[n] for n in now), f"kill -9 #{round_number}: and its CHILD SAs too (SPIs unchanged)")
        else:
            first.update({n: now[n] for n in now})
        ok = all(ns(PEER, "ping", "-c", "1", "-W", "2", t["v4"], check=False).returncode == 0 for t in TERMINALS)
        check(ok, f"kill -9 #{round_number}: the peer's pings reach both terminals")
    print(f"      takeover times: {', '.join(f'{t:.2f}' for t in takeovers)} s")


def rekeys_after_takeover(charon, nodes, first):
    before = spis(charon, "t1") or ("", "", "", "")
    in_own_session(charon, {"rekey": {"child": "t1"}})
    rekeyed = wait_for(lambda: (lambda s: s is not None and s[2:] != before[2:])(spis(charon, "t1")), 10)
    after = spis(charon, "t1") or ("", "", "", "")
    check(rekeyed and after[:2] == before[:2], f"after the takeovers strongSwan rekeys t1's CHILD SA on the same IKE SA ({before} -> {after})")
    in_own_session(charon, {"rekey": {"ike": "t2"}})
    ike_rekeyed = wait_for(lambda: (lambda s: s is not None and s[:2] != first["t2"][:2])(spis(charon, "t2")), 10)
    check(ike_rekeyed, f"and t2's IKE SA ({first['t2'][:2]} -> {(spis(charon, 't2') or ())[:2]})")
    ok = all(ns(PEER, "ping", "-c", "2", "-W", "2", t["v4"], check=False).returncode == 0 for t in TERMINALS)
    check(ok, "pings pass on the rekeyed SAs")


def planned_switchover(nodes, pings):
    active, standby = active_and_standby(nodes)
    if active is None:
        check(False, "a switchover needs one active daemon")
        return
    time.sleep(2)
    at = time.time()
    result = subprocess.run(["ip", "netns", "exec", active.namespace, BINARY, "ha", "switchover", "--control", active.control],
                            capture_output=True, text=True)
    became = wait_for(lambda: standby.role() == "active", 5, interval=0.05)
    took = time.time() - at
    time.sleep(3)
    lost = [p.lost_between(at - 0.2, time.time()) for p in pings]
    check(result.returncode == 0 and became and all(len(x) <= 1 for x in lost),
          f"`ikeproxy ha switchover` on {active.name}: {standby.name} active after {took:.2f} s; pings lost: {len(lost[0])} and "
          f"{len(lost[1])} at 0.2 s (at most one allowed) ({result.stdout.strip()[:120]})")
    check(active.role() == "standby", f"{active.name} is the standby after the switchover")


def pcap_frames(path):
    """(time, frame bytes) of each frame in a pcap file (classic format, as tcpdump -w writes it)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    frames, offset = [], 24
    while offset + 16 <= len(data):
        seconds, micros, captured, _ = struct.unpack(order + "IIII", data[offset:offset + 16])
        frames.append((seconds + micros / 1e6, data[offset + 16:offset + 16 + captured]))
        offset += 16 + captured
    return frames


def captures_of_both_daemons(directory, label):
    """tcpdump on the switches' ports towards each daemon, frames the daemon sent only (-Q in at the switch)."""
    captures = {}
    for node in NODES:
        for switch_ns, port in ((INET, f"ikp-hi{node}"), (LAN, f"ikp-hl{node}")):
            path = os.path.join(directory, f"{label}-{port}.pcap")
            log = path + ".log"
            process = subprocess.Popen(["ip", "netns", "exec", switch_ns, "tcpdump", "--immediate-mode", "-Q", "in", "-i", port, "-U", "-n",
                                        "-s", "0", "-w", path], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
            wait_for(lambda: process.poll() is not None or "listening on" in read(log), 10, interval=0.05)
            captures[(node, port)] = (process, path)
    return captures


def no_overlap(captures, old, new):
    """The frames each daemon sent during the change of hands: no frame doubled (sent by both), and none by the old
    active after the new one's first."""
    for process, _ in captures.values():
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    sent = {node: [] for node in NODES}
    for (node, _), (_, path) in captures.items():
        sent[node] += pcap_frames(path)
    old_frames, new_frames = sorted(sent[old.name]), sorted(sent[new.name])
    # A doubled frame: the same octets sent by both within half a second (an ARP request repeated minutes apart is not).
    sent_by_old = {}
    for moment, frame in old_frames:
        sent_by_old.setdefault(frame, []).append(moment)
    both = [frame for moment, frame in new_frames if any(abs(moment - other) < 0.5 for other in sent_by_old.get(frame, []))]
    last_old = old_frames[-1][0] if old_frames else None
    first_new = new_frames[0][0] if new_frames else None
    check(not both and (last_old is None or first_new is None or last_old < first_new),
          f"captures on both segments: {len(old_frames)} frames sent by {old.name}, {len(new_frames)} by {new.name}, none by both "
          f"({len(both)}), the last of {old.name}'s {((first_new or 0) - (last_old or 0)):.2f} s before the first of {new.name}'s")


def cut_off_from_the_database(nodes, directory):
    active, standby = active_and_standby(nodes)
    if active is None:
        check(False, "cutting off needs one active daemon")
        return
    captures = captures_of_both_daemons(directory, "cut")
    ns(active.namespace, "nft", "add", "table", "inet", "ikpcut")
    for hook in ("input", "output"):
        ns(active.namespace, "nft", "add", "chain", "inet", "ikpcut", hook, f"{{ type filter hook {hook} priority 0; }}")
        ns(active.namespace, "nft", "add", "rule", "inet", "ikpcut", hook, "ip", "saddr" if hook == "input" else "daddr", DB4, "drop")
    cut_at = time.time()
    stepped = wait_for(lambda: active.role() == "standby", 5, interval=0.05)
    stepped_at = time.time()
    took = wait_for(lambda: standby.role() == "active", 6, interval=0.05)
    took_at = time.time()
    check(stepped and stepped_at - cut_at < LEASE, f"{active.name}, cut off from PostgreSQL, stopped acting by itself "
          f"{stepped_at - cut_at:.2f} s after the cut, before its lease of {LEASE} s could end")
    check(took and took_at >= stepped_at - 0.1, f"{standby.name} took over {took_at - cut_at:.2f} s after the cut, after the other stopped")
    forwarded = active.forwarded()
    time.sleep(2)
    check(active.forwarded() == forwarded, f"{active.name} forwards nothing more while standby ({active.forwarded() - forwarded} frames)")
    no_overlap(captures, active, standby)
    ns(active.namespace, "nft", "delete", "table", "inet", "ikpcut")
    time.sleep(2)
    check(active.role() == "standby" and standby.role() == "active",
          f"reconnected, {active.name} stays the standby ({active.role()}; {standby.name} {standby.role()})")


def changes_on_either_node(nodes):
    """An administrator's change made on the standby's API is carried out by the active and seen on both; the
    standby still answers its own status."""
    active, standby = active_and_standby(nodes)
    if active is None:
        check(False, "changes need one active daemon")
        return
    rule = {"source": "192.0.2.0/28", "destination": "198.51.100.7/32", "action": "discard"}
    status, answer = api(standby, "POST", "/v1/policies", {"rule": rule, "position": 0})
    check(status == 201, f"a policy rule added on the standby's API ({standby.name}) is answered 201 by the active through the database "
          f"({status} {str(answer)[:120]})")
    seen = {}
    for node in (active, standby):
        code, listed = api(node, "GET", "/v1/policies")
        seen[node.name] = (code, [json.dumps(r, sort_keys=True)[:200] for r in listed.get("rules", [])][:1])
    check(seen[active.name][0] == 200 and "198.51.100.7" in str(seen[active.name][1]) and seen[standby.name] == seen[active.name],
          f"both nodes list it first ({seen})")
    code, own = api(standby, "GET", "/v1/status")
    check(code == 200 and own.get("high_availability", {}).get("role") == "standby", f"the standby answers its own status ({code})")
    # It stays through a change of hands: the next active has it from the database.
    code, _ = api(active, "DELETE", "/v1/policies/0")
    check(code == 200, f"the rule deleted again on the active ({code})")


def rekeyed_on_schedule(charon, first):
    """The proxy's scheduled rekeys, counted from when each SA was made, come on time through the node that is active
    then: t1's IKE SA (made before all the takeovers) and t2's CHILD SA (made in the third round)."""
    # When strongSwan made each: its own counters (seconds since the IKE SA was established, the CHILD SA installed).
    sa, _ = installed_child(charon, "t1")
    _, child = installed_child(charon, "t2")
    if sa and "established" in sa:
        MADE["t1"] = time.time() - int(sa["established"])
    if child and "install-time" in child:
        MADE["t2"] = time.time() - int(child["install-time"])
    ike_due, child_due = MADE["t1"] + IKE_REKEY, MADE["t2"] + CHILD_REKEY
    t1_ike = (spis(charon, "t1") or ("", "", "", ""))[:2]
    t2_child = (spis(charon, "t2") or ("", "", "", ""))[2:]
    ike_done = wait_for(lambda: (lambda s: s is not None and s[:2] != t1_ike)(spis(charon, "t1")), max(1, ike_due + 10 - time.time()))
    ike_at = time.time()
    child_done = wait_for(lambda: (lambda s: s is not None and s[2:] != t2_child)(spis(charon, "t2")), max(1, child_due + 10 - time.time()))
    child_at = time.time()
    check(ike_done and ike_at >= ike_due - 1, f"the proxy rekeyed t1's IKE SA on schedule across the takeovers ({ike_at - MADE['t1']:.0f} s "
          f"after it was made, due at {IKE_REKEY} s; {t1_ike} -> {(spis(charon, 't1') or ())[:2]})")
    check(child_done and child_at >= child_due - 1, f"and t2's CHILD SA ({child_at - MADE['t2']:.0f} s after it was made, due at "
          f"{CHILD_REKEY} s; {t2_child} -> {(spis(charon, 't2') or ())[2:]})")
    ok = all(ns(PEER, "ping", "-c", "2", "-W", "2", t["v4"], check=False).returncode == 0 for t in TERMINALS)
    check(ok, "pings pass on the SAs the proxy rekeyed")


if __name__ == "__main__":
    sys.exit(main())
