"""Single-session checks run before any measurement: each target must really carry a session
with the client certificate to the sink, and really ask for the certificate."""

from __future__ import annotations

import os
import smtplib
import ssl
import subprocess
import time
import uuid

from .system import BenchError

FROM = "bench@client.bench.example"
RCPT = "user@remote.example"          # not local: relaying needs the listed certificate


def client_context(pki, with_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca_crt)
    ctx.check_hostname = False
    if with_cert:
        ctx.load_cert_chain(pki.client_crt, pki.client_key)
    return ctx


def one_session(port: int, pki, tls: bool = True, with_cert: bool = True,
                rcpt: str = RCPT) -> dict:
    """EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA, QUIT; returns the replies that matter."""
    token = uuid.uuid4().hex
    msg = (f"From: <{FROM}>\r\nTo: <{rcpt}>\r\nSubject: bench smoke {token}\r\n"
           f"Message-ID: <{token}@client.bench.example>\r\n\r\nsmoke test {token}\r\n")
    out = {"token": token}
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.bench.example",
                      timeout=15) as s:
        s.ehlo()
        if tls:
            code, text = s.starttls(context=client_context(pki, with_cert))
            out["starttls"] = (code, text.decode(errors="replace"))
            s.ehlo()
        out["mail"] = s.mail(FROM)
        code, text = s.rcpt(rcpt)
        out["rcpt"] = (code, text.decode(errors="replace"))
        if code == 250:
            code, text = s.data(msg.encode())
            out["data"] = (code, text.decode(errors="replace"))
        s.quit()
    return out


def certificate_requested(port: int, pki, timeout: float = 15) -> bool:
    """True if the server sends a TLS CertificateRequest after STARTTLS (openssl s_client
    prints 'Requested Signature Algorithms' only then)."""
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        f"127.0.0.1:{port}", "-cert", pki.client_crt, "-key", pki.client_key,
                        "-CAfile", pki.ca_crt],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    return "Requested Signature Algorithms" in p.stdout


def dumped_message(dump_dir: str, token: str, timeout: float = 5) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir(dump_dir):
            path = os.path.join(dump_dir, name)
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            if token in text:
                return text
        time.sleep(0.05)
    return None


def check_target(target, pki, dump_dir: str, policy: bool) -> list[str]:
    """Runs the checks; returns lines for the report; raises BenchError on a failure.
    policy: the target decides relaying by fingerprint (certrelay, Postfix), so a session
    without the certificate must get 454 for the remote recipient."""
    lines = []
    auth_before = target.auth_requests_served() if hasattr(target, "auth_requests_served") \
        else None
    r = one_session(target.port, pki, tls=target.tls)
    if r["rcpt"][0] != 250 or r.get("data", (0,))[0] != 250:
        raise BenchError(f"{target.label}: session with the client certificate failed: {r}\n"
                         f"{target.logs()}")
    text = dumped_message(dump_dir, r["token"])
    if text is None:
        raise BenchError(f"{target.label}: the message did not reach the sink ({r})\n"
                         f"{target.logs()}")
    received = [ln for ln in text.splitlines() if ln.startswith(("Received:", "\t", " "))][:12]
    lines.append(f"{target.label}: relayed to the sink with the client certificate: "
                 f"RCPT {r['rcpt'][0]}, end of data {r['data'][0]} {r['data'][1][:60]!r}")
    lines += ["    " + ln.strip() for ln in received]
    if auth_before is not None:
        asked = target.auth_requests_served() - auth_before
        if asked != 1:
            raise BenchError(f"{target.label}: the auth_http endpoint answered {asked} "
                             "requests for one session, expected 1")
        lines.append(f"{target.label}: the session went through auth_http (1 request, "
                     "answered Auth-Status: OK, Auth-Server/Auth-Port = the sink)")
    if target.tls:
        if not certificate_requested(target.port, pki):
            raise BenchError(f"{target.label}: no CertificateRequest after STARTTLS")
        lines.append(f"{target.label}: CertificateRequest sent (openssl s_client)")
    if policy:
        r2 = one_session(target.port, pki, tls=True, with_cert=False)
        if r2["rcpt"][0] != 454:
            raise BenchError(f"{target.label}: without the certificate RCPT got {r2['rcpt']},"
                             " expected 454 (the fingerprint is not what decides?)")
        lines.append(f"{target.label}: without the certificate: RCPT {r2['rcpt'][0]} "
                     f"{r2['rcpt'][1][:50]!r} (the fingerprint decides)")
    return lines
