"""Traffic across the lab: ping, a TCP transfer checked end to end, a connection that must fail."""
import subprocess, sys, time

from lib.host import ns, read, wait_for


def transfer(server_ns, server_addr, client_ns, client_addr, port, size, timeout=120, run_client=None):
    """Sends `size` random octets over TCP from client to server (from `client_addr`, or the route's source when
    None); returns (ok: every octet arrived intact, octets received, seconds). The client's Python runs in
    `client_ns`, or through `run_client(code) -> (exit status, output)` (in a guest, say)."""
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
    bind = f's.bind(("{client_addr}", 0))' if client_addr else ""
    code = f"""
import hashlib, os, socket
data = os.urandom({size}); s = socket.socket({family}); s.settimeout({timeout}); {bind}
s.connect(("{server_addr}", {port})); s.sendall(data); s.close(); print(hashlib.sha256(data).hexdigest())
"""
    if run_client is None:
        result = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout + 10)
        status, sent = result.returncode, result.stdout
    else:
        status, sent = run_client(code)
    try:
        out, _ = server.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        out = ""
    seconds = time.time() - started
    received = out.split()
    ok = status == 0 and len(received) == 2 and received[0] == (sent or "").strip() and int(received[1]) == size
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


def start_capture(namespace, device, path, *expression):
    """tcpdump on `device` in `namespace` writing to `path` (packets written as they come), returned once it says
    it is listening, so that nothing sent afterwards is missed."""
    log = path + ".tcpdump.log"
    capture = subprocess.Popen(["ip", "netns", "exec", namespace, "tcpdump", "--immediate-mode", "-i", device, "-U", "-n", "-s", "0",
                                "-w", path, *expression], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    wait_for(lambda: capture.poll() is not None or "listening on" in read(log), 10, interval=0.05)
    return capture
