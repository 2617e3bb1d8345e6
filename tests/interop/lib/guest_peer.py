"""strongSwan with the kernel's ESP (kernel-netlink), as the peer in a UML guest: charon started in the guest,
configured with swanctl, queried over VICI by the host's Python run in the guest (the VICI socket lives in the
guest's kernel, out of the host's reach)."""
import json, os, sys

from lib.guests import quote
from lib.peer import PSK

VICI = "/run/charon.vici"
LIST_SAS = f"""
import json, socket, vici
s = socket.socket(socket.AF_UNIX); s.connect({VICI!r})
text = lambda v: v.decode() if isinstance(v, bytes) else v
out = []
for entry in vici.Session(s).list_sas():
    for name, sa in entry.items():
        out.append({{"name": name, "state": text(sa["state"]), "initiator": text(sa.get("initiator", b"no")),
                     "children": [{{k: text(v) for k, v in c.items() if isinstance(v, bytes)}} for c in sa.get("child-sas", {{}}).values()]}})
print(json.dumps(out))
"""


class GuestCharon:
    """charon in `guest` with kernel ESP, its configuration and log in the guest's shared directory."""

    def __init__(self, guest, connections):
        self.guest = guest
        self.log = os.path.join(guest.directory, "charon.log")
        conf = os.path.join(guest.directory, "strongswan.conf")
        with open(conf, "w") as f:
            f.write(f"""charon {{
  load = random nonce aes sha1 sha2 hmac gcm chapoly curve25519 gmp openssl kdf pem pkcs1 x509 pubkey kernel-netlink socket-default vici
  retransmit_timeout = 2
  retransmit_tries = 3
  plugins {{ vici {{ socket = unix://{VICI} }} }}
  filelog {{ log {{ path = {self.log}
                   flush_line = yes
                   default = 1
                   ike = 2 }} }}
}}
""")
        self.swanctl = os.path.join(guest.directory, "swanctl.conf")
        with open(self.swanctl, "w") as f:
            f.write(connections)
        status, output = guest.run(f"""mkdir -p /run/strongswan
STRONGSWAN_CONF={conf} setsid /usr/lib/ipsec/charon > {guest.directory}/charon.out 2>&1 < /dev/null &
for i in $(seq 100); do [ -S {VICI} ] && break; sleep 0.1; done
swanctl --load-all -u unix://{VICI} -f {self.swanctl} 2>&1 | grep -v 'opening directory'
exit ${{PIPESTATUS[0]}}""", timeout=60)
        self.started, self.output = status == 0, output

    name = "strongSwan with kernel ESP (kernel-netlink)"

    def initiate(self, connection):
        """(whether the CHILD SA came up, swanctl's last line)."""
        status, output = self.swanctl_command("--initiate", "--child", connection, "--ike", connection, timeout=40)
        return status == 0, (output.strip().splitlines() or [""])[-1]

    def terminate(self, connection):
        self.swanctl_command("--terminate", "--ike", connection, timeout=20)

    def rekey_child(self, connection):
        self.swanctl_command("--rekey", "--child", connection, timeout=20)

    def child(self, connection):
        """The connection's installed CHILD SA: {"spi_in", "spi_out" (as this peer names them), "peer_initiated"}."""
        sa, child = self.installed_child(connection)
        if child is None:
            return None
        return {"spi_in": child["spi-in"], "spi_out": child["spi-out"], "peer_initiated": sa["initiator"] == "yes"}

    def swanctl_command(self, *args, timeout=30):
        """(exit status, output) of swanctl in the guest."""
        return self.guest.run("swanctl " + " ".join(quote(a) for a in args) + f" -u unix://{VICI}", timeout=timeout)

    def sas(self):
        """The IKE SAs charon holds, each {"name", "state", "initiator", "children": [{"name", "spi-in", ...}]}."""
        status, output = self.guest.run(f"{sys.executable} -c {quote(LIST_SAS)}")
        try:
            return json.loads(output) if status == 0 else []
        except ValueError:
            return []

    def installed_child(self, name):
        for sa in self.sas():
            if sa["name"] == name and sa["state"] == "ESTABLISHED":
                for child in sa["children"]:
                    if child.get("state") == "INSTALLED":
                        return sa, child
        return None, None


def connection(name, local, remote, mode, encapsulation=False, esp="aes256gcm16"):
    """A swanctl connection section, host to host, pre-shared key, no MOBIKE (IKE stays on port 500 without NAT)."""
    return f"""  {name} {{
    version = 2
    local_addrs = {local}
    remote_addrs = {remote}
    proposals = aes256gcm16-prfsha256-x25519
    encap = {'yes' if encapsulation else 'no'}
    mobike = no
    rekey_time = 0
    dpd_delay = 0
    local {{ auth = psk
            id = {local} }}
    remote {{ auth = psk
             id = {remote} }}
    children {{ {name} {{ mode = {mode}
                  esp_proposals = {esp}
                  start_action = none
                  rekey_time = 0 }} }}
  }}
"""


def configuration(connections, identities):
    return ("connections {\n" + "".join(connections) + "}\nsecrets {\n  ike-1 {\n"
            + "".join(f"    id-{i} = {identity}\n" for i, identity in enumerate(identities, start=1))
            + f'    secret = "{PSK}"\n  }}\n}}\n')
