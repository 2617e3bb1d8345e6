#!/usr/bin/env python3
"""The management API of `ikeproxy daemon`, over HTTPS from an administrator's namespace, and the CLI.

The topology of daemon_e2e.py plus a management link: the proxy namespace gets a third interface,
ikp-dm0 (10.99.0.1), joined to ikp-d-admin (10.99.0.2). The API listens there only; the bridged ports
hold no address. The daemon keeps its state in SQLite, sealed with a key file (the lesser option).

Checks: every route refuses a missing, malformed or unknown token (401) and a read-only administrator
on changes (403); an administrator with a client certificate from the configured CA whose fingerprint
is pinned gets in without a token, and changes are audited under that name; a certificate from the same
CA that is not pinned gets 401, one from another CA fails the TLS handshake; malformed bodies get 400 with a message and change nothing; the OpenAPI document
validates and names exactly the routes the server has; a policy added over the API takes effect, is
audited with the administrator's name and outlives a restart; the CLI shows SAs (with their traffic as
the terminal reports it, equal to strongSwan's counters), policies, terminals and status as tables and JSON; an SA deleted over the API is gone at strongSwan; a pending host is
approved; a terminal removed over the API loses its SAs at strongSwan and in its agent, gets no new
one (also after a restart), and added back by its addresses gets one again; a reload takes the file's
terminal list (a terminal taken out is removed, put back is enrolled), its terminal prefixes (a terminal left
outside loses its SAs, inside again gets new ones) and its profiles (a new one the policy
may name at once, a changed pre-shared key used from the next negotiation); the policy is replaced whole
(one bad rule refused, nothing changed) and handed back to the file, which a restart keeps; Prometheus metrics are
served; nothing answers on the bridged side; the web console works in headless chromium (`web_console`).
"""
import hashlib, json, os, re, secrets, sqlite3, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import BINARY, ROOT, missing_prerequisites, ns, read, remove_namespaces, sh, wait_for  # noqa: E402
from lib.lab import BYPASS4, PEER, PEER4, PROXY, STRANGER, TERMINALS, Topology, daemon_configuration, load_peer_connections, terminal_configuration  # noqa: E402
from lib.peer import Charon, initiate, installed_child, peer_sas, wait_child  # noqa: E402
from lib.processes import daemon_status, start, stop  # noqa: E402
from lib.console_browser import ConsoleBrowser, missing as browser_missing  # noqa: E402
from lib.report import check, summary  # noqa: E402
from lib.traffic import ping, tcp_connect_fails, transfer  # noqa: E402

ADMIN = "ikp-d-admin"
API_HOST, API = "10.99.0.1", "https://10.99.0.1:8443"
T1, T2 = TERMINALS

ROUTES = [("GET", "/v1/status"), ("GET", "/metrics"), ("GET", "/v1/policies"), ("POST", "/v1/policies"),
          ("DELETE", "/v1/policies/0"), ("GET", "/v1/terminals"), ("POST", f"/v1/terminals/{STRANGER['mac']}/approve"),
          ("GET", "/v1/sas"), ("POST", "/v1/sas/flush"), ("GET", "/v1/sas/00000000"), ("DELETE", "/v1/sas/00000000"),
          ("POST", "/v1/credentials/reload"), ("POST", "/v1/terminals"), ("DELETE", "/v1/terminals/999"), ("PUT", "/v1/policies"),
          ("DELETE", "/v1/policies"), ("GET", "/v1/profiles"), ("GET", "/v1/audit"), ("GET", "/v1/traffic")]
CHANGES = {"POST", "DELETE", "PUT"}


def curl(method, path, token=None, body=None, header=None, client=None):
    """(status, parsed body or text) of one API call made from the administrator's namespace; `client` is a
    (certificate, key) pair to present."""
    args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert", CERT, "-X", method, API + path]
    if client is not None:
        args += ["--cert", client[0], "--key", client[1]]
    if header is not None:
        args += ["-H", header]
    elif token is not None:
        args += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", body if isinstance(body, str) else json.dumps(body)]
    result = ns(ADMIN, *args, check=False)
    text, _, code = result.stdout.rpartition("\n")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return int(code) if code.isdigit() else 0, parsed


def cli(*args):
    return subprocess.run(["ip", "netns", "exec", ADMIN, BINARY, *args, "--api", API, "--token-file", TOKEN_FILE,
                           "--ca-file", CERT], capture_output=True, text=True)


def add_management_link():
    """The administrator's namespace and the proxy's third interface, the only one with an address."""
    remove_namespaces(ADMIN)
    sh("ip", "netns", "add", ADMIN)
    sh("ip", "link", "add", "ikp-dm0", "netns", PROXY, "type", "veth", "peer", "name", "ikp-dm1", "netns", ADMIN)
    ns(PROXY, "ip", "addr", "add", API_HOST + "/24", "dev", "ikp-dm0")
    ns(ADMIN, "ip", "addr", "add", "10.99.0.2/24", "dev", "ikp-dm1")
    for name, dev in ((PROXY, "ikp-dm0"), (ADMIN, "ikp-dm1"), (ADMIN, "lo"), (PROXY, "lo")):
        ns(name, "ip", "link", "set", dev, "up")


def make_certificate(cert, key, days):
    """A self-signed P-256 certificate for the API's address."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", cert, "-days", str(days), "-subj", f"/CN={API_HOST}", "-addext", f"subjectAltName=IP:{API_HOST}"],
                   check=True, capture_output=True)


def make_client_certificates(directory):
    """A CA for administrators' certificates, carol's and mallory's certificates from it, and eve's self-signed one."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca, ca_key = os.path.join(directory, "admin-ca.pem"), os.path.join(directory, "admin-ca.key")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=ikeproxy administrators CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    made = {}
    for name in ("carol", "mallory", "eve"):
        cert, key, csr = (os.path.join(directory, f"{name}.{ext}") for ext in ("pem", "key", "csr"))
        if name == "eve":
            run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                "-days", "2", "-subj", f"/CN={name}")
        else:
            run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/CN={name}")
            extensions = os.path.join(directory, "client.ext")
            with open(extensions, "w") as f:
                f.write("extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
            run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extensions)
        der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True, capture_output=True).stdout
        made[name] = (cert, key, hashlib.sha256(der).hexdigest())
    return ca, made


def main():
    problem = missing_prerequisites("management API test", tools=("openssl", "curl", "ss"))
    if problem:
        return problem
    global CERT
    directory = tempfile.mkdtemp(prefix="ikp-management-")
    os.chmod(directory, 0o755)
    print(f"== management API test (logs in {directory})")
    CERT, key = os.path.join(directory, "api.pem"), os.path.join(directory, "api.key")
    make_certificate(CERT, key, days=2)
    with Topology():
        add_management_link()
        charon = Charon(directory, PEER)
        try:
            run(charon, directory, key)
        finally:
            charon.stop()
            remove_namespaces(ADMIN)
    return summary("management API test")


def start_daemon(directory, config_path):
    log = os.path.join(directory, "daemon.log")
    seen = read(log).count("management API on") if os.path.exists(log) else 0
    process = subprocess.Popen(["ip", "netns", "exec", PROXY, BINARY, "daemon", "--config", config_path],
                               stdout=open(os.path.join(directory, "events.jsonl"), "a"), stderr=open(log, "a"), start_new_session=True)
    wait_for(lambda: read(log).count("management API on") > seen or process.poll() is not None, 15)
    return process, log


def write_configuration(directory, key):
    """The daemon's configuration with the API on the management address, its TLS key sealed; returns
    (configuration path, the administrator's token, the reader's token, the client certificates)."""
    global TOKEN_FILE
    admin_token, reader_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    TOKEN_FILE = os.path.join(directory, "admin.token")
    with open(TOKEN_FILE, "w") as f:
        f.write(admin_token + "\n")
    config = daemon_configuration(os.path.join(directory, "ikeproxy.sock"))
    config["store"] = {"path": os.path.join(directory, "state.db"), "key_file": os.path.join(directory, "usb", "ikeproxy.key"),
                       "create_key_file": True}
    os.makedirs(os.path.join(directory, "usb"))
    client_ca, clients = make_client_certificates(directory)
    carol_fingerprint = clients["carol"][2]
    config["management"] = {"listen": API_HOST, "port": 8443, "certificate": CERT, "private_key": key, "client_ca": client_ca,
                            "administrators": [
        {"name": "alice", "role": "admin", "token_sha256": hashlib.sha256(admin_token.encode()).hexdigest()},
        {"name": "rob", "role": "reader", "token_sha256": hashlib.sha256(reader_token.encode()).hexdigest()},
        # As `openssl x509 -fingerprint -sha256` prints it, colons and all.
        {"name": "carol", "role": "admin", "certificate_sha256": ":".join(carol_fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()}]}
    config_path = os.path.join(directory, "daemon.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)
    # The API's TLS private key is sealed too: the PEM file is removed once its box is in the configuration.
    with open(key) as f:
        sealed = subprocess.run([BINARY, "seal", "--config", config_path, "--context", "management:tls-key"], stdin=f,
                                capture_output=True, text=True)
    check(sealed.returncode == 0 and len(sealed.stdout.strip()) > 100, f"`ikeproxy seal` seals the API's TLS key {sealed.stderr.strip()[-200:]}")
    del config["management"]["private_key"]
    config["management"]["private_key_sealed"] = sealed.stdout.strip()
    os.unlink(key)
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)
    return config_path, admin_token, reader_token, clients


def start_terminal_agent(directory):
    terminal_config = os.path.join(directory, "t1.json")
    with open(terminal_config, "w") as f:
        # STATUS every 2 s: the proxy shows each SA's traffic as the terminal reports it.
        json.dump(dict(terminal_configuration(T1), status_interval=2), f)
    return start(T1["ns"], ["terminal", "--config", terminal_config], os.path.join(directory, "t1.log"))


def run(charon, directory, key):
    config_path, admin_token, reader_token, clients = write_configuration(directory, key)
    load_peer_connections(charon)
    daemon, log = start_daemon(directory, config_path)
    agent = start_terminal_agent(directory)
    try:
        api_on_management_address_only(daemon, log)
        authentication(admin_token, reader_token)
        client_certificates(clients, admin_token, directory, log)
        openapi_matches()
        spi = sa_listed_by_cli(charon)
        sa_traffic_shown_as_terminal_reports_it(charon, spi)
        sa_listing_narrowed(spi)
        web_console(charon, spi, admin_token, reader_token)
        malformed_bodies_refused(admin_token)
        policy_added_takes_effect_and_is_audited(directory, log)
        pending_host_approved(directory)
        credentials_reloaded_and_audited(directory, reader_token)
        metrics_served(admin_token)
        sa_deleted_over_api(charon, spi)
        policy_change_reaches_sas_at_once(charon, log)
        daemon, log = policy_change_outlives_restart(daemon, directory, config_path)
        daemon, log = terminal_removed_and_added(charon, daemon, log, admin_token, directory, config_path)
        daemon, log = policy_replaced_and_reverted(daemon, log, admin_token, directory, config_path)
        schemathesis_finds_no_error(daemon, admin_token)
        failed_authentications_limited_per_source(admin_token, directory, log)
    finally:
        stop(agent)
        stop(daemon)
        print("  --- last lines of daemon.log:")
        for line in read(os.path.join(directory, "daemon.log")).splitlines()[-6:]:
            print("      " + line[:300])


def api_on_management_address_only(daemon, log):
    check(daemon.poll() is None and "management API on https://10.99.0.1:8443" in read(log), "the daemon serves its API on the management address")
    listening = ns(PROXY, "ss", "-ltnH").stdout.split()
    check(f"{API_HOST}:8443" in listening and "0.0.0.0:8443" not in listening and "*:8443" not in listening,
          "it listens on the management address only")
    reach = ns(PEER, "curl", "-sk", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}", API + "/v1/status", check=False)
    check(reach.returncode != 0, f"from the Internet side of the bridge the API cannot be reached (curl exit {reach.returncode})")


def second_line(text):
    lines = text.strip().splitlines()
    return lines[1] if len(lines) > 1 else ""


def sa_listed_by_cli(charon):
    """A terminal gets an SA; the CLI shows it as a table and as JSON. Returns the SPI the peer sends with."""
    # The stranger speaks, so discovery lists it.
    ping(STRANGER["ns"], STRANGER["v4"], BYPASS4, count=1)
    initiate(charon, "t1v4")
    _, child = wait_child(charon, "t1v4")
    check(child is not None, "strongSwan established an SA with terminal 1 through the proxy")
    spi = child["spi-out"].decode() if child else ""
    table = cli("sas")
    check(table.returncode == 0 and spi in table.stdout and "TERMINAL" in table.stdout,
          "`ikeproxy sas` prints the SA as a table: " + (second_line(table.stdout) or table.stderr.strip()))
    as_json = cli("sas", "--json")
    rows = json.loads(as_json.stdout)["sas"] if as_json.returncode == 0 else []
    check(any(r["spi_in"] == spi for r in rows), "`ikeproxy sas --json` gives the same SA as JSON")
    return spi


def sa_traffic_shown_as_terminal_reports_it(charon, spi):
    """What strongSwan sent is what the terminal took in, and back."""
    ping(PEER, PEER4, T1["v4"], count=5)

    def counted():
        row = next((r for r in json.loads(cli("sas", "--json").stdout)["sas"] if r["spi_in"] == spi), {})
        return row, installed_child(charon, "t1v4")[1] or {}

    def equal(row, current):
        return (row.get("packets_in") is not None and row["packets_in"] == int(current.get("packets-out", b"-1"))
                and row["packets_out"] == int(current.get("packets-in", b"-1")))
    wait_for(lambda: equal(*counted()), 8)
    row, current = counted()
    check(equal(row, current) and row["packets_in"] >= 5 and row.get("cipher_suite") == "aes256gcm16",
          f"`ikeproxy sas --json` shows the SA's traffic as the terminal reports it, equal to strongSwan's counters "
          f"(in {row.get('packets_in')} packets / {row.get('octets_in')} octets, out {row.get('packets_out')}; strongSwan "
          f"out {current.get('packets-out')}, in {current.get('packets-in')}) and its cipher suite ({row.get('cipher_suite')})")
    check(row.get("ike_key_exchanges") == ["CURVE_25519"] and row.get("ppk_id") is None,
          f"and the key exchanges of its IKE SA, no post-quantum preshared key ({row.get('ike_key_exchanges')}, ppk_id {row.get('ppk_id')})")
    table = cli("sas")
    check("aes256gcm16" in table.stdout and "CIPHER" in table.stdout and "CURVE_25519" in table.stdout and "IKE KEY EXCHANGES" in table.stdout,
          "and the table has them: " + second_line(table.stdout))


def sa_listing_narrowed(spi):
    shown = cli("sas", "show", spi)
    check(shown.returncode == 0 and f"spi_in: {spi}" in shown.stdout, "`ikeproxy sas show SPI` shows one SA")
    mine = json.loads(cli("sas", "--terminal", T1["v4"], "--peer", PEER4, "--json").stdout or "{}").get("sas", [])
    others = json.loads(cli("sas", "--terminal", "192.0.2.9", "--json").stdout or "{}").get("sas", None)
    bad = cli("sas", "--peer", "not-an-address")
    check([r["spi_in"] for r in mine] == [spi] and others == [] and bad.returncode != 0
          and "peer 'not-an-address' is not an IP address" in bad.stderr,
          f"`ikeproxy sas --terminal --peer` narrows the list (GET /v1/sas?terminal=&peer=): {len(mine)} for terminal 1, "
          f"none for another address; a bad address gets 400 ({bad.stderr.strip()})")
    status = cli("status")
    check(status.returncode == 0 and "CHILD SA(s)" in status.stdout and "bypassed" in status.stdout, "`ikeproxy status` prints counters")


SCREENSHOTS = os.environ.get("IKEPROXY_ARTIFACTS", os.path.join(ROOT, "artifacts")) + "/console"


def web_console(charon, spi, admin_token, reader_token):
    """The console in a real browser (chromium, headless) from the administrator's namespace: log in with a token,
    see the SA strongSwan made, approve the pending stranger and see its SA appear, add a discard rule and see it
    take effect, move, edit and remove it, remove the stranger again; a reader sees but is refused a change;
    screenshots of every page (desktop and phone width); no console errors."""
    problem = browser_missing()
    check(problem is None, f"a browser for the console test is installed ({problem or 'chromium, chromedriver, selenium'})")
    if problem:
        return
    code, page = curl("GET", "/ui/")
    check(code == 200 and "console.js" in str(page), f"GET /ui/ serves the console's page without a token ({code})")
    print(f"      screenshots in {SCREENSHOTS}")
    before = curl("GET", "/v1/policies", admin_token)[1]
    # Traffic through terminal 1's SA all along, for its chart (its agent reports the SA's counters every 2 s).
    pinger = subprocess.Popen(["ip", "netns", "exec", PEER, "ping", "-q", "-c", "400", "-i", "0.2", "-s", "1000", "-I", PEER4, T1["v4"]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = ConsoleBrowser(ADMIN, CERT, SCREENSHOTS)
    try:
        console_steps(browser, charon, spi, admin_token, reader_token, before)
    finally:
        browser.close()
        pinger.terminate()
        pinger.wait()
    errors = browser.errors(allowed=("status of 403",))
    check(not errors, f"the browser's console shows no error ({len(browser.console)} entries; errors: {[e.get('message') for e in errors][:3]})")


def console_steps(b, charon, spi, admin_token, reader_token, before):
    b.open(API + "/ui/")
    check(b.wait_text("Log in", "#login"), "the console asks for a token")
    b.find("#token").send_keys(admin_token)
    b.find("#login-form button[type=submit]").click()
    check(b.wait_text("CHILD SAs", "#view"), "an administrator's token logs in: the overview")
    check(b.wait_text("single daemon", "#card-role") and b.text("#card-child-sas").split()[-1] not in ("", "0")
          and b.text("#card-token").endswith("present"),
          f"the overview shows role, CHILD SAs and the sealing key present ({b.text('#card-role')!r}, {b.text('#card-child-sas')!r}, "
          f"{b.text('#card-token')!r})")
    b.screenshot("1-overview")
    b.show("sas")
    check(b.wait_text(spi, "#view") and b.wait_text("aes256gcm16", "#view"), f"the SAs page lists the SA strongSwan made ({spi})")
    b.screenshot("2-sas")

    b.show("terminals")
    check(b.wait_text(STRANGER["mac"], "#view") and b.finds(f'form[data-mac="{STRANGER["mac"]}"]'),
          "the terminals page lists the stranger as a pending host, with an approval form")
    b.screenshot("3-terminals-pending")
    b.fill(f'form[data-mac="{STRANGER["mac"]}"]', {"terminal_id": 3, "enrollment_key_hex": "33" * 32}).submit()
    check(b.wait_text("Approved " + STRANGER["mac"], "#message"), f"approving it in the console: {b.text('#message')!r}")
    registered = [t for t in curl("GET", "/v1/terminals", admin_token)[1]["terminals"] if t.get("mac") == STRANGER["mac"]]
    check(registered and registered[0]["status"] == "registered" and registered[0]["terminal_id"] == 3,
          "the API lists it as terminal 3, registered")
    outcome = initiate(charon, "t3v4")
    b.show("sas")
    check(b.wait_text(STRANGER["v4"], "#view", timeout=20), f"strongSwan negotiates with the approved host and its SA appears ({outcome})")
    b.screenshot("4-sas-approved")

    check(ping(T1["ns"], T1["v4"], BYPASS4, count=2)[0], "before the change, terminal 1 pings the bypass host")
    b.show("policy")
    b.fill("#add-rule", {"source": T1["v4"] + "/32", "destination": BYPASS4 + "/32", "protocol": "icmp", "action": "discard",
                         "position": 0}).submit()
    check(b.wait_text("Added a rule", "#message"), f"a discard rule added in the console: {b.text('#message')!r}")
    check(not ping(T1["ns"], T1["v4"], BYPASS4, count=2)[0], "it takes effect: terminal 1's pings to the bypass host are dropped")
    rules = curl("GET", "/v1/policies", admin_token)[1]["rules"]
    check(rules[0].get("action") == "discard" and rules[0].get("protocol") == "icmp" and len(rules) == len(before["rules"]) + 1,
          "the API lists it first")
    ours = T1["v4"] + "/32"
    check(b.wait_text(ours, "#view tbody tr:nth-child(1)"), "the console shows it first")
    b.screenshot("5-policy")
    b.click('#view tbody tr:nth-child(1) button[title="down"]')
    check(b.wait_text("Moved rule 0", "#message"), "moved down a place")
    rules = curl("GET", "/v1/policies", admin_token)[1]["rules"]
    check(rules[1].get("protocol") == "icmp" and rules[0] == dict(before["rules"][0], position=0), "the API lists it second now")
    b.wait_text(ours, "#view tbody tr:nth-child(2)")
    b.click('button[data-edit="1"]')
    b.wait_text("Edit rule 1", "#view")
    b.fill("#edit-rule", {"action": "bypass"}).submit()
    check(b.wait_text("Changed rule 1", "#message"), "edited to bypass")
    check(ping(T1["ns"], T1["v4"], BYPASS4, count=2)[0], "terminal 1 pings the bypass host again")
    b.wait_text("bypass", "#view tbody tr:nth-child(2)")
    b.click('button[data-remove-rule="1"]')
    check(b.wait_text("Removed rule 1", "#message"), "and removed")
    after = curl("GET", "/v1/policies", admin_token)[1]
    check(after == before, "the policy is as before the console's changes")

    b.show("terminals")
    b.wait_text(STRANGER["mac"], "#view")
    b.click('button[data-remove="3"]')
    b.driver.switch_to.alert.accept()
    check(b.wait_text("Removed terminal 3", "#message"), "terminal 3 removed in the console")

    b.show("charts")
    line = f'[data-terminal="{T1["v4"]}"] polyline.in'

    def drawn():
        points = b.driver.execute_script(f"const l = document.querySelector('{line}'); return l ? l.getAttribute('points') : ''")
        return len((points or "").split())
    deadline = time.monotonic() + 30
    while drawn() < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    check(drawn() >= 2 and (b.finds("svg.chart rect.bar") or b.finds("#no-negotiations")),
          f"the charts page draws terminal 1's traffic from its agent's reports ({drawn()} points) and the negotiation times")
    b.screenshot("6-charts")
    b.show("audit")
    b.wait_text("policy.add", "#view")
    b.find("#audit-search").send_keys("terminal")
    check(b.wait_text("terminal.approve", "#view") and b.wait_gone("policy.add", "#view"),
          "the audit log lists the console's changes under alice, and the search narrows it")
    b.screenshot("7-audit")

    b.find("#logout").click()
    b.find("#token").send_keys(reader_token)
    b.find("#login-form button[type=submit]").click()
    b.wait_text("CHILD SAs", "#view")
    b.show("policy")
    b.fill("#add-rule", {"destination": BYPASS4 + "/32", "action": "discard"}).submit()
    check(b.wait_text("Refused (403)", "#message") and "may read but not change" in b.text("#message"),
          f"a reader's change is refused: {b.text('#message')!r}")
    check(curl("GET", "/v1/policies", admin_token)[1] == before, "and nothing changed")
    b.screenshot("8-reader-refused")
    b.show("overview")
    b.wait_text("CHILD SAs", "#view")
    b.driver.set_window_size(390, 844)
    time.sleep(0.5)
    wide = b.driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    check(wide <= 0, f"on a phone-sized screen (390 px) the overview needs no sideways scrolling ({wide} px too wide)")
    b.screenshot("9-overview-phone", width=390, height=844)


def malformed_bodies_refused(admin_token):
    """400 with a message, and nothing changes."""
    before = curl("GET", "/v1/policies", admin_token)[1]
    for body, why in (("{not json", "not JSON"), ({"rule": {"source": "192.0.2.0/33", "action": "discard"}}, "bad prefix"),
                      ({"rule": {"destination": "192.0.2.1/32"}}, "no action"),
                      ({"rule": {"action": "protect", "profile": "nosuch"}}, "unknown profile"),
                      ({"rule": {"action": "discard", "protocol": "tcpp"}}, "bad protocol"),
                      ({"rule": {"action": "discard"}, "position": 999}, "position out of range"),
                      ([1, 2, 3], "not an object")):
        code, answer = curl("POST", "/v1/policies", admin_token, body)
        check(code == 400 and isinstance(answer, dict) and answer.get("error"),
              f"a malformed rule ({why}) gets 400: {answer.get('error') if isinstance(answer, dict) else answer}")
    for body, why in (("nope", "not JSON"), ({"terminal_id": 9, "enrollment_key_hex": "zz"}, "bad key")):
        code, answer = curl("POST", f"/v1/terminals/{STRANGER['mac']}/approve", admin_token, body)
        check(code == 400 and isinstance(answer, dict) and answer.get("error"), f"a malformed approval ({why}) gets 400")
    code, _ = curl("POST", "/v1/terminals/02:00:00:00:ee:ee/approve", admin_token, {"terminal_id": 9, "enrollment_key_hex": "33" * 32})
    check(code == 404, "approving an unknown host gets 404")
    for path in ("/v1/policies/x", "/v1/policies/999"):
        code, _ = curl("DELETE", path, admin_token)
        check(code in (400, 404), f"DELETE {path} gets {code}")
    code, _ = curl("DELETE", "/v1/sas/zz", admin_token)
    check(code == 400, "deleting a malformed SPI gets 400")
    after = curl("GET", "/v1/policies", admin_token)[1]
    check(before == after, "after the refused requests the policy is unchanged")


def audit_rows(directory, columns="who, action"):
    return sqlite3.connect(os.path.join(directory, "state.db")).execute(f"SELECT {columns} FROM audit_log").fetchall()


def policy_added_takes_effect_and_is_audited(directory, log):
    ok, _, _ = transfer(PEER, BYPASS4, T1["ns"], T1["v4"], 7001, 4096, timeout=15)
    check(ok, "before the change, terminal 1 reaches the bypass host on TCP 7002")
    added = cli("policies", "add", "--position", "0", "--rule",
                json.dumps({"source": "192.0.2.0/24", "destination": BYPASS4 + "/32", "protocol": "tcp", "destination_ports": "7002",
                            "action": "discard"}))
    check(added.returncode == 0 and "added at position 0" in added.stdout,
          f"`ikeproxy policies add` adds a rule: {added.stdout.strip()}{added.stderr.strip()}")
    check(tcp_connect_fails(T1["ns"], T1["v4"], BYPASS4, 7002), "the new discard rule takes effect at once")
    listed = cli("policies")
    check(listed.returncode == 0 and "7002" in listed.stdout.splitlines()[1], "`ikeproxy policies` lists it first")
    audit = audit_rows(directory, "who, action, detail")
    check(any(who == "alice" and action == "policy.add" for who, action, _ in audit) and "audit: alice policy.add" in read(log),
          f"the change is in the audit log with who made it: {audit[-1] if audit else None}")


def pending_host_approved(directory):
    """A host approved over the API becomes a terminal (the stranger, which the console approved and removed)."""
    terminals = json.loads(cli("terminals", "--json").stdout)["terminals"]
    pending = [t for t in terminals if t.get("mac") == STRANGER["mac"]]
    check(pending and pending[0]["status"] == "unenrolled",
          f"the stranger, approved and removed in the console, is listed as unenrolled ({pending[0]['status'] if pending else None})")
    key_file = os.path.join(directory, "t3.key")
    with open(key_file, "w") as f:
        f.write("33" * 32)
    approved = cli("terminals", "approve", STRANGER["mac"], "--terminal-id", "3", "--enrollment-key-file", key_file)
    check(approved.returncode == 0 and "approved" in approved.stdout,
          f"`ikeproxy terminals approve` approves it: {approved.stdout.strip()}{approved.stderr.strip()}")
    table = cli("terminals")
    line = [l for l in table.stdout.splitlines() if STRANGER["mac"] in l]
    check(line and "registered" in line[0], f"it is now registered: {line[0] if line else table.stdout}")


def credentials_reloaded_and_audited(directory, reader_token):
    """The profiles' CAs and CRLs read again, as SIGHUP would: answered line by line and audited; the audit log
    read over the API, by a reader too."""
    reloaded = cli("reload")
    check(reloaded.returncode == 0 and "reload: profile 'peer': the peer proves itself with the pre-shared key" in reloaded.stdout,
          f"`ikeproxy reload` has the daemon read its profiles' credentials again: {reloaded.stdout.strip()}{reloaded.stderr.strip()}")
    audit = audit_rows(directory)
    check(("alice", "credentials.reload") in audit, "the reload is in the audit log with who asked for it")
    listed = json.loads(cli("audit", "--json").stdout or "{}")
    entries = [(e["who"], e["action"]) for e in listed.get("entries", [])]
    table = cli("audit")
    code, answer = curl("GET", "/v1/audit", reader_token)
    check(entries[-len(audit):] == audit[-len(entries):] and ("alice", "policy.add") in entries and listed.get("stored") is True
          and "credentials.reload" in table.stdout and code == 200 and answer.get("total") == len(audit),
          f"`ikeproxy audit` shows the same entries as the database, newest last ({len(entries)} of {listed.get('total')}), "
          f"and a reader may read them")


def metrics_served(admin_token):
    code, metrics = curl("GET", "/metrics", admin_token)
    check(code == 200 and "# TYPE ikeproxy_child_sas gauge" in metrics and "ikeproxy_drops_total{reason=\"policy_discard\"}" in metrics
          and "ikeproxy_revocation_checks_total{outcome=\"revoked\"} 0" in metrics
          and re.search(r'^ikeproxy_sa_events_total\{event="child_sa_established"\} [1-9]', metrics, re.M) is not None,
          "Prometheus metrics: SAs, drops by reason, negotiations, packets, revocation checks, SA events")


def sa_deleted_over_api(charon, spi):
    deleted = cli("sas", "delete", spi)
    check(deleted.returncode == 0, "`ikeproxy sas delete SPI` is accepted")
    check(wait_for(lambda: installed_child(charon, "t1v4")[1] is None, 10), "strongSwan's CHILD SA is gone")


def policy_change_reaches_sas_at_once(charon, log):
    """Terminal 1's flow gets an SA, a bypass rule for it added over the API has that SA deleted with the peer,
    and deleting the rule again protects the next flow."""
    ping(T1["ns"], T1["v4"], PEER4, count=3)
    check(wait_child(charon, "t1v4")[1] is not None, "terminal 1 pings the peer: the proxy negotiates an SA in its name")
    added = cli("policies", "add", "--position", "0", "--rule",
                json.dumps({"source": T1["v4"] + "/32", "destination": PEER4 + "/32", "action": "bypass"}))
    check(added.returncode == 0 and wait_for(lambda: installed_child(charon, "t1v4")[1] is None, 10)
          and "no longer protects anything between 192.0.2.2 and 192.0.2.1" in read(log),
          f"a bypass rule for terminal 1 added over the API has its SA deleted at once, at the peer too ({added.stdout.strip()})")
    removed = cli("policies", "delete", "0")
    _, outcome = ping(T1["ns"], T1["v4"], PEER4, count=3)
    check(removed.returncode == 0 and wait_child(charon, "t1v4")[1] is not None,
          f"the rule deleted again, terminal 1's next flow is protected once more ({outcome})")


def policy_change_outlives_restart(daemon, directory, config_path):
    stop(daemon)
    daemon, log = start_daemon(directory, config_path)
    check("policy: 8 rules from the database, as changed over the management API" in read(log),
          "after a restart the policy is the one changed over the API (8 rules, not the file's 7)")
    listed = cli("policies")
    check(listed.returncode == 0 and "7002" in listed.stdout, "and the CLI lists the added rule again")
    check("terminal 3 at 02:00:00:00:d0:32, approved over the API, enrolled again" in read(log), "the approved terminal is enrolled again")
    return daemon, log


def failed_authentications_limited_per_source(admin_token, directory, log):
    """Last, as it locks the administrator's namespace out: ten failed authentications in a row from one address,
    and the next request from it is refused with 429 and Retry-After, even with a valid token; the block is in
    the audit log."""
    wrong = secrets.token_urlsafe(24)
    codes = [curl("GET", "/v1/status", wrong)[0] for _ in range(10)]
    code, answer = curl("GET", "/v1/status", admin_token)
    headers = ns(ADMIN, "curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", CERT, "-H", f"Authorization: Bearer {admin_token}",
                 API + "/v1/status", check=False).stdout
    audit = audit_rows(directory, "who, action, detail")
    check(codes == [401] * 10 and code == 429 and "try again in" in str(answer) and "retry-after: 60" in headers.lower()
          and any(action == "auth.limited" and who == "unauthenticated 10.99.0.2" for who, action, _ in audit)
          and "10 failed authentications from 10.99.0.2" in read(log),
          f"ten failed authentications from one address: the next request from it gets 429 even with a valid token "
          f"({code}: {answer}), and the block is audited")


def schemathesis_finds_no_error(daemon, admin_token):
    """Last, as it changes everything at random: schemathesis generates requests from docs/openapi.yaml and
    checks that none gets a server error and every answer conforms to the document."""
    fuzz = subprocess.run(["ip", "netns", "exec", ADMIN, sys.executable, "-m", "schemathesis.cli", "run",
                           os.path.join(ROOT, "docs", "openapi.yaml"), "--url", API, "-H", f"Authorization: Bearer {admin_token}",
                           "--tls-verify", CERT, "--max-examples", "20", "--seed", "20261126", "--checks",
                           "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"],
                          capture_output=True, text=True, timeout=600)
    generated = [line.strip() for line in fuzz.stdout.splitlines() if "generated" in line]
    check(fuzz.returncode == 0 and daemon.poll() is None,
          f"schemathesis: no server error and every answer as documented ({generated[-1] if generated else fuzz.stdout[-300:]})")


def terminal_removed_and_added(charon, daemon, log, admin_token, directory, config_path):
    """An administrator removes terminal 1 (its SAs go at the peer and in the terminal, nothing new is made for it,
    and a restart keeps it removed), then adds it back by its addresses; then the file's terminal list, prefixes and
    profiles are reloaded. Returns the daemon (restarted)."""
    ping(T1["ns"], T1["v4"], PEER4, count=2)
    check(wait_child(charon, "t1v4")[1] is not None, "terminal 1 has an SA with strongSwan before its removal")
    malformed_terminal_additions_refused(admin_token)
    terminal_removed(charon, directory)
    daemon, log = removal_outlives_restart(charon, daemon, directory, config_path)
    daemon, log = terminal_added_back(charon, daemon, log, directory, config_path)
    config, registered = terminal_list_reloaded(config_path)
    prefixes_reloaded(charon, directory, config_path, config, registered)
    profiles_reloaded(charon, admin_token, directory, config_path, config)
    return daemon, log


def malformed_terminal_additions_refused(admin_token):
    """Malformed or conflicting additions: 400 or 409, and nothing changes."""
    def terminals_now():  # without the seconds since each host was last heard from, which move on by themselves
        return [{k: v for k, v in t.items() if k != "last_seen_seconds_ago"} for t in curl("GET", "/v1/terminals", admin_token)[1]["terminals"]]
    before = terminals_now()
    for body, why, expected in (("{x", "not JSON", 400), ({"terminal_id": 7, "addresses": [], "enrollment_key_hex": "77" * 32}, "no address", 400),
                                ({"terminal_id": 7, "addresses": ["192.0.2.300"], "enrollment_key_hex": "77" * 32}, "bad address", 400),
                                ({"terminal_id": 7, "addresses": ["169.254.3.3"], "enrollment_key_hex": "77" * 32}, "link-local address", 400),
                                ({"terminal_id": 7, "addresses": ["192.0.2.70"], "enrollment_key_hex": "77"}, "short key", 400),
                                ({"terminal_id": 2, "addresses": ["192.0.2.70"], "enrollment_key_hex": "77" * 32}, "ID enrolled already", 409),
                                ({"terminal_id": 7, "addresses": [T2["v4"]], "enrollment_key_hex": "77" * 32}, "another terminal's address", 409)):
        code, answer = curl("POST", "/v1/terminals", admin_token, body)
        check(code == expected and isinstance(answer, dict) and answer.get("error"),
              f"adding a terminal with {why} gets {expected}: {answer.get('error') if isinstance(answer, dict) else answer}")
    for path, expected in (("/v1/terminals/x", 400), ("/v1/terminals/999", 404)):
        code, _ = curl("DELETE", path, admin_token)
        check(code == expected, f"DELETE {path} gets {expected} ({code})")
    check(terminals_now() == before, "after the refused requests the terminals are unchanged")


def terminal_removed(charon, directory):
    removed = cli("terminals", "remove", "1")
    check(removed.returncode == 0 and "terminal 1 removed" in removed.stdout,
          f"`ikeproxy terminals remove 1`: {removed.stdout.strip()}{removed.stderr.strip()}")
    check(wait_for(lambda: "t1v4" not in peer_sas(charon), 10), "strongSwan's IKE SA with terminal 1 is deleted (the proxy sent the Delete)")
    check(wait_for(lambda: "flushed all SAs" in read(os.path.join(directory, "t1.log")), 5),
          "terminal 1's agent got the FLUSH over key delivery and holds no SA")
    ok, outcome = ping(T1["ns"], T1["v4"], PEER4, count=2)
    status = daemon_status(os.path.join(directory, "ikeproxy.sock"))["proxy"]
    check(not ok and status.get("drop_start_request_from_unregistered_terminal", 0) >= 1 and "t1v4" not in peer_sas(charon),
          f"terminal 1's flow to the peer now gets no SA: its packets are dropped ({outcome})")
    rows = json.loads(cli("terminals", "--json").stdout)["terminals"]
    row = [t for t in rows if t.get("mac") == T1["mac"]]
    check(row and row[0]["status"] == "unenrolled" and row[0].get("terminal_id") is None,
          f"`ikeproxy terminals` lists its host as unenrolled ({row[0]['status'] if row else rows})")
    check(("alice", "terminal.remove") in audit_rows(directory), "the removal is in the audit log with who made it")


def removal_outlives_restart(charon, daemon, directory, config_path):
    stop(daemon)
    daemon, log = start_daemon(directory, config_path)
    check("terminal 1 of the configuration file was removed over the API by alice" in read(log),
          "after a restart the configuration file's terminal 1 stays removed, and the log says who removed it")
    ok, _ = ping(T1["ns"], T1["v4"], PEER4, count=1)
    check(not ok and "t1v4" not in peer_sas(charon), "and it still gets no SA")
    return daemon, log


def terminal_added_back(charon, daemon, log, directory, config_path):
    key_file = os.path.join(directory, "t1.key")
    with open(key_file, "w") as f:
        f.write(T1["key"])
    added = cli("terminals", "add", "--terminal-id", "1", "--address", T1["v4"], "--address", T1["v6"], "--enrollment-key-file", key_file)
    check(added.returncode == 0 and "terminal 1 enrolled at" in added.stdout,
          f"`ikeproxy terminals add` enrols it by address: {added.stdout.strip()}{added.stderr.strip()}")
    ping(T1["ns"], T1["v4"], PEER4, count=3)
    ok, outcome = ping(T1["ns"], T1["v4"], PEER4, count=3)
    _, child = wait_child(charon, "t1v4")
    check(ok and child is not None, f"added again, terminal 1's flow gets an SA in its name and its pings come back ({outcome})")
    check(("alice", "terminal.add") in audit_rows(directory), "the addition is in the audit log")
    stop(daemon)
    earlier = len(read(log))
    daemon, log = start_daemon(directory, config_path)
    since = read(log)[earlier:]
    check("terminal 1 at 192.0.2.2, 2001:db8::2, added over the API, enrolled again" in since and "removed over the API" not in since,
          "after another restart it is enrolled again, by the addresses the administrator gave")
    return daemon, log


def terminal_list_reloaded(config_path):
    """A reload reads the file's terminal list again: terminal 2 taken out of the file is removed, put back is enrolled.
    Returns the configuration as written and a function that says whether a terminal is registered."""
    with open(config_path) as f:
        config = json.load(f)
    listed = config["terminals"]

    def registered(terminal_id):
        rows = json.loads(cli("terminals", "--json").stdout)["terminals"]
        return any(r.get("terminal_id") == terminal_id and r["status"] == "registered" for r in rows)
    check(registered(2), "terminal 2 is registered, as the file says")
    for terminals, expected, why in (([t for t in listed if t.get("terminal_id") != 2],
                                      "reload: terminal 2 (192.0.2.3, 2001:db8::3) is gone from the file: removed, its SAs deleted", "taken out of the file"),
                                     (listed, "reload: terminal 2 (192.0.2.3, 2001:db8::3) is new: enrolled", "put back")):
        config["terminals"] = terminals
        with open(config_path, "w") as f:
            json.dump(config, f, indent=1)
        reloaded = cli("reload")
        check(reloaded.returncode == 0 and expected in reloaded.stdout and registered(2) == (terminals is listed),
              f"`ikeproxy reload` with terminal 2 {why}: {expected.split(': ', 1)[1]}, and `ikeproxy terminals` agrees "
              f"({[l for l in reloaded.stdout.splitlines() if 'terminals:' in l]}{reloaded.stderr.strip()})")
    return config, registered


def prefixes_reloaded(charon, directory, config_path, config, registered):
    """A reload takes the file's terminal_prefixes: terminal 2, left outside them, loses its SAs (at strongSwan
    and in its agent) and gets no new one; inside them again, it is a terminal again."""
    wide = config["terminal_prefixes"]
    path = os.path.join(directory, "t2.json")
    with open(path, "w") as f:
        json.dump(terminal_configuration(T2), f)
    agent = start(T2["ns"], ["terminal", "--config", path], os.path.join(directory, "t2.log"))
    try:
        prefixes_changed(charon, directory, config_path, config, registered, wide)
    finally:
        stop(agent)


def prefixes_changed(charon, directory, config_path, config, registered, wide):
    def reload_with(prefixes):
        config["terminal_prefixes"] = prefixes
        with open(config_path, "w") as f:
            json.dump(config, f, indent=1)
        return cli("reload")
    # The first ping starts the negotiation (and is dropped): the later ones go through the SA.
    ok, summary = ping(T2["ns"], T2["v4"], PEER4, count=5)
    _, child = wait_child(charon, "t2v4", timeout=10)
    check(ok and child is not None, f"terminal 2's ping to the peer goes through its SA ({summary})")
    agent_log = os.path.join(directory, "t2.log")
    deleted_before = read(agent_log).count("deleted inbound SA")
    reloaded = reload_with(["192.0.2.2/32", "2001:db8::2/128"])
    check(reloaded.returncode == 0 and "reload: no longer inside terminal_prefixes, not acted for, their SAs deleted: terminal 2 (192.0.2.3, 2001:db8::3)"
          in reloaded.stdout and not registered(2),
          f"`ikeproxy reload` with terminal_prefixes narrowed to terminal 1's addresses: terminal 2 is no longer acted for, "
          f"`ikeproxy terminals` lists it pending ({[l for l in reloaded.stdout.splitlines() if 'terminal_prefixes' in l]}{reloaded.stderr.strip()})")
    gone = wait_for(lambda: installed_child(charon, "t2v4")[1] is None, 10)
    in_agent = wait_for(lambda: read(agent_log).count("deleted inbound SA") > deleted_before, 10)
    check(gone and in_agent, f"its SA is deleted at strongSwan ({'gone' if gone else 'still there'}) and in its agent "
                             f"({'deleted' if in_agent else 'not told'})")
    ok, summary = ping(T2["ns"], T2["v4"], PEER4, count=2)
    check(not ok and installed_child(charon, "t2v4")[1] is None, f"its ping gets no new SA and does not get through ({summary})")
    reloaded = reload_with(wide)
    ok, summary = ping(T2["ns"], T2["v4"], PEER4, count=5)
    _, child = wait_child(charon, "t2v4", timeout=10)
    check(reloaded.returncode == 0 and "reload: now inside terminal_prefixes, acted for: terminal 2 (192.0.2.3, 2001:db8::3)" in reloaded.stdout
          and registered(2) and ok and child is not None,
          f"the prefixes put back, a reload makes terminal 2 a terminal again and its ping gets a new SA ({summary})")


def policy_replaced_and_reverted(daemon, log, admin_token, directory, config_path):
    """The whole policy replaced at once (one bad rule changes nothing), then handed back to the configuration
    file, which a restart then keeps using. Returns the daemon (restarted)."""
    with open(config_path) as f:
        file_policy = json.load(f)["policy"]
    before = curl("GET", "/v1/policies", admin_token)[1]
    bad = {"rules": [file_policy["rules"][0], {"source": "192.0.2.0/33", "destination": "0.0.0.0/0", "action": "discard"}]}
    code, answer = curl("PUT", "/v1/policies", admin_token, bad)
    check(code == 400 and "rules[1]" in str(answer) and "nothing changed" in str(answer), f"a policy with one bad rule gets 400 naming it: {answer}")
    code, answer = curl("PUT", "/v1/policies", admin_token, {"rules": [], "default": "maybe"})
    check(code == 400 and "maybe" in str(answer), f"a policy with a bad default gets 400: {answer}")
    check(curl("GET", "/v1/policies", admin_token)[1] == before, "after the refused replacements the policy is unchanged")

    blocked = {"source": "192.0.2.0/24", "destination": BYPASS4 + "/32", "protocol": "tcp", "destination_ports": "7002", "action": "discard"}
    path = os.path.join(directory, "policy.json")
    with open(path, "w") as f:
        json.dump({"rules": [blocked] + file_policy["rules"], "default": "bypass"}, f)
    replaced = cli("policies", "replace", "--file", path)
    count = len(file_policy["rules"]) + 1
    listed = curl("GET", "/v1/policies", admin_token)[1]
    check(replaced.returncode == 0 and f"policy replaced: {count} rule(s), default bypass" in replaced.stdout and len(listed["rules"]) == count
          and tcp_connect_fails(T1["ns"], T1["v4"], BYPASS4, 7002),
          f"`ikeproxy policies replace --file` puts in the whole policy ({count} rules) and it takes effect at once "
          f"({replaced.stdout.strip()}{replaced.stderr.strip()})")
    reverted = cli("policies", "revert")
    ok, _, _ = transfer(PEER, BYPASS4, T1["ns"], T1["v4"], 7002, 4096, timeout=15)
    listed = curl("GET", "/v1/policies", admin_token)[1]
    check(reverted.returncode == 0 and f"policy: the configuration file's {len(file_policy['rules'])} rule(s)" in reverted.stdout
          and len(listed["rules"]) == len(file_policy["rules"]) and ok,
          f"`ikeproxy policies revert` hands the policy back to the file: its {len(file_policy['rules'])} rules, TCP 7002 passes again "
          f"({reverted.stdout.strip()}{reverted.stderr.strip()})")
    reloaded = cli("reload")
    check("changed over the management API" not in reloaded.stdout, "a reload then takes the file's policy again")
    audit = sqlite3.connect(os.path.join(directory, "state.db")).execute("SELECT who, action FROM audit_log").fetchall()
    check(("alice", "policy.replace") in audit and ("alice", "policy.revert") in audit, "both are in the audit log")
    stop(daemon)
    earlier = len(read(log))
    daemon, log = start_daemon(directory, config_path)
    since = read(log)[earlier:]
    check("from the database, as changed over the management API" not in since and "management API on" in since,
          "after a restart the daemon takes the file's policy (not the database's)")
    return daemon, log


def profiles_reloaded(charon, admin_token, directory, config_path, config):
    """A reload takes the file's profiles: a new one may be named by the policy at once, a changed pre-shared
    key is used from the next negotiation, one gone from the file and named by no rule is removed."""
    def write():
        with open(config_path, "w") as f:
            json.dump(config, f, indent=1)
    original = config["profiles"][0]
    new_profile_named_at_once(admin_token, config, write)
    config["profiles"] = [original]
    changed_key_used_next(charon, directory, config, write)


def new_profile_named_at_once(admin_token, config, write):
    """A profile new in the file may be named by a rule at once; taken out again, and named by no rule, it is removed."""
    rule = {"rule": {"source": T1["v4"] + "/32", "destination": PEER4 + "/32", "action": "protect", "profile": "peer2"}, "position": 0}
    code, answer = curl("POST", "/v1/policies", admin_token, rule)
    check(code == 400 and "peer2" in str(answer), f"before the reload, a rule naming profile 'peer2' is refused ({code})")
    original = config["profiles"][0]
    config["profiles"] = [original, dict(original, name="peer2")]
    write()
    reloaded = cli("reload")
    check("reload: profile 'peer2' is new: the peer proves itself with the pre-shared key; the policy may name it" in reloaded.stdout,
          f"`ikeproxy reload` takes profile 'peer2', new in the file ({reloaded.stderr.strip()})")
    code, _ = curl("POST", "/v1/policies", admin_token, rule)

    def children():
        return {r["child"] for r in json.loads(cli("sas", "--json").stdout)["sas"] if r["terminal"] == T1["v4"]}
    # The old SA (profile 'peer') carries the pings until its Delete exchange with strongSwan is done; the next
    # flow then gets one of profile 'peer2'.
    for _ in range(10):
        ping(T1["ns"], T1["v4"], PEER4, count=2)
        if "peer2-child" in children():
            break
    ok, summary = ping(T1["ns"], T1["v4"], PEER4, count=3)
    check(code == 201 and ok and children() == {"peer2-child"},
          f"a rule naming it is then accepted, and terminal 1's traffic goes through an SA of that profile ({sorted(children())}; {summary})")
    table = cli("profiles")
    listed = {p["name"]: p for p in json.loads(cli("profiles", "--json").stdout)["profiles"]}
    check(table.returncode == 0 and "aes256gcm16-prfsha256-x25519" in table.stdout and listed.get("peer2", {}).get("rules") == [0]
          and listed["peer2"]["esp_proposals"] == ["aes256gcm16"] and listed["peer2"].get("rand_time") == 0 and original["psk"] not in table.stdout + json.dumps(listed),
          f"`ikeproxy profiles` lists both profiles, peer2 named by rule 0, and no pre-shared key ({sorted(listed)})")
    code, _ = curl("DELETE", "/v1/policies/0", admin_token)
    config["profiles"] = [original]
    write()
    reloaded = cli("reload")
    check(code == 200 and "reload: profile 'peer2' is gone from the file and no rule names it: removed" in reloaded.stdout,
          f"the rule deleted and the profile taken out of the file, a reload removes it ({reloaded.stderr.strip()})")


def changed_key_used_next(charon, directory, config, write):
    """A changed pre-shared key is used from the next negotiation: a wrong one fails at strongSwan, the right one works."""
    original = config["profiles"][0]
    config["profiles"] = [dict(original, psk="not the key strongSwan has")]
    write()
    reloaded = cli("reload")
    check("reload: profile 'peer': pre-shared key changed; used from the next negotiation" in reloaded.stdout
          and "not the key" not in reloaded.stdout, "a reload says the profile's pre-shared key changed, without saying it")
    control = os.path.join(directory, "ikeproxy.sock")
    failed = daemon_status(control)["proxy"].get("negotiation_failed", 0)
    flushed = cli("sas", "flush")
    wait_for(lambda: "t1v4" not in peer_sas(charon), 10)
    ping(T1["ns"], T1["v4"], PEER4, count=3)
    check(flushed.returncode == 0 and wait_for(lambda: daemon_status(control)["proxy"].get("negotiation_failed", 0) > failed, 15)
          and installed_child(charon, "t1v4")[1] is None,
          "the SAs flushed, the next negotiation uses the new key, and strongSwan refuses it (no SA)")
    config["profiles"] = [original]
    write()
    reloaded = cli("reload")
    ok = False
    for _ in range(6):  # start requests wait retry_after_failure (10 s) after the failure
        ok, summary = ping(T1["ns"], T1["v4"], PEER4, count=3)
        if ok and installed_child(charon, "t1v4")[1] is not None:
            break
    check(ok and installed_child(charon, "t1v4")[1] is not None,
          f"the right key back in the file and reloaded, terminal 1 gets its SA again ({summary})")


def authentication(admin_token, reader_token):
    wrong = secrets.token_urlsafe(24)
    refused = []
    for method, path in ROUTES:
        for header in (None, f"Authorization: Bearer {wrong}", "Authorization: Basic YWxpY2U6c2VjcmV0", "Authorization: Bearer "):
            code, answer = curl(method, path, header=header) if header else curl(method, path)
            if code != 401:
                refused.append(f"{method} {path} with {header!r}: {code}")
        code, _ = curl(method, path, reader_token, body={} if method in ("POST", "PUT") else None)
        if method in CHANGES and code != 403:
            refused.append(f"{method} {path} as reader: {code}")
        if method not in CHANGES and code not in (200, 404):
            refused.append(f"{method} {path} as reader: {code}")
    check(not refused, f"every route ({len(ROUTES)}) refuses missing, unknown and malformed tokens with 401 and a reader's changes with 403"
          + (f": {refused}" if refused else ""))
    code, _ = curl("GET", "/v1/status", admin_token)
    check(code == 200, "an administrator's token is accepted")


def client_certificates(clients, admin_token, directory, log):
    carol, mallory, eve = (clients[n][:2] for n in ("carol", "mallory", "eve"))
    code, answer = curl("GET", "/v1/status", client=carol)
    check(code == 200, f"carol's pinned client certificate, from the administrators' CA, is accepted without a token ({code})")
    rule = {"rule": {"source": "192.0.2.0/24", "destination": "192.0.2.99/32", "action": "discard"}, "position": 0}
    code, _ = curl("POST", "/v1/policies", body=rule, client=carol)
    code2, _ = curl("DELETE", "/v1/policies/0", client=carol)
    audit = sqlite3.connect(os.path.join(directory, "state.db")).execute("SELECT who, action FROM audit_log").fetchall()
    check(code == 201 and code2 == 200 and ("carol", "policy.add") in audit and ("carol", "policy.delete") in audit,
          f"carol may change the policy with her certificate, and the audit log names her ({code}, {code2})")
    code, answer = curl("GET", "/v1/status", client=mallory)
    check(code == 401 and "not an administrator's" in str(answer) and "not pinned" in read(log),
          f"mallory's certificate from the same CA but not pinned gets 401 ({code}: {answer})")
    code, _ = curl("GET", "/v1/status", admin_token, client=mallory)
    check(code == 200, "with an unpinned certificate, a valid bearer token still counts")
    result = ns(ADMIN, "curl", "-sS", "-o", "/dev/null", "--cacert", CERT, "--cert", eve[0], "--key", eve[1], API + "/v1/status", check=False)
    check(result.returncode != 0, f"eve's self-signed certificate fails the TLS handshake (curl exit {result.returncode}: {result.stderr.strip()[:80]})")
    listed = subprocess.run(["ip", "netns", "exec", ADMIN, BINARY, "policies", "--api", API, "--ca-file", CERT,
                             "--cert-file", carol[0], "--key-file", carol[1]], capture_output=True, text=True)
    check(listed.returncode == 0 and "ACTION" in listed.stdout.upper(), f"the CLI authenticates with --cert-file/--key-file ({listed.stderr.strip()[:120]})")
    half = subprocess.run(["ip", "netns", "exec", ADMIN, BINARY, "policies", "--api", API, "--ca-file", CERT, "--cert-file", carol[0]],
                          capture_output=True, text=True)
    check(half.returncode != 0 and "--key-file" in half.stderr, "the CLI refuses a certificate without its key, saying why")


def openapi_matches():
    import yaml
    from openapi_spec_validator import validate
    with open(os.path.join(ROOT, "docs", "openapi.yaml")) as f:
        document = yaml.safe_load(f)
    try:
        validate(document)
        valid = True
    except Exception as error:  # the validator raises on the first problem
        valid = False
        print("      " + str(error)[:300])
    check(valid, "docs/openapi.yaml is a valid OpenAPI 3 document")
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    served = {(m, p.replace(STRANGER["mac"], "{terminal}").replace("/v1/policies/0", "/v1/policies/{position}")
               .replace("/v1/sas/00000000", "/v1/sas/{spi}").replace("/v1/terminals/999", "/v1/terminals/{terminal}")) for m, p in ROUTES}
    check(documented == served, f"the document names exactly the routes the server has ({len(documented)})"
          + ("" if documented == served else f": only documented {documented - served}, only served {served - documented}"))


if __name__ == "__main__":
    sys.exit(main())
