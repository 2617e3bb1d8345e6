"""`ikeproxy endpoint` in a namespace, driven through its control pipe, its SA events read from its stdout."""
import errno, json, os, select, signal, subprocess, time

from lib.host import BINARY
from lib.peer import PSK


class Endpoint:
    """`ikeproxy endpoint` in `namespace` (a subclass names it) with one connection "c" and its CHILD SA "ch" between
    `addresses` (peer, local), pre-shared key unless `authentication` says otherwise, encapsulation forced unless
    `options` say otherwise."""

    namespace = None

    def __init__(self, directory, ike, esp, addresses, authentication=None, options=None, settings=None):
        peer, local = addresses
        self.fifo = os.path.join(directory, "control")
        config = {"connections": [{
            "name": "c", "local_address": local, "remote_address": peer, "psk": PSK, "proposals": [ike],
            "force_encapsulation": True,
            "children": [{"name": "ch", "local_ts": [local], "remote_ts": [peer], "esp_proposals": [esp]}]}],
            "settings": {"retransmit_timeout": 1.0, "retransmit_limit": 4}}
        if authentication:
            config["connections"][0].update(authentication)
            del config["connections"][0]["psk"]
        config["connections"][0].update(options or {})
        config["settings"].update(settings or {})
        path = os.path.join(directory, "endpoint.json")
        with open(path, "w") as f:
            json.dump(config, f)
        if os.path.exists(self.fifo):
            os.unlink(self.fifo)
        self.stderr = open(os.path.join(directory, "endpoint.log"), "a")
        self.process = subprocess.Popen(["ip", "netns", "exec", self.namespace, BINARY, "endpoint", "--config", path,
                                         "--show-keys", "--control", self.fifo],
                                        stdout=subprocess.PIPE, stderr=self.stderr)
        self.events = []
        self.buffer = b""
        deadline = time.time() + 10
        while not os.path.exists(self.fifo) and time.time() < deadline:
            time.sleep(0.05)

    def command(self, line):
        # Non-blocking: fails at once (ENXIO) while nobody reads the pipe. The endpoint makes the pipe before it
        # opens it to read, so right after a start (on a loaded machine) that is waited for, up to 5 s.
        deadline = time.time() + 5
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as error:
                if error.errno != errno.ENXIO or time.time() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def wait_event(self, kind, count=1, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            matching = [e for e in self.events if e["event"] == kind]
            if len(matching) >= count:
                return matching[count - 1]
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    time.sleep(0.2)
                self.buffer += chunk
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    self.events.append(json.loads(line))
        return None

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return self.process.returncode
