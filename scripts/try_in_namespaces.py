#!/usr/bin/env python3
"""Try IKEProxy by hand in network namespaces: `up` builds a small site and leaves it running, `down`
removes it. Needs root, a debug build (`swift build`), and the packages scripts/test.sh installs.

  ikp-d-peer   strongSwan, 192.0.2.1 (the Internet peer)
  ikp-d-proxy  `ikeproxy daemon`: bridge ikp-dx0 <-> ikp-dx1, no address; management API on 10.99.0.1:8443
  ikp-d-t1     a terminal running `ikeproxy terminal`, 192.0.2.2 (and a second and a stranger, idle)
  ikp-d-admin  an administrator's host, 10.99.0.2, where the CLI runs

Everything it writes (configurations, certificate, token, logs, state.db) is in /tmp/ikeproxy-try; `up` empties
it first, so each try starts from a new state.
"""
import hashlib, json, os, secrets, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import management_api  # noqa: E402
from lib.host import BINARY, remove_namespaces  # noqa: E402
from lib.lab import NAMESPACES, PEER, PROXY, TERMINALS, Topology, daemon_configuration, load_peer_connections, terminal_configuration  # noqa: E402
from lib.peer import Charon  # noqa: E402
from lib.processes import start_agent  # noqa: E402

DIR = "/tmp/ikeproxy-try"
ADMIN = management_api.ADMIN


def up():
    # Each try starts afresh: a state.db left by an earlier one would bring back its SAs and, as the store
    # outlives the configuration file by design, the policy its administrator changed.
    if os.path.isdir(DIR):
        shutil.rmtree(DIR)
        print(f"removed the previous try's files from {DIR}")
    os.makedirs(DIR, exist_ok=True)
    os.chmod(DIR, 0o755)
    Topology().__enter__()
    management_api.add_management_link()
    cert, key = os.path.join(DIR, "api.pem"), os.path.join(DIR, "api.key")
    management_api.make_certificate(cert, key, days=30)
    token = secrets.token_urlsafe(24)
    with open(os.path.join(DIR, "admin.token"), "w") as f:
        f.write(token + "\n")
    config = daemon_configuration(os.path.join(DIR, "ikeproxy.sock"))
    config["store"] = {"path": os.path.join(DIR, "state.db"), "key_file": os.path.join(DIR, "sealing.key"), "create_key_file": True}
    config["management"] = {"listen": "10.99.0.1", "port": 8443, "certificate": cert, "private_key": key,
                            "administrators": [{"name": "you", "role": "admin", "token_sha256": hashlib.sha256(token.encode()).hexdigest()}]}
    with open(os.path.join(DIR, "daemon.json"), "w") as f:
        json.dump(config, f, indent=1)
    charon = Charon(DIR, PEER)
    load_peer_connections(charon)
    daemon = subprocess.Popen(["ip", "netns", "exec", PROXY, BINARY, "daemon", "--config", os.path.join(DIR, "daemon.json")],
                              stdout=open(os.path.join(DIR, "events.jsonl"), "a"), stderr=open(os.path.join(DIR, "daemon.log"), "a"),
                              start_new_session=True)
    # Terminal 1 reports its SAs' traffic every 5 s, which `ikeproxy sas` shows.
    start_agent(DIR, TERMINALS[0], dict(terminal_configuration(TERMINALS[0]), status_interval=5))
    time.sleep(2)
    if daemon.poll() is not None:
        print(f"the daemon did not start; see {DIR}/daemon.log")
        return 1
    cli = f"ip netns exec {ADMIN} {BINARY}"
    api = f"--api https://10.99.0.1:8443 --token-file {DIR}/admin.token --ca-file {DIR}/api.pem"
    print(f"""Up. The daemon logs to {DIR}/daemon.log, SA events to {DIR}/events.jsonl. Try, as root:

  # strongSwan (the peer) negotiates with terminal 1; the proxy answers in its name
  swanctl --initiate --child t1v4 --ike t1v4 -u unix://{DIR}/charon.vici
  ip netns exec ikp-d-peer ping -c 3 192.0.2.2

  # the administrator's view, over the HTTPS API
  {cli} sas {api}
  {cli} terminals {api}
  {cli} policies add {api} --position 0 --rule '{{"source":"192.0.2.0/24","destination":"192.0.2.10/32","protocol":"tcp","destination_ports":"7002","action":"discard"}}'
  {cli} policies {api}
  {cli} status {api}

  # when done
  python3 scripts/try_in_namespaces.py down
""")
    return 0


def down():
    remove_namespaces(*(NAMESPACES + [ADMIN]))
    print("removed the namespaces and everything running in them; files stay in " + DIR + " until the next up")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        sys.exit(1)
    sys.exit({"up": up, "down": down}.get(sys.argv[1] if len(sys.argv) > 1 else "", lambda: print("usage: try_in_namespaces.py up|down") or 2)())
