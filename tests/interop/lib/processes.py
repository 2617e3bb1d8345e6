"""The project's processes (`ikeproxy daemon`, `terminal`, `endpoint`) started in namespaces, stopped, queried."""
import json, os, signal, socket, subprocess

from lib.host import BINARY, read
from lib.report import check

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
    return config_path, log, daemon, [start_agent(directory, t, terminal_config) for t, terminal_config in agents]


def start_agent(directory, terminal, configuration):
    """Writes a terminal agent's configuration to NAME.json and starts `ikeproxy terminal` in the terminal's
    namespace, logging to NAME.log."""
    path = os.path.join(directory, f"{terminal['name']}.json")
    with open(path, "w") as f:
        json.dump(configuration, f)
    return start(terminal["ns"], ["terminal", "--config", path], os.path.join(directory, f"{terminal['name']}.log"))


def start_agent_in_guest(guest, name, configuration):
    """Writes a terminal agent's configuration into the guest's shared directory as NAME.json and starts
    `ikeproxy terminal` in the guest, logging to NAME.log there; returns the log's path."""
    path = os.path.join(guest.directory, f"{name}.json")
    with open(path, "w") as f:
        json.dump(configuration, f)
    log = os.path.join(guest.directory, f"{name}.log")
    guest.start_background(f"exec {BINARY} terminal --config {path}", log)
    return log


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


def launch_in_lab(directory, namespace, daemon_configuration, terminals, terminal_configuration):
    """`launch` with the configurations the scenario makes: the daemon's from its control socket's path, each
    terminal's from the terminal. Returns (control socket, configuration path, daemon log, daemon, agents)."""
    control = os.path.join(directory, "ikeproxy.sock")
    return (control,) + launch(directory, namespace, daemon_configuration(control), [(t, terminal_configuration(t)) for t in terminals])


def stop_all(daemon, agents, log, tail=3):
    """Stops the agents, then the daemon, checking that it exits cleanly; prints the last lines of its log."""
    for agent in agents:
        stop(agent)
    code = stop(daemon)
    check(code == 0, f"the daemon stops cleanly (exit status {code})")
    for line in read(log).splitlines()[-tail:]:
        print("      " + line[:300])
