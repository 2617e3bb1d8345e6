"""strongSwan as the peer: charon in a namespace, driven over VICI, and what it reports."""
import os, re, signal, socket, subprocess, tempfile, time

import vici
import vici.exception

from lib.host import missing_prerequisites
from lib.report import summary

PSK = "interop-test-pre-shared-key"


class Charon:
    """One charon (strongSwan's IKE daemon, kernel-libipsec) in the peer's namespace with a private /run."""

    def __init__(self, directory, namespace, settings="", log_levels="default = 1\n ike = 2\n chd = 4"):
        """`settings` go into charon's section; `log_levels` are its file log's levels (the default logs the IKE
        exchanges and the CHILD SA keys, which child_keys reads)."""
        self.dir = directory
        self.namespace = namespace
        self.socket = os.path.join(directory, "charon.vici")
        self.log = os.path.join(directory, "charon.log")
        with open(os.path.join(directory, "strongswan.conf"), "w") as f:
            f.write(f"""charon {{
  load = random nonce aes sha1 sha2 hmac gcm chapoly curve25519 gmp openssl kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici
  retransmit_timeout = 2
  retransmit_tries = 3
  # Below the default 1280, so that charon's IKE_AUTH with an RSA certificate is sent in RFC 7383 fragments.
  fragment_size = 1000
  {settings}
  plugins {{
    vici {{ socket = unix://{self.socket} }}
    kernel-libipsec {{ allow_peer_ts = yes }}
    kernel-netlink {{ fwmark = !0x42 }}
    socket-default {{ fwmark = 0x42 }}
  }}
  filelog {{ log {{ path = {self.log}
                   flush_line = yes
                   {log_levels} }} }}
}}
""")
        env = dict(os.environ, STRONGSWAN_CONF=os.path.join(directory, "strongswan.conf"))
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "unshare", "-m", "sh", "-c",
             "mount -t tmpfs none /run && mkdir -p /run/strongswan && exec /usr/lib/ipsec/charon"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket)
                self.session = vici.Session(s)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("charon did not open its VICI socket; see " + self.log)

    def stop(self, crash=False):
        """SIGTERM (charon deletes its SAs first) or, with `crash`, SIGKILL (it forgets them unannounced)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL if crash else signal.SIGTERM)
            self.process.wait(timeout=10)
        except Exception:
            pass

    def load(self, ike, esp, addresses, local_ts=None, options=None):
        local, remote = addresses
        self.session.load_conn({"c": dict({
            "version": "2", "local_addrs": [local], "remote_addrs": [remote], "proposals": [ike],
            "encap": "yes", "rekey_time": "0", "dpd_delay": "0",
            "local-1": {"auth": "psk", "id": local}, "remote-1": {"auth": "psk", "id": remote},
            "children": {"ch": {"esp_proposals": [esp], "mode": "tunnel", "start_action": "none",
                                "rekey_time": "0", "local_ts": [local], "remote_ts": [remote]}}}, **(options or {}))})
        self.session.load_shared({"id": "psk-1", "type": "IKE", "data": PSK, "owners": [local, remote]})

    def sas(self):
        result = {}
        for entry in self.session.list_sas():
            for name, sa in entry.items():
                result.setdefault(name, []).append(sa)
        return result.get("c", [])

    def established(self, timeout=10):
        """Established IKE SAs of 'c' with at least one installed CHILD SA."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            sas = [s for s in self.sas() if s["state"] == b"ESTABLISHED"
                   and any(c["state"] == b"INSTALLED" for c in s.get("child-sas", {}).values())]
            if sas:
                return sas
            time.sleep(0.2)
        return []

    def wait(self, predicate, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            sas = self.sas()
            if predicate(sas):
                return True
            time.sleep(0.2)
        return False

    def child_keys(self):
        """Keys of the last CHILD_SA charon derived, from its level-4 log, by label
        ("encryption initiator key", ...); integrity keys only for non-AEAD ciphers."""
        with open(self.log, errors="replace") as f:
            lines = f.read().splitlines()
        last_seed = max((i for i, line in enumerate(lines) if "[CHD] seed =>" in line), default=-1)
        keys = {}
        for kind in ("encryption", "integrity"):
            for side in ("initiator", "responder"):
                label = f"{kind} {side} key"
                starts = [i for i, line in enumerate(lines) if label in line and i > last_seed]
                if not starts:
                    continue
                i = starts[-1]
                size = int(re.search(r"=> (\d+) bytes", lines[i]).group(1))
                octets = []
                for line in lines[i + 1:]:
                    m = re.search(r"\]\s+\d+: ((?:[0-9A-F]{2} ){1,16})", line + " ")
                    if not m or len(octets) >= size:
                        break
                    octets += m.group(1).split()
                keys[label] = "".join(octets[:size]).lower()
        return keys if "encryption initiator key" in keys else None


def run_with_charon(name, prefix, topology, run, peer_namespace, tools=(), paths=(), readable=False, settings=""):
    """The frame of a namespace test with strongSwan as the peer: prerequisites (refusing loudly), a log
    directory (`readable` by all, for steps run as another user), the topology, charon (with strongswan.conf
    `settings`), `run(charon, directory)`, and the summary as the exit status."""
    problem = missing_prerequisites(name, tools=tools, paths=paths)
    if problem:
        return problem
    directory = tempfile.mkdtemp(prefix=prefix)
    if readable:
        os.chmod(directory, 0o755)
    print(f"== {name} (logs in {directory})")
    with topology():
        charon = Charon(directory, peer_namespace, settings)
        try:
            run(charon, directory)
        finally:
            charon.stop()
    return summary(name)


def decode(value):
    return value.decode() if isinstance(value, bytes) else value


def normalized_ts(text):
    """strongSwan's selector text with service names made numbers (192.0.2.1/32[udp/domain] -> [udp/53])."""
    text = decode(text)
    match = re.fullmatch(r"(.*)\[(\w+)/([\w-]+)\]", text)
    if match and not match.group(3)[0].isdigit():
        port = socket.getservbyname(match.group(3), match.group(2))
        return f"{match.group(1)}[{match.group(2)}/{port}]"
    return text


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


def initiate(charon, name, timeout_ms=10000, ike=None):
    """Initiates CHILD SA `name` (of IKE connection `ike`, by default of the same name): True, or why it failed."""
    try:
        for _ in charon.session.initiate({"child": name, "ike": ike or name, "timeout": timeout_ms}):
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
