#!/usr/bin/env python3
"""`ikeproxy endpoint` against libreswan: pluto with its kernel XFRM backend in a User-Mode Linux guest.

  ikp-l-ep   `ikeproxy endpoint` on 192.0.2.1 and 2001:db8::1, the host side of the guest's TAP device
  guest ls   libreswan 4.10 (Debian's, unpacked into the guest: lib/guest_libreswan.py) on 192.0.2.2, 2001:db8::2

The strongSwan matrix's four proposals, over IPv4 and IPv6, each side initiating. For each SA both sides report,
the CHILD SPIs, ESP transforms and keys the endpoint prints (--show-keys) are the ones in the guest's kernel
(`ip xfrm state`, where pluto installed them), and the IKE and ESP algorithms are the ones `ipsec whack --status`
names. For two of the proposals, the CHILD SA and the IKE SA are rekeyed and deleted by each side in turn, and the
other side follows (pluto's states, the kernel's SAs, the endpoint's events).
Needs root, iproute2, user-mode-linux, kmod and libreswan unpacked by scripts/test.sh; it fails loudly otherwise.
"""
import os, shutil, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib.endpoint  # noqa: E402
from lib.guest_libreswan import TREE, GuestPluto, connection  # noqa: E402
from lib.guests import Guest  # noqa: E402
from lib.host import Lab, addresses_up, missing_prerequisites, wait_for  # noqa: E402
from lib.report import check, summary  # noqa: E402

NAMESPACE, TAP = "ikp-l-ep", "ikp-lt"
V4, V6 = ("192.0.2.2", "192.0.2.1"), ("2001:db8::2", "2001:db8::1")  # (peer, endpoint)
# The strongSwan matrix's proposals, in the endpoint's notation and in libreswan's.
CASES = [("aes256gcm16-prfsha256-x25519", "aes256gcm16", "aes_gcm256-sha2_256-dh31", "aes_gcm256"),
         ("aes128gcm16-prfsha384-ecp256", "aes128gcm16", "aes_gcm128-sha2_384-dh19", "aes_gcm128"),
         ("aes256-sha256-modp2048", "aes256-sha256", "aes256-sha2_256-modp2048", "aes256-sha2_256"),
         ("chacha20poly1305-prfsha512-ecp384", "chacha20poly1305", "chacha20_poly1305-sha2_512-dh20", "chacha20_poly1305")]
GROUPS = {"CURVE_25519": "DH31", "ECP_256": "DH19", "ECP_384": "DH20", "MODP_2048": "MODP2048"}


class Endpoint(lib.endpoint.Endpoint):
    namespace = NAMESPACE


class Network(Lab):
    namespaces = (NAMESPACE,)

    def build(self):
        pass  # the guest brings its TAP device; the endpoint's addresses go on it once it exists


def compare(pluto, guest, event, label):
    """The endpoint's event against pluto's status and the guest kernel's SAs."""
    child = event["child"]
    states = guest.xfrm_states()
    inbound, outbound = states.get(child["spi_out"]), states.get(child["spi_in"])  # pluto's inbound is our outbound
    if not check(inbound is not None and outbound is not None,
                 f"{label}: the guest's kernel holds CHILD SPIs {child['spi_out']} (to pluto) and {child['spi_in']} (from pluto)"):
        return
    spis = pluto.child_spis("c")
    check((child["spi_in"], child["spi_out"]) in spis,
          f"{label}: `ipsec whack --status` lists the CHILD SA as esp.{child['spi_in']} out, esp.{child['spi_out']} in ({spis})")
    keys = child["keys"]
    check(inbound.key == keys["encryption_out"] and outbound.key == keys["encryption_in"]
          and (child["integrity"] is None or (inbound.integrity_key == keys["integrity_out"] and outbound.integrity_key == keys["integrity_in"])),
          f"{label}: the kernel's keys are the endpoint's ({keys['encryption_out'][:16]}...)")
    check(inbound.transforms == (child["encryption"], child["integrity"]),
          f"{label}: ESP transforms in the kernel {inbound.transforms} == the endpoint's ({child['encryption']}, {child['integrity']})")
    ike, esp = pluto.algorithms("c")
    proposal = event["ike_proposal"]
    expected_ike = [proposal["encryption"], proposal["prf"].removeprefix("PRF_"), GROUPS.get(proposal["dh_group"], proposal["dh_group"])]
    check(ike is not None and all(part in ike for part in expected_ike), f"{label}: pluto's IKE algorithms {ike} are the endpoint's {expected_ike}")
    # libreswan names ChaCha20-Poly1305 with its key size.
    encryption = "CHACHA20_POLY1305_256" if child["encryption"] == "CHACHA20_POLY1305" else child["encryption"]
    expected_esp = encryption + "-" + (child["integrity"].removeprefix("AUTH_") if child["integrity"] else "NONE")
    check(esp == expected_esp, f"{label}: pluto's ESP algorithms {esp} == {expected_esp}")


def established(pluto, kind="STATE_V2_ESTABLISHED_IKE_SA"):
    return [number for number, (_, state) in pluto.states().items() if state == kind]


def initiated_by_endpoint(directory, pluto, guest, case, addresses, label, full):
    ike, esp = case[0], case[1]
    endpoint = Endpoint(directory, ike, esp, addresses)
    try:
        endpoint.command("initiate c")
        event = endpoint.wait_event("child_sa_established", timeout=20)
        if not check(event is not None, f"{label}: the endpoint reports a CHILD SA with pluto"):
            return
        compare(pluto, guest, event, label)
        if full:
            endpoint.command("rekey-child c")
            rekeyed = endpoint.wait_event("child_sa_rekeyed", timeout=20)
            if check(rekeyed is not None, f"{label}: CHILD SA rekey by ikeproxy reported"):
                check(wait_for(lambda: rekeyed["child"]["spi_out"] in guest.xfrm_states() and event["child"]["spi_out"] not in guest.xfrm_states(), 10),
                      f"{label}: pluto installed the new CHILD SA and removed the old one from its kernel")
                compare(pluto, guest, rekeyed, label + " after CHILD rekey")
            before = established(pluto)
            endpoint.command("rekey-ike c")
            ike_rekeyed = endpoint.wait_event("ike_sa_rekeyed", timeout=20)
            check(ike_rekeyed is not None and wait_for(lambda: len(established(pluto)) == 1 and established(pluto) != before, 10)
                  and rekeyed is not None and rekeyed["child"]["spi_out"] in guest.xfrm_states(),
                  f"{label}: IKE SA rekey by ikeproxy: pluto holds one IKE SA, the new one ({before} -> {established(pluto)}), the CHILD SA kept")
            endpoint.command("delete-child c")
            check(endpoint.wait_event("child_sa_deleted", count=2, timeout=15) is not None
                  and wait_for(lambda: not guest.xfrm_states(), 10), f"{label}: CHILD SA delete by ikeproxy: pluto removed it from its kernel")
        endpoint.command("delete-ike c")
        check(endpoint.wait_event("ike_sa_deleted", timeout=15) is not None and wait_for(lambda: not pluto.states(), 10),
              f"{label}: IKE SA delete by ikeproxy: pluto holds no state")
    finally:
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")


def initiated_by_pluto(directory, pluto, guest, case, addresses, label, full):
    ike, esp = case[0], case[1]
    endpoint = Endpoint(directory, ike, esp, addresses)
    try:
        status, output = pluto.auto("--up", "c", timeout=40)
        event = endpoint.wait_event("child_sa_established", timeout=20)
        if not check(status == 0 and event is not None, f"{label}: pluto initiated and the endpoint reports the CHILD SA ({output.strip().splitlines()[-1:]})"):
            return
        compare(pluto, guest, event, label)
        if full:
            pluto.whack("--rekey-ipsec", "--name", "c")
            rekeyed = endpoint.wait_event("child_sa_rekeyed", timeout=20)
            if check(rekeyed is not None and endpoint.wait_event("child_sa_deleted", timeout=15) is not None,
                     f"{label}: CHILD SA rekey by pluto reported, the old CHILD SA deleted"):
                compare(pluto, guest, rekeyed, label + " after CHILD rekey")
            pluto.whack("--rekey-ike", "--name", "c")
            check(endpoint.wait_event("ike_sa_rekeyed", timeout=20) is not None and wait_for(lambda: len(established(pluto)) == 1, 10),
                  f"{label}: IKE SA rekey by pluto reported; pluto holds one IKE SA")
            children = established(pluto, "STATE_V2_ESTABLISHED_CHILD_SA")
            if children:
                pluto.whack("--deletestate", str(children[-1]))
            check(bool(children) and endpoint.wait_event("child_sa_deleted", count=2, timeout=15) is not None,
                  f"{label}: CHILD SA delete by pluto reported")
        pluto.auto("--down", "c")
        check(endpoint.wait_event("ike_sa_deleted", timeout=15) is not None, f"{label}: IKE SA delete by pluto reported")
    finally:
        check(endpoint.stop() == 0, f"{label}: endpoint exits cleanly on SIGTERM")
        pluto.auto("--down", "c")


def run(directory):
    guest = Guest("ls", NAMESPACE, TAP, directory, "02:00:00:00:1e:02", [V4[0] + "/24", V6[0] + "/64"])
    guest.start()
    try:
        if not check(guest.wait_ready(), f"libreswan's UML guest booted ({guest.boot_seconds:.1f} s)"):
            return
        addresses_up(NAMESPACE, TAP, V4[1] + "/24", V6[1] + "/64")
        pluto = GuestPluto(guest)
        if not check(pluto.started, f"pluto runs in the guest ({pluto.output.strip()[-120:]})"):
            return
        for family, addresses in (("IPv4", V4), ("IPv6", V6)):
            for index, case in enumerate(CASES):
                full = index in (0, 2)
                status, output = pluto.load([connection("c", addresses[0], addresses[1], case[2], case[3])], [addresses[0], addresses[1]])
                if not check(status == 0, f"{family} {case[0]}: pluto takes the connection ({output.strip()[-200:]})"):
                    continue
                case_directory = tempfile.mkdtemp(prefix="case-", dir=directory)
                initiated_by_endpoint(case_directory, pluto, guest, case, addresses, f"{family} {case[0]} initiated by ikeproxy", full)
                initiated_by_pluto(case_directory, pluto, guest, case, addresses, f"{family} {case[0]} initiated by libreswan", full)
    finally:
        guest.stop()


def main():
    problem = missing_prerequisites("libreswan interop test", tools=("linux.uml", "modprobe"), paths=(TREE + "/usr/libexec/ipsec/pluto",))
    if problem:
        return problem
    directory = tempfile.mkdtemp(prefix="ikp-libreswan-")
    print(f"== libreswan interop test (logs in {directory})")
    with Network():
        run(directory)
    result = summary("libreswan interop test")
    if result == 0 and not os.environ.get("KEEP_LOGS"):
        shutil.rmtree(directory, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
