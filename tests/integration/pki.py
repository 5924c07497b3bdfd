"""A throwaway PKI made with the openssl CLI, and fingerprints computed the way Postfix's
relay_clientcerts documentation does."""

from __future__ import annotations

import hashlib
import os
import ssl

from util import HOSTNAME, OPENSSL, read_text, run

class Cert:
    def __init__(self, name: str, cert: str, key: str):
        self.name, self.cert, self.key = name, cert, key

    def __repr__(self):
        return f"Cert({self.name})"


class Pki:
    """CA (EC P-256), server certificate for localhost / mx.test.example / 127.0.0.1, and
    client certificates: trusted (CA-signed, clientAuth), untrusted (CA-signed, not listed),
    selfsigned (no CA)."""

    def __init__(self, directory: str):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca = self._make_ca()
        self.server = self._make_signed("server", "/CN=" + HOSTNAME,
                                        ["subjectAltName=DNS:localhost,DNS:" + HOSTNAME + ",IP:127.0.0.1",
                                         "extendedKeyUsage=serverAuth",
                                         "keyUsage=critical,digitalSignature"])
        # "leaf then chain", as the config wants it.
        self.server_chain = os.path.join(directory, "server-chain.crt")
        with open(self.server_chain, "w") as out:
            out.write(read_text(self.server.cert) + read_text(self.ca.cert))
        client_ext = ["extendedKeyUsage=clientAuth", "keyUsage=critical,digitalSignature"]
        self.trusted = self._make_signed("trusted", "/CN=trusted.client.example", client_ext)
        self.untrusted = self._make_signed("untrusted", "/CN=untrusted.client.example", client_ext)
        self.selfsigned = self._make_selfsigned("selfsigned", "/CN=selfsigned.client.example")

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _newkey_args(self):
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def _make_ca(self) -> Cert:
        crt, key = self._path("ca.crt"), self._path("ca.key")
        run([OPENSSL, "req", "-x509", *self._newkey_args(), "-keyout", key, "-out", crt,
             "-days", "30", "-subj", "/CN=certrelay integration test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        return Cert("ca", crt, key)

    def _make_signed(self, name: str, subject: str, extensions) -> Cert:
        crt, key, csr, ext = (self._path(name + s) for s in (".crt", ".key", ".csr", ".ext"))
        run([OPENSSL, "req", "-new", *self._newkey_args(), "-keyout", key, "-out", csr,
             "-subj", subject])
        with open(ext, "w") as f:
            f.write("\n".join(["basicConstraints=CA:FALSE", *extensions]) + "\n")
        run([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.ca.cert, "-CAkey", self.ca.key,
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30",
             "-extfile", ext, "-out", crt])
        return Cert(name, crt, key)

    def _make_selfsigned(self, name: str, subject: str) -> Cert:
        crt, key = self._path(name + ".crt"), self._path(name + ".key")
        run([OPENSSL, "req", "-x509", *self._newkey_args(), "-keyout", key, "-out", crt,
             "-days", "30", "-subj", subject, "-addext", "extendedKeyUsage=clientAuth"])
        return Cert(name, crt, key)

    @staticmethod
    def fingerprint(cert) -> str:
        """SHA-256 of the DER certificate, `AB:CD:...` as openssl prints it."""
        path = cert.cert if isinstance(cert, Cert) else cert
        out = run([OPENSSL, "x509", "-noout", "-fingerprint", "-sha256", "-in", path]).stdout.decode()
        # OpenSSL 3.0: "sha256 Fingerprint=3E:F8:..."; older: "SHA256 Fingerprint=..."
        return out.strip().split("=", 1)[1].upper()

    @staticmethod
    def pkey_fingerprint(cert) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo (Postfix's public-key fingerprint)."""
        path = cert.cert if isinstance(cert, Cert) else cert
        pub = run([OPENSSL, "x509", "-noout", "-pubkey", "-in", path]).stdout
        der = run([OPENSSL, "pkey", "-pubin", "-outform", "DER"], input=pub).stdout
        out = run([OPENSSL, "dgst", "-sha256", "-c"], input=der).stdout.decode()
        # OpenSSL 3.0: "SHA2-256(stdin)= 23:df:..."; older: "(stdin)= ..."
        return out.strip().split("= ", 1)[1].upper()

    @staticmethod
    def der_sha256(cert) -> str:
        """The certificate fingerprint computed in Python, to cross-check the openssl one."""
        path = cert.cert if isinstance(cert, Cert) else cert
        der = ssl.PEM_cert_to_DER_cert(read_text(path))
        return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def write_fingerprints(path: str, entries) -> str:
    """Writes a relay_clientcerts-style table: lines "FINGERPRINT identity"."""
    with open(path, "w") as f:
        f.write("# written by the integration harness\n")
        for fp, identity in entries:
            f.write(f"{fp} {identity}\n")
    return path


# ---------------------------------------------------------------------------------------------
# More certificates for the TLS reload, ticket-key and implicit-TLS tests (tls_support.py):
# other CAs, server certificates with a new key or a renewed one with the same key, RSA
# server certificates, certificates that expire soon.
# ---------------------------------------------------------------------------------------------
SERVER_EXTENSIONS = ["subjectAltName=DNS:localhost,DNS:" + HOSTNAME + ",IP:127.0.0.1",
                     "extendedKeyUsage=serverAuth", "keyUsage=critical,digitalSignature"]
CLIENT_EXTENSIONS = ["extendedKeyUsage=clientAuth", "keyUsage=critical,digitalSignature"]


def _newkey_args(key_type: str) -> list[str]:
    if key_type == "ec":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    if key_type == "rsa":
        return ["-newkey", "rsa:2048", "-nodes"]
    raise ValueError(f"unknown key type {key_type!r}")


def make_ca(directory: str, name: str, subject: str, days: int = 30) -> Cert:
    """Another self-signed CA (EC P-256) in `directory`: <name>.crt, <name>.key."""
    os.makedirs(directory, exist_ok=True)
    crt, key = (os.path.join(directory, name + s) for s in (".crt", ".key"))
    run([OPENSSL, "req", "-x509", *_newkey_args("ec"), "-keyout", key, "-out", crt,
         "-days", str(days), "-subj", subject,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return Cert(name, crt, key)


def issue_cert(directory: str, name: str, subject: str, ca: Cert, extensions,
               days: int = 30, key_type: str = "ec", reuse_key: str | None = None) -> Cert:
    """A certificate signed by `ca`, valid `days` days from now: <name>.crt, <name>.key. With
    `reuse_key` (a PEM key file) the certificate is for that key (a renewal with the same key;
    the key is copied to <name>.key); otherwise a new key of `key_type` ("ec" or "rsa")."""
    os.makedirs(directory, exist_ok=True)
    crt, key, csr, ext = (os.path.join(directory, name + s)
                          for s in (".crt", ".key", ".csr", ".ext"))
    if reuse_key:
        with open(reuse_key, "rb") as src, open(key, "wb") as dst:
            dst.write(src.read())
        run([OPENSSL, "req", "-new", "-key", key, "-out", csr, "-subj", subject])
    else:
        run([OPENSSL, "req", "-new", *_newkey_args(key_type), "-keyout", key, "-out", csr,
             "-subj", subject])
    with open(ext, "w") as f:
        f.write("\n".join(["basicConstraints=CA:FALSE", *extensions]) + "\n")
    run([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
         "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(days),
         "-extfile", ext, "-out", crt])
    return Cert(name, crt, key)


def issue_server(directory: str, name: str, ca: Cert, cn: str = HOSTNAME, days: int = 30,
                 key_type: str = "ec", reuse_key: str | None = None) -> Cert:
    """A server certificate for the same names as Pki.server (localhost, HOSTNAME, 127.0.0.1),
    with subject CN `cn`."""
    return issue_cert(directory, name, "/CN=" + cn, ca, SERVER_EXTENSIONS, days, key_type,
                      reuse_key)


def issue_client(directory: str, name: str, cn: str, ca: Cert) -> Cert:
    """A client certificate (clientAuth) signed by `ca`."""
    return issue_cert(directory, name, "/CN=" + cn, ca, CLIENT_EXTENSIONS)


def chain_bytes(*certs) -> bytes:
    """The PEM of each certificate (a Cert or a path), concatenated: "leaf then chain"."""
    out = b""
    for cert in certs:
        path = cert.cert if isinstance(cert, Cert) else cert
        with open(path, "rb") as f:
            out += f.read()
    return out
