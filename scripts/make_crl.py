#!/usr/bin/env python3
"""Revokes certificates and writes a CRL with `openssl ca`, for the tests: make_crl.py CA_CERT CA_KEY OUT_CRL CERT...

Used by tests/interop/strongswan_interop.py and to make the unit-test fixture in Tests/IKEv2Tests/Fixtures/crl.
"""
import os, subprocess, sys, tempfile


def make_crl(ca_cert, ca_key, out_crl, revoked):
    with tempfile.TemporaryDirectory() as work:
        index, config = os.path.join(work, "index.txt"), os.path.join(work, "ca.cnf")
        open(index, "w").close()
        with open(os.path.join(work, "crlnumber"), "w") as f:
            f.write("01\n")
        with open(config, "w") as f:
            f.write(f"[ca]\ndefault_ca = test\n[test]\ndatabase = {index}\ncrlnumber = {work}/crlnumber\n"
                    f"certificate = {ca_cert}\nprivate_key = {ca_key}\ndefault_md = sha256\ndefault_crl_days = 36500\n")
        for cert in revoked:
            subprocess.run(["openssl", "ca", "-config", config, "-revoke", cert], check=True, capture_output=True)
        subprocess.run(["openssl", "ca", "-config", config, "-gencrl", "-out", out_crl], check=True, capture_output=True)


if __name__ == "__main__":
    make_crl(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
