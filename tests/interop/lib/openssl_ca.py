"""Certificates made with `openssl ca`, for tests that need what `openssl req -x509` cannot give: any validity
period (expired, not yet valid), any extension, the same name under several keys, and a signature that is
not the issuer's. Keys are P-256 unless a case asks otherwise."""
import hashlib, os, subprocess
from datetime import datetime, timedelta, timezone


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=stdin).stdout


def when(days):
    """`openssl ca`'s date format for now + `days`."""
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y%m%d%H%M%SZ")


class Issuer:
    """Makes keys and certificates in `directory`; each certificate is a PEM file named after `name`."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        for name, text in (("index.txt", ""), ("serial", "1000\n")):
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        self.config = os.path.join(directory, "ca.cnf")
        with open(self.config, "w") as f:
            f.write(f"""[ca]
default_ca = matrix
[matrix]
database = {directory}/index.txt
serial = {directory}/serial
new_certs_dir = {directory}
default_md = sha256
policy = anything
unique_subject = no
email_in_dn = yes
[anything]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
emailAddress = optional
""")

    def path(self, name, ext="pem"):
        return os.path.join(self.dir, f"{name}.{ext}")

    def key(self, name, spec=("ec", "-pkeyopt", "ec_paramgen_curve:P-256")):
        path = self.path(name, "key")
        if not os.path.exists(path):
            openssl("genpkey", "-algorithm", *spec, "-out", path)
        return path

    def issue(self, name, subject, extensions, issuer=None, key=None, start=-1, end=30, public_key=None):
        """A certificate for `subject` (openssl's /O=../CN=.. form) with `extensions` (extfile lines), signed by
        `issuer` (a name issued before, whose key signs) or self-signed; `key` names the subject's key (default:
        its own name); valid from now + `start` to now + `end` days. `public_key` (a PEM file) replaces the
        key the request carries, for keys openssl would not generate."""
        key_path = self.key(key or name)
        csr = self.path(name, "csr")
        openssl("req", "-new", "-key", key_path, "-subj", subject, "-out", csr)
        extfile = self.path(name, "ext")
        with open(extfile, "w") as f:
            f.write("\n".join(extensions) + "\n")
        signer = ["-selfsign", "-keyfile", key_path] if issuer is None else ["-cert", self.path(issuer), "-keyfile", self.key(issuer)]
        out = self.path(name)
        openssl("ca", "-batch", "-notext", "-config", self.config, "-in", csr, "-out", out, *signer, "-extfile", extfile,
                "-startdate", when(start), "-enddate", when(end), "-preserveDN", "-md", "sha256")
        if public_key:
            # openssl ca signs the request's key; x509 -req can put another one in (-force_pubkey) under the same issuer.
            openssl("x509", "-req", "-in", csr, "-out", out, "-force_pubkey", public_key, "-CA", self.path(issuer),
                    "-CAkey", self.key(issuer), "-extfile", extfile, "-set_serial", "0x" + os.urandom(8).hex(), "-days", str(end))
        return out

    def chain(self, name, *certificates):
        """A PEM file of `certificates` (paths) in order, as a peer sends them: its own first."""
        path = self.path(name, "chain.pem")
        with open(path, "w") as f:
            for certificate in certificates:
                f.write(open(certificate).read())
        return path


def der_elements(der):
    """The top-level elements of a DER SEQUENCE as (tag, whole element) pairs."""
    def length_at(i):
        first = der[i]
        if first < 0x80:
            return first, i + 1
        count = first & 0x7f
        return int.from_bytes(der[i + 1:i + 1 + count], "big"), i + 1 + count
    _, body = length_at(1)
    elements, i = [], body
    while i < len(der):
        size, start = length_at(i + 1)
        elements.append((der[i], der[i:start + size]))
        i = start + size
    return elements


def der(tag, content):
    size = len(content)
    if size < 0x80:
        head = bytes([size])
    else:
        octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(octets)]) + octets
    return bytes([tag]) + head + content


def rsa_public_key_pem(modulus, exponent):
    """A SubjectPublicKeyInfo for RSA with any exponent (0 and 1 included, which no tool generates)."""
    def integer(value):
        octets = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
        return der(0x02, octets)
    rsa_key = der(0x30, integer(modulus) + integer(exponent))
    algorithm = der(0x30, der(0x06, bytes.fromhex("2a864886f70d010101")) + der(0x05, b""))
    spki = der(0x30, algorithm + der(0x03, b"\x00" + rsa_key))
    import base64
    body = base64.encodebytes(spki).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def rsa_modulus(key_path):
    text = openssl("rsa", "-in", key_path, "-noout", "-modulus").decode()
    return int(text.strip().split("=", 1)[1], 16)


def with_unpadded_signature(certificate_path, modulus_bytes):
    """The certificate with its signature replaced by the bare PKCS#1 v1.5 encoding of its SHA-256 digest: what
    verifies under an RSA key with exponent 1 (s^1 = EM), i.e. a forgery without any private key."""
    pem = open(certificate_path).read()
    body = der_pem(pem)
    tbs, algorithm, _ = [element for _, element in der_elements(body)]
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(tbs).digest()
    encoded = b"\x00\x01" + b"\xff" * (modulus_bytes - len(digest_info) - 3) + b"\x00" + digest_info
    forged = der(0x30, tbs + algorithm + der(0x03, b"\x00" + encoded))
    import base64
    text = base64.encodebytes(forged).decode().replace("\n", "")
    with open(certificate_path, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\n" + "\n".join(text[i:i + 64] for i in range(0, len(text), 64)) + "\n-----END CERTIFICATE-----\n")


def der_pem(pem):
    import base64
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return base64.b64decode("".join(lines))
