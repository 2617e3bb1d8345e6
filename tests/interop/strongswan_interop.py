#!/usr/bin/env python3
"""Interop tests: `ikeproxy endpoint` against a real strongSwan (charon + kernel-libipsec) in network namespaces.

Each case loads one connection into charon over VICI, runs the project's endpoint in its own namespace and
checks that both sides report the same IKE and CHILD SPIs and transforms, for exchanges started by either
side: establishment, CHILD_SA rekey, IKE_SA rekey and delete. With --show-keys, the CHILD_SA keys the
endpoint prints are compared with the ones charon logs at level 4. A last case makes both sides rekey the
same CHILD SA, then the same IKE SA, at once (RFC 7296 sections 2.8.1 and 2.8.2) and checks that they
settle on one and the same SA.

Needs root, iproute2, strongSwan and the `vici` Python module; it fails loudly if any is missing.
"""
import json, os, re, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib.endpoint  # noqa: E402
from lib.host import BINARY, Lab, ROOT, ns, sh  # noqa: E402
from lib.peer import decode, Charon, normalized_ts  # noqa: E402
from lib.report import REPORT, check  # noqa: E402
from lib.servers import CRLServer, OCSPResponder  # noqa: E402

import vici
import vici.exception

PEER_NS, EP_NS = "ikp-sw-peer", "ikp-sw-ep"
V4 = ("192.0.2.1", "192.0.2.2")
V6 = ("2001:db8::1", "2001:db8::2")


class Network(Lab):
    namespaces = (PEER_NS, EP_NS)

    def build(self):
        sh("ip", "link", "add", "ikp-sw0", "netns", PEER_NS, "type", "veth", "peer", "name", "ikp-sw1", "netns", EP_NS)
        for name, dev, (a4, a6) in ((PEER_NS, "ikp-sw0", (V4[0], V6[0])), (EP_NS, "ikp-sw1", (V4[1], V6[1]))):
            ns(name, "ip", "addr", "add", a4 + "/24", "dev", dev)
            ns(name, "ip", "addr", "add", a6 + "/64", "dev", dev, "nodad")
            ns(name, "ip", "link", "set", dev, "up")


class Endpoint(lib.endpoint.Endpoint):
    namespace = EP_NS


def stop_both(endpoint, charon):
    """The end of a case, whatever happened: the endpoint if it still runs, then charon."""
    if endpoint.process.poll() is None:
        endpoint.stop()
    charon.stop()


def start(initiator, endpoint, charon):
    """Connection "c" started by ikeproxy (its control pipe) or by strongSwan (VICI, waiting for the CHILD SA)."""
    if initiator == "ikeproxy":
        endpoint.command("initiate c")
    else:
        list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))




def compare(sa, event, label, initiated_here):
    """Both sides report the same SPIs and transforms."""
    child = event["child"]
    children = [c for c in sa.get("child-sas", {}).values() if c["state"] == b"INSTALLED"]
    theirs = [c for c in children if decode(c["spi-in"]) == child["spi_out"]]
    ok = check(decode(sa["initiator-spi"]) == event["ike_spi_i"] and decode(sa["responder-spi"]) == event["ike_spi_r"],
               f"{label}: IKE SPIs agree ({event['ike_spi_i']}_{event['ike_spi_r']})")
    if not check(len(theirs) == 1, f"{label}: strongSwan has CHILD SA with spi-in {child['spi_out']}"):
        return False
    c = theirs[0]
    ok &= check(decode(c["spi-out"]) == child["spi_in"], f"{label}: CHILD SPIs agree in/out {child['spi_in']}/{child['spi_out']}")
    enc = decode(c["encr-alg"]) + ("_" + decode(c["encr-keysize"]) if "encr-keysize" in c else "")
    ok &= check(enc == child["encryption"], f"{label}: ESP encryption {enc} == {child['encryption']}")
    if "integ-alg" in c:
        # strongSwan drops the IANA "AUTH_" prefix of integrity transform names.
        ok &= check("AUTH_" + decode(c["integ-alg"]) == child["integrity"], f"{label}: ESP integrity {decode(c['integ-alg'])}")
    else:
        ok &= check(child["integrity"] is None, f"{label}: no ESP integrity on either side")
    proposal = event["ike_proposal"]
    ike_enc = decode(sa["encr-alg"]) + ("_" + decode(sa["encr-keysize"]) if "encr-keysize" in sa else "")
    ok &= check(ike_enc == proposal["encryption"], f"{label}: IKE encryption {ike_enc}")
    ok &= check(decode(sa["prf-alg"]) == proposal["prf"], f"{label}: PRF {decode(sa['prf-alg'])}")
    ok &= check(decode(sa["dh-group"]) == proposal["dh_group"], f"{label}: DH group {decode(sa['dh-group'])}")
    strongswan_initiated = sa.get("initiator") == b"yes"
    ok &= check(strongswan_initiated != initiated_here, f"{label}: strongSwan is {'responder' if initiated_here else 'initiator'}")
    return ok


def compare_keys(charon, event, label, initiated_here):
    keys = charon.child_keys()
    if not check(keys is not None, f"{label}: charon logged CHILD SA keys"):
        return
    ours = event["child"]["keys"]
    # Keys are named after the exchange initiator: its outbound keys come first (RFC 7296 section 2.17).
    out_side, in_side = ("initiator", "responder") if initiated_here else ("responder", "initiator")
    check(ours["encryption_out"] == keys[f"encryption {out_side} key"] and ours["encryption_in"] == keys[f"encryption {in_side} key"],
          f"{label}: CHILD SA encryption keys equal charon's ({ours['encryption_out'][:16]}...)")
    if event["child"]["integrity"]:
        check(ours["integrity_out"] == keys.get(f"integrity {out_side} key") and ours["integrity_in"] == keys.get(f"integrity {in_side} key"),
              f"{label}: CHILD SA integrity keys equal charon's ({ours['integrity_out'][:16]}...)")


def ike_sa(charon, event):
    for sa in charon.sas():
        if decode(sa["initiator-spi"]) == event["ike_spi_i"]:
            return sa
    return {}


def initiated_by_endpoint(directory, ike, esp, addresses):
    """charon loaded with one connection and the endpoint initiating it: (charon, endpoint, the endpoint's
    child_sa_established event or None)."""
    charon = Charon(directory, PEER_NS)
    charon.load(ike, esp, (addresses[0], addresses[1]))
    endpoint = Endpoint(directory, ike, esp, addresses)
    endpoint.command("initiate c")
    return charon, endpoint, endpoint.wait_event("child_sa_established")


def run_case(directory, ike, esp, addresses, family, full):
    print(f"case {ike} / {esp} over {family}", flush=True)
    # 1. The project initiates.
    charon, endpoint, event = initiated_by_endpoint(directory, ike, esp, addresses)
    try:
        label = f"{family} {ike} initiated by ikeproxy"
        if check(event is not None, f"{label}: endpoint reports a CHILD SA") and charon.established():
            compare(ike_sa(charon, event), event, label, True)
            compare_keys(charon, event, label, True)
            if full:
                endpoint.command("rekey-child c")
                rekeyed = endpoint.wait_event("child_sa_rekeyed")
                if check(rekeyed is not None, f"{label}: CHILD SA rekey by ikeproxy reported"):
                    check(charon.wait(lambda sas: any(decode(c["spi-in"]) == rekeyed["child"]["spi_out"] for s in sas
                                                      for c in s.get("child-sas", {}).values())) and
                          charon.wait(lambda sas: all(decode(c["spi-in"]) != event["child"]["spi_out"] for s in sas
                                                      for c in s.get("child-sas", {}).values())),
                          f"{label}: strongSwan has the new CHILD SA and dropped the old one")
                    compare(ike_sa(charon, rekeyed), rekeyed, label + " after CHILD rekey", True)
                endpoint.command("rekey-ike c")
                ike_rekeyed = endpoint.wait_event("ike_sa_rekeyed")
                if check(ike_rekeyed is not None, f"{label}: IKE SA rekey by ikeproxy reported"):
                    check(charon.wait(lambda sas: len(sas) == 1 and decode(sas[0]["initiator-spi"]) == ike_rekeyed["ike_spi_i"]
                                      and decode(sas[0]["responder-spi"]) == ike_rekeyed["ike_spi_r"]),
                          f"{label}: strongSwan lists only the rekeyed IKE SA {ike_rekeyed['ike_spi_i']}_{ike_rekeyed['ike_spi_r']}")
                endpoint.command("delete-child c")
                check(endpoint.wait_event("child_sa_deleted", count=2) is not None, f"{label}: CHILD SA delete by ikeproxy reported")
                check(charon.wait(lambda sas: all(not s.get("child-sas") for s in sas)), f"{label}: strongSwan removed the CHILD SA")
                endpoint.command("delete-ike c")
                check(endpoint.wait_event("ike_sa_deleted") is not None, f"{label}: IKE SA delete by ikeproxy reported")
                check(charon.wait(lambda sas: not sas), f"{label}: strongSwan removed the IKE SA")
            else:
                endpoint.command("delete-ike c")
                check(endpoint.wait_event("ike_sa_deleted") is not None, f"{label}: IKE SA deleted")
                check(charon.wait(lambda sas: not sas), f"{label}: strongSwan removed the IKE SA")
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        check(not os.path.exists(endpoint.fifo), f"{label}: endpoint removed its control pipe")

        # 2. strongSwan initiates.
        label = f"{family} {ike} initiated by strongSwan"
        endpoint = Endpoint(directory, ike, esp, addresses)
        list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))
        event = endpoint.wait_event("child_sa_established")
        if check(event is not None, f"{label}: endpoint reports a CHILD SA") and charon.established():
            compare(ike_sa(charon, event), event, label, False)
            compare_keys(charon, event, label, False)
            if full:
                list(charon.session.rekey({"child": "ch"}))
                rekeyed = endpoint.wait_event("child_sa_rekeyed")
                if check(rekeyed is not None, f"{label}: CHILD SA rekey by strongSwan reported"):
                    check(endpoint.wait_event("child_sa_deleted") is not None, f"{label}: old CHILD SA deleted after rekey")
                    compare(ike_sa(charon, rekeyed), rekeyed, label + " after CHILD rekey", False)
                list(charon.session.rekey({"ike": "c"}))
                ike_rekeyed = endpoint.wait_event("ike_sa_rekeyed")
                if check(ike_rekeyed is not None, f"{label}: IKE SA rekey by strongSwan reported"):
                    check(charon.wait(lambda sas: len(sas) == 1 and decode(sas[0]["initiator-spi"]) == ike_rekeyed["ike_spi_i"]),
                          f"{label}: both sides agree on the rekeyed IKE SA {ike_rekeyed['ike_spi_i']}_{ike_rekeyed['ike_spi_r']}")
                list(charon.session.terminate({"child": "ch", "timeout": 5000}))
                check(endpoint.wait_event("child_sa_deleted", count=2) is not None, f"{label}: CHILD SA delete by strongSwan reported")
            list(charon.session.terminate({"ike": "c", "timeout": 5000}))
            check(endpoint.wait_event("ike_sa_deleted") is not None, f"{label}: IKE SA delete by strongSwan reported")
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        charon.stop()


def block_udp(namespace, blocked):
    """Drops (or stops dropping) every UDP datagram the namespace sends: a link that loses IKE on purpose."""
    ns(namespace, "nft", "delete", "table", "inet", "ikp_block", check=False)
    if blocked:
        ns(namespace, "nft", "add table inet ikp_block; add chain inet ikp_block out { type filter hook output priority 0 ; } ; "
                             "add rule inet ikp_block out meta l4proto udp drop")


def live_children(endpoint):
    """Inbound SPIs of the CHILD SAs the endpoint reported and has not reported gone."""
    endpoint.wait_event("none", timeout=0.3)  # reads what the endpoint printed meanwhile
    live = set()
    for e in endpoint.events:
        if e["event"] in ("child_sa_established", "child_sa_rekeyed"):
            live.add(e["child"]["spi_in"])
        elif e["event"] == "child_sa_deleted":
            live.discard(e["child"]["spi_in"])
    return live


def settled(charon, endpoint, fresh, timeout=30):
    """Waits until strongSwan has one IKE SA of 'c' with one CHILD SA and nothing else, both satisfying
    `fresh(sa, child)`, and the endpoint has one live CHILD SA; returns (IKE SA, CHILD SA, our live set,
    what strongSwan listed) as last seen."""
    deadline = time.time() + timeout
    while True:
        listed = charon.sas()
        # A redundant IKE SA strongSwan keeps in REKEYED state, without CHILD SAs, until the other side deletes it
        # or it gives up waiting, is not in use; the loser cannot delete it when the winner closed the old IKE SA
        # before the loser's own rekey was answered (RFC 7296 section 2.25.2).
        sas = [s for s in listed if not (s["state"] == b"REKEYED" and not s.get("child-sas"))]
        children = [c for s in sas for c in s.get("child-sas", {}).values()]
        live = live_children(endpoint)
        done = (len(sas) == 1 and len(children) == 1 and children[0]["state"] == b"INSTALLED" and len(live) == 1
                and fresh(sas[0], children[0]))
        if done or time.time() > deadline:
            return (sas[0] if done else None), (children[0] if done else None), live, \
                [(decode(s["initiator-spi"]), decode(s["state"]), [decode(c["state"]) for c in s.get("child-sas", {}).values()]) for s in listed]


def crossed(start_ours, start_theirs):
    """Starts an exchange on both sides with their requests lost, then lets the link heal one way at a time so
    that each side gets the other's request while its own is still unanswered (a true crossing): ikeproxy
    retransmits after 1 s and 3 s, charon after 2 s and 5.6 s (retransmit_timeout 2, base 1.8)."""
    block_udp(EP_NS, True)
    block_udp(PEER_NS, True)
    t0 = time.time()
    start_ours()
    start_theirs()
    time.sleep(max(0, t0 + 2.4 - time.time()))
    block_udp(EP_NS, False)     # our retransmission at +3 s reaches charon, which answers into the void
    time.sleep(max(0, t0 + 4.4 - time.time()))
    block_udp(PEER_NS, False)   # charon's at +5.6 s reaches us; ours at +7 s gets charon's cached answer


def endpoint_log(directory):
    with open(os.path.join(directory, "endpoint.log"), errors="replace") as f:
        return f.read()


def run_collision_case(directory, ike, esp, addresses):
    print(f"case simultaneous rekeys, {ike} / {esp}", flush=True)
    label = "simultaneous rekey"
    charon, endpoint, first = initiated_by_endpoint(directory, ike, esp, addresses)
    try:
        if not (check(first is not None, f"{label}: endpoint reports a CHILD SA") and charon.established()):
            return
        # Both sides rekey the CHILD SA at once.
        crossed(lambda: endpoint.command("rekey-child c"), lambda: list(charon.session.rekey({"child": "ch"})))
        sa, child, live, sas = settled(charon, endpoint, lambda sa, child: decode(child["spi-in"]) != first["child"]["spi_out"])
        log = endpoint_log(directory)
        how = re.search(r"simultaneous rekey of CHILD SA \S+ settled: ([^\n]*)", log)
        check(how is not None, f"{label}: ikeproxy saw the CHILD SA rekeys cross and settled them"
                               + (f" ({how.group(1)})" if how else ""))
        if check(child is not None, f"{label}: one new CHILD SA left on each side (strongSwan lists {sas}, ours {sorted(live)})"):
            check(decode(child["spi-out"]) in live,
                  f"{label}: both keep the same new CHILD SA {decode(child['spi-out'])}/{decode(child['spi-in'])}")
        # Both sides rekey the IKE SA at once.
        before = len([e for e in endpoint.events if e["event"] == "ike_sa_rekeyed"])
        crossed(lambda: endpoint.command("rekey-ike c"), lambda: list(charon.session.rekey({"ike": "c"})))
        def ours_now(sa, child):
            reported = [e for e in endpoint.events if e["event"] == "ike_sa_rekeyed"][before:]
            return bool(reported) and (decode(sa["initiator-spi"]), decode(sa["responder-spi"])) == (reported[-1]["ike_spi_i"], reported[-1]["ike_spi_r"])
        sa, child, live, sas = settled(charon, endpoint, ours_now)
        log = endpoint_log(directory)
        how = re.search(r"simultaneous rekey of IKE SA \S+ settled: ([^\n]*)", log)
        check(how is not None, f"{label}: ikeproxy saw the IKE SA rekeys cross and settled them"
                               + (f" ({how.group(1)})" if how else ""))
        # Whose new IKE SA stayed, as ikeproxy says; strongSwan's listing must show the same roles.
        ours_stayed = how is not None and ("ours will stay" in how.group(1) or "so our IKE SA stays" in how.group(1))
        ours = [e for e in endpoint.events if e["event"] == "ike_sa_rekeyed"]
        if check(sa is not None and len(ours) > before, f"{label}: one new IKE SA left on strongSwan ({sas}), ikeproxy reported it"):
            check(decode(sa["initiator-spi"]) == ours[-1]["ike_spi_i"] and decode(sa["responder-spi"]) == ours[-1]["ike_spi_r"],
                  f"{label}: both keep the same new IKE SA {ours[-1]['ike_spi_i']}_{ours[-1]['ike_spi_r']}")
            check(child is not None and decode(child["spi-out"]) in live, f"{label}: the CHILD SA moved with it on both sides")
        check(not any(e["event"] in ("child_sa_deleted", "ike_sa_deleted") and e.get("child", {}) and e["child"]["spi_in"] in live
                      for e in endpoint.events), f"{label}: the surviving CHILD SA was never reported gone")
        # The surviving IKE SA works: strongSwan rekeys the CHILD SA under it.
        list(charon.session.rekey({"child": "ch"}))
        count = len([e for e in endpoint.events if e["event"] == "child_sa_rekeyed"])
        rekeyed = endpoint.wait_event("child_sa_rekeyed", count=count + 1)
        if check(rekeyed is not None, f"{label}: a CHILD SA rekey under the surviving IKE SA is reported"):
            sa, child, live, sas = settled(charon, endpoint, lambda sa, child: decode(child["spi-in"]) == rekeyed["child"]["spi_out"])
            if check(sa is not None, f"{label}: strongSwan settles on that CHILD SA ({sas})"):
                compare(sa, rekeyed, label + " afterwards, " + ("ikeproxy's" if ours_stayed else "strongSwan's") + " new IKE SA", ours_stayed)
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        block_udp(EP_NS, False)
        block_udp(PEER_NS, False)
        charon.stop()


def make_certificates(directory, keys, peer_extension="", ca_key=("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")):
    """A CA (key type `ca_key`) and two end-entity certificates from it, for strongSwan and ikeproxy with the
    key types given (openssl -newkey arguments), each naming its address in subjectAltName; and a second CA
    that issued nothing either side uses."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    paths = {}
    for ca in ("ca", "other-ca"):
        cert, key = os.path.join(directory, f"{ca}.pem"), os.path.join(directory, f"{ca}.key")
        openssl("req", "-x509", *ca_key, "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                "-subj", f"/O=IKEProxy interop/CN={ca}", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        paths[ca] = (cert, key)
    for (name, address), newkey in zip((("strongswan", V4[0]), ("ikeproxy", V4[1])), keys):
        cert, key, csr = (os.path.join(directory, f"{name}.{ext}") for ext in ("pem", "key", "csr"))
        openssl("req", "-new", *newkey, "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/O=IKEProxy interop/CN={name}")
        extensions = os.path.join(directory, f"{name}.ext")
        with open(extensions, "w") as f:
            f.write(f"subjectAltName=IP:{address}\nkeyUsage=critical,digitalSignature\n" + (peer_extension if name == "strongswan" else ""))
        openssl("x509", "-req", "-in", csr, "-CA", paths["ca"][0], "-CAkey", paths["ca"][1], "-CAcreateserial", "-out", cert,
                "-days", "2", "-extfile", extensions)
        paths[name] = (cert, key)
    return paths


CERTIFICATE_KEYS = {
    # strongSwan's and ikeproxy's keys; how strongSwan names ikeproxy's signature once verified (both sides
    # announce SHA-2 in SIGNATURE_HASH_ALGORITHMS, so the AUTH method is RFC 7427's); each side's local
    # auth; and how ikeproxy's log names strongSwan's signature.
    "ECDSA": ((["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"], ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]),
              r"ECDSA_WITH_SHA384_DER", "pubkey", "pubkey", r"ECDSA with SHA-\d+"),
    "RSA": ((["-newkey", "rsa:2048"], ["-newkey", "rsa:3072"]), r"RSA_EMSA_PKCS1_SHA2_256", "pubkey", "pubkey", r"RSA PKCS#1 v1\.5 with SHA-\d+"),
    # RSASSA-PSS both ways: strongSwan told to sign with it, ikeproxy with local_auth "rsa/pss".
    "RSA-PSS": ((["-newkey", "rsa:2048"], ["-newkey", "rsa:3072"]), r"RSA_EMSA_PSS_SHA2_256_SALT_32", "rsa/pss", "rsa/pss-sha256", r"RSASSA-PSS with SHA-256"),
    # RFC 8420: both keys and the CA Ed25519; each side lists the Identity hash, so each signs with Ed25519.
    "Ed25519": ((["-newkey", "ed25519"], ["-newkey", "ed25519"]), r"ED25519", "pubkey", "pubkey", r"Ed25519"),
}
# The CA's own key where it is not the P-256 default: an Ed25519 CA signs the certificates and the CRL.
CA_KEYS = {"Ed25519": ("-newkey", "ed25519")}


def load_certificate_peer(charon, paths, ike, esp, charon_auth="pubkey", remote_extra=None):
    """strongSwan as 192.0.2.1 with its certificate and key from `paths`, trusting the CA, connection "c"
    to ikeproxy at 192.0.2.2 authenticated by certificate both ways."""
    read = lambda path: open(path, "rb").read()
    peer, local = V4
    charon.session.load_cert({"type": "X509", "flag": "CA", "data": read(paths["ca"][0])})
    charon.session.load_key({"type": "any", "data": read(paths["strongswan"][1])})
    charon.session.load_conn({"c": {
        "version": "2", "local_addrs": [peer], "remote_addrs": [local], "proposals": [ike],
        "encap": "yes", "rekey_time": "0", "dpd_delay": "0",
        "local-1": {"auth": charon_auth, "id": peer, "certs": [read(paths["strongswan"][0])]},
        "remote-1": dict({"auth": "pubkey", "id": local, "cacerts": [read(paths["ca"][0])]}, **(remote_extra or {})),
        "children": {"ch": {"esp_proposals": [esp], "mode": "tunnel", "start_action": "none",
                            "rekey_time": "0", "local_ts": [peer], "remote_ts": [local]}}}})


def run_certificate_case(directory, ike, esp, kind):
    """Both sides authenticate with certificates from one CA (ECDSA: strongSwan P-256, ikeproxy P-384; RSA:
    2048 and 3072 bits; Ed25519: both keys and the CA), each side initiating in turn; then ikeproxy trusts another CA and strongSwan's
    certificate is refused."""
    print(f"case {kind} certificates, {ike} / {esp}", flush=True)
    keys, signature_name, our_auth, charon_auth, our_name_of_theirs = CERTIFICATE_KEYS[kind]
    paths = make_certificates(directory, keys, **({"ca_key": CA_KEYS[kind]} if kind in CA_KEYS else {}))
    charon = Charon(directory, PEER_NS)
    try:
        load_certificate_peer(charon, paths, ike, esp, charon_auth=charon_auth)
        ours = {"local_auth": our_auth, "certificate": paths["ikeproxy"][0], "private_key": paths["ikeproxy"][1],
                "remote_auth": "pubkey", "ca_certificates": [paths["ca"][0]]}
        for initiator in ("ikeproxy", "strongSwan"):
            label = f"{kind} certificates, initiated by {initiator}"
            endpoint = Endpoint(directory, ike, esp, V4, authentication=ours)
            start(initiator, endpoint, charon)
            event = endpoint.wait_event("child_sa_established")
            if check(event is not None, f"{label}: endpoint reports a CHILD SA") and charon.established():
                compare(ike_sa(charon, event), event, label, initiator == "ikeproxy")
                log = endpoint_log(directory)
                check("authenticated by certificate CN=strongswan" in log
                      and re.search(r"\(RFC 7427 digital signature, " + our_name_of_theirs + r"\)", log) is not None,
                      f"{label}: ikeproxy verified strongSwan's certificate chain, name and {kind} signature (RFC 7427)")
                charon_log = open(charon.log, errors="replace").read()
                check(re.search(r"authentication of '192\.0\.2\.2' with " + signature_name + " successful", charon_log) is not None,
                      f"{label}: strongSwan verified ikeproxy's {signature_name} signature and certificate")
                list(charon.session.terminate({"ike": "c", "timeout": 5000}))
                check(endpoint.wait_event("ike_sa_deleted") is not None, f"{label}: IKE SA deleted")
            check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
            if kind.startswith("RSA"):
                # RSA certificates make IKE_AUTH longer than charon's fragment size (1000 here) and ours (1280):
                # both announced RFC 7383 support, so both cut their IKE_AUTH into SKF fragments.
                stops = [line for line in endpoint_log(directory).splitlines() if "stopping; counters" in line]
                charon_log = open(charon.log, errors="replace").read()
                check(stops and "messages_fragmented=" in stops[-1] and "fragments_received=" in stops[-1]
                      and re.search(r"received fragment #\d+ of \d+", charon_log) is not None,
                      f"{label}: IKE_AUTH went as RFC 7383 fragments both ways ({stops[-1].split('counters: ')[-1].strip() if stops else 'no counters'})")
        if kind == "RSA-PSS":
            return  # the refusals below do not depend on the signature scheme; the RSA case has them
        # ikeproxy trusts only another CA: strongSwan's certificate does not chain to it.
        label = f"{kind} certificates, untrusted CA"
        endpoint = Endpoint(directory, ike, esp, V4, authentication=dict(ours, ca_certificates=[paths["other-ca"][0]]))
        try:
            list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 5000}))
            refused_at_peer = False
        except vici.exception.CommandException:
            refused_at_peer = True
        check(refused_at_peer, f"{label}: strongSwan's initiation fails (AUTHENTICATION_FAILED)")
        failed = endpoint.wait_event("ike_sa_failed", timeout=10)
        check(failed is not None and "does not chain to a trusted CA" in (failed.get("reason") or ""),
              f"{label}: ikeproxy refuses strongSwan's certificate ({failed.get('reason') if failed else 'no failure reported'})")
        check(not endpoint.wait_event("child_sa_established", timeout=1) and not [s for s in charon.sas() if s["state"] == b"ESTABLISHED"],
              f"{label}: no SA on either side")
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        # The CA revokes strongSwan's certificate while ikeproxy runs: its CRL file first revokes nothing and
        # strongSwan gets in; the CA publishes a CRL revoking it, ikeproxy is told with SIGHUP (a reload of the
        # credentials), and strongSwan is refused from then on, whatever the signature.
        label = f"{kind} certificates, revoked"
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        from make_crl import make_crl
        crl = os.path.join(directory, "ca.crl")
        make_crl(paths["ca"][0], paths["ca"][1], crl, [])
        endpoint = Endpoint(directory, ike, esp, V4, authentication=dict(ours, crls=[crl]))
        list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))
        check(endpoint.wait_event("child_sa_established") is not None, f"{label}: before the CA revokes it, strongSwan gets in")
        list(charon.session.terminate({"ike": "c", "timeout": 5000}))
        endpoint.wait_event("ike_sa_deleted")
        make_crl(paths["ca"][0], paths["ca"][1], crl, [paths["strongswan"][0]])
        endpoint.process.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "revoking 1 certificate(s)" not in endpoint_log(directory) and time.time() < deadline:
            time.sleep(0.1)
        check("reload: connection 'c': our certificate" in endpoint_log(directory) and "revoking 1 certificate(s)" in endpoint_log(directory),
              f"{label}: SIGHUP made ikeproxy read its certificate, CAs and the new CRL again")
        try:
            list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 5000}))
        except vici.exception.CommandException:
            pass
        failed = endpoint.wait_event("ike_sa_failed", timeout=10)
        check(failed is not None and "is revoked by the CRL of" in (failed.get("reason") or ""),
              f"{label}: ikeproxy refuses strongSwan's revoked certificate ({failed.get('reason') if failed else 'no failure reported'})")
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        charon.stop()


def run_ocsp_case(directory, ike, esp, kind="OCSP"):
    """strongSwan's certificate names where its status is published: an OCSP responder (Authority
    Information Access) or a CRL (CRL Distribution Points). ikeproxy asks or fetches during IKE_AUTH, in
    both roles: good lets the SA up, revoked refuses it, and no answer is judged by the connection's
    `revocation` (relaxed accepts, ifuri and strict refuse)."""
    print(f"case {kind} revocation, {ike} / {esp}", flush=True)
    keys = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"], ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    source = "OCSP http://127.0.0.1:8080/" if kind != "CRL" else "CRL http://127.0.0.1:8081/ca.crl"
    extension = {"OCSP": "authorityInfoAccess=OCSP;URI:http://127.0.0.1:8080/\n",
                 "CRL": "crlDistributionPoints=URI:http://127.0.0.1:8081/ca.crl\n",
                 # Both, with no OCSP responder running: the CRL decides, as strongSwan falls back.
                 "OCSP+CRL": "authorityInfoAccess=OCSP;URI:http://127.0.0.1:8080/\ncrlDistributionPoints=URI:http://127.0.0.1:8081/ca.crl\n"}[kind]
    paths = make_certificates(directory, keys, peer_extension=extension)
    # The responder runs beside ikeproxy (on its loopback): in the peer's namespace, kernel-libipsec routes
    # everything for 192.0.2.2 into its tunnel once it holds the SA, so answers would not come back when
    # ikeproxy initiates.
    responder = OCSPResponder(directory, paths["ca"], EP_NS) if kind == "OCSP" else CRLServer(directory, paths["ca"], EP_NS)
    charon = Charon(directory, PEER_NS)
    try:
        load_certificate_peer(charon, paths, ike, esp, remote_extra={"revocation": "relaxed"})
        ours = {"local_auth": "pubkey", "certificate": paths["ikeproxy"][0], "private_key": paths["ikeproxy"][1],
                "remote_auth": "pubkey", "ca_certificates": [paths["ca"][0]]}
        # (label, what the responder says, revocation policy, who initiates, expected outcome, text in the log or reason)
        revoked_text = "is revoked (revoked through OCSP" if kind == "OCSP" else "is listed in the CRL at http://127.0.0.1:8081/ca.crl"
        if kind == "OCSP+CRL":
            steps = (("OCSP unreachable, CRL good, ifuri", "good", "ifuri", "strongSwan", True, "judged by the CRL the certificate names"),
                     ("OCSP unreachable, CRL lists it", "revoked", "ifuri", "ikeproxy", False, revoked_text))
        else:
            steps = (("good answer, strict", "good", "strict", "strongSwan", True, f"not revoked ({source})"),
                     ("good answer, ikeproxy initiating", "good", "relaxed", "ikeproxy", True, f"not revoked ({source})"),
                     ("revoked", "revoked", "relaxed", "strongSwan", False, revoked_text),
                     ("revoked, ikeproxy initiating", "revoked", "relaxed", "ikeproxy", False, revoked_text),
                     ("no responder, relaxed", None, "relaxed", "strongSwan", True, "accepted, revocation is relaxed"),
                     ("no responder, ifuri", None, "ifuri", "strongSwan", False, "and revocation is ifuri"))
        for label, answer, policy, initiator, accepted, text in steps:
            label = f"{kind} {label}"
            if answer is None:
                responder.stop()
            else:
                responder.serve(paths["strongswan"][0], revoked=(answer == "revoked"))
            endpoint = Endpoint(directory, ike, esp, V4, authentication=dict(ours, revocation=policy))
            started = time.time()
            if initiator == "ikeproxy":
                endpoint.command("initiate c")
            else:
                try:
                    list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 15000}))
                except vici.exception.CommandException:
                    pass
            if accepted:
                event = endpoint.wait_event("child_sa_established", timeout=15)
                log = endpoint_log(directory)
                check(event is not None and charon.established() and text in log,
                      f"{label}: SA established after the revocation check ({text!r} in the log, {time.time() - started:.1f} s)")
                list(charon.session.terminate({"ike": "c", "timeout": 5000}))
                endpoint.wait_event("ike_sa_deleted", timeout=5)
                if kind == "OCSP" and label.endswith("strict"):
                    # Again with the same endpoint: the answer is kept until its nextUpdate (a day here, capped
                    # at ocsp_cache_limit, an hour by default), so nobody is asked this time.
                    list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 15000}))
                    again = endpoint.wait_event("child_sa_established", count=2, timeout=15)
                    check(again is not None and "(OCSP answer kept from an earlier check)" in endpoint_log(directory),
                          f"{label}: a second IKE_AUTH is judged by the kept OCSP answer")
                    list(charon.session.terminate({"ike": "c", "timeout": 5000}))
                    endpoint.wait_event("ike_sa_deleted", count=2, timeout=5)
            else:
                failed = endpoint.wait_event("ike_sa_failed", timeout=15)
                reason = (failed or {}).get("reason") or ""
                check(failed is not None and text in reason and not endpoint.wait_event("child_sa_established", timeout=1),
                      f"{label}: refused ({reason or 'no failure reported'})")
                time.sleep(1)
                check(not [s for s in charon.sas() if s["state"] == b"ESTABLISHED"], f"{label}: no SA on strongSwan's side either")
                for sa in charon.sas():
                    for name in sa:
                        try:
                            list(charon.session.terminate({"ike": name, "timeout": 2000, "force": "yes"}))
                        except Exception:
                            pass
            check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        responder.stop()
        charon.stop()


def run_childless_case(directory, ike, esp, addresses):
    """RFC 6023 with strongSwan's `childless` option: each side sets up an IKE SA without a CHILD SA in IKE_AUTH
    (childless = force on its side), the CHILD SA following with CREATE_CHILD_SA and a key exchange of its own
    (the ESP proposal names x25519); then strongSwan refuses childless SAs (never) and ikeproxy's forced
    childless initiation fails with the reason; and the same with the roles swapped: ikeproxy's `never` makes
    strongSwan's forced initiation stop after IKE_SA_INIT, its `force` refuses an IKE_AUTH carrying a CHILD SA."""
    pfs = esp + "-x25519"
    print(f"case childless IKE SAs, {ike} / {pfs}", flush=True)
    charon = Charon(directory, PEER_NS)
    try:
        for initiator, theirs, ours in (("strongSwan", "force", "allow"), ("ikeproxy", "allow", "force")):
            label = f"childless, initiated by {initiator}"
            charon.load(ike, pfs, addresses, options={"childless": theirs})
            endpoint = Endpoint(directory, ike, pfs, addresses, options={"childless": ours})
            start(initiator, endpoint, charon)
            event = endpoint.wait_event("child_sa_established")
            if check(event is not None, f"{label}: endpoint reports a CHILD SA") and charon.established():
                sa = ike_sa(charon, event)
                compare(sa, event, label, initiator == "ikeproxy")
                children = [c for c in sa.get("child-sas", {}).values() if decode(c["spi-in"]) == event["child"]["spi_out"]]
                check(children and decode(children[0].get("dh-group", b"")) == "CURVE_25519",
                      f"{label}: strongSwan's CHILD SA ran its own key exchange ({decode(children[0].get('dh-group', b'none')) if children else 'no SA'})")
                charon_log = open(charon.log, errors="replace").read()
                verb = "generating" if initiator == "strongSwan" else "parsed"
                auth_requests = re.findall(verb + r" IKE_AUTH request 1 \[([^\]]*)\]", charon_log)
                check(auth_requests and " SA " not in auth_requests[-1] and " TSi " not in auth_requests[-1],
                      f"{label}: IKE_AUTH carried no CHILD SA (strongSwan: [{auth_requests[-1].strip() if auth_requests else 'not logged'}])")
                creates = re.findall(verb + r" CREATE_CHILD_SA request \d+ \[([^\]]*)\]", charon_log)
                check(creates and " KE " in creates[-1], f"{label}: the CHILD SA came with CREATE_CHILD_SA [{creates[-1].strip() if creates else 'none'}]")
                ours_said = "IKE_AUTH without a CHILD SA (childless, RFC 6023)" if initiator == "ikeproxy" else "childless IKE_AUTH, RFC 6023"
                check(ours_said in endpoint_log(directory), f"{label}: ikeproxy logged the childless IKE_AUTH")
                list(charon.session.terminate({"ike": "c", "timeout": 5000}))
                check(endpoint.wait_event("ike_sa_deleted") is not None, f"{label}: IKE SA deleted")
            check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        label = "childless, refused by strongSwan"
        charon.load(ike, pfs, addresses, options={"childless": "never"})
        endpoint = Endpoint(directory, ike, pfs, addresses, options={"childless": "force"})
        endpoint.command("initiate c")
        failed = endpoint.wait_event("ike_sa_failed", timeout=10)
        check(failed is not None and "did not announce CHILDLESS_IKEV2_SUPPORTED" in (failed.get("reason") or ""),
              f"{label}: ikeproxy's forced childless initiation fails with the reason ({failed.get('reason') if failed else 'no failure reported'})")
        check(not [s for s in charon.sas() if s["state"] == b"ESTABLISHED"], f"{label}: no IKE SA at strongSwan")
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        # The other way round: ikeproxy's `never` announces nothing, so strongSwan's forced childless initiation
        # stops after IKE_SA_INIT; ikeproxy's `force` as responder refuses strongSwan's IKE_AUTH with a CHILD SA.
        for theirs, ours, label in (("force", "never", "childless, refused by ikeproxy (never)"),
                                    ("allow", "force", "a CHILD SA in IKE_AUTH, refused by ikeproxy (force)")):
            charon.load(ike, pfs, addresses, options={"childless": theirs})
            endpoint = Endpoint(directory, ike, pfs, addresses, options={"childless": ours})
            before = len(open(charon.log, errors="replace").read())
            try:
                list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))
            except vici.exception.CommandException:
                pass
            charon_log = open(charon.log, errors="replace").read()[before:]
            if ours == "never":
                responses = re.findall(r"parsed IKE_SA_INIT response 0 \[([^\]]*)\]", charon_log)
                check(responses and "CHDLESS_SUP" not in responses[-1],
                      f"{label}: our IKE_SA_INIT response announces no childless support [{responses[-1].strip() if responses else 'not logged'}]")
                check("peer does not support childless" in charon_log, f"{label}: strongSwan gives up before IKE_AUTH, as it says in its log")
            else:
                failed = endpoint.wait_event("ike_sa_failed", timeout=10)
                expected = "connection 'c' is childless (force) and the peer's IKE_AUTH carries a CHILD SA"
                check(failed is not None and failed.get("reason") == expected, f"{label}: ikeproxy reports why ({failed.get('reason') if failed else 'no failure'})")
                check("INVALID_SYNTAX" in charon_log, f"{label}: strongSwan received INVALID_SYNTAX")
            check(not [s for s in charon.sas() if s["state"] == b"ESTABLISHED"], f"{label}: no IKE SA at strongSwan")
            check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        charon.stop()


PPK_ID = "interop-ppk"
PPK = bytes(range(1, 33)) + b"post-quantum"
WRONG_PPK = bytes(reversed(PPK))


def run_ppk_case(directory, ike, esp, addresses):
    """RFC 8784 post-quantum preshared keys against strongSwan 5.9 (`ppk_id`, `ppk_required`, a PPK secret): the
    PPK required on both sides and optional on both, each side initiating, the CHILD SA keys of IKE_AUTH equal to
    charon's (they come from SK_d, which the PPK changes, so equal keys mean both mixed in the same PPK); an
    optional PPK on our side with none on strongSwan's goes without it; a PPK required here and absent there,
    and a wrong PPK, are refused with AUTHENTICATION_FAILED and leave no SA."""
    print(f"case post-quantum preshared keys (RFC 8784), {ike} / {esp}", flush=True)

    def ours(ppk, required):
        return {"ppk_id": PPK_ID, "ppk_hex": ppk.hex(), "ppk_required": required} if ppk else {}

    def load(charon, ppk, required):
        """The connection with or without `ppk_id`, and the PPK secret loaded or unloaded (strongSwan answers USE_PPK
        and uses a PPK it holds even for a connection that names none), with no IKE SA left from the case before."""
        for sa in charon.sas():
            list(charon.session.terminate({"ike-id": int(sa["uniqueid"]), "timeout": 5000}))
        charon.load(ike, esp, addresses, options={"ppk_id": PPK_ID, "ppk_required": "yes" if required else "no"} if ppk else None)
        if ppk:
            charon.session.load_shared({"id": "ppk-1", "type": "PPK", "data": ppk, "owners": [PPK_ID]})
        else:
            try:
                charon.session.unload_shared({"id": "ppk-1"})
            except vici.exception.CommandException:
                pass

    charon = Charon(directory, PEER_NS)
    try:
        for required in (True, False):
            for initiator in ("ikeproxy", "strongSwan"):
                label = f"PPK {'required' if required else 'optional'} on both sides, initiated by {initiator}"
                load(charon, PPK, required)
                endpoint = Endpoint(directory, ike, esp, addresses, options=ours(PPK, required))
                start(initiator, endpoint, charon)
                event = endpoint.wait_event("child_sa_established")
                if check(event is not None, f"{label}: endpoint reports a CHILD SA") and charon.established():
                    compare(ike_sa(charon, event), event, label, initiator == "ikeproxy")
                    compare_keys(charon, event, label, initiator == "ikeproxy")
                    check(f"with the post-quantum preshared key '{PPK_ID}'" in endpoint_log(directory), f"{label}: ikeproxy logged the PPK in use")
                    list(charon.session.terminate({"ike": "c", "timeout": 5000}))
                    check(endpoint.wait_event("ike_sa_deleted") is not None, f"{label}: IKE SA deleted")
                check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        # Optional here, none there: strongSwan does not answer USE_PPK, the IKE SA goes without.
        label = "PPK optional on our side, none at strongSwan"
        load(charon, None, False)
        endpoint = Endpoint(directory, ike, esp, addresses, options=ours(PPK, False))
        start("ikeproxy", endpoint, charon)
        event = endpoint.wait_event("child_sa_established")
        if check(event is not None, f"{label}: endpoint reports a CHILD SA") and charon.established():
            compare_keys(charon, event, label, True)
            check("without the post-quantum preshared key" in endpoint_log(directory), f"{label}: ikeproxy logged that it went without")
            list(charon.session.terminate({"ike": "c", "timeout": 5000}))
            endpoint.wait_event("ike_sa_deleted")
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        # Refusals: required here, none there; and the wrong PPK, either side initiating.
        for label, theirs, our_ppk, initiator, reason in (
                ("PPK required by ikeproxy, none at strongSwan, ikeproxy initiating", None, PPK, "ikeproxy", "did not announce USE_PPK"),
                ("PPK required by ikeproxy, none at strongSwan, strongSwan initiating", None, PPK, "strongSwan", "the initiator used none"),
                ("wrong PPK, ikeproxy initiating", PPK, WRONG_PPK, "ikeproxy", "AUTHENTICATION_FAILED"),
                ("wrong PPK, strongSwan initiating", PPK, WRONG_PPK, "strongSwan", "does not verify")):
            load(charon, theirs, True)
            endpoint = Endpoint(directory, ike, esp, addresses, options=ours(our_ppk, True))
            try:
                start(initiator, endpoint, charon)
            except vici.exception.CommandException:
                pass
            failed = endpoint.wait_event("ike_sa_failed", timeout=10)
            check(failed is not None and reason in (failed.get("reason") or ""),
                  f"{label}: ikeproxy refuses or is refused, saying why ({failed.get('reason') if failed else 'no failure reported'})")
            check(endpoint.wait_event("child_sa_established", timeout=1) is None, f"{label}: no CHILD SA at ikeproxy")
            check(not [s for s in charon.sas() if s["state"] == b"ESTABLISHED"], f"{label}: no IKE SA at strongSwan")
            check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        charon.stop()


def run_reauthentication_case(directory, ike, esp):
    """strongSwan reauthenticates its IKE SA (a new IKE SA with new CHILD SAs, then the old one deleted; RFC 7296
    section 2.8.3), once break-before-make (its default) and once make-before-break (overlapping SAs): ikeproxy
    answers the new IKE SA while or after the old one goes, and both sides end with the same single new SA."""
    for scheme, settings in (("break-before-make", ""), ("make-before-break", "make_before_break = yes")):
        label = f"reauthentication, {scheme}"
        print(f"case strongSwan reauthenticates ({scheme}), {ike} / {esp}", flush=True)
        charon = Charon(directory, PEER_NS, settings=settings)
        endpoint = Endpoint(directory, ike, esp, V4)
        try:
            charon.load(ike, esp, V4)
            list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))
            first = endpoint.wait_event("child_sa_established")
            if not check(first is not None, f"{label}: first IKE SA established"):
                continue
            list(charon.session.rekey({"ike": "c", "reauth": "yes"}))
            second = endpoint.wait_event("child_sa_established", count=2, timeout=15)
            deleted = endpoint.wait_event("ike_sa_deleted", timeout=15)
            check(second is not None and second["ike_spi_i"] != first["ike_spi_i"], f"{label}: a new IKE SA with a new CHILD SA")
            check(deleted is not None and deleted["ike_spi_i"] == first["ike_spi_i"], f"{label}: strongSwan deleted the old IKE SA")
            if second is None or deleted is None:
                continue
            order = [e["event"] for e in endpoint.events if e["event"] in ("child_sa_established", "ike_sa_deleted")]
            new_first = order[:3] == ["child_sa_established", "child_sa_established", "ike_sa_deleted"]
            check(new_first == (scheme == "make-before-break"),
                  f"{label}: the new CHILD SA came {'before' if new_first else 'after'} the old IKE SA's deletion ({order})")
            check(charon.wait(lambda sas: len([s for s in sas if s["state"] == b"ESTABLISHED"]) == 1),
                  f"{label}: strongSwan keeps one IKE SA")
            compare(ike_sa(charon, second), second, label + ", new SA", False)
            gone = endpoint.wait_event("child_sa_deleted")
            check(gone is not None and gone["child"]["spi_in"] == first["child"]["spi_in"], f"{label}: the old CHILD SA reported deleted")
            check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        finally:
            stop_both(endpoint, charon)


def run_selector_case(directory, ike, esp):
    """Traffic selectors with protocols and ports (RFC 7296 sections 2.9 and 3.13.1): each side narrows a
    host-to-host proposal to its own [protocol/port] selectors (ICMP types and codes included), as initiator
    and as responder, and selectors that do not meet are refused with TS_UNACCEPTABLE."""
    print(f"case traffic selectors with protocols and ports, {ike} / {esp}", flush=True)
    peer, local = V4
    charon = Charon(directory, PEER_NS)
    try:
        cases = (
            # label, strongSwan's (local_ts, remote_ts), ikeproxy's (local_ts, remote_ts), expected at ikeproxy (local, remote)
            ("ikeproxy's [tcp/5201] within strongSwan's host to host", (peer, local), (f"{local}[tcp]", f"{peer}[tcp/5201]"),
             (f"{local}/32[tcp]", f"{peer}/32[tcp/5201]")),
            ("strongSwan's [udp/53] within ikeproxy's host to host", (f"{peer}[udp/53]", f"{local}[udp]"), (local, peer),
             (f"{local}/32[udp]", f"{peer}/32[udp/53]")),
            # ICMP: type and code in the port fields, type in the high octet (RFC 7296 section 3.13.1), in
            # strongSwan's notation: [icmp/8] is echo request (type 8, code 0), 0-8(255) types 0 to 8, any code.
            ("strongSwan's [icmp/8] within ikeproxy's host to host", (f"{peer}[icmp/8]", f"{local}[icmp]"), (local, peer),
             (f"{local}/32[icmp]", f"{peer}/32[icmp/8]")),
            ("ikeproxy's [icmp/0-8(255)] within strongSwan's host to host", (peer, local),
             (f"{local}[icmp/0-8(255)]", f"{peer}[icmp/0-8(255)]"), (f"{local}/32[icmp/0-8(255)]", f"{peer}/32[icmp/0-8(255)]")),
        )
        for name, theirs, ours, expected in cases:
            for initiator in ("ikeproxy", "strongSwan"):
                label = f"selectors, {name}, initiated by {initiator}"
                charon.load(ike, esp, V4, options={"children": {"ch": {
                    "esp_proposals": [esp], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                    "local_ts": [theirs[0]], "remote_ts": [theirs[1]]}}})
                endpoint = Endpoint(directory, ike, esp, V4, options={"children": [
                    {"name": "ch", "local_ts": [ours[0]], "remote_ts": [ours[1]], "esp_proposals": [esp]}]})
                start(initiator, endpoint, charon)
                event = endpoint.wait_event("child_sa_established")
                if check(event is not None, f"{label}: endpoint reports a CHILD SA") and charon.established():
                    child = event["child"]
                    check((child["ts_local"], child["ts_remote"]) == ([expected[0]], [expected[1]]),
                          f"{label}: ikeproxy's CHILD SA is {child['ts_local']} <-> {child['ts_remote']}")
                    sa = ike_sa(charon, event)
                    installed = [c for c in sa.get("child-sas", {}).values() if decode(c["spi-in"]) == child["spi_out"]]
                    got = (list(map(normalized_ts, installed[0]["local-ts"])), list(map(normalized_ts, installed[0]["remote-ts"]))) if installed else None
                    check(got == ([expected[1]], [expected[0]]), f"{label}: strongSwan's is the mirror image ({got})")
                    list(charon.session.terminate({"ike": "c", "timeout": 5000}))
                    check(endpoint.wait_event("ike_sa_deleted") is not None, f"{label}: IKE SA deleted")
                check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        # [tcp] against [udp]: nothing in common, so the CHILD SA is refused whoever asks.
        for initiator in ("ikeproxy", "strongSwan"):
            label = f"selectors that do not meet, initiated by {initiator}"
            charon.load(ike, esp, V4, options={"children": {"ch": {
                "esp_proposals": [esp], "mode": "tunnel", "start_action": "none", "rekey_time": "0",
                "local_ts": [f"{peer}[udp]"], "remote_ts": [f"{local}[udp]"]}}})
            before = endpoint_log(directory)
            endpoint = Endpoint(directory, ike, esp, V4, options={"children": [
                {"name": "ch", "local_ts": [f"{local}[tcp]"], "remote_ts": [f"{peer}[tcp]"], "esp_proposals": [esp]}]})
            if initiator == "ikeproxy":
                endpoint.command("initiate c")
                expected = "CHILD SA 'ch': refused by peer: TS_UNACCEPTABLE"
                failed = endpoint.wait_event("child_sa_failed", timeout=10)
                check(failed is not None and failed.get("reason") == expected,
                      f"{label}: a child_sa_failed event with the reason ({failed.get('reason') if failed else 'none'})")
            else:
                try:
                    list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))
                except vici.exception.CommandException:
                    pass
                expected = "first CHILD SA refused: TS_UNACCEPTABLE"
            endpoint.wait_event("ike_sa_established", timeout=5)
            deadline = time.time() + 5
            while expected not in endpoint_log(directory)[len(before):] and time.time() < deadline:
                time.sleep(0.2)
            check(expected in endpoint_log(directory)[len(before):], f"{label}: refused with TS_UNACCEPTABLE ({expected})")
            check(endpoint.wait_event("child_sa_established", timeout=1) is None, f"{label}: no CHILD SA")
            try:
                list(charon.session.terminate({"ike": "c", "timeout": 5000}))
            except vici.exception.CommandException:
                pass  # strongSwan may have closed the IKE SA itself
            check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        charon.stop()


def run_restart_case(directory, ike, esp):
    """strongSwan crashes (SIGKILL), starts again without state and connects again: its IKE_AUTH carries
    INITIAL_CONTACT, so ikeproxy
    drops the IKE SA and CHILD SA it still held from before (RFC 7296 section 2.4) instead of keeping them."""
    print(f"case strongSwan restarts, {ike} / {esp}", flush=True)
    label = "peer restart"
    charon = Charon(directory, PEER_NS)
    endpoint = Endpoint(directory, ike, esp, V4)
    try:
        charon.load(ike, esp, V4)
        list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))
        first = endpoint.wait_event("child_sa_established")
        check(first is not None, f"{label}: strongSwan's first IKE SA is established")
        charon.stop(crash=True)
        charon = Charon(directory, PEER_NS)
        charon.load(ike, esp, V4)
        list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 10000}))
        second = endpoint.wait_event("child_sa_established", count=2)
        deleted = endpoint.wait_event("ike_sa_deleted")
        check(second is not None and deleted is not None and "INITIAL_CONTACT" in (deleted.get("reason") or "")
              and first is not None and deleted["ike_spi_i"] == first["ike_spi_i"],
              f"{label}: the restarted strongSwan's INITIAL_CONTACT removes the stale IKE SA ({deleted.get('reason') if deleted else 'not removed'})")
        gone = endpoint.wait_event("child_sa_deleted")
        check(gone is not None and first is not None and gone["child"]["spi_in"] == first["child"]["spi_in"],
              f"{label}: and its CHILD SA, reported deleted")
        if second is not None:
            compare(ike_sa(charon, second), second, label + ", new SA", False)
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        stop_both(endpoint, charon)


def run_reload_case(directory, ike, esp):
    """SIGHUP makes `ikeproxy endpoint` read its connections again, as `swanctl --load-all` does: a connection
    new in the file is added (strongSwan's initiation then succeeds), one gone is removed, a changed
    pre-shared key is used from the next negotiation (strongSwan's next IKE_AUTH then fails)."""
    print(f"case connections reloaded, {ike} / {esp}", flush=True)
    label = "reload"
    charon = Charon(directory, PEER_NS)
    # At start the file has only a connection to some other peer: strongSwan's initiation finds none.
    endpoint = Endpoint(directory, ike, esp, V4, options={"name": "old", "remote_address": "192.0.2.77"})
    path = os.path.join(directory, "endpoint.json")

    def rewrite(edit):
        with open(path) as f:
            config = json.load(f)
        edit(config["connections"])
        with open(path, "w") as f:
            json.dump(config, f)
        seen = endpoint_log(directory).count("reload: ")
        endpoint.process.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while endpoint_log(directory).count("reload: ") == seen and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)

    def initiate():
        try:
            list(charon.session.initiate({"child": "ch", "ike": "c", "timeout": 6000}))
            return True
        except vici.exception.CommandException:
            return False
    try:
        charon.load(ike, esp, V4)
        check(not initiate() and endpoint.wait_event("child_sa_established", timeout=1) is None,
              f"{label}: with no connection for strongSwan in the file, its initiation fails")

        def add_c(connections):
            connections[0].update(name="c", remote_address=V4[0])
        rewrite(add_c)
        log = endpoint_log(directory)
        check("reload: connection 'c' is new" in log and "reload: connection 'old' is gone from the file: removed" in log,
              f"{label}: SIGHUP adds connection 'c', new in the file, and removes 'old'")
        ok = initiate()
        established = endpoint.wait_event("child_sa_established")
        check(ok and established is not None, f"{label}: strongSwan's initiation now succeeds")
        if established is not None:
            compare(ike_sa(charon, established), established, label, False)
        list(charon.session.terminate({"ike": "c", "timeout": 5000}))
        endpoint.wait_event("ike_sa_deleted")

        def change_key(connections):
            connections[0]["psk"] = "not the key strongSwan has"
        rewrite(change_key)
        log = endpoint_log(directory)
        check("reload: connection 'c': pre-shared key changed; used from the next negotiation" in log and "not the key" not in log,
              f"{label}: SIGHUP takes the changed pre-shared key, and says so without saying it")
        check(not initiate(), f"{label}: strongSwan's next initiation fails: the endpoint uses the new key")
        failed = endpoint.wait_event("ike_sa_failed", timeout=10)
        check(failed is not None and "AUTH" in (failed.get("reason") or "").upper(),
              f"{label}: the endpoint reports the failed authentication ({failed.get('reason') if failed else 'nothing reported'})")
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
    finally:
        stop_both(endpoint, charon)


def main():
    if os.geteuid() != 0:
        print("FAIL: the strongSwan interop test needs root (network namespaces)", file=sys.stderr)
        return 1
    for tool in ("ip", "nft", "openssl", "/usr/lib/ipsec/charon"):
        if not shutil.which(tool) and not os.path.exists(tool):
            print(f"FAIL: {tool} is missing; run scripts/test.sh, which installs it", file=sys.stderr)
            return 1
    if not os.path.exists(BINARY):
        print(f"FAIL: {BINARY} not built", file=sys.stderr)
        return 1
    cases = [("aes256gcm16-prfsha256-x25519", "aes256gcm16"), ("aes128gcm16-prfsha384-ecp256", "aes128gcm16"),
             ("aes256-sha256-modp2048", "aes256-sha256"), ("chacha20poly1305-prfsha512-ecp384", "chacha20poly1305")]
    keep = os.environ.get("KEEP_LOGS")
    # INTEROP_ONLY=collision, =certificates, =ocsp, =restart or =childless runs that case alone (for work on it).
    only = os.environ.get("INTEROP_ONLY")
    only_collision = only in ("collision", "certificates", "ocsp", "restart", "childless", "reauthentication", "selectors", "reload", "ppk")
    with Network():
        for family, addresses in () if only_collision else (("IPv4", V4), ("IPv6", V6)):
            for index, (ike, esp) in enumerate(cases):
                directory = tempfile.mkdtemp(prefix="ikp-interop-")
                try:
                    run_case(directory, ike, esp, addresses, family, full=(index == 0 or index == 2))
                finally:
                    if REPORT.failures and keep:
                        print("logs kept in", directory)
                    else:
                        shutil.rmtree(directory, ignore_errors=True)
        for name, case in (("collision", lambda d: run_collision_case(d, *cases[0], V4)),
                           ("certificates", lambda d: run_certificate_case(d, *cases[1], "ECDSA")),
                           ("certificates", lambda d: run_certificate_case(d, *cases[2], "RSA")),
                           ("certificates", lambda d: run_certificate_case(d, *cases[0], "RSA-PSS")),
                           ("certificates", lambda d: run_certificate_case(d, *cases[3], "Ed25519")),
                           ("ocsp", lambda d: run_ocsp_case(d, *cases[0])),
                           ("ocsp", lambda d: run_ocsp_case(d, *cases[0], kind="CRL")),
                           ("ocsp", lambda d: run_ocsp_case(d, *cases[0], kind="OCSP+CRL")),
                           ("restart", lambda d: run_restart_case(d, *cases[0])),
                           ("childless", lambda d: run_childless_case(d, *cases[0], V4)),
                           ("ppk", lambda d: run_ppk_case(d, *cases[0], V4)),
                           ("reauthentication", lambda d: run_reauthentication_case(d, *cases[1])),
                           ("selectors", lambda d: run_selector_case(d, *cases[0])),
                           ("reload", lambda d: run_reload_case(d, *cases[0]))):
            if only and only != name:
                continue
            directory = tempfile.mkdtemp(prefix="ikp-interop-")
            try:
                case(directory)
            finally:
                if REPORT.failures and keep:
                    print("logs kept in", directory)
                else:
                    shutil.rmtree(directory, ignore_errors=True)
    if REPORT.failures:
        print(f"\n{len(REPORT.failures)} interop check(s) FAILED:", *REPORT.failures, sep="\n  ")
        return 1
    print("\nall strongSwan interop checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
