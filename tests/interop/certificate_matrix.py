#!/usr/bin/env python3
"""The certificate matrix: chains made with openssl, each judged by IKEProxy and by strongSwan, who must agree.

Every case is a trust anchor (or two), the chain a peer would send (its certificate, then intermediates) and
the expected verdict under RFC 5280. IKEProxy judges with `ikeproxy certificate-check` (the path validation
IKE_AUTH runs); strongSwan judges in an IKE_AUTH: `ikeproxy endpoint` initiates to charon presenting the
chain in CERT payloads and signing with the leaf's key, and charon, trusting only the case's anchors,
establishes or answers AUTHENTICATION_FAILED. A check fails when either side departs from the expected
verdict, so agreement on a wrong answer fails too. Where strongSwan 5.9 itself departs from RFC 5280, the case
says how (`strongswan_departs`), IKEProxy must still give the RFC's verdict, and strongSwan must still give its
known other one, so that a change on either side is noticed.

Needs root, iproute2, openssl, strongSwan and the `vici` Python module; it fails loudly if any is missing.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib.endpoint  # noqa: E402
from lib.host import BINARY, Lab, ns, sh  # noqa: E402
from lib.openssl_ca import Issuer, rsa_modulus, rsa_public_key_pem, with_unpadded_signature  # noqa: E402
from lib.peer import PSK, run_with_charon  # noqa: E402
from lib.report import check  # noqa: E402

import vici.exception

PEER_NS, EP_NS = "ikp-cm-peer", "ikp-cm-ep"
PEER, HOST = "192.0.2.1", "192.0.2.2"
CA = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign", "subjectKeyIdentifier=hash"]
BELOW = ["authorityKeyIdentifier=keyid"]
HOST_NAMES = f"subjectAltName=IP:{HOST}"
UNKNOWN_CRITICAL = "1.3.6.1.4.1.55555.1=critical,ASN1:NULL"


class Network(Lab):
    namespaces = (PEER_NS, EP_NS)

    def build(self):
        sh("ip", "link", "add", "ikp-cm0", "netns", PEER_NS, "type", "veth", "peer", "name", "ikp-cm1", "netns", EP_NS)
        for name, dev, address in ((PEER_NS, "ikp-cm0", PEER), (EP_NS, "ikp-cm1", HOST)):
            ns(name, "ip", "addr", "add", address + "/24", "dev", dev)
            ns(name, "ip", "link", "set", dev, "up")


class Endpoint(lib.endpoint.Endpoint):
    namespace = EP_NS


class Case:
    """One chain: `anchors` (certificate paths), `chain` (a PEM file, leaf first), the leaf's key, whether
    RFC 5280 accepts it, and how strongSwan 5.9 departs from that, if it does."""

    def __init__(self, name, accepted, anchors, chain, key, strongswan_departs=None):
        self.name, self.accepted, self.anchors, self.chain, self.key = name, accepted, anchors, chain, key
        self.strongswan_departs = strongswan_departs


# Where strongSwan 5.9.8 does not follow RFC 5280, seen in its log: why it judges the other way.
KEY_CERT_SIGN_IGNORED = "strongSwan ignores keyUsage's keyCertSign in CA certificates (RFC 5280 6.1.4 (n) requires it)"
IP_CONSTRAINTS_UNPARSED = "strongSwan cannot parse IP-address name constraints ('unsupported critical X.509 extension: Name Constraints')"
FIRST_PATH_ONLY = "strongSwan tries only the first path it builds ('issuer certificate invalid') and not the other issuer"


def build_cases(directory):
    issuer = Issuer(directory)
    cases = []

    def standard(name, accepted, root=(), mid=(), leaf=(), root_days=(-1, 30), mid_days=(-1, 30), leaf_days=(-1, 30), leaf_subject=None,
                 strongswan_departs=None):
        """root -> mid -> leaf, each with extra extension lines and validity (start, end) in days from now."""
        r = issuer.issue(f"{name}-root", f"/O=Matrix/CN={name} root", CA + list(root), start=root_days[0], end=root_days[1])
        # A case's lines replace the CA defaults of the same extension; openssl config sections (a DN) go last.
        mid = list(mid)
        sections = mid[next((i for i, line in enumerate(mid) if line.startswith("[")), len(mid)):]
        own = mid[:len(mid) - len(sections)]
        defaults = [e for e in CA if not any(e.split("=")[0] == x.split("=")[0] for x in own)]
        m = issuer.issue(f"{name}-mid", f"/O=Matrix/CN={name} mid", defaults + own + BELOW + sections, issuer=f"{name}-root",
                         start=mid_days[0], end=mid_days[1])
        leaf_lines = list(leaf) if any(line.startswith("subjectAltName") for line in leaf) else [HOST_NAMES] + list(leaf)
        h = issuer.issue(f"{name}-host", leaf_subject or f"/O=Matrix/CN={name} host", leaf_lines + BELOW, issuer=f"{name}-mid",
                         start=leaf_days[0], end=leaf_days[1])
        cases.append(Case(name, accepted, [r], issuer.chain(name, h, m), issuer.key(f"{name}-host"), strongswan_departs))

    standard("valid", True)
    standard("leaf-expired", False, leaf_days=(-10, -1))
    standard("leaf-not-yet-valid", False, leaf_days=(1, 30))
    standard("intermediate-expired", False, mid_days=(-10, -1))
    standard("intermediate-not-yet-valid", False, mid_days=(1, 30))
    standard("ca-expired", False, root_days=(-10, -1))
    standard("ca-not-yet-valid", False, root_days=(1, 30))
    standard("intermediate-without-ca", False, mid=["basicConstraints=critical,CA:FALSE"])
    standard("intermediate-without-keycertsign", False, mid=["keyUsage=critical,digitalSignature"], strongswan_departs=KEY_CERT_SIGN_IGNORED)
    standard("unknown-critical-in-leaf", False, leaf=[UNKNOWN_CRITICAL])
    standard("unknown-critical-in-intermediate", False, mid=[UNKNOWN_CRITICAL])
    standard("unknown-extension-not-critical", True, leaf=["1.3.6.1.4.1.55555.1=ASN1:NULL"])
    # Name constraints in the intermediate, binding the leaf.
    for kind, subtree, inside, outside in (
            ("dns", "DNS:example.com", "DNS:vpn.example.com", "DNS:vpn.example.org"),
            ("ip", "IP:192.0.2.0/255.255.255.0", None, None),
            ("email", "email:example.com", "email:ops@example.com", "email:ops@example.org")):
        names = lambda extra: [HOST_NAMES + (", " + extra if extra else "")]
        standard(f"nc-{kind}-permitted-inside", True, mid=[f"nameConstraints=critical,permitted;{subtree}"], leaf=names(inside),
                 strongswan_departs=IP_CONSTRAINTS_UNPARSED if kind == "ip" else None)
        if kind == "ip":
            standard("nc-ip-permitted-outside", False, mid=["nameConstraints=critical,permitted;IP:198.51.100.0/255.255.255.0"])
        else:
            standard(f"nc-{kind}-permitted-outside", False, mid=[f"nameConstraints=critical,permitted;{subtree}"], leaf=names(outside))
        standard(f"nc-{kind}-excluded", False, mid=[f"nameConstraints=critical,excluded;{subtree}"], leaf=names(inside))
    for name, accepted, rule, organization in (("nc-dn-permitted-inside", True, "permitted", "Matrix"),
                                               ("nc-dn-permitted-outside", False, "permitted", "Elsewhere"),
                                               ("nc-dn-excluded", False, "excluded", "Matrix")):
        standard(name, accepted, mid=[f"nameConstraints=critical,{rule};dirName:dn_{name.replace('-', '_')}",
                                      f"[dn_{name.replace('-', '_')}]", f"O={organization}"])
    # Path length: the first intermediate allows none below it, a second one follows.
    for name, limit, accepted in (("path-length-exceeded", 0, False), ("path-length-kept", 1, True)):
        r = issuer.issue(f"{name}-root", f"/O=Matrix/CN={name} root", CA)
        m1 = issuer.issue(f"{name}-mid1", f"/O=Matrix/CN={name} mid1", [f"basicConstraints=critical,CA:TRUE,pathlen:{limit}"] + CA[1:] + BELOW,
                          issuer=f"{name}-root")
        m2 = issuer.issue(f"{name}-mid2", f"/O=Matrix/CN={name} mid2", CA + BELOW, issuer=f"{name}-mid1")
        h = issuer.issue(f"{name}-host", f"/O=Matrix/CN={name} host", [HOST_NAMES] + BELOW, issuer=f"{name}-mid2")
        cases.append(Case(name, accepted, [r], issuer.chain(name, h, m2, m1), issuer.key(f"{name}-host")))
    # Cross-signed: the same intermediate (name and key) under an expired old root and a good new one.
    old = issuer.issue("cross-old-root", "/O=Matrix/CN=cross old root", CA, start=-30, end=-1)
    new = issuer.issue("cross-new-root", "/O=Matrix/CN=cross new root", CA)
    by_old = issuer.issue("cross-mid-old", "/O=Matrix/CN=cross mid", CA + BELOW, issuer="cross-old-root", key="cross-mid")
    by_new = issuer.issue("cross-mid-new", "/O=Matrix/CN=cross mid", CA + BELOW, issuer="cross-new-root", key="cross-mid")
    issuer.issue("cross-mid", "/O=Matrix/CN=cross mid", CA + BELOW, issuer="cross-new-root")  # the signer's file for the leaf
    h = issuer.issue("cross-host", "/O=Matrix/CN=cross host", [HOST_NAMES] + BELOW, issuer="cross-mid")
    cases.append(Case("cross-signed-good-path-first", True, [old, new], issuer.chain("cross-good", h, by_new, by_old), issuer.key("cross-host")))
    cases.append(Case("cross-signed-expired-path-first", True, [old, new], issuer.chain("cross", h, by_old, by_new), issuer.key("cross-host"),
                      FIRST_PATH_ONLY))
    cases.append(Case("cross-signed-only-expired-path", False, [old], issuer.chain("cross-old", h, by_old), issuer.key("cross-host")))
    # RSA intermediates with exponent 1 and 0: with e = 1 the leaf's "signature" is its bare PKCS#1 encoding,
    # which a verifier that accepts the key would take as valid (a forgery without any private key).
    for exponent in (1, 0):
        name = f"rsa-exponent-{exponent}"
        r = issuer.issue(f"{name}-root", f"/O=Matrix/CN={name} root", CA)
        issuer.key(f"{name}-mid", ("RSA", "-pkeyopt", "rsa_keygen_bits:2048"))
        issuer.issue(f"{name}-mid", f"/O=Matrix/CN={name} mid", CA + BELOW, issuer=f"{name}-root")
        h = issuer.issue(f"{name}-host", f"/O=Matrix/CN={name} host", [HOST_NAMES] + BELOW, issuer=f"{name}-mid")
        with_unpadded_signature(h, 256)
        public = issuer.path(f"{name}-e", "pub")
        with open(public, "w") as f:
            f.write(rsa_public_key_pem(rsa_modulus(issuer.key(f"{name}-mid")), exponent))
        m = issuer.issue(f"{name}-mid", f"/O=Matrix/CN={name} mid", CA + BELOW, issuer=f"{name}-root", public_key=public)
        cases.append(Case(name, False, [r], issuer.chain(name, h, m), issuer.key(f"{name}-host")))
    # Signed by the wrong key: the leaf names the intermediate as issuer, another key signed it.
    r = issuer.issue("wrong-key-root", "/O=Matrix/CN=wrong-key root", CA)
    m = issuer.issue("wrong-key-mid", "/O=Matrix/CN=wrong-key mid", CA + BELOW, issuer="wrong-key-root")
    issuer.issue("wrong-key-impostor", "/O=Matrix/CN=wrong-key mid", CA, issuer="wrong-key-root")
    h = issuer.issue("wrong-key-host", "/O=Matrix/CN=wrong-key host", [HOST_NAMES], issuer="wrong-key-impostor")
    cases.append(Case("signature-by-wrong-key", False, [r], issuer.chain("wrong-key", h, m), issuer.key("wrong-key-host")))
    return cases


def ours(case):
    """IKEProxy's verdict and its reason."""
    args = [BINARY, "certificate-check", "--chain", case.chain, "--identity", HOST]
    for anchor in case.anchors:
        args += ["--ca", anchor]
    result = sh(*args, check=False)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def strongswans(case, charon, directory):
    """strongSwan's verdict in an IKE_AUTH: charon trusts the case's anchors only; the endpoint sends the chain."""
    read = lambda path: open(path, "rb").read()
    charon.session.clear_creds()  # no anchor of an earlier case is trusted in this one
    for anchor in case.anchors:
        charon.session.load_cert({"type": "X509", "flag": "CA", "data": read(anchor)})
    charon.session.load_conn({"c": {
        "version": "2", "local_addrs": [PEER], "remote_addrs": [HOST], "proposals": ["aes256gcm16-prfsha256-x25519"],
        "rekey_time": "0", "dpd_delay": "0",
        "local-1": {"auth": "psk", "id": PEER},
        "remote-1": {"auth": "pubkey", "id": HOST, "cacerts": [read(a) for a in case.anchors]},
        "children": {"ch": {"esp_proposals": ["aes256gcm16"], "mode": "tunnel", "start_action": "none",
                            "local_ts": [PEER], "remote_ts": [HOST]}}}})
    charon.session.load_shared({"id": "psk-1", "type": "IKE", "data": PSK, "owners": [PEER, HOST]})
    endpoint = Endpoint(directory, "aes256gcm16-prfsha256-x25519", "aes256gcm16", (PEER, HOST),
                        authentication={"local_auth": "pubkey", "certificate": case.chain, "private_key": case.key, "remote_auth": "psk"},
                        options={"psk": PSK})
    try:
        endpoint.command("initiate c")
        for _ in range(40):
            if endpoint.wait_event("child_sa_established", timeout=0.25):
                return True, "established"
            failed = endpoint.wait_event("ike_sa_failed", timeout=0.25)
            if failed:
                return False, failed.get("reason") or "failed"
        return False, "no answer in 20 s"
    finally:
        endpoint.stop()
        if charon.sas():
            try:
                list(charon.session.terminate({"ike": "c", "timeout": 2000, "force": "yes"}))
            except vici.exception.CommandException:
                pass  # gone already: the endpoint's SIGTERM deleted it
        charon.session.unload_conn({"name": "c"})


def verdict(accepted):
    return "accepted" if accepted else "refused"


def run(charon, directory):
    cases = build_cases(os.path.join(directory, "chains"))
    print(f"{len(cases)} chains in {directory}/chains")
    agreed = 0
    for case in cases:
        our_verdict, our_reason = ours(case)
        their_verdict, their_reason = strongswans(case, charon, directory)
        agreed += our_verdict == their_verdict
        theirs_expected = case.accepted != bool(case.strongswan_departs)
        check(our_verdict == case.accepted and their_verdict == theirs_expected,
              f"{case.name}: RFC 5280 {verdict(case.accepted)}; IKEProxy {verdict(our_verdict)} ({our_reason}); "
              f"strongSwan {verdict(their_verdict)} ({their_reason})"
              + (f"; known departure: {case.strongswan_departs}" if case.strongswan_departs else ""))
    departures = [case.name for case in cases if case.strongswan_departs]
    print(f"agreement: {agreed} of {len(cases)} chains; strongSwan departs from RFC 5280 on {len(departures)}: {', '.join(departures)}")
    check("carries the critical extension 1.3.6.1.4.1.55555.1" in sh(BINARY, "certificate-check", "--chain",
          os.path.join(directory, "chains", "unknown-critical-in-intermediate.chain.pem"), "--ca",
          os.path.join(directory, "chains", "unknown-critical-in-intermediate-root.pem"), check=False).stdout,
          "the refusal of an unknown critical extension names it")


def main():
    return run_with_charon("certificate_matrix", "ikp-matrix-", Network, run, PEER_NS, tools=("openssl", "ip"),
                           paths=("/usr/lib/ipsec/charon", BINARY))


if __name__ == "__main__":
    sys.exit(main())
