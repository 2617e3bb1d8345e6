#!/usr/bin/env python3
"""`ikeproxy daemon` authenticating in terminals' names with the terminals' own certificates.

The topology of daemon_e2e.py. A CA (ECDSA P-256) issues strongSwan's certificate (RSA 2048) and
terminal 1's (RSA 3072), each naming its addresses in subjectAltName; terminal 1's private key is sealed
into the daemon's configuration (`ikeproxy seal --context terminal-key:1`, key-file sealer). The
protection profile says local_auth "pubkey" (the terminal's certificate) and remote_auth "pubkey" (the
CA). RSA makes IKE_AUTH larger than both fragment sizes (charon's 1000, the daemon's 1280), so both
sides send it as RFC 7383 fragments, through the bridge.

Checks: strongSwan initiates to terminal 1 and both sides authenticate by certificate (strongSwan logs
the RSA signature of 192.0.2.2 as verified, the daemon logs strongSwan's certificate as verified, with its
OCSP status: strongSwan's certificate names a responder, `openssl ocsp` on the proxy's loopback, and the
profile says revocation "strict"), with IKE_AUTH fragmented both ways;
ping passes through ESP; terminal 1 opens a flow and the proxy initiates, again by certificate and OCSP;
terminal 1's certificate is renewed with a new key, sealed in its turn, and read again on SIGHUP: strongSwan's
next IKE SA with terminal 1 gets the renewed certificate and verifies its signature;
once the responder says revoked, strongSwan's next IKE_AUTH is refused; a CRL revoking it, added to the
profile and read again on SIGHUP, refuses it even when the responder says good again;
terminal 2, which has no certificate, gets no SA and the refusal says why; neither the configuration
nor the state database holds the private key in the clear.

Needs root, iproute2, strongSwan, openssl and the `vici` module; it fails loudly otherwise.
"""
import json, os, re, signal, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.host import BINARY, ROOT, ns, read, wait_for  # noqa: E402
from lib.lab import PEER, PEER4, PEER6, PROXY, TERMINALS, Topology, daemon_configuration, peer_deletes_child, terminal_configuration  # noqa: E402
from lib.peer import initiate, installed_child, run_with_charon, terminate, wait_child  # noqa: E402
from lib.processes import daemon_status, start, start_agent, stop  # noqa: E402
from lib.report import check  # noqa: E402
from lib.servers import OCSPResponder  # noqa: E402
from lib.traffic import ping, transfer  # noqa: E402

check, ns = check, ns
T1, T2 = TERMINALS


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(directory):
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
            "-subj", "/O=IKEProxy site/CN=site CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    made = {"ca": (ca, ca_key)}
    for name, addresses, bits in (("strongswan", (PEER4, PEER6), 2048), ("t1", (T1["v4"], T1["v6"]), 3072)):
        cert, key, csr = (os.path.join(directory, f"{name}.{ext}") for ext in ("pem", "key", "csr"))
        openssl("req", "-new", "-newkey", f"rsa:{bits}", "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/O=IKEProxy site/CN={name}")
        extensions = os.path.join(directory, f"{name}.ext")
        with open(extensions, "w") as f:
            f.write("subjectAltName=" + ",".join(f"IP:{a}" for a in addresses) + "\nkeyUsage=critical,digitalSignature\n"
                    # strongSwan's certificate names an OCSP responder, which the proxy reaches on its own loopback.
                    + ("authorityInfoAccess=OCSP;URI:http://127.0.0.1:8080/\n" if name == "strongswan" else ""))
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extensions)
        made[name] = (cert, key)
    return made


def issue(directory, made, name, subject, addresses, bits):
    """A certificate from the site CA for `addresses` (subjectAltName), with a new RSA key: (certificate, key) paths."""
    ca, ca_key = made["ca"]
    cert, key, csr = (os.path.join(directory, f"{name}.{ext}") for ext in ("pem", "key", "csr"))
    openssl("req", "-new", "-newkey", f"rsa:{bits}", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/O=IKEProxy site/CN={subject}")
    extensions = os.path.join(directory, f"{name}.ext")
    with open(extensions, "w") as f:
        f.write("subjectAltName=" + ",".join(f"IP:{a}" for a in addresses) + "\nkeyUsage=critical,digitalSignature\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extensions)
    return cert, key


def load_peer(charon, made):
    read = lambda path: open(path, "rb").read()
    charon.session.load_cert({"type": "X509", "flag": "CA", "data": read(made["ca"][0])})
    charon.session.load_key({"type": "any", "data": read(made["strongswan"][1])})
    for t in (T1, T2):
        name = f"{t['name']}v4"
        charon.session.load_conn({name: {
            "version": "2", "local_addrs": [PEER4], "remote_addrs": [t["v4"]],
            "proposals": ["aes256gcm16-prfsha256-x25519"], "encap": "yes", "rekey_time": "0", "dpd_delay": "0",
            "local-1": {"auth": "pubkey", "id": PEER4, "certs": [read(made["strongswan"][0])]},
            "remote-1": {"auth": "pubkey", "id": t["v4"], "cacerts": [read(made["ca"][0])]},
            "children": {name: {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                                "local_ts": [PEER4], "remote_ts": [t["v4"]]}}}})


def daemon_counter(control, name):
    """A counter of the daemon's engine, from its status on the control socket."""
    return daemon_status(control).get("engine", {}).get(name, 0)


def main():
    return run_with_charon("daemon certificate test", "ikp-certificates-", Topology, run, peer_namespace=PEER, tools=("openssl", "ping"), readable=True)


class Site:
    """The daemon's configuration file and what the scenarios change in it: terminal 1's entry and profile."""

    def __init__(self, directory, made):
        self.directory, self.made = directory, made
        self.config = daemon_configuration(os.path.join(directory, "ikeproxy.sock"))
        profile = self.config["profiles"][0]
        del profile["psk"]
        profile.update({"local_auth": "pubkey", "remote_auth": "pubkey", "ca_certificates": [made["ca"][0]], "revocation": "strict"})
        # OCSP answers are not kept here (they are for a day from this responder): each IKE_AUTH asks, so
        # that the revocation below is seen at once.
        self.config.setdefault("settings", {})["ocsp_cache_limit"] = 0
        self.config["store"] = {"path": os.path.join(directory, "state.db"), "key_file": os.path.join(directory, "usb", "ikeproxy.key"),
                                "create_key_file": True}
        os.makedirs(os.path.join(directory, "usb"))
        self.entry = next(t for t in self.config["terminals"] if t["terminal_id"] == T1["id"])
        self.path = os.path.join(directory, "daemon.json")
        self.write()
        self.key_bodies = []

    def write(self):
        with open(self.path, "w") as f:
            json.dump(self.config, f, indent=1)

    def give_terminal_1(self, certificate, key):
        """Seals `key` into terminal 1's entry beside `certificate` and removes the key's file; True if sealed."""
        with open(key) as f:
            sealed = subprocess.run([BINARY, "seal", "--config", self.path, "--context", "terminal-key:1"], stdin=f,
                                    capture_output=True, text=True)
        self.key_bodies.append("".join(line for line in read(key).splitlines() if "PRIVATE KEY" not in line))
        os.unlink(key)
        self.entry["certificate"] = certificate
        self.entry["private_key_sealed"] = sealed.stdout.strip()
        self.write()
        return sealed


def run(charon, directory):
    made = make_certificates(directory)
    load_peer(charon, made)
    responder = OCSPResponder(directory, made["ca"], namespace=PROXY)
    responder.serve(made["strongswan"][0], revoked=False)
    site = Site(directory, made)
    sealed = site.give_terminal_1(*made["t1"])
    check(sealed.returncode == 0, f"`ikeproxy seal --context terminal-key:1` seals terminal 1's private key {sealed.stderr.strip()[-200:]}")
    log = os.path.join(directory, "daemon.log")
    daemon = start(PROXY, ["daemon", "--config", site.path], log)
    agent = start_agent(directory, T1, terminal_configuration(T1))
    try:
        check(wait_for(lambda: "terminal 1: certificate CN=t1" in read(log), 10) and daemon.poll() is None,
              "the daemon starts and opened terminal 1's sealed key with its certificate")
        peer_initiates_and_both_authenticate_by_certificate(charon, directory, site, log)
        proxy_initiates_with_terminal_certificate(charon, log)
        renewed_certificate_used_from_next_negotiation(charon, daemon, site, log)
        ocsp_revocation_refused(charon, responder, made, log)
        reloaded_crl_refuses_although_ocsp_says_good(charon, daemon, responder, site, log)
        terminal_without_certificate_gets_no_sa(charon, log)
        no_private_key_in_the_clear(site)
    finally:
        responder.stop()
        stop(agent)
        code = stop(daemon)
        check(code == 0, f"the daemon stops cleanly (exit status {code})")
        for line in read(log).splitlines()[-5:]:
            print("      " + line[:300])


RSA_OF_TERMINAL_1 = r"authentication of '192\.0\.2\.2' with RSA_EMSA_PKCS1_SHA2_256 successful"


def peer_initiates_and_both_authenticate_by_certificate(charon, directory, site, log):
    """strongSwan initiates; the proxy answers in terminal 1's name with terminal 1's certificate."""
    result = initiate(charon, "t1v4")
    _, child = wait_child(charon, "t1v4")
    check(child is not None, f"strongSwan initiated to terminal 1 and the proxy answered with its certificate ({result})")
    check(re.search(RSA_OF_TERMINAL_1, read(charon.log)) is not None,
          "strongSwan verified terminal 1's certificate and the RSA signature (RFC 7427) the proxy made with its key")
    # The daemon's log is read while it may still be writing: wait for the lines rather than read once.
    check(wait_for(lambda: "authenticated by certificate CN=strongswan" in read(log), 5),
          "the proxy verified strongSwan's certificate against the site CA")
    check(wait_for(lambda: re.search(r"authenticated by certificate CN=strongswan.*; not revoked \(OCSP http://127\.0\.0\.1:8080/\)",
                                     read(log)) is not None, 5),
          "the proxy asked the OCSP responder strongSwan's certificate names (revocation strict) and heard good")
    check(re.search(r"received fragment #\d+ of \d+, reassembled", read(charon.log)) is not None
          and daemon_counter(site.config["control_socket"], "fragments_received") > 0,
          "IKE_AUTH crossed the bridge as RFC 7383 fragments both ways (charon and the proxy reassembled them)")
    check(wait_for(lambda: "installed outbound SA" in read(os.path.join(directory, "t1.log")), 10),
          "terminal 1 received the SA over key delivery")
    ok, outcome = ping(PEER, PEER4, T1["v4"])
    check(ok, f"ping peer -> terminal 1 through ESP ({outcome})")
    check(peer_deletes_child(charon, "t1v4", os.path.join(directory, "t1.log")), "strongSwan deleted terminal 1's SA, and so did its agent")


def proxy_initiates_with_terminal_certificate(charon, log):
    """Terminal 1 opens a flow; the proxy initiates, again with terminal 1's certificate."""
    ok, _, seconds = transfer(PEER, PEER4, T1["ns"], T1["v4"], 7101, 256 * 1024, timeout=30)
    check(ok, f"terminal 1 opens a TCP connection to the peer; 256 KB pass through ESP ({seconds:.1f} s)")
    sa, child = installed_child(charon, "t1v4")
    check(child is not None and sa.get("initiator", b"no") != b"yes" and len(re.findall(RSA_OF_TERMINAL_1, read(charon.log))) >= 2,
          "the proxy initiated IKE for terminal 1 and authenticated with its certificate")
    check(len(re.findall(r"not revoked \(OCSP ", read(log))) >= 2,
          "as initiator too, the proxy checked strongSwan's certificate with OCSP before setting keys")


def renewed_certificate_used_from_next_negotiation(charon, daemon, site, log):
    """Terminal 1's certificate is renewed (a new key, sealed like the first): the file changes, SIGHUP, and the
    proxy's next negotiation in its name signs with the new one. The SA already made stays as it is."""
    renewed_cert, renewed_key = issue(site.directory, site.made, "t1-renewed", "t1 renewed", (T1["v4"], T1["v6"]), 3072)
    resealed = site.give_terminal_1(renewed_cert, renewed_key)
    daemon.send_signal(signal.SIGHUP)
    check(resealed.returncode == 0 and wait_for(
              lambda: re.search(r"reload: terminal 1: certificate CN=t1 renewed,O=IKEProxy site \(serial [^)]*, valid until [^)]*\) replaces "
                                r"CN=t1,O=IKEProxy site", read(log)) is not None, 10),
          "SIGHUP: the daemon took terminal 1's renewed certificate and opened its newly sealed key")
    check(installed_child(charon, "t1v4")[1] is not None, "the SA made with the old certificate stays")
    terminate(charon, "t1v4")
    wait_for(lambda: installed_child(charon, "t1v4")[1] is None, 10)
    before = len(read(charon.log))
    result = initiate(charon, "t1v4")
    renewed_log = read(charon.log)[before:]
    check(installed_child(charon, "t1v4")[1] is not None and 'CN=t1 renewed' in renewed_log
          and re.search(RSA_OF_TERMINAL_1, renewed_log) is not None,
          f"strongSwan's next IKE SA with terminal 1 received the renewed certificate and verified its signature ({result})")


def ocsp_revocation_refused(charon, responder, made, log):
    """The CA revokes strongSwan's certificate: the next IKE_AUTH is refused, no key reaches the terminal."""
    terminate(charon, "t1v4")
    wait_for(lambda: installed_child(charon, "t1v4")[1] is None, 10)
    responder.serve(made["strongswan"][0], revoked=True)
    initiate(charon, "t1v4", timeout_ms=8000)  # refused: the check below says why
    check(wait_for(lambda: "is revoked (revoked through OCSP" in read(log), 10) and installed_child(charon, "t1v4")[1] is None,
          "strongSwan's certificate revoked at the OCSP responder: the proxy refuses it and no SA is made")


def reloaded_crl_refuses_although_ocsp_says_good(charon, daemon, responder, site, log):
    """The CA also publishes a CRL revoking it. The responder says good again, but the CRL is added to the
    profile and the daemon told with SIGHUP: from its next negotiation the proxy refuses by the CRL."""
    responder.serve(site.made["strongswan"][0], revoked=False)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from make_crl import make_crl
    crl = os.path.join(site.directory, "site.crl")
    make_crl(site.made["ca"][0], site.made["ca"][1], crl, [site.made["strongswan"][0]])
    site.config["profiles"][0]["crls"] = [crl]
    site.write()
    daemon.send_signal(signal.SIGHUP)
    check(wait_for(lambda: "reload: profile 'peer': 1 CA certificate(s), 1 CRL(s) revoking 1 certificate(s), revocation strict" in read(log), 10),
          "SIGHUP made the daemon read the profile's CAs and the new CRL again")
    initiate(charon, "t1v4", timeout_ms=8000)  # refused: the check below says why
    check(wait_for(lambda: "is revoked by the CRL of CN=site CA" in read(log), 10) and installed_child(charon, "t1v4")[1] is None,
          "with the reloaded CRL the proxy refuses strongSwan's certificate although OCSP says good")


def terminal_without_certificate_gets_no_sa(charon, log):
    """Terminal 2 has no certificate: under this profile the proxy cannot act for it."""
    initiate(charon, "t2v4", timeout_ms=4000)  # refused: the check below says why
    check(installed_child(charon, "t2v4")[1] is None and "terminal 2 has none configured" in read(log),
          "terminal 2, which has no certificate, gets no SA and the daemon says why")


def no_private_key_in_the_clear(site):
    stored = b"".join(open(os.path.join(site.directory, name), "rb").read() for name in os.listdir(site.directory)
                      if name.startswith("state.db") or name == "daemon.json")
    check(b"PRIVATE KEY" not in stored and all(body.encode() not in stored for body in site.key_bodies) and len(site.key_bodies) == 2,
          "neither the configuration nor the state database holds terminal 1's private keys (first and renewed) in the clear")


if __name__ == "__main__":
    sys.exit(main())
