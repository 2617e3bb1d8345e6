"""Guests with a kernel of their own: User-Mode Linux (Debian's user-mode-linux), for terminals and peers whose
kernel does ESP (XFRM) where this machine's kernel has none. A guest is an ordinary process started in a host
network namespace; its one interface, vec0, is a TAP device in that namespace, which the test plugs into its
topology like a veth end (or hands to the daemon as a port). It sees the host's files read-only with a writable
overlay, so host binaries (ikeproxy, charon, ip) run in it unchanged; its state directory is shared read-write.
Commands run in it through files (lib/guest_init.sh). A guest is stopped by the test, and in any case killed with
its namespace (remove_namespaces kills every process in it), so a failed test leaves none behind."""
import os, re, shutil, signal, subprocess, time

from lib.host import ns, read, sh, wait_for

UML = "/usr/bin/linux.uml"
INIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest_init.sh")


class Guest:
    """One UML guest: `name`, started in `namespace` with its interface on TAP device `tap` there, with MAC `mac`,
    `addresses` (prefixes) and `routes` ("prefix@device") set at boot."""

    def __init__(self, name, namespace, tap, directory, mac, addresses, routes=(), memory="128M"):
        self.name, self.namespace, self.tap, self.mac = name, namespace, tap, mac
        self.addresses, self.routes, self.memory = list(addresses), list(routes), memory
        self.directory = os.path.join(directory, f"guest-{name}")
        self.process = None
        self.console = os.path.join(self.directory, "console.log")
        for bad in (" ", ","):
            if bad in self.directory or bad in INIT:
                raise ValueError(f"a guest's paths end up in kernel parameters and may hold no {bad!r}: {self.directory}")

    def start(self):
        """Creates the TAP device and boots the guest; its readiness is `wait_ready`."""
        # Nothing of an earlier guest of the same directory may run in this one (a left poweroff.sh would).
        shutil.rmtree(os.path.join(self.directory, "cmd"), ignore_errors=True)
        for stale in ("ready",):
            if os.path.exists(os.path.join(self.directory, stale)):
                os.unlink(os.path.join(self.directory, stale))
        os.makedirs(os.path.join(self.directory, "cmd"), exist_ok=True)
        os.makedirs(os.path.join(self.directory, "uml"), exist_ok=True)
        ns(self.namespace, "ip", "tuntap", "add", "dev", self.tap, "mode", "tap")
        ns(self.namespace, "ip", "link", "set", self.tap, "up")
        parameters = [
            f"mem={self.memory}", f"umid=ikp-{self.name}", f"uml_dir={self.directory}/uml", "root=/dev/root", "rootfstype=hostfs",
            "rootflags=/", "ro", f"init={INIT}", f"vec0:transport=tap,ifname={self.tap}", "con0=fd:0,fd:1", "con=null", "ssl=null",
            "quiet", "guest_stage=boot", f"guest_name={self.name}", f"guest_dir={self.directory}", f"guest_mac={self.mac}",
            "guest_addresses=" + ",".join(self.addresses), "guest_routes=" + ",".join(self.routes)]
        # setsid: the UML process leads a process group that holds its helper processes, so one kill takes all.
        self.process = subprocess.Popen(["ip", "netns", "exec", self.namespace, "setsid", UML, *parameters], stdin=subprocess.DEVNULL,
                                        stdout=open(self.console, "w"), stderr=subprocess.STDOUT)
        self.started_at = time.time()

    def wait_ready(self, timeout=90):
        """Whether the guest booted and its command runner answers; the boot time is `boot_seconds`."""
        ready = wait_for(lambda: os.path.exists(os.path.join(self.directory, "ready")) or self.process.poll() is not None, timeout)
        self.boot_seconds = time.time() - self.started_at
        if not ready or self.process.poll() is not None:
            print(f"      guest {self.name} did not come up; last console lines:")
            for line in read(self.console).splitlines()[-15:]:
                print("        " + line)
            return False
        return True

    def run(self, script, timeout=60):
        """Runs shell text in the guest: (exit status, output); status None if it did not finish in time."""
        commands = os.path.join(self.directory, "cmd")
        identifier = f"{time.time_ns()}-{os.getpid()}"
        path = os.path.join(commands, identifier)
        with open(path + ".tmp", "w") as f:
            f.write(script + "\n")
        os.rename(path + ".tmp", path + ".sh")
        finished = wait_for(lambda: (os.path.exists(path + ".rc") and read(path + ".rc").strip() != "") or self.process.poll() is not None,
                            timeout, interval=0.05) and os.path.exists(path + ".rc") and read(path + ".rc").strip() != ""
        output = read(path + ".out") if os.path.exists(path + ".out") else ""
        status = int(read(path + ".rc").strip()) if finished else None
        for suffix in (".sh", ".out", ".rc"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
        return status, output

    def start_background(self, script, log):
        """Starts a long-running command in the guest (a daemon), its output appended to `log` (a path in the
        shared directory or not: the guest sees the host's files)."""
        return self.run(f"setsid bash -c {quote(script)} >> {log} 2>&1 < /dev/null & echo $!")

    def stop(self):
        """Powers the guest off (the kernel's sysrq o), then kills what is left of its process group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with open(os.path.join(self.directory, "cmd", "poweroff.sh"), "w") as f:
                f.write("echo o > /proc/sysrq-trigger\n")
            wait_for(lambda: self.process.poll() is not None, 5, interval=0.1)
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.wait(timeout=10)
        sh("ip", "-n", self.namespace, "link", "del", self.tap, check=False)

    def xfrm_states(self):
        """The ESP SAs in the guest's kernel (`ip -s xfrm state`): {SPI in hex: XFRMState}."""
        _, output = self.run("ip -s xfrm state")
        states = {}
        for block in re.split(r"\n(?=src )", output):
            head = re.match(r"src (\S+) dst (\S+)\s+proto esp spi 0x([0-9a-f]+)(?:\(\d+\))? reqid \d+(?:\(\S+\))? mode (\w+)", block)
            if not head:
                continue
            key = re.search(r"(?:aead|enc) (\S+) 0x([0-9a-f]+)", block)
            integrity = re.search(r"auth-trunc (\S+) 0x([0-9a-f]+)(?: \(\d+ bits\))? (\d+)", block)
            packets = re.search(r"lifetime current:\s+\d+\(bytes\), (\d+)\(packets\)", block)
            state = XFRMState(head.group(1), head.group(2), head.group(4), key.group(2) if key else None,
                              int(packets.group(1)) if packets else None, "encap type espinudp" in block)
            state.cipher = key.group(1) if key else None
            flags = re.search(r"\bflag ([^\n(]*)", block)
            state.extended_sequence_numbers = bool(flags and "esn" in flags.group(1).split())
            state.integrity, state.integrity_key, state.truncation = integrity.groups() if integrity else (None, None, None)
            states[head.group(3)] = state
        if not states and "proto esp" in output:
            print("      (unparsed `ip -s xfrm state`: " + output[:400].replace("\n", " | ") + ")")
        return states

    def xfrm_policies(self):
        """(source, destination, direction) of the guest kernel's policies with plain prefixes (not the ND bypass)."""
        _, output = self.run("ip xfrm policy")
        return re.findall(r"src (\S+) dst (\S+)\s*\n\s*dir (\w+)", output)

    def resident_kilobytes(self, pattern):
        """The resident memory of the guest's process whose command line matches `pattern`, in kB (VmRSS)."""
        status, output = self.run(f"pid=$(pgrep -f {quote(pattern)} | head -1); grep VmRSS /proc/$pid/status")
        fields = output.split()
        return int(fields[1]) if status == 0 and len(fields) >= 2 else None


class XFRMState:
    """One SA as `ip xfrm state` shows it; indexable as (source, destination, key, packets) for brevity."""

    def __init__(self, source, destination, mode, key, packets, encapsulated):
        self.source, self.destination, self.mode, self.key = source, destination, mode, key
        self.packets, self.encapsulated = packets, encapsulated

    @property
    def transforms(self):
        """The ESP transforms in IKEv2's names (AES_GCM_16_256, AUTH_HMAC_SHA2_256_128 ...), from the kernel's."""
        bits = len(self.key or "") * 4
        if self.cipher == "rfc4106(gcm(aes))":
            encryption = f"AES_GCM_16_{bits - 32}"
        elif self.cipher == "rfc7539esp(chacha20,poly1305)":
            encryption = "CHACHA20_POLY1305"
        elif self.cipher == "cbc(aes)":
            encryption = f"AES_CBC_{bits}"
        else:
            encryption = self.cipher
        integrity = None
        if self.integrity:
            integrity = "AUTH_HMAC_" + self.integrity[len("hmac("):-1].upper().replace("SHA", "SHA2_") + f"_{self.truncation}"
        return encryption, integrity

    def __getitem__(self, index):
        return (self.source, self.destination, self.key, self.packets)[index]


def quote(text):
    return "'" + text.replace("'", "'\\''") + "'"
