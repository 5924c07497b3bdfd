"""One throwaway PKI for every target: EC P-256 CA, server certificate, client certificate."""

from __future__ import annotations

import os

from .system import run

SERVER_NAME = "mx.bench.example"
CLIENT_IDENTITY = "bench-client"


class Pki:
    def __init__(self, directory: str):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        p = lambda n: os.path.join(directory, n)  # noqa: E731
        self.ca_crt, self.ca_key = p("ca.crt"), p("ca.key")
        self.server_crt, self.server_key = p("server.crt"), p("server.key")
        self.server_chain = p("server-chain.crt")
        self.client_crt, self.client_key = p("client.crt"), p("client.key")
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        run(["openssl", "req", "-x509", *newkey, "-keyout", self.ca_key, "-out", self.ca_crt,
             "-days", "7", "-subj", "/CN=certrelay bench CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        self._signed("server", "/CN=" + SERVER_NAME,
                     [f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1",
                      "extendedKeyUsage=serverAuth", "keyUsage=critical,digitalSignature"])
        self._signed("client", "/CN=client.bench.example",
                     ["extendedKeyUsage=clientAuth", "keyUsage=critical,digitalSignature"])
        with open(self.server_chain, "w") as out:
            for f in (self.server_crt, self.ca_crt):
                with open(f) as src:
                    out.write(src.read())
        for f in os.listdir(directory):        # readable by unprivileged workers (nginx, smtpd)
            os.chmod(os.path.join(directory, f), 0o644)
        os.chmod(directory, 0o755)
        # Postfix's `fingerprint=` form: SHA-256 of the DER certificate, colon-separated hex.
        out = run(["openssl", "x509", "-noout", "-fingerprint", "-sha256",
                   "-in", self.client_crt]).stdout
        self.client_fingerprint = out.strip().split("=", 1)[1].upper()
        self.relay_clientcerts = p("relay_clientcerts")
        with open(self.relay_clientcerts, "w") as f:
            f.write("# Postfix relay_clientcerts format: the benchmark's client certificate\n"
                    f"{self.client_fingerprint} {CLIENT_IDENTITY}\n")
        os.chmod(self.relay_clientcerts, 0o644)

    def _signed(self, name: str, subject: str, extensions: list[str]):
        d = self.dir
        key, csr, crt, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".crt", ".ext"))
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", csr, "-subj", subject])
        with open(ext, "w") as f:
            f.write("\n".join(["basicConstraints=CA:FALSE", *extensions]) + "\n")
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca_crt, "-CAkey", self.ca_key,
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "7",
             "-extfile", ext, "-out", crt])
