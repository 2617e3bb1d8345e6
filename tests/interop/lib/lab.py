"""The standard daemon lab: strongSwan, `ikeproxy daemon` as a two-port bridge with no address, a switch, two
terminals (one enrolled by MAC, one by address), a stranger and an IPv6-only terminal; its configurations."""
import json, os

from lib.host import Lab, ns, read, sh, wait_for
from lib.peer import PSK, installed_child, terminate
from lib.processes import control_query, start

PEER, PROXY, LAN = "ikp-d-peer", "ikp-d-proxy", "ikp-d-lan"


PEER4, PEER6 = "192.0.2.1", "2001:db8::1"
BYPASS4, BYPASS6 = "192.0.2.10", "2001:db8::10"
DISCARD4, DISCARD6 = "192.0.2.11", "2001:db8::11"


MARK = "0x4b50"


JUMBO_MTU = 9000


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


class Topology(Lab):
    namespaces = NAMESPACES

    def build(self):
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


def load_host_to_host(charon, hosts, psk_id="psk-all"):
    """A connection in strongSwan to each host's IPv4 and IPv6 address (NAME + "v4"/"v6", one CHILD SA of the same
    name, host to host, tunnel mode, ESP in UDP, nothing scheduled) and the shared key for all of them."""
    for host in hosts:
        for v6 in (False, True) if host["v4"] else (True,):
            local, remote = (PEER6, host["v6"]) if v6 else (PEER4, host["v4"])
            name = f"{host['name']}v{6 if v6 else 4}"
            charon.session.load_conn({name: {
                "version": "2", "local_addrs": [local], "remote_addrs": [remote],
                "proposals": ["aes256gcm16-prfsha256-x25519"], "encap": "yes", "rekey_time": "0", "dpd_delay": "0",
                "local-1": {"auth": "psk", "id": local}, "remote-1": {"auth": "psk", "id": remote},
                "children": {name: {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                    "local_ts": [local], "remote_ts": [remote]}}}})
    owners = [PEER4, PEER6] + [h[k] for h in hosts for k in ("v4", "v6") if h[k]]
    charon.session.load_shared({"id": psk_id, "type": "IKE", "data": PSK, "owners": owners})


def load_peer_connections(charon):
    load_host_to_host(charon, HOSTS)


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


def peer_profile(**settings):
    """The protection profile the daemon scenarios use against strongSwan: the default proposals, the shared
    key, tunnel mode; `settings` add to it or change it."""
    return dict({"name": "peer", "proposals": ["aes256gcm16-prfsha256-x25519"], "esp_proposals": ["aes256gcm16"], "psk": PSK,
                 "mode": "tunnel"}, **settings)


def enrolled_by_address(terminals):
    """The daemon configuration's `terminals`: each enrolled at its IPv4 address with its key."""
    return [{"terminal_id": t["id"], "enrollment_key_hex": t["key"], "addresses": [t["v4"]]} for t in terminals]


def daemon_file(internet, terminal, control, prefixes, terminals, profiles, rules, **extra):
    """A daemon configuration: its two sides' ports, its control socket, the terminal prefixes, `terminals`
    enrolled by address, the profiles and the policy's rules (anything else bypassed); `extra` adds sections."""
    return dict({"interfaces": {"internet": internet, "terminal": terminal}, "control_socket": control, "terminal_prefixes": prefixes,
                 "terminals": enrolled_by_address(terminals), "profiles": profiles, "policy": {"default": "bypass", "rules": rules}},
                **extra)


def peer_deletes_child(charon, name, agent_log, timeout=10):
    """strongSwan deletes its CHILD SA `name`; whether it is gone at strongSwan and the terminal's agent (its log
    at `agent_log`) has deleted its outbound SA too, so that the terminal's next packets start a negotiation."""
    deleted_before = read(agent_log).count("deleted outbound SA")
    terminate(charon, name)
    return wait_for(lambda: installed_child(charon, name)[1] is None, timeout) and wait_for(
        lambda: read(agent_log).count("deleted outbound SA") > deleted_before, timeout)


def agents_ready(terminals, timeout=10):
    """Whether every terminal's agent has its TUN device (`ikp0`) up with its routes: the host's packets to the
    peer then go through the agent."""
    return wait_for(lambda: all(ns(t["ns"], "ip", "route", "show", "dev", "ikp0", check=False).stdout.strip() for t in terminals), timeout)
