#!/usr/bin/env python3
"""End to end: strongSwan -- `ikeproxy daemon` (a two-port bridge with no IP address) -- terminals.

Six network namespaces:

  ikp-d-peer   strongSwan (charon, kernel-libipsec: ESP always in UDP 4500): 192.0.2.1 and 2001:db8::1;
               also a host for bypass flows (.10 / ::10) and one for discarded flows (.11 / ::11)
  ikp-d-proxy  `ikeproxy daemon` bridging ikp-dx0 (Internet side) and ikp-dx1 (terminal side), no address
  ikp-d-lan    a switch (Linux bridge) joining the proxy's terminal port and the three hosts below
  ikp-d-t1     terminal 1, `ikeproxy terminal`, 192.0.2.2 / 2001:db8::2, enrolled by its MAC address
  ikp-d-t2     terminal 2, `ikeproxy terminal`, 192.0.2.3 / 2001:db8::3, enrolled by its addresses
  ikp-d-t3     a stranger, 192.0.2.50 / 2001:db8::50, outside the terminal prefixes: never gets an SA
  ikp-d-t4     terminal 4, `ikeproxy terminal`, IPv6 only (2001:db8::4): key delivery over IPv6 from fe80::1

For IPv4 and then IPv6: strongSwan initiates to each terminal's address and the proxy answers in its
name (a separate CHILD SA per terminal), ping and a 10 MB TCP transfer go through ESP both ways; then a
terminal opens a flow itself and the proxy initiates; a bypass flow passes in the clear, a discard flow
is dropped, the stranger gets no SA. The IPv6-only terminal gets its keys over IPv6 (the proxy answers
neighbour solicitations for its key-delivery address fe80::1) in both flows. A capture of the Internet-side link shows ESP and bypass traffic
but no plaintext of a protected flow. `ip addr` shows no address on the bridged ports, `ikeproxy
terminals` lists what discovery learnt, the daemon refuses a missing interface, a port holding an
address and an unprivileged user with clear errors, and stops cleanly on SIGTERM.

Needs root, iproute2, strongSwan, tcpdump, tshark and the `vici` module; it fails loudly otherwise.
"""
import json, os, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strongswan_interop as base  # noqa: E402

PEER, PROXY, LAN = "ikp-d-peer", "ikp-d-proxy", "ikp-d-lan"
base.PEER_NS = PEER
BINARY = base.BINARY
PSK = base.PSK
check, sh, ns = base.check, base.sh, base.ns

PEER4, PEER6 = "192.0.2.1", "2001:db8::1"
BYPASS4, BYPASS6 = "192.0.2.10", "2001:db8::10"
DISCARD4, DISCARD6 = "192.0.2.11", "2001:db8::11"
MARK = "0x4b50"
JUMBO_MTU = 9000
MARKER = b"ikp-e2e-frame-marker"
TERMINALS = [
    {"name": "t1", "ns": "ikp-d-t1", "dev": "ikp-dt1", "mac": "02:00:00:00:d0:02", "v4": "192.0.2.2", "v6": "2001:db8::2",
     "id": 1, "key": "11" * 32, "enrolled_by": "mac"},
    {"name": "t2", "ns": "ikp-d-t2", "dev": "ikp-dt2", "mac": "02:00:00:00:d0:03", "v4": "192.0.2.3", "v6": "2001:db8::3",
     "id": 2, "key": "22" * 32, "enrolled_by": "addresses"},
]
STRANGER = {"name": "t3", "ns": "ikp-d-t3", "dev": "ikp-dt3", "mac": "02:00:00:00:d0:32", "v4": "192.0.2.50", "v6": "2001:db8::50"}
V6ONLY = {"name": "t4", "ns": "ikp-d-t4", "dev": "ikp-dt4", "mac": "02:00:00:00:d0:04", "v4": None, "v6": "2001:db8::4",
          "id": 4, "key": "44" * 32, "enrolled_by": "addresses"}
HOSTS = TERMINALS + [STRANGER, V6ONLY]
AGENTS = TERMINALS + [V6ONLY]
NAMESPACES = [PEER, PROXY, LAN] + [h["ns"] for h in HOSTS]


class Topology:
    def __enter__(self):
        self.tearDown()
        base.add_namespaces(*NAMESPACES)
        sh("ip", "link", "add", "ikp-dp0", "netns", PEER, "type", "veth", "peer", "name", "ikp-dx0", "netns", PROXY)
        sh("ip", "link", "add", "ikp-dx1", "netns", PROXY, "type", "veth", "peer", "name", "ikp-dl0", "netns", LAN)
        # The switch: no addresses, no IPv6 of its own (its own ND would only be noise on the terminal link).
        ns(LAN, "ip", "link", "add", "br0", "type", "bridge")
        ns(LAN, "ip", "link", "set", "br0", "addrgenmode", "none")
        ports = ["ikp-dl0"]
        for index, host in enumerate(HOSTS, start=1):
            port = f"ikp-dl{index}"
            sh("ip", "link", "add", port, "netns", LAN, "type", "veth", "peer", "name", host["dev"], "netns", host["ns"])
            ports.append(port)
            ns(host["ns"], "ip", "link", "set", host["dev"], "address", host["mac"])
            if host["v4"]:
                ns(host["ns"], "ip", "addr", "add", host["v4"] + "/24", "dev", host["dev"])
            ns(host["ns"], "ip", "addr", "add", host["v6"] + "/64", "dev", host["dev"], "nodad")
            ns(host["ns"], "ip", "link", "set", host["dev"], "up")
        for host in HOSTS:
            ns(host["ns"], "ip", "link", "set", host["dev"], "mtu", str(JUMBO_MTU))
        ns(PEER, "ip", "link", "set", "ikp-dp0", "mtu", str(JUMBO_MTU))
        ns(PROXY, "ip", "link", "set", "ikp-dx0", "mtu", str(JUMBO_MTU))
        ns(PROXY, "ip", "link", "set", "ikp-dx1", "mtu", str(JUMBO_MTU))
        for port in ports:
            ns(LAN, "ip", "link", "set", port, "mtu", str(JUMBO_MTU))
            ns(LAN, "ip", "link", "set", port, "addrgenmode", "none")
            ns(LAN, "ip", "link", "set", port, "master", "br0", "up")
        ns(LAN, "ip", "link", "set", "br0", "up")
        for address in (PEER4, BYPASS4, DISCARD4):
            ns(PEER, "ip", "addr", "add", address + "/24", "dev", "ikp-dp0")
        for address in (PEER6, BYPASS6, DISCARD6):
            ns(PEER, "ip", "addr", "add", address + "/64", "dev", "ikp-dp0", "nodad")
        ns(PEER, "ip", "link", "set", "ikp-dp0", "up")
        # The bypass and discard hosts share the peer's namespace: their answers must not follow the routes
        # kernel-libipsec installs towards the terminals (table 220), which only carry the peer's own traffic.
        for address in (BYPASS4, DISCARD4):
            ns(PEER, "ip", "rule", "add", "from", address, "lookup", "main", "priority", "100")
        for address in (BYPASS6, DISCARD6):
            ns(PEER, "ip", "-6", "rule", "add", "from", address, "lookup", "main", "priority", "100")
        # The proxy's ports are left down and bare: the daemon brings them up without addresses.
        for host in AGENTS:
            agent_routes(host["ns"], host["dev"], ipv4=bool(host["v4"]))
        return self

    def tearDown(self):
        base.remove_namespaces(*NAMESPACES)

    def __exit__(self, *exc):
        self.tearDown()


def agent_routes(namespace, dev, ipv4=True, ipv6=True):
    """Host-to-host protection on a terminal: the peer's address is routed into the agent's TUN device (its
    configuration says so), the agent's own packets (marked) go around it out of `dev`, and the key-delivery
    address is on the link (fe80::1 always is)."""
    if ipv4:
        ns(namespace, "ip", "route", "add", "169.254.0.1/32", "dev", dev)
        ns(namespace, "ip", "rule", "add", "fwmark", MARK, "lookup", "4500", "priority", "100")
        ns(namespace, "ip", "route", "add", "default", "dev", dev, "table", "4500")
    if ipv6:
        ns(namespace, "ip", "-6", "rule", "add", "fwmark", MARK, "lookup", "4500", "priority", "100")
        ns(namespace, "ip", "-6", "route", "add", "default", "dev", dev, "table", "4500")


def ipv4_terminal_link(t):
    """An IPv4 terminal's end of its link: its MAC and address, up, and the routes around its agent."""
    ns(t["ns"], "ip", "link", "set", t["dev"], "address", t["mac"])
    ns(t["ns"], "ip", "addr", "add", t["v4"] + "/24", "dev", t["dev"])
    ns(t["ns"], "ip", "link", "set", t["dev"], "up")
    agent_routes(t["ns"], t["dev"], ipv6=False)


def daemon_configuration(control):
    def family(v6):
        terminals, peer = ("2001:db8::/64", PEER6 + "/128") if v6 else ("192.0.2.0/24", PEER4 + "/32")
        bypass, discard = (BYPASS6 + "/128", DISCARD6 + "/128") if v6 else (BYPASS4 + "/32", DISCARD4 + "/32")
        return [
            {"source": terminals, "destination": bypass, "action": "bypass"},
            {"source": terminals, "destination": discard, "protocol": "tcp", "destination_ports": "23", "action": "discard"},
            {"source": terminals, "destination": peer, "action": "protect", "profile": "peer"},
        ]
    terminals = []
    for t in AGENTS:
        entry = {"terminal_id": t["id"], "enrollment_key_hex": t["key"]}
        if t["enrolled_by"] == "mac":
            entry["mac"] = t["mac"]
        else:
            entry["addresses"] = [a for a in (t["v4"], t["v6"]) if a]
        terminals.append(entry)
    return {
        "interfaces": {"internet": "ikp-dx0", "terminal": "ikp-dx1"},
        "control_socket": control,
        "terminal_prefixes": ["192.0.2.0/28", "2001:db8::/124"],
        "terminals": terminals,
        "profiles": [{"name": "peer", "proposals": ["aes256gcm16-prfsha256-x25519"], "esp_proposals": ["aes256gcm16"],
                      "psk": PSK, "mode": "tunnel", "force_encapsulation": True,
                      # Liveness checks after 5 s of silence: the last step kills strongSwan and watches for them.
                      "liveness_interval": 5}],
        "policy": {"default": "bypass", "rules":
                   # Neighbour discovery between terminals and the peer is link business, never protected.
                   [{"source": "::/0", "destination": "::/0", "protocol": "icmpv6", "source_ports": "133-137", "action": "bypass"}]
                   + family(False) + family(True)},
        "settings": {"retransmit_timeout": 1.0, "retransmit_limit": 3},
    }


def terminal_configuration(t):
    """The agent's configuration for a terminal of `t`'s families (IPv4 and IPv6, either alone)."""
    if not t.get("v6"):
        return {"terminal_id": t["id"], "enrollment_key_hex": t["key"], "outer_addresses": [t["v4"]], "proxy_address": "169.254.0.1",
                "fwmark": int(MARK, 16), "status_interval": 0, "tun": {"name": "ikp0", "routes": [PEER4 + "/32"], "mtu": 1400}}
    if not t["v4"]:
        # IPv6 only: the agent's defaults reach the proxy at ff02::1 and answer from its own address.
        # It reports its SAs every 3 s: restarted_without_store watches the proxy judge such a report.
        return {"terminal_id": t["id"], "enrollment_key_hex": t["key"], "outer_addresses": [t["v6"]],
                "fwmark": int(MARK, 16), "status_interval": 3, "tun": {"name": "ikp0", "routes": [PEER6 + "/128"], "mtu": 1400}}
    return {"terminal_id": t["id"], "enrollment_key_hex": t["key"], "outer_addresses": [t["v4"], t["v6"]],
            "proxy_address": "169.254.0.1", "fwmark": int(MARK, 16), "status_interval": 0,
            "tun": {"name": "ikp0", "routes": [PEER4 + "/32", PEER6 + "/128"], "mtu": 1400}}


def load_peer_connections(charon):
    for host in HOSTS:
        for v6 in (False, True) if host["v4"] else (True,):
            local, remote = (PEER6, host["v6"]) if v6 else (PEER4, host["v4"])
            name = f"{host['name']}v{6 if v6 else 4}"
            charon.session.load_conn({name: {
                "version": "2", "local_addrs": [local], "remote_addrs": [remote],
                "proposals": ["aes256gcm16-prfsha256-x25519"], "encap": "yes", "rekey_time": "0", "dpd_delay": "0",
                "local-1": {"auth": "psk", "id": local}, "remote-1": {"auth": "psk", "id": remote},
                "children": {name: {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                    "local_ts": [local], "remote_ts": [remote]}}}})
    owners = [PEER4, PEER6] + [h[k] for h in HOSTS for k in ("v4", "v6") if h[k]]
    charon.session.load_shared({"id": "psk-all", "type": "IKE", "data": PSK, "owners": owners})


def peer_sas(charon):
    """{connection name: [IKE SA dicts]} as charon lists them."""
    result = {}
    for entry in charon.session.list_sas():
        for name, sa in entry.items():
            result.setdefault(name, []).append(sa)
    return result


def installed_child(charon, name):
    for sa in peer_sas(charon).get(name, []):
        if sa["state"] != b"ESTABLISHED":
            continue
        for child in sa.get("child-sas", {}).values():
            if child["state"] == b"INSTALLED":
                return sa, child
    return None, None


def wait_child(charon, name, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        sa, child = installed_child(charon, name)
        if child:
            return sa, child
        time.sleep(0.2)
    return None, None


def initiate(charon, name, timeout_ms=10000):
    try:
        for _ in charon.session.initiate({"child": name, "ike": name, "timeout": timeout_ms}):
            pass
        return True
    except Exception as error:  # vici reports a failed or timed-out initiation as an exception
        return str(error)


def terminate(charon, name):
    try:
        for _ in charon.session.terminate({"ike": name, "timeout": 5000}):
            pass
    except Exception:
        pass


def start(namespace, args, log_path, stdout=subprocess.DEVNULL):
    return subprocess.Popen(["ip", "netns", "exec", namespace, BINARY] + args, stdout=stdout,
                            stderr=open(log_path, "a"), start_new_session=True)


def launch(directory, namespace, configuration, agents):
    """Writes the daemon's configuration to daemon.json, starts `ikeproxy daemon` in `namespace` and an agent for
    each (terminal, its configuration) of `agents`: (configuration path, daemon log, daemon, agent processes)."""
    config_path = os.path.join(directory, "daemon.json")
    with open(config_path, "w") as f:
        json.dump(configuration, f, indent=1)
    log = os.path.join(directory, "daemon.log")
    daemon = start(namespace, ["daemon", "--config", config_path], log)
    processes = []
    for t, terminal_config in agents:
        path = os.path.join(directory, f"{t['name']}.json")
        with open(path, "w") as f:
            json.dump(terminal_config, f)
        processes.append(start(t["ns"], ["terminal", "--config", path], os.path.join(directory, f"{t['name']}.log")))
    return config_path, log, daemon, processes


def stop(process):
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        return None


def control_query(control, request):
    """The daemon's JSON answer to one request (`status`, `terminals`, `sas`) on its control socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(control)
    s.sendall(request.encode() + b"\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return json.loads(data)


def daemon_status(control):
    """The daemon's status (counters, ports) from its control socket."""
    return control_query(control, "status")


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def transfer(server_ns, server_addr, client_ns, client_addr, port, size, timeout=120):
    """Sends `size` random octets over TCP from client to server; returns (ok, octets, seconds)."""
    family = "socket.AF_INET6" if ":" in server_addr else "socket.AF_INET"
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", f"""
import hashlib, socket
s = socket.socket({family}); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{server_addr}", {port})); s.listen(1); s.settimeout({timeout})
c, _ = s.accept(); c.settimeout({timeout}); h = hashlib.sha256(); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    h.update(d); n += len(d)
print(h.hexdigest(), n)
"""], stdout=subprocess.PIPE, text=True)
    time.sleep(0.4)
    started = time.time()
    client = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", f"""
import hashlib, os, socket
data = os.urandom({size}); s = socket.socket({family}); s.settimeout({timeout}); s.bind(("{client_addr}", 0))
s.connect(("{server_addr}", {port})); s.sendall(data); s.close(); print(hashlib.sha256(data).hexdigest())
"""], capture_output=True, text=True, timeout=timeout + 10)
    try:
        out, _ = server.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        out = ""
    seconds = time.time() - started
    received = out.split()
    ok = client.returncode == 0 and len(received) == 2 and received[0] == client.stdout.strip() and int(received[1]) == size
    return ok, int(received[1]) if len(received) == 2 else 0, seconds


def tcp_connect_fails(client_ns, client_addr, server_addr, port, seconds=3):
    family = "socket.AF_INET6" if ":" in server_addr else "socket.AF_INET"
    result = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", f"""
import socket, sys
s = socket.socket({family}); s.settimeout({seconds}); s.bind(("{client_addr}", 0))
try:
    s.connect(("{server_addr}", {port})); sys.exit(0)
except OSError as e:
    print(e); sys.exit(1)
"""], capture_output=True, text=True, timeout=seconds + 10)
    return result.returncode != 0


def ping(namespace, source, destination, count=5):
    tool = ["ping", "-6"] if ":" in destination else ["ping"]
    result = ns(namespace, *tool, "-c", str(count), "-i", "0.2", "-W", "2", "-I", source, destination, check=False)
    summary = [line for line in result.stdout.splitlines() if "packets transmitted" in line]
    return result.returncode == 0, summary[0] if summary else result.stderr.strip()


class Daemon:
    def __init__(self, directory):
        self.control = os.path.join(directory, "ikeproxy.sock")
        self.config = os.path.join(directory, "daemon.json")
        with open(self.config, "w") as f:
            json.dump(daemon_configuration(self.control), f, indent=1)
        self.log = os.path.join(directory, "daemon.log")
        self.events = os.path.join(directory, "daemon-events.jsonl")
        self.process = start(PROXY, ["daemon", "--config", self.config, "--show-keys"], self.log, stdout=open(self.events, "w"))

    def query(self, request):
        """The daemon's JSON answer on its control socket."""
        return control_query(self.control, request)

    def counter(self, name):
        answer = self.query("status")
        return answer["proxy"].get(name, 0) + answer["bridge"].get(name, 0) + answer["data_path"].get(name, 0)


def main():
    return base.run_with_charon("daemon end-to-end test", "ikp-daemon-", Topology, run, tools=("tshark", "tcpdump", "ping", "setpriv"),
                                readable=True)


def refusals(directory, config_path):
    """`--check` of a good and a bad file; clear errors at start: a missing interface, a port that holds an
    address, no privileges."""
    result = ns(PROXY, BINARY, "daemon", "--check", "--config", config_path, check=False)
    check(result.returncode == 0 and f"{config_path}: valid" in result.stdout and "policy: " in result.stdout and PSK not in result.stdout,
          f"`ikeproxy daemon --check` says the file is valid and what it would run with, no secret ({len(result.stdout.splitlines())} lines)")
    with open(config_path) as f:
        config = json.load(f)
    broken = dict(config, policy={"rules": [{"source": "192.0.2.0/33", "destination": "0.0.0.0/0", "action": "protect", "profile": "peer"}]})
    path = os.path.join(directory, "broken.json")
    with open(path, "w") as f:
        json.dump(broken, f)
    result = ns(PROXY, BINARY, "daemon", "--check", "--config", path, check=False)
    check(result.returncode == 2 and "not valid" in result.stderr and "policy.rules[0].source" in result.stderr,
          f"and of a broken one names the key: {result.stderr.strip()[-160:]}")
    config["control_socket"] = os.path.join(directory, "refused.sock")
    missing = dict(config, interfaces={"internet": "ikp-nosuch", "terminal": "ikp-dx1"})
    path = os.path.join(directory, "missing.json")
    with open(path, "w") as f:
        json.dump(missing, f)
    result = ns(PROXY, BINARY, "daemon", "--config", path, check=False)
    check(result.returncode == 2 and "interface 'ikp-nosuch' does not exist" in result.stderr,
          f"a missing interface is refused with a clear error: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    ns(PROXY, "ip", "link", "add", "ikp-dz0", "type", "veth", "peer", "name", "ikp-dz1")
    ns(PROXY, "ip", "addr", "add", "198.18.0.1/24", "dev", "ikp-dz0")
    held = dict(config, interfaces={"internet": "ikp-dz0", "terminal": "ikp-dz1"})
    path = os.path.join(directory, "held.json")
    with open(path, "w") as f:
        json.dump(held, f)
    result = ns(PROXY, BINARY, "daemon", "--config", path, check=False)
    check(result.returncode == 2 and "holds the address(es) 198.18.0.1" in result.stderr,
          f"a port holding an IP address is refused: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    ns(PROXY, "ip", "addr", "flush", "dev", "ikp-dz0")
    path = os.path.join(directory, "unprivileged.json")
    with open(path, "w") as f:
        json.dump(dict(held, control_socket="/tmp/ikp-unprivileged.sock"), f)
    os.chmod(path, 0o644)
    result = ns(PROXY, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BINARY, "daemon", "--config", path, check=False)
    check(result.returncode == 2 and "needs root or CAP_NET_RAW" in result.stderr,
          f"an unprivileged start is refused: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    unit_capabilities(held, directory)
    ns(PROXY, "ip", "link", "del", "ikp-dz0", check=False)


def unit_capabilities(config, directory):
    """The systemd unit of docs/examples runs the daemon as an unprivileged user with only its
    AmbientCapabilities: started that way (user nobody, those capabilities and no others), it bridges and
    stops cleanly."""
    unit = open(os.path.join(base.ROOT, "docs", "examples", "ikeproxy-daemon.service")).read()
    lines = [l for l in unit.splitlines() if l.startswith("AmbientCapabilities=")]
    caps = [c.lower().removeprefix("cap_") for c in lines[0].split("=", 1)[1].split()] if lines else []
    path = os.path.join(directory, "capabilities.json")
    with open(path, "w") as f:
        json.dump(dict(config, control_socket="/tmp/ikp-capabilities.sock"), f)
    os.chmod(path, 0o644)
    log_path = os.path.join(directory, "capabilities.log")
    wanted = ",".join("+" + c for c in caps)
    process = subprocess.Popen(["ip", "netns", "exec", PROXY, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                f"--inh-caps=-all,{wanted}", f"--ambient-caps={wanted}", f"--bounding-set=-all,{wanted}",
                                BINARY, "daemon", "--config", path], stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    bridging = wait_for(lambda: "bridging ikp-dz0" in read(log_path) or process.poll() is not None, 10)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        code = None
    check(caps == ["net_raw", "net_admin"] and bridging and "bridging ikp-dz0" in read(log_path) and code == 0,
          f"as user nobody with only the unit file's capabilities {caps}, the daemon bridges and stops cleanly "
          f"(exit {code}; {read(log_path).strip().splitlines()[-1][:160] if read(log_path).strip() else 'no output'})")


def restarted_without_store(charon, daemon, directory):
    """The daemon keeps no store here: killed with SIGKILL and started again, it has forgotten every SA while
    terminal 2 still holds its own. Terminal 2's ESP on that SA is dropped and the proxy tells it to delete the
    SA, so its next packets start a new negotiation: its traffic resumes instead of vanishing for the SA's
    lifetime. The IPv6-only terminal sends nothing meanwhile; the SAs its periodic STATUS lists are the ones the
    proxy forgot, and it is told to delete them too."""
    t2, t4 = TERMINALS[1], V6ONLY
    t4_log = os.path.join(directory, f"{t4['name']}.log")
    if installed_child(charon, "t4v6")[1] is None:
        initiate(charon, "t4v6")
    t4_held = wait_child(charon, "t4v6", timeout=10)[1]
    ok, summary = ping(t2["ns"], t2["v4"], PEER4, count=5)
    before = installed_child(charon, "t2v4")[1]
    check(ok and before is not None and t4_held is not None,
          f"terminal 2 talks to the peer through its SA before the restart ({summary}); terminal 4 holds one too")
    t4_deleted_before = read(t4_log).count(f"deleted inbound SA {t4_held['spi-out'].decode()}")
    daemon.process.kill()
    daemon.process.wait(timeout=10)
    daemon.process = start(PROXY, ["daemon", "--config", daemon.config, "--show-keys"], daemon.log, stdout=open(daemon.events, "a"))
    wait_for(lambda: "bridging" in read(daemon.log).rsplit("stopping;", 1)[-1] and os.path.exists(daemon.control), 10)
    time.sleep(1)
    ok, summary = ping(t2["ns"], t2["v4"], PEER4, count=10)
    after = installed_child(charon, "t2v4")[1]
    told = daemon.counter("stale_sa_deleted_in_terminal")
    check(ok and told >= 1 and after is not None and before is not None and after["spi-in"] != before["spi-in"],
          f"kill -9 and a restart without a store: terminal 2's ESP on the forgotten SA makes the proxy tell it to delete it "
          f"({told} told), its next packets negotiate a new SA, and its pings get through again ({summary})")
    spi = t4_held["spi-out"].decode()
    deleted = wait_for(lambda: read(t4_log).count(f"deleted inbound SA {spi}") > t4_deleted_before, 10)
    said = f"terminal {t4['id']} holds inbound SA {spi}, which the proxy does not" in read(daemon.log).rsplit("stopping;", 1)[-1]
    unknown = daemon.counter("status_of_unknown_sa")
    check(deleted and said and unknown >= 1,
          f"terminal 4, silent, lists in its STATUS the SA {spi} the restarted proxy forgot ({unknown} such reports); "
          f"the proxy has it deleted in the terminal ({'deleted' if deleted else 'still there'})")


def lease_moves(charon, daemon):
    """A DHCP server leases terminal 1 (enrolled by MAC) another IPv4 address: the proxy acts for it there from
    now on, and lets the old address go with the SAs it had there (strongSwan's IKE SA with the old address is
    deleted)."""
    t1 = TERMINALS[0]
    e2e_new = "192.0.2.12"
    if installed_child(charon, "t1v4")[1] is None:
        initiate(charon, "t1v4")
    had = wait_child(charon, "t1v4", timeout=10)[1] is not None
    peer_mac = ns(PEER, "cat", "/sys/class/net/ikp-dp0/address").stdout.strip()
    send_frames(PEER, "ikp-dp0", [b"\xff" * 6 + mac_bytes(peer_mac) + b"\x08\x00"
                                  + ipv4_udp(BYPASS4, "255.255.255.255", 67, 68, dhcp_ack(t1["mac"], e2e_new, BYPASS4))])
    said = wait_for(lambda: f"terminal 1: {t1['v4']} is no longer its address (DHCP lease)" in read(daemon.log), 5)
    gone = wait_for(lambda: installed_child(charon, "t1v4")[1] is None, 10)
    rows = json.loads(ns(PROXY, BINARY, "terminals", "--control", daemon.control, "--json", check=False).stdout or "{}").get("terminals", [])
    row = next((r for r in rows if r["mac"] == t1["mac"]), {})
    check(had and said and gone and row.get("ipv4") == [e2e_new] and row.get("status") == "registered",
          f"a DHCP lease moves terminal 1 (enrolled by MAC) to {e2e_new}: registered there ({row.get('ipv4')}), its old address let go "
          f"with its SA at strongSwan ({'deleted' if gone else 'still there'})")


def mac_bytes(text):
    return bytes(int(part, 16) for part in text.split(":"))


def ipv4_udp(source, destination, source_port, destination_port, payload):
    import struct
    def checksum(data):
        if len(data) % 2:
            data += b"\0"
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while total >> 16:
            total = (total & 0xffff) + (total >> 16)
        return ~total & 0xffff
    src, dst = socket.inet_aton(source), socket.inet_aton(destination)
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload
    udp_sum = checksum(src + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + udp


def dhcp_ack(client_mac, offered, server):
    import struct
    body = struct.pack("!BBBBIHH4s4s4s4s", 2, 1, 6, 0, 0x1234, 0, 0x8000, b"\0" * 4, socket.inet_aton(offered),
                       socket.inet_aton(server), b"\0" * 4)
    body += mac_bytes(client_mac) + b"\0" * 10 + b"\0" * 192 + bytes([99, 130, 83, 99])
    body += bytes([53, 1, 5, 54, 4]) + socket.inet_aton(server) + bytes([51, 4, 0, 0, 14, 16, 255])
    return body


def send_frames(namespace, device, frames):
    code = ("import socket, sys\n"
            f"s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(({device!r}, 0))\n"
            f"for frame in {[f.hex() for f in frames]!r}:\n"
            "    s.send(bytes.fromhex(frame))\n")
    ns(namespace, sys.executable, "-c", code)


def frames_cross_unchanged(directory):
    """Raw frames the policy allows cross the bridge unchanged both ways: 802.1Q-tagged, jumbo, DHCP."""
    t1 = TERMINALS[0]
    peer_mac = ns(PEER, "cat", "/sys/class/net/ikp-dp0/address").stdout.strip()
    def udp_frame(dst_mac, src_mac, src, dst, size, vlan=None):
        payload = MARKER + bytes(range(256)) * (size // 256 + 1)
        packet = ipv4_udp(src, dst, 7777, 7777, payload[:max(len(MARKER), size - 14 - 28 - (4 if vlan else 0))])
        tag = bytes([0x81, 0x00, 0, vlan]) if vlan else b""
        return mac_bytes(dst_mac) + mac_bytes(src_mac) + tag + b"\x08\x00" + packet
    inbound = [udp_frame(t1["mac"], peer_mac, BYPASS4, t1["v4"], 200, vlan=7),
               udp_frame(t1["mac"], peer_mac, BYPASS4, t1["v4"], JUMBO_MTU + 14),
               b"\xff" * 6 + mac_bytes(peer_mac) + b"\x08\x00"
               + ipv4_udp(BYPASS4, "255.255.255.255", 67, 68, dhcp_ack("02:00:00:00:d0:99", "192.0.2.9", BYPASS4))]
    outbound = [udp_frame(peer_mac, t1["mac"], t1["v4"], BYPASS4, 200, vlan=7),
                udp_frame(peer_mac, t1["mac"], t1["v4"], BYPASS4, JUMBO_MTU + 14)]
    for label, (sender_ns, sender_dev, receiver_ns, receiver_dev, frames) in {
            "Internet -> terminal": (PEER, "ikp-dp0", t1["ns"], t1["dev"], inbound),
            "terminal -> Internet": (t1["ns"], t1["dev"], PEER, "ikp-dp0", outbound)}.items():
        pcap = os.path.join(directory, f"raw-{receiver_dev}.pcap")
        capture = subprocess.Popen(["ip", "netns", "exec", receiver_ns, "tcpdump", "--immediate-mode", "-i", receiver_dev, "-U", "-n", "-s", "0", "-w", pcap],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        send_frames(sender_ns, sender_dev, frames)
        time.sleep(1.0)
        capture.send_signal(signal.SIGINT)
        capture.wait(timeout=10)
        seen = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "frame.len", "-e", "vlan.id", "-e", "dhcp.hw.mac_addr",
                               "-Y", "udp.port == 7777 || dhcp"], capture_output=True, text=True).stdout.splitlines()
        rows = [line.split("\t") for line in seen if line.strip()]
        tagged = any(r[1] == "7" and r[0] == str(len(frames[0])) for r in rows)
        jumbo = any(r[0] == str(len(frames[1])) and r[1] == "" for r in rows)
        check(tagged, f"{label}: an 802.1Q-tagged frame (VLAN 7) crosses with its tag ({rows})")
        check(jumbo, f"{label}: a {len(frames[1])}-octet jumbo frame crosses whole")
        if len(frames) > 2:
            check(any(r[2] == "02:00:00:00:d0:99" for r in rows), f"{label}: a DHCP acknowledgement crosses")


def bridged_ports_bare():
    lines = [ns(PROXY, "ip", "-o", "addr", "show", "dev", dev).stdout.strip() for dev in ("ikp-dx0", "ikp-dx1")]
    return all(line == "" for line in lines), lines


def run(charon, directory):
    load_peer_connections(charon)
    daemon = Daemon(directory)
    refusals(directory, daemon.config)
    agents = {}
    for t in AGENTS:
        path = os.path.join(directory, f"{t['name']}.json")
        with open(path, "w") as f:
            json.dump(terminal_configuration(t), f)
        agents[t["name"]] = start(t["ns"], ["terminal", "--config", path], os.path.join(directory, f"{t['name']}.log"))
    checked = ns(TERMINALS[0]["ns"], BINARY, "terminal", "--check", "--config", os.path.join(directory, "t1.json"), check=False)
    check(checked.returncode == 0 and "terminal 1: key delivery on" in checked.stdout and TERMINALS[0]["key"] not in checked.stdout,
          f"`ikeproxy terminal --check` says what the agent would run with, not its key ({len(checked.stdout.splitlines())} lines)")
    internet_pcap = os.path.join(directory, "internet-link.pcap")
    capture = subprocess.Popen(["ip", "netns", "exec", PEER, "tcpdump", "--immediate-mode", "-i", "ikp-dp0", "-U", "-n", "-w", internet_pcap],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        check(daemon.process.poll() is None, "ikeproxy daemon is running")
        check(all(a.poll() is None for a in agents.values()), "the three terminal agents are running")
        bare, lines = bridged_ports_bare()
        check(bare, f"`ip addr` in the proxy namespace shows no address on the bridged ports {lines}")
        # The stranger speaks, so discovery sees it.
        ping(STRANGER["ns"], STRANGER["v4"], BYPASS4, count=1)
        ping(STRANGER["ns"], STRANGER["v6"], BYPASS6, count=1)

        for v6 in (False, True):
            family("IPv6" if v6 else "IPv4", v6, charon, daemon, directory)
        ipv6_only_terminal(charon, daemon, directory)

        frames_cross_unchanged(directory)
        # Key delivery never comes from the Internet side.
        before = daemon.counter("drop_key_delivery_from_internet")
        send_frames(PEER, "ikp-dp0", [mac_bytes(TERMINALS[0]["mac"]) + mac_bytes(ns(PEER, "cat", "/sys/class/net/ikp-dp0/address").stdout.strip())
                                      + b"\x08\x00" + ipv4_udp(PEER4, TERMINALS[0]["v4"], 9500, 9500, b"IKPD" + bytes(60))])
        time.sleep(0.5)
        check(daemon.counter("drop_key_delivery_from_internet") > before,
              "a key-delivery datagram arriving from the Internet side is dropped (counted)")

        # Discovery, as an administrator sees it.
        table = subprocess.run(["ip", "netns", "exec", PROXY, BINARY, "terminals", "--control", daemon.control],
                               capture_output=True, text=True)
        print("  `ikeproxy terminals`:")
        for line in table.stdout.splitlines():
            print("      " + line)
        rows = json.loads(subprocess.run(["ip", "netns", "exec", PROXY, BINARY, "terminals", "--control", daemon.control, "--json"],
                                         capture_output=True, text=True).stdout)["terminals"]
        by_mac = {row["mac"]: row for row in rows}
        t1, t2 = TERMINALS
        check(by_mac.get(t1["mac"], {}).get("status") == "registered" and by_mac[t1["mac"]].get("terminal_id") == 1
              and t1["v4"] in by_mac[t1["mac"]]["ipv4"] and t1["v6"] in by_mac[t1["mac"]]["ipv6"],
              "terminal 1 (enrolled by MAC) is registered at the IPv4 and IPv6 addresses discovery learnt")
        check(by_mac.get(t2["mac"], {}).get("status") == "registered", "terminal 2 (enrolled by address) is listed as registered")
        check(by_mac.get("02:00:00:00:d0:99", {}).get("status") == "unenrolled" and "dhcp" in by_mac["02:00:00:00:d0:99"]["learnt_from"],
              "a host learnt from a DHCP acknowledgement inside the prefixes is listed (unenrolled: no key for it)")
        check(by_mac.get(STRANGER["mac"], {}).get("status") == "pending"
              and STRANGER["v4"] in by_mac[STRANGER["mac"]]["ipv4"], "the stranger outside the prefixes is listed as pending")
        check(table.returncode == 0 and "pending" in table.stdout and "registered" in table.stdout, "`ikeproxy terminals` prints the table")

        # What crossed the Internet-side link.
        time.sleep(0.5)
        capture.send_signal(signal.SIGINT)
        capture.wait(timeout=10)
        capture_checks(internet_pcap)
        bare, lines = bridged_ports_bare()
        check(bare, "still no address on the bridged ports after the run")
        lease_moves(charon, daemon)
        restarted_without_store(charon, daemon, directory)

        # strongSwan dies without a word: the proxy's liveness checks (liveness_interval 5 s, then
        # retransmissions after 1, 2, 4 and 8 s) go unanswered, it gives the IKE SAs up and deletes the
        # terminals' SAs through key delivery.
        deleted_before = sum(read(os.path.join(directory, f"{t['name']}.log")).count("deleted outbound SA") for t in AGENTS)
        charon.stop(crash=True)
        gave_up = wait_for(lambda: "giving up" in read(daemon.log), 40)
        check(gave_up, "with the peer dead, the proxy's liveness checks go unanswered and it gives the IKE SAs up")
        deleted = wait_for(lambda: sum(read(os.path.join(directory, f"{t['name']}.log")).count("deleted outbound SA") for t in AGENTS)
                           > deleted_before, 10)
        check(deleted, "and the terminals' SAs with the dead peer are deleted through key delivery")
    finally:
        if capture.poll() is None:
            capture.kill()
        for agent in agents.values():
            stop(agent)
        code = stop(daemon.process)
        check(code == 0 and "stopping;" in read(daemon.log), f"the daemon stops cleanly on SIGTERM (exit status {code})")
        for name in ["daemon.log"] + [f"{t['name']}.log" for t in AGENTS]:
            lines = read(os.path.join(directory, name)).splitlines()
            print(f"  --- last lines of {name}:")
            for line in lines[-4:]:
                print("      " + line[:400])


def family(label, v6, charon, daemon, directory):
    key = "v6" if v6 else "v4"
    peer, bypass, discard = (PEER6, BYPASS6, DISCARD6) if v6 else (PEER4, BYPASS4, DISCARD4)
    port_base = 6000 if v6 else 5000
    print(f"  -- {label}")
    size = 10 * 1024 * 1024
    children = {}
    # 1. strongSwan initiates to each terminal's address; the proxy answers in its name.
    for t in TERMINALS:
        name = f"{t['name']}v{6 if v6 else 4}"
        log_path = os.path.join(directory, f"{t['name']}.log")
        installed_before = read(log_path).count("installed outbound SA")
        result = initiate(charon, name)
        sa, child = wait_child(charon, name)
        check(child is not None, f"{label}: strongSwan initiated to {t[key]} and the proxy answered in its name ({result})")
        children[t["name"]] = child
        check(wait_for(lambda: read(log_path).count("installed outbound SA") > installed_before, 10),
              f"{label}: terminal {t['name']} received the SA over key delivery")
        ok, summary = ping(PEER, peer, t[key])
        check(ok, f"{label}: ping peer -> {t['name']} through ESP ({summary})")
        ok, summary = ping(t["ns"], t[key], peer)
        check(ok, f"{label}: ping {t['name']} -> peer through ESP ({summary})")
        ok, count, seconds = transfer(t["ns"], t[key], PEER, peer, port_base + t["id"], size)
        check(ok, f"{label}: 10 MB TCP peer -> {t['name']} through ESP, intact ({count} octets, {seconds:.1f} s)")
        ok, count, seconds = transfer(PEER, peer, t["ns"], t[key], port_base + 10 + t["id"], size)
        check(ok, f"{label}: 10 MB TCP {t['name']} -> peer through ESP, intact ({count} octets, {seconds:.1f} s)")
    spis = {n: (c.get("spi-in"), c.get("spi-out")) for n, c in children.items() if c}
    counters = {}
    for t in TERMINALS:
        _, child = installed_child(charon, f"{t['name']}v{6 if v6 else 4}")
        counters[t["name"]] = (int(child["packets-in"]), int(child["packets-out"])) if child else (0, 0)
    check(len(spis) == 2 and len(set(spis.values())) == 2 and all(i > 1000 and o > 1000 for i, o in counters.values()),
          f"{label}: strongSwan shows a separate CHILD SA per terminal, packets in/out {counters}")

    # 2. A terminal opens a flow itself: the proxy initiates IKE in its name.
    t = TERMINALS[0] if not v6 else TERMINALS[1]
    name = f"{t['name']}v{6 if v6 else 4}"
    log_path = os.path.join(directory, f"{t['name']}.log")
    terminate(charon, name)
    check(wait_for(lambda: installed_child(charon, name)[1] is None, 10), f"{label}: strongSwan deleted {t['name']}'s SA")
    time.sleep(1)
    started_before = daemon.counter("negotiations_started")
    if not v6:
        result = ns(t["ns"], "ping", "-c", "10", "-i", "0.3", "-W", "2", "-I", t[key], peer, check=False)
        replies = [line for line in result.stdout.splitlines() if "packets transmitted" in line]
        check(" 0 received" not in result.stdout and result.returncode in (0, 1) and replies,
              f"{label}: {t['name']} pings the peer with no SA; after the proxy's negotiation replies come back ({replies[0] if replies else result.stderr.strip()})")
    ok, count, seconds = transfer(PEER, peer, t["ns"], t[key], port_base + 50, 1024 * 1024, timeout=30)
    check(ok, f"{label}: {t['name']} opens a TCP connection to the peer; 1 MB passes through ESP ({seconds:.1f} s)")
    sa, child = installed_child(charon, name)
    check(child is not None and sa.get("initiator", b"no") != b"yes" and daemon.counter("negotiations_started") > started_before,
          f"{label}: the proxy initiated IKE for {t['name']} (strongSwan is the responder: initiator={sa.get('initiator') if sa else None})")

    # 3. Bypass, discard, unregistered.
    ok, count, seconds = transfer(PEER, bypass, t["ns"], t[key], port_base + 60, 256 * 1024, timeout=30)
    check(ok, f"{label}: a bypass flow to {bypass} passes in the clear")
    drops_before = daemon.counter("drop_policy_discard")
    check(tcp_connect_fails(t["ns"], t[key], discard, 23), f"{label}: a discarded flow (TCP to {discard} port 23) gets nowhere")
    check(daemon.counter("drop_policy_discard") > drops_before, f"{label}: the proxy counted the discarded packets")
    unregistered_before = daemon.counter("drop_ike_for_unregistered_terminal")
    name = f"t3v{6 if v6 else 4}"
    result = initiate(charon, name, timeout_ms=4000)
    check(result is not True and installed_child(charon, name)[1] is None
          and daemon.counter("drop_ike_for_unregistered_terminal") > unregistered_before,
          f"{label}: strongSwan's IKE to the unregistered {STRANGER[key]} is dropped; no SA")
    terminate(charon, name)


def ipv6_only_terminal(charon, daemon, directory):
    """A terminal with no IPv4 at all: key delivery runs over IPv6, from the proxy's fe80::1 to the terminal's
    address, and back to fe80::1, which the proxy answers neighbour solicitations for on the terminal link."""
    label, t, name = "IPv6-only terminal", V6ONLY, "t4v6"
    print(f"  -- {label}")
    log_path = os.path.join(directory, f"{t['name']}.log")
    acknowledged = lambda: read(daemon.log).count(f"terminal {t['id']} acknowledged")
    acks_before = acknowledged()
    result = initiate(charon, name)
    sa, child = wait_child(charon, name)
    check(child is not None, f"{label}: strongSwan initiated to {t['v6']} and the proxy answered in its name ({result})")
    check(wait_for(lambda: "installed outbound SA" in read(log_path), 10), f"{label}: the terminal received the SA over IPv6 key delivery")
    check(wait_for(lambda: acknowledged() > acks_before, 10), f"{label}: the proxy got the terminal's acknowledgements over IPv6")
    # Its periodic STATUS may have resolved it before this step: counted since the start, it is the only agent
    # that uses fe80::1.
    answered = daemon.counter("nd_answered_for_key_delivery_address")
    check(answered > 0, f"{label}: the terminal resolved fe80::1 through the proxy's neighbour advertisements ({answered} answered)")
    ok, summary = ping(PEER, PEER6, t["v6"])
    check(ok, f"{label}: ping peer -> t4 through ESP ({summary})")
    ok, summary = ping(t["ns"], t["v6"], PEER6)
    check(ok, f"{label}: ping t4 -> peer through ESP ({summary})")
    ok, count, seconds = transfer(t["ns"], t["v6"], PEER, PEER6, 6070, 1024 * 1024, timeout=60)
    check(ok, f"{label}: 1 MB TCP peer -> t4 through ESP, intact ({count} octets, {seconds:.1f} s)")
    # The terminal opens a flow itself: the proxy initiates IKE in its name and delivers over IPv6 again. Counted
    # from before strongSwan's delete: a late packet of the last transfer may start that negotiation already.
    installed_before = read(log_path).count("installed outbound SA")
    terminate(charon, name)
    check(wait_for(lambda: installed_child(charon, name)[1] is None, 10), f"{label}: strongSwan deleted t4's SA")
    time.sleep(1)
    ok, count, seconds = transfer(PEER, PEER6, t["ns"], t["v6"], 6071, 1024 * 1024, timeout=30)
    check(ok, f"{label}: t4 opens a TCP connection to the peer; 1 MB passes through ESP ({seconds:.1f} s)")
    sa, child = installed_child(charon, name)
    check(child is not None and sa.get("initiator", b"no") != b"yes" and read(log_path).count("installed outbound SA") > installed_before,
          f"{label}: the proxy initiated IKE for t4 and set the new SA into it over IPv6")


def capture_checks(pcap):
    def count(display_filter):
        result = subprocess.run(["tshark", "-r", pcap, "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"tshark refused the filter {display_filter!r}: {result.stderr.strip()[-300:]}")
        return len([line for line in result.stdout.splitlines() if line.strip()])
    def any_of(field, addresses):
        return "(" + " || ".join(f"{field} == {a}" for a in addresses) + ")"
    terminals4, terminals6 = [t["v4"] for t in TERMINALS], [t["v6"] for t in TERMINALS]
    protected4 = (f"((ip.src == {PEER4} && {any_of('ip.dst', terminals4)}) || (ip.dst == {PEER4} && {any_of('ip.src', terminals4)}))")
    protected6 = (f"((ipv6.src == {PEER6} && {any_of('ipv6.dst', terminals6)}) || (ipv6.dst == {PEER6} && {any_of('ipv6.src', terminals6)}))")
    plain = "(tcp || icmp || (icmpv6 && !(icmpv6.type >= 133 && icmpv6.type <= 137)) || (udp && !(udp.port == 500 || udp.port == 4500)))"
    # The key-delivery datagram the test itself sends from the peer (to prove it is dropped) is not a leak.
    leaked = count(f"({protected4} || {protected6}) && {plain} && !(ip.src == {PEER4} && udp.dstport == 9500)")
    esp4, esp6 = count(f"{protected4} && esp"), count(f"{protected6} && esp")
    ike = count(f"({protected4} || {protected6}) && isakmp")
    bypass = count(f"(ip.addr == {BYPASS4} || ipv6.addr == {BYPASS6}) && tcp")
    check(esp4 > 10000 and esp6 > 10000 and ike > 0,
          f"the Internet-side capture holds ESP of the protected flows ({esp4} IPv4, {esp6} IPv6 packets) and IKE ({ike})")
    check(leaked == 0, f"no plaintext packet of a protected flow on the Internet-side link ({leaked} seen)")
    check(bypass > 0, f"the bypass flows crossed in the clear ({bypass} TCP packets)")
    for t in TERMINALS:
        own = count(f"isakmp && (ip.src == {t['v4']} || ipv6.src == {t['v6']}) && eth.src == {t['mac']}")
        foreign = count(f"isakmp && (ip.src == {t['v4']} || ipv6.src == {t['v6']}) && eth.src != {t['mac']}")
        check(own > 0 and foreign == 0, f"IKE in {t['name']}'s name leaves from its address and its MAC ({own} messages, {foreign} otherwise)")
    key_delivery = count("udp.port == 9500 && !(ip.src == " + PEER4 + ")")
    check(key_delivery == 0, f"no key-delivery datagram reached the Internet-side link ({key_delivery})")


if __name__ == "__main__":
    sys.exit(main())
