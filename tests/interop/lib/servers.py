"""Small HTTP servers in a namespace for revocation tests: an OCSP responder and a CRL server."""
import os, subprocess, sys, time

from lib.host import ROOT, ns


class BackgroundServer:
    """A server process in a namespace, started again to change what it serves."""

    def __init__(self, directory, ca, namespace):
        self.directory, self.ca, self.process, self.namespace = directory, ca, None, namespace

    def wait_listening(self, port):
        """Until something listens on `port` (IPv4 or IPv6), for at most 5 s."""
        deadline, needle = time.time() + 5, f":{port:04X} "
        while time.time() < deadline and needle not in ns(self.namespace, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout:
            time.sleep(0.1)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=5)
        self.process = None


class OCSPResponder(BackgroundServer):
    """`openssl ocsp` in ikeproxy's namespace on port 8080 (asked at 127.0.0.1), answering for the CA from an index in
    OpenSSL's CA database format; started again to change what it says."""

    def serve(self, certificate, revoked):
        self.stop()
        serial = subprocess.run(["openssl", "x509", "-in", certificate, "-noout", "-serial"], capture_output=True, text=True,
                                check=True).stdout.strip().split("=")[1]
        subject = subprocess.run(["openssl", "x509", "-in", certificate, "-noout", "-subject", "-nameopt", "compat"],
                                 capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1].strip()
        expiry = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 86400))
        now = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() - 60))
        index = os.path.join(self.directory, "ocsp-index.txt")
        with open(index, "w") as f:
            f.write(f"{'R' if revoked else 'V'}\t{expiry}\t{now + ',keyCompromise' if revoked else ''}\t{serial}\tunknown\t{subject}\n")
        self.log = os.path.join(self.directory, "ocsp.log")
        self.process = subprocess.Popen(["ip", "netns", "exec", self.namespace, "openssl", "ocsp", "-index", index, "-port", "8080",
                                         "-rsigner", self.ca[0], "-rkey", self.ca[1], "-CA", self.ca[0], "-ndays", "1"],
                                        stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        self.wait_listening(8080)


class CRLServer(BackgroundServer):
    """A plain HTTP server in ikeproxy's namespace on 127.0.0.1:8081 publishing the CA's CRL as ca.crl
    (made with `openssl ca`, scripts/make_crl.py); started again to publish another."""

    def __init__(self, directory, ca, namespace):
        super().__init__(directory, ca, namespace)
        self.root = os.path.join(directory, "crl-site")
        os.makedirs(self.root, exist_ok=True)

    def serve(self, certificate, revoked):
        self.stop()
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        from make_crl import make_crl
        make_crl(self.ca[0], self.ca[1], os.path.join(self.root, "ca.crl"), [certificate] if revoked else [])
        self.log = os.path.join(self.directory, "crl-server.log")
        self.process = subprocess.Popen(["ip", "netns", "exec", self.namespace, sys.executable, "-m", "http.server", "8081",
                                         "--bind", "127.0.0.1", "--directory", self.root],
                                        stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        self.wait_listening(8081)
