#!/usr/bin/env python3
"""State that survives: `ikeproxy daemon` killed with SIGKILL again and again, secrets sealed in a
SoftHSM2 token, the token taken out and put back, and the database searched for keys.

The topology of daemon_e2e.py (strongSwan -- daemon bridge -- switch -- terminals), terminal 1 only.
The daemon keeps its state in SQLite, sealed by an AES key generated inside a SoftHSM2 token.

  1. strongSwan establishes an SA with terminal 1 through the proxy.
  2. The daemon is killed with SIGKILL four times at random moments, once in the middle of a
     negotiation, and restarted each time: the SA is restored, ESP keeps flowing without a new
     negotiation (strongSwan's SPIs do not change), strongSwan's liveness checks keep being answered,
     the negotiation that was under way is reported discarded.
  3. The CHILD SA rekey the proxy's profile schedules 25 s after the SA was made happens on time,
     across the restarts.
  4. The token is removed: forwarding goes on, a new negotiation is refused with a clear log line; the
     token comes back: negotiations resume.
  5. Terminal 1's agent is killed with SIGKILL and started again (a device reboot): its first STATUS lists
     no SA, and the proxy sets the stored ones into it at once; the peer's pings get through on the same SA.
  6. Terminal 1 is taken out of the configuration file while the daemon is down: at start, the SAs
     restored in its name are deleted at strongSwan at once, the peer's link address restored from the
     store, or with none stored asked for by ARP in the terminal's name (no traffic needed to learn it);
     put back, it negotiates again.
  7. The database file (and its WAL) holds no key: neither the CHILD SA keys, nor the PSK, nor the
     enrollment key, in binary or hexadecimal.
"""
import json, os, random, shutil, signal, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import BINARY, ns, read, wait_for  # noqa: E402
from lib.lab import Daemon, PEER, PEER4, PEER6, PROXY, TERMINALS, Topology, daemon_configuration, load_peer_connections, terminal_configuration  # noqa: E402
from lib.peer import PSK, initiate, installed_child, peer_sas, run_with_charon, terminate, wait_child  # noqa: E402
from lib.processes import start, start_agent, stop  # noqa: E402
from lib.report import check  # noqa: E402
from lib.traffic import ping  # noqa: E402

T1 = TERMINALS[0]
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "20261126"
REKEY_TIME = 25


def softhsm(directory):
    tokens = os.path.join(directory, "tokens")
    os.makedirs(tokens)
    conf = os.path.join(directory, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "ikeproxy", "--pin", PIN, "--so-pin", "87654321"],
                   env=env, check=True, capture_output=True)
    return conf, tokens


class RestartableDaemon:
    def __init__(self, directory, softhsm_conf):
        self.directory = directory
        self.env = dict(os.environ, SOFTHSM2_CONF=softhsm_conf)
        self.control = os.path.join(directory, "ikeproxy.sock")
        self.config = os.path.join(directory, "daemon.json")
        self.database = os.path.join(directory, "state.db")
        pin_file = os.path.join(directory, "token.pin")
        with open(pin_file, "w") as f:
            f.write(PIN + "\n")
        config = daemon_configuration(self.control)
        config["profiles"][0]["rekey_time"] = REKEY_TIME
        # No random part: the rekey is checked against its exact moment.
        config["profiles"][0]["rand_time"] = 0
        config["store"] = {"path": self.database, "pkcs11": {"module": SOFTHSM_MODULE, "token": "ikeproxy", "pin_file": pin_file}}
        with open(self.config, "w") as f:
            json.dump(config, f, indent=1)
        # No secret stays in the clear in the configuration: each is sealed by the token with `ikeproxy seal`.
        def seal(context, secret):
            result = subprocess.run([BINARY, "seal", "--config", self.config, "--context", context], input=secret,
                                    capture_output=True, text=True, env=self.env)
            check(result.returncode == 0, f"`ikeproxy seal --context {context}` seals a secret with the token {result.stderr.strip()[-200:]}")
            return result.stdout.strip()
        for profile in config["profiles"]:
            profile["psk_sealed"] = seal(f"profile:{profile['name']}", profile.pop("psk"))
        for terminal in config["terminals"]:
            terminal["enrollment_key_sealed"] = seal(f"terminal:{terminal['terminal_id']}", terminal.pop("enrollment_key_hex"))
        with open(self.config, "w") as f:
            json.dump(config, f, indent=1)
        self.log = os.path.join(directory, "daemon.log")
        self.events = os.path.join(directory, "daemon-events.jsonl")
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        with open(self.log, "a") as log:
            log.write(f"==== start {self.starts}\n")
        self.process = subprocess.Popen(["ip", "netns", "exec", PROXY, BINARY, "daemon", "--config", self.config, "--show-keys"],
                                        stdout=open(self.events, "a"), stderr=open(self.log, "a"), env=self.env, start_new_session=True)

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log_since_start(self):
        text = read(self.log)
        return text[text.rfind(f"==== start {self.starts}\n"):]

    def query(self, request):
        return Daemon.query(self, request)

    def counter(self, name):
        return Daemon.counter(self, name)


def initiate_in_own_session(charon, name):
    """An initiation that blocks, on its own VICI connection (a session must not be shared between threads)."""
    import socket as sockets
    import vici
    connection = sockets.socket(sockets.AF_UNIX)
    connection.connect(charon.socket)
    try:
        for _ in vici.Session(connection).initiate({"child": name, "ike": name, "timeout": 3000}):
            pass
    except Exception:
        pass
    finally:
        connection.close()


def ike_and_child_spis(charon, name):
    sa, child = installed_child(charon, name)
    if not child:
        return None
    return (sa["initiator-spi"].decode(), sa["responder-spi"].decode(), child["spi-in"].decode(), child["spi-out"].decode())


def main():
    return run_with_charon("daemon restart test", "ikp-restart-", Topology, run, peer_namespace=PEER, tools=("softhsm2-util", "tshark", "ping"),
                                paths=(SOFTHSM_MODULE,))


def load_peer(charon):
    load_peer_connections(charon)
    # strongSwan checks liveness every 2 s of silence: stale message IDs after a restart would break the SA.
    for v in ("4", "6"):
        own = PEER4 if v == "4" else PEER6
        charon.session.load_conn({f"t1v{v}": {
            "version": "2", "local_addrs": [own], "remote_addrs": [T1["v" + v]],
            "proposals": ["aes256gcm16-prfsha256-x25519"], "encap": "yes", "rekey_time": "0", "dpd_delay": "2",
            "local-1": {"auth": "psk", "id": own}, "remote-1": {"auth": "psk", "id": T1["v" + v]},
            "children": {f"t1v{v}": {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                     "local_ts": [own], "remote_ts": [T1["v" + v]]}}}})


def run(charon, directory):
    load_peer(charon)
    softhsm_conf, tokens = softhsm(directory)
    daemon = RestartableDaemon(directory, softhsm_conf)
    daemon.start()
    agent = start_agent(directory, T1, terminal_configuration(T1))
    terminal_config = os.path.join(directory, "t1.json")
    try:
        state_sealed_by_token(daemon)
        first, established_at = first_sa_made(charon, directory)
        sas_survive_kill_nine(charon, daemon, first, established_at)
        rekeyed_on_schedule_across_restarts(charon, daemon, first, established_at)
        token_removed_and_put_back(charon, daemon, directory, tokens)
        agent = terminal_agent_restarted(charon, daemon, agent, terminal_config, directory)
        terminal_dropped_from_the_file_while_down(charon, daemon)
    finally:
        stop(agent)
        if daemon.process and daemon.process.poll() is None:
            # Killed, not stopped: the files are searched as a crash leaves them (WAL not checkpointed).
            daemon.kill()
        print("  --- last lines of daemon.log:")
        for line in read(daemon.log).splitlines()[-8:]:
            print("      " + line[:300])
    no_key_on_disk(daemon)


def state_sealed_by_token(daemon):
    wait_for(lambda: "store: " in daemon.log_since_start() or daemon.process.poll() is not None, 10)
    check(daemon.process.poll() is None, "the daemon runs with its state sealed by the SoftHSM2 token")
    log = daemon.log_since_start()
    check("secrets sealed by PKCS#11 token 'ikeproxy'" in log and "schema version 5, journal wal" in log,
          "the state file is SQLite in WAL mode, migrated to the current schema (version 5)")
    check("store: a new data key, wrapped by PKCS#11 token 'ikeproxy'" in log,
          "the token wraps a new data key at the first start (envelope sealing: the token works at start, not per SA change)")


def first_sa_made(charon, directory):
    """Returns strongSwan's IKE and CHILD SPIs of terminal 1's first SA, and when it was made."""
    initiate(charon, "t1v4")
    established_at = time.time()
    first = ike_and_child_spis(charon, "t1v4")
    check(first is not None, f"strongSwan established an SA with terminal 1 through the proxy {first}")
    wait_for(lambda: "installed outbound SA" in read(os.path.join(directory, "t1.log")), 10)
    ok, outcome = ping(PEER, PEER4, T1["v4"])
    check(ok, f"ping through ESP before any restart ({outcome})")
    return first, established_at


def hold_back_ike_auth_for_t1v6(charon, daemon):
    """IKE_AUTH for t1v6 is held back (UDP 4500 to the terminal dropped at the peer): the proxy holds a half-open
    IKE SA when it dies."""
    ns(PEER, "nft", "add", "table", "ip6", "ikpblock")
    ns(PEER, "nft", "add", "chain", "ip6", "ikpblock", "out", "{ type filter hook output priority 0; }")
    ns(PEER, "nft", "add", "rule", "ip6", "ikpblock", "out", "ip6", "daddr", T1["v6"], "udp", "dport", "4500", "drop")
    threading.Thread(target=initiate_in_own_session, args=(charon, "t1v6"), daemon=True).start()
    wait_for(lambda: "IKE_SA_INIT from" in daemon.log_since_start(), 5)
    time.sleep(0.5)  # IKE_AUTH sent and dropped: the daemon logs nothing for a request it never receives


def sas_survive_kill_nine(charon, daemon, first, established_at):
    """SIGKILL at random moments (seeded); the third one in the middle of a negotiation."""
    rng = random.Random(20261126)
    for round_number in range(1, 5):
        time.sleep(rng.uniform(0.3, 2.5))  # the random moment is the point
        if round_number == 3:
            hold_back_ike_auth_for_t1v6(charon, daemon)
        daemon.kill()
        daemon.start()
        restored = wait_for(lambda: "restored 1 IKE SA(s) with 1 CHILD SA(s)" in daemon.log_since_start(), 10)
        check(restored and "store: the data key unwrapped by PKCS#11 token 'ikeproxy'" in daemon.log_since_start(),
              f"kill -9 #{round_number}: the restarted daemon unwrapped the data key with the token and restored the IKE SA and its CHILD SA")
        ok, outcome = ping(PEER, PEER4, T1["v4"], count=3)
        check(ok, f"kill -9 #{round_number}: ESP keeps flowing at once ({outcome})")
        now = ike_and_child_spis(charon, "t1v4")
        if time.time() - established_at < REKEY_TIME - 2:
            check(now == first, f"kill -9 #{round_number}: no new negotiation, strongSwan's SPIs unchanged {now}")
        if round_number == 3:
            check("negotiation(s) under way before the restart were discarded" in daemon.log_since_start(),
                  "the negotiation cut by the kill is reported discarded at restart")
            ns(PEER, "nft", "delete", "table", "ip6", "ikpblock", check=False)
            terminate(charon, "t1v6")


def rekeyed_on_schedule_across_restarts(charon, daemon, first, established_at):
    """The proxy's rekey, scheduled REKEY_TIME s after the SA was made, happens on time across restarts."""
    deadline = established_at + REKEY_TIME + 12

    def rekey_events():
        return [e for e in (json.loads(line) for line in open(daemon.events) if line.strip()) if e["event"] == "child_sa_rekeyed"]
    # charon lists the new CHILD SA as soon as it has answered; the daemon's event follows when the
    # answer reaches it: wait for both, or reading the events can race the daemon writing them.
    wait_for(lambda: (lambda s: s is not None and s[2:] != first[2:])(ike_and_child_spis(charon, "t1v4")) and rekey_events(),
             max(1, deadline - time.time()))
    rekeyed_at = time.time() - established_at
    after = ike_and_child_spis(charon, "t1v4")
    check(after is not None and after[:2] == first[:2] and after[2:] != first[2:] and rekey_events()
          and REKEY_TIME - 1 <= rekeyed_at <= REKEY_TIME + 12,
          f"the CHILD SA was rekeyed by the proxy on schedule ({rekeyed_at:.0f} s after it was made, due at {REKEY_TIME} s), same IKE SA")
    ok, outcome = ping(PEER, PEER4, T1["v4"], count=3)
    check(ok, f"ping through the rekeyed SA ({outcome})")
    time.sleep(5)  # two of strongSwan's 2 s liveness intervals must pass for the check to mean anything
    check(ike_and_child_spis(charon, "t1v4") is not None and ike_and_child_spis(charon, "t1v4")[:2] == first[:2],
          "strongSwan's liveness checks were answered all along: the IKE SA is still the first one")


def token_removed_and_put_back(charon, daemon, directory, tokens):
    token_dirs = [os.path.join(tokens, d) for d in os.listdir(tokens)]
    removed = os.path.join(directory, "removed-token")
    os.makedirs(removed)
    for d in token_dirs:
        shutil.move(d, removed)
    check(wait_for(lambda: "was removed: established SAs keep forwarding, new negotiations are refused" in daemon.log_since_start(), 6),
          "the daemon notices the token is gone and says so")
    ok, outcome = ping(PEER, PEER4, T1["v4"], count=3)
    check(ok, f"with the token out, established SAs keep forwarding ({outcome})")
    refused_before = daemon.counter("drop_new_negotiation_refused")
    result = initiate(charon, "t1v6", timeout_ms=4000)
    check(result is not True and daemon.counter("drop_new_negotiation_refused") > refused_before
          and "refused: PKCS#11 token 'ikeproxy'" in daemon.log_since_start(),
          "with the token out, a new negotiation is refused with a clear log line")
    terminate(charon, "t1v6")
    for d in os.listdir(removed):
        shutil.move(os.path.join(removed, d), tokens)
    check(wait_for(lambda: "is back: new negotiations resume" in daemon.log_since_start(), 6), "the daemon notices the token is back")
    initiate(charon, "t1v6")
    wait_child(charon, "t1v6")
    check(ike_and_child_spis(charon, "t1v6") is not None, "with the token back, a new negotiation succeeds")
    wait_for(lambda: read(os.path.join(directory, "t1.log")).count("installed outbound SA") >= 2 + 1, 10)
    ok, outcome = ping(PEER, PEER6, T1["v6"], count=3)
    check(ok, f"and its ESP flows ({outcome})")


def terminal_agent_restarted(charon, daemon, agent, terminal_config, directory):
    """Terminal 1's agent is killed with SIGKILL and started again (a device reboot): it holds no SA, and its
    first STATUS says so; the proxy sets the stored SAs again at once, so the peer's pings get through without
    the terminal sending first, and without a new negotiation. Returns the new agent."""
    before = ike_and_child_spis(charon, "t1v4")
    agent.kill()
    agent.wait(timeout=10)
    agent_log = os.path.join(directory, "t1.log")
    installed = read(agent_log).count("installed outbound SA")
    lost = daemon.counter("terminal_lost_its_sas")
    agent = start(T1["ns"], ["terminal", "--config", terminal_config], agent_log)
    back = wait_for(lambda: read(agent_log).count("installed outbound SA") > installed, 10)
    log = daemon.log_since_start()
    check(back and daemon.counter("terminal_lost_its_sas") > lost and "reports none of the" in log and "setting their keys again" in log,
          "the restarted agent's first STATUS lists no SA: the proxy sets the stored SAs into it again at once")
    ok, summary = ping(PEER, PEER4, T1["v4"], count=3)
    check(ok, f"the peer's pings reach the terminal through ESP again without it sending first ({summary})")
    check(ike_and_child_spis(charon, "t1v4") == before, f"on the same SA: no new negotiation (strongSwan's SPIs {before})")
    return agent


def terminal_dropped_from_the_file_while_down(charon, daemon):
    """Terminal 1 taken out of the configuration file while the daemon is down: at start the SAs restored in its
    name are deleted with strongSwan at once, before the peer has sent anything: the peer's link address comes
    back from the store, or, with none stored, the proxy asks for it (ARP in the terminal's name). Put back,
    terminal 1 gets a new SA each time."""
    import sqlite3
    with open(daemon.config) as f:
        config = json.load(f)
    listed = config["terminals"]

    def restart_with(terminals):
        daemon.kill()
        config["terminals"] = terminals
        with open(daemon.config, "w") as f:
            json.dump(config, f, indent=1)
        daemon.start()

    for stored in (True, False):
        if not stored:
            db = sqlite3.connect(daemon.database)
            db.execute("DELETE FROM stations")
            db.commit()
            db.close()
        restart_with([t for t in listed if t["terminal_id"] != 1])
        asking = f"asking for the link address of {PEER4} on the Internet side (ARP request from {T1['v4']})"
        said = wait_for(lambda: "no longer an enrolled terminal: deleting it" in daemon.log_since_start(), 15)
        gone = said and wait_for(lambda: not {"t1v4", "t1v6"} & set(peer_sas(charon)), 15)
        # Without stored link addresses the terminal's is asked for first; the peer's is asked for at the
        # retransmission, unless its own frames taught it before (strongSwan's liveness checks, every 2 s of
        # silence, race the retransmission after 1 s): the unit tests hold the ARP in the terminal's name.
        asking_terminal = f"asking for the link address of {T1['v4']} on the terminal side"
        log = daemon.log_since_start()
        asked, asked_terminal = asking in log, asking_terminal in log
        if stored:
            check(gone and "restored the link addresses of" in log and not asked,
                  "restarted without terminal 1 in its file, the daemon deletes the IKE SAs it restored in its name at strongSwan at once, "
                  "the peer's link address restored from the store")
        else:
            check(gone and asked_terminal, "the same with no link address stored: the daemon asks for terminal 1's link address, "
                  "then the peer's (by ARP in terminal 1's name, or learnt from its frames), and the Delete goes out "
                  f"(deletion {'said' if said else 'not said'}, strongSwan's SAs "
                  f"{'gone' if gone else 'still there: ' + str(sorted(set(peer_sas(charon)) & {'t1v4', 't1v6'}))}, "
                  f"terminal's link address {'asked for' if asked_terminal else 'not asked for'}, "
                  f"the peer's {'asked for by ARP' if asked else 'learnt from its frames'})")
            if not (gone and asked_terminal):
                print("  --- daemon.log since this start:\n" + "\n".join("      " + line for line in log.splitlines()[-40:]))
        restart_with(listed)
        wait_for(lambda: "bridging" in daemon.log_since_start(), 10)
        initiate(charon, "t1v4")
        check(wait_child(charon, "t1v4")[1] is not None, "back in the file, terminal 1 gets a new SA from strongSwan")


def no_key_on_disk(daemon):
    import sqlite3
    events = [json.loads(line) for line in open(daemon.events) if line.strip()]
    keys = set()
    for event in events:
        for value in event.get("child", {}).get("keys", {}).values():
            if value:
                keys.add(bytes.fromhex(value))
    secrets = {"PSK": PSK.encode(), "enrollment key": bytes.fromhex(T1["key"])}
    files = [p for p in (daemon.database, daemon.database + "-wal", daemon.database + "-shm", daemon.config) if os.path.exists(p)]
    blob = b"".join(open(p, "rb").read() for p in files)
    found = [k.hex() for k in keys if k in blob or k.hex().encode() in blob or k.hex().upper().encode() in blob]
    found += [name for name, s in secrets.items() if s in blob or s.hex().encode() in blob]
    db = sqlite3.connect(daemon.database)
    ike_rows = db.execute("SELECT COUNT(*) FROM ike_sas").fetchone()[0]
    child_rows = db.execute("SELECT COUNT(*) FROM child_sas").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    check(len(keys) >= 4 and ike_rows >= 1 and child_rows >= 1,
          f"the database holds the SAs ({ike_rows} IKE, {child_rows} CHILD rows, schema {version}) and {len(keys)} CHILD SA keys were printed to look for")
    check(not found, f"no key in the database files nor the configuration ({', '.join(os.path.basename(f) for f in files)}): "
          + ("none of the CHILD SA keys, the PSK or the enrollment key" if not found else f"FOUND {found}"))


if __name__ == "__main__":
    sys.exit(main())
