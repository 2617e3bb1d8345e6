"""Running commands on this machine and in network namespaces; waiting on conditions."""
import os, shutil, signal, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


BINARY = os.environ.get("IKEPROXY_BIN", os.path.join(ROOT, ".build", "debug", "ikeproxy"))


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def ns(name, *args, check=True):
    return sh("ip", "netns", "exec", name, *args, check=check)


def remove_namespaces(*names):
    """Kills whatever runs in the namespaces (nothing started there may outlive a test), then deletes them."""
    for name in names:
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        sh("ip", "netns", "del", name, check=False)


def add_namespaces(*names):
    """Creates each network namespace with its loopback up."""
    for name in names:
        sh("ip", "netns", "add", name)
        ns(name, "ip", "link", "set", "lo", "up")


def missing_prerequisites(name, tools=(), paths=()):
    """Why a namespace test cannot run (not root, a tool or file missing), as its exit status after saying so
    loudly; None when it can. Such a test fails: nothing is skipped."""
    if os.geteuid() != 0:
        print(f"{name} needs root (network namespaces, AF_PACKET, TUN)", file=sys.stderr)
        return 1
    for tool in tools:
        if not shutil.which(tool):
            print(f"{name} needs {tool}; install it (scripts/test.sh does)", file=sys.stderr)
            return 1
    for path in paths:
        if not os.path.exists(path):
            print(f"{name} needs {path}; install its package (scripts/test.sh does)", file=sys.stderr)
            return 1
    return None


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def wait_for(predicate, timeout, interval=0.2):
    """Waits until `predicate()` holds, at most `timeout` seconds; whether it held (asked once more at the end)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_for_text(path, text, timeout):
    """Waits until the file at `path` holds `text`."""
    return wait_for(lambda: os.path.exists(path) and text in read(path), timeout)



def veth(a_namespace, a_device, b_namespace, b_device):
    """A veth pair with one end in each namespace."""
    sh("ip", "link", "add", a_device, "netns", a_namespace, "type", "veth", "peer", "name", b_device, "netns", b_namespace)


def addresses_up(namespace, device, *addresses):
    """Gives the device these addresses (IPv6 ones without duplicate detection) and brings it up."""
    for address in addresses:
        ns(namespace, "ip", "addr", "add", address, "dev", device, *(["nodad"] if ":" in address else []))
    ns(namespace, "ip", "link", "set", device, "up")


def switch(namespace, ports, name="br0"):
    """A learning bridge with no address of its own (not even an IPv6 link-local one, whose ND would only be
    noise) joining `ports`, all up."""
    ns(namespace, "ip", "link", "add", name, "type", "bridge")
    ns(namespace, "ip", "link", "set", name, "addrgenmode", "none")
    for port in ports:
        ns(namespace, "ip", "link", "set", port, "addrgenmode", "none")
        ns(namespace, "ip", "link", "set", port, "master", name, "up")
    ns(namespace, "ip", "link", "set", name, "up")


class Lab:
    """Network namespaces wired by `build`, for the length of a `with` block: any left by an earlier run that
    died are removed first, and they go again on the way out, whatever happened."""

    namespaces = ()

    def build(self):
        raise NotImplementedError

    def __enter__(self):
        remove_namespaces(*self.namespaces)
        add_namespaces(*self.namespaces)
        self.build()
        return self

    def __exit__(self, *exc):
        remove_namespaces(*self.namespaces)
