"""libreswan (pluto with its kernel XFRM backend) as the peer in a UML guest. Debian's libreswan package conflicts
with strongSwan's, so scripts/test.sh does not install it: it downloads it and unpacks it into TREE, and each guest
copies that tree into its own writable overlay at start; the host holds only the libraries pluto links against."""
import os, re

from lib.guests import quote
from lib.host import read
from lib.peer import PSK

TREE = "/var/cache/ikeproxy-libreswan/tree"
CONTROL = "/run/pluto/pluto.ctl"


class GuestPluto:
    """pluto in `guest`, configured by CONFIG in the guest's shared directory; connections added and changed there."""

    def __init__(self, guest):
        self.guest = guest
        self.log = os.path.join(guest.directory, "pluto.log")
        self.config = os.path.join(guest.directory, "ipsec.conf")
        self._write_config([])
        status, output = guest.run(f"""(cd {TREE} && tar cf - .) | (cd / && tar xf - --keep-directory-symlink) && mkdir -p /run/pluto /var/lib/ipsec/nss /etc/ipsec.d
ipsec initnss > /dev/null 2>&1; ipsec checknss > /dev/null 2>&1
ipsec pluto --config {self.config} || exit 1
for i in $(seq 100); do [ -S {CONTROL} ] && break; sleep 0.1; done
[ -S {CONTROL} ] && ipsec --version""", timeout=90)
        self.started, self.output = status == 0, output

    def _write_config(self, connections):
        with open(self.config, "w") as f:
            f.write(f"config setup\n    logfile={self.log}\n    dumpdir=/run/pluto\n    plutodebug=none\n\n" + "\n".join(connections))

    def load(self, connections, identities):
        """Replaces the connections (swanctl-like: each a `conn` section) and the pre-shared key, and adds them."""
        names = re.findall(r"^conn (\S+)", "\n".join(connections), re.M)
        self._write_config(connections)
        secrets = " ".join(identities) + f' : PSK "{PSK}"\n'
        script = f"printf %s {quote(secrets)} > /etc/ipsec.secrets && ipsec auto --rereadsecrets\n"
        for name in names:
            script += f"ipsec auto --delete {name} > /dev/null 2>&1; ipsec auto --config {self.config} --add {name} || exit 1\n"
        return self.guest.run(script, timeout=30)

    def whack(self, *args, timeout=40):
        """(exit status, output) of `ipsec whack`."""
        return self.guest.run("ipsec whack " + " ".join(quote(a) for a in args), timeout=timeout)

    def auto(self, *args, timeout=40):
        return self.guest.run("ipsec auto " + " ".join(quote(a) for a in args), timeout=timeout)

    def status(self):
        return self.whack("--status")[1]

    def states(self):
        """{state number: (connection, state name)} from `ipsec whack --showstates`."""
        _, output = self.whack("--showstates")
        return {int(m.group(1)): (m.group(2), m.group(3)) for m in re.finditer(r'#(\d+): "([^"]+)"[^ ]* (STATE_\w+)', output)}

    def algorithms(self, name):
        """The IKE and ESP algorithms pluto says the connection's newest SAs use."""
        text = self.status()
        ike = re.search(rf'"{name}":\s+IKEv2 algorithm newest: (\S+)', text)
        esp = re.search(rf'"{name}":\s+ESP algorithm newest: ([^;\s]+)', text)
        return (ike.group(1) if ike else None), (esp.group(1) if esp else None)


    name = "libreswan with kernel ESP (pluto, XFRM)"

    def initiate(self, connection):
        """(whether the CHILD SA came up, pluto's last line)."""
        status, output = self.auto("--up", connection, timeout=40)
        return status == 0, (output.strip().splitlines() or [""])[-1]

    def terminate(self, connection):
        self.auto("--down", connection, timeout=20)

    def rekey_child(self, connection):
        self.whack("--rekey-ipsec", "--name", connection, timeout=20)

    def child(self, connection):
        """The connection's newest CHILD SA: {"spi_in", "spi_out" (as pluto names them), "peer_initiated"} (who
        established it, from pluto's log)."""
        spis = self.child_spis(connection)
        if not spis:
            return None
        roles = re.findall(rf'"{connection}"(?:\[\d+\])? #\d+: (initiator|responder) established Child SA', read(self.log))
        return {"spi_in": spis[-1][1], "spi_out": spis[-1][0], "peer_initiated": bool(roles) and roles[-1] == "initiator"}

    def child_spis(self, name):
        """[(SPI pluto sends with, SPI it receives with)] of the connection's CHILD SAs as `ipsec whack --status`
        lists them (esp.SPI@destination)."""
        text = self.status()
        # libreswan writes esp.SPI@ADDRESS for IPv4, esp:SPI@ADDRESS for IPv6, and SPIs without leading zeros.
        return [(f"{int(m.group(1), 16):08x}", f"{int(m.group(3), 16):08x}")
                for m in re.finditer(rf'#\d+: "{name}" esp[.:]([0-9a-f]+)@(\S+) esp[.:]([0-9a-f]+)@(\S+)', text)]


def connection(name, local, remote, ike, esp, encapsulation=True, mode="tunnel", esn=False):
    """An ipsec.conf `conn` section, host to host, IKEv2 with a pre-shared key, no PFS (as strongSwan's matrix
    configures ESP without a group), no rekeying of its own."""
    return f"""conn {name}
    left={local}
    leftid={local}
    right={remote}
    rightid={remote}
    authby=secret
    ikev2=insist
    ike={ike}
    esp={esp}
    pfs=no
    type={mode}
    encapsulation={'yes' if encapsulation else 'no'}
    rekey=no
    esn={'yes' if esn else 'no'}
    auto=add
"""
