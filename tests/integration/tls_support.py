"""Shared pieces of the TLS material tests (test_tls_reload.py, test_ticket_keys.py,
test_implicit_tls.py): Kubernetes-style secret volumes with several files, the log lines of
the TLS watcher, one-shot `openssl s_client` handshakes (the certificate served, the handshake
messages seen), ticket-key files, and a start-up that is expected to fail.

The TLS watcher's lines (stdout of the proxy) are matched loosely: the summary text between
the reason and the content hash may carry any detail (CN, key type, expiry, counts).

  tls: loaded <summary>, sha256 <16 hex>
  tls: reloaded (change|poll|SIGHUP) <summary>, sha256 <16 hex>
  warning: tls: <problem naming the file>; keeping the certificates in force (<summary>, sha256 <16 hex>)
  tls: SIGHUP: unchanged (<summary>, sha256 <16 hex>)
  warning: tls: tls.cert <file>: certificate expires in N days (...)
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import smtplib
import subprocess

import harness
from harness import HOSTNAME, OPENSSL, REMOTE_DOMAIN, Expect, LogCapture, client_context
from policy_support import FAST_DEBOUNCE, NO_POLL, PolicyTest

HELO = "client.test.example"
SENDER = "alice@client.test.example"
SCLIENT_HELO = "sclient.test.example"

# ---------------------------------------------------------------------------------------------
# Log lines of the TLS watcher
# ---------------------------------------------------------------------------------------------
_HASH = r"sha256 (?P<hash>[0-9a-f]{16})"
LOG_TLS_LOADED = re.compile(r"tls: loaded (?P<summary>.*), " + _HASH + r"\b")
LOG_TLS_ANY_RELOAD = re.compile(r"tls: reloaded \(")
LOG_ANY_RELOAD = re.compile(r"(tls|policy): reloaded \(")
LOG_TLS_KEEPING = re.compile(r"warning: tls: (?P<problem>.*); keeping the certificates in force "
                             r"\((?P<summary>.*), " + _HASH + r"\)")
LOG_TLS_UNCHANGED = re.compile(r"tls: SIGHUP: unchanged \((?P<summary>.*), " + _HASH + r"\)")
LOG_TLS_EXPIRES = re.compile(r"warning: tls: tls\.cert (?P<file>\S+): certificate expires in "
                             r"(?P<days>\d+) days?\b")
LOG_POLICY_UNCHANGED = re.compile(r"policy: SIGHUP: .* unchanged \(")
LOG_REQUIRE_NO_CERT = re.compile(r"no client certificate \(client_cert = require\)")


def log_tls_reloaded(reason: str = r"change|poll|SIGHUP") -> re.Pattern:
    return re.compile(rf"tls: reloaded \((?P<reason>{reason})\) (?P<summary>.*), " + _HASH + r"\b")


def log_tls_keeping(problem: str) -> re.Pattern:
    """The keep-the-old-certificates warning whose problem text matches the regex `problem`."""
    return re.compile(r"warning: tls: (?P<problem>.*" + problem + r".*); keeping the "
                      r"certificates in force \((?P<summary>.*), " + _HASH + r"\)")


# ---------------------------------------------------------------------------------------------
# Files on disk
# ---------------------------------------------------------------------------------------------
class KubeletSecret:
    """A Secret volume with several files, laid out as kubelet's AtomicWriter does (the same
    layout as policy_support.KubeletVolume, for any set of names):

        D/..2026_11_20_00_00_00.1/tls.crt, tls.key, ...   one version's payload
        D/..data -> ..2026_11_20_00_00_00.1
        D/tls.crt -> ..data/tls.crt                        one link per name

    update() publishes a complete new payload the way kubelet does: a new timestamped
    directory, `..data_tmp` pointing at it, renamed over `..data`, then the old directory
    removed. Every file of a version changes at the same instant."""

    def __init__(self, directory: str, files: dict[str, bytes]):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.names = sorted(files)
        self.version = 0
        self.files = dict(files)
        self.current = self._write_version(files)
        os.symlink(self.current, os.path.join(directory, "..data"))
        for name in self.names:
            os.symlink(os.path.join("..data", name), os.path.join(directory, name))

    def path(self, name: str) -> str:
        """What the config names: D/<name>."""
        return os.path.join(self.dir, name)

    def _write_version(self, files: dict[str, bytes]) -> str:
        self.version += 1
        name = f"..2026_11_20_00_00_00.{self.version}"
        os.mkdir(os.path.join(self.dir, name), 0o755)
        for file_name, data in files.items():
            with open(os.path.join(self.dir, name, file_name), "wb") as f:
                f.write(data)
        return name

    def update(self, files: dict[str, bytes]):
        """A new version; names not given keep their current content."""
        payload = dict(self.files)
        payload.update(files)
        if sorted(payload) != self.names:
            raise ValueError(f"a secret keeps its names: {sorted(payload)} != {self.names}")
        old = self.current
        new = self._write_version(payload)
        tmp_link = os.path.join(self.dir, "..data_tmp")
        os.symlink(new, tmp_link)
        os.replace(tmp_link, os.path.join(self.dir, "..data"))
        self.current = new
        self.files = payload
        old_dir = os.path.join(self.dir, old)
        for name in os.listdir(old_dir):
            os.unlink(os.path.join(old_dir, name))
        os.rmdir(old_dir)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def ticket_key_bytes(size: int = 80) -> bytes:
    """A ticket key as operators make one: `openssl rand 80` (or 48)."""
    data = harness.run([OPENSSL, "rand", str(size)]).stdout
    assert len(data) == size, len(data)
    return data


def write_ticket_key(path: str, size: int = 80) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(ticket_key_bytes(size))
    return path


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def peer_fingerprint(sock) -> str:
    """SHA-256 of the certificate the server presented on an SSLSocket, `AB:CD:...`."""
    return colon_hex(hashlib.sha256(sock.getpeercert(binary_form=True)).digest())


def smtps_client(context, helo: str = HELO) -> smtplib.SMTP_SSL:
    """An smtplib.SMTP_SSL not connected yet, so that connect() returns the greeting. smtplib
    takes the TLS server name from the host given to the constructor (`_host`), which stays
    empty without one: set it to the proxy's name, as a client that connects to
    mx.test.example would send it (the TCP connection still goes to 127.0.0.1)."""
    smtp = smtplib.SMTP_SSL(local_hostname=helo, timeout=10, context=context)
    smtp._host = HOSTNAME
    return smtp


# ---------------------------------------------------------------------------------------------
# openssl s_client, one handshake at a time
# ---------------------------------------------------------------------------------------------
class SClientResult:
    """The outcome of one `openssl s_client` run whose stdin was at EOF: s_client does the
    handshake, prints what it saw, and closes."""

    def __init__(self, args, proc: subprocess.CompletedProcess):
        self.args = args
        self.returncode = proc.returncode
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")

    @property
    def handshake_ok(self) -> bool:
        """s_client's summary names a real cipher ("New, TLSv1.3, Cipher is TLS_...");
        a failed handshake prints "Cipher is (NONE)"."""
        return bool(re.search(r"^New, \S+, Cipher is (?!\(NONE\))\S+", self.stdout, re.M))

    @property
    def protocol(self) -> str | None:
        m = re.search(r"^New, (\S+), Cipher is", self.stdout, re.M)
        return m.group(1) if m else None

    @property
    def certificate_request(self) -> bool:
        """A CertificateRequest handshake message came from the server (needs -msg)."""
        return bool(re.search(r"^<<< .*Handshake \[length [0-9a-f]+\], CertificateRequest$",
                              self.stdout, re.M))

    @property
    def ca_names(self) -> list[str]:
        """The "Acceptable client certificate CA names" s_client printed (CA hints)."""
        m = re.search(r"^Acceptable client certificate CA names\n((?:(?!---|Requested|Client "
                      r"Certificate Types|Shared).*\n)*)", self.stdout, re.M)
        return [l.strip() for l in m.group(1).splitlines() if l.strip()] if m else []

    @property
    def server_pem(self) -> str | None:
        m = re.search(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n",
                      self.stdout, re.S)
        return m.group(0) if m else None

    def fingerprint(self) -> str | None:
        """SHA-256 fingerprint of the server certificate, computed by `openssl x509
        -fingerprint -sha256` from the PEM s_client printed."""
        pem = self.server_pem
        if pem is None:
            return None
        out = harness.run([OPENSSL, "x509", "-noout", "-fingerprint", "-sha256"],
                          input=pem.encode()).stdout.decode()
        return out.strip().split("=", 1)[1].upper()

    def dump(self) -> str:
        return (f"--- s_client {' '.join(self.args)} (exit {self.returncode}) ---\n"
                f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-3000:]}")


def s_client(port: int, *, starttls: bool = True, ca: str | None = None, cert=None,
             extra=(), timeout: float = 15.0) -> SClientResult:
    """One `openssl s_client` handshake on 127.0.0.1:port, stdin at EOF (s_client closes once
    the handshake is done). starttls: `-starttls smtp` (EHLO + STARTTLS first); otherwise
    TLS from the first byte (an implicit-TLS listener). ca: verify the server's chain."""
    args = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}"]
    if starttls:
        args += ["-starttls", "smtp", "-name", SCLIENT_HELO]
    if ca:
        args += ["-CAfile", ca, "-verify_return_error"]
    if cert is not None:
        args += ["-cert", cert.cert, "-key", cert.key]
    args += list(extra)
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return SClientResult(args, proc)


# ---------------------------------------------------------------------------------------------
# A start-up that must fail
# ---------------------------------------------------------------------------------------------
def run_expecting_exit(binary: str, config_path: str, timeout: float = 10.0):
    """Starts certrelay and waits until it exits or prints `ready:` (bounded). Returns
    (exit code or None if it got ready, combined stdout+stderr text). A daemon that got
    ready is stopped."""
    proc = subprocess.Popen([binary, "--config", config_path], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log = LogCapture(proc.stdout, f"certrelay[{proc.pid}]")
    try:
        ready = log.wait_for(Expect.LOG_READY, timeout)
        if ready:
            return None, log.text()
        try:
            code = proc.wait(5.0)
        except subprocess.TimeoutExpired:
            return None, log.text() + "\n(neither ready nor exited)"
        log.wait_eof(2.0)
        return code, log.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def check_config(config_path: str) -> subprocess.CompletedProcess:
    return harness.run([harness.CERTRELAY_BIN, "--check-config", "-c", config_path],
                       timeout=10, check=False)


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# Test base
# ---------------------------------------------------------------------------------------------
class TlsTest(PolicyTest):
    """PolicyTest (a scripted backend per test, one-shot relay attempts, log waits) plus
    proxies with TLS settings, s_client probes and smtplib sessions."""

    def start_tls_proxy(self, tls: dict | None = None, listeners=None, entries=None,
                        policy: dict | None = None, **overrides) -> harness.Proxy:
        """A proxy with a 100 ms debounce and no poll for every watched file. `tls` is merged
        into [tls]; `listeners` replaces the [[listener]] list."""
        settings = {"reload_debounce": FAST_DEBOUNCE, "reload_poll_interval": NO_POLL}
        settings.update(policy or {})
        if tls:
            overrides["tls"] = tls
        if listeners is not None:
            overrides["listener"] = listeners
        return self.start_proxy(self.backend.port, fingerprints=entries, policy=settings,
                                **overrides)

    def loaded(self, proxy) -> re.Match:
        """The start-up `tls: loaded` line."""
        return self.wait_line(proxy, LOG_TLS_LOADED, 0, timeout=3.0, what="tls: loaded at start-up")

    def served_fingerprint(self, proxy, port: int | None = None, starttls: bool = True,
                           extra=()) -> str:
        """The fingerprint of the certificate a new s_client connection gets; the chain must
        verify against the test CA for the proxy's host name."""
        result = s_client(port or proxy.port, starttls=starttls, ca=self.pki.ca.cert,
                          extra=["-verify_hostname", HOSTNAME, *extra])
        self.assertTrue(result.handshake_ok and result.returncode == 0,
                        "s_client handshake failed\n" + result.dump() + "\n" + proxy.dump())
        fp = result.fingerprint()
        self.assertIsNotNone(fp, result.dump())
        return fp

    def smtplib_session(self, proxy, cert, port: int | None = None, tls_version=None):
        """smtplib past STARTTLS (EHLO, STARTTLS with `cert`, EHLO)."""
        smtp = smtplib.SMTP("127.0.0.1", port or proxy.port, local_hostname=HELO, timeout=10)
        self.addCleanup(smtp.close)
        self.assertEqual(smtp.ehlo()[0], 250)
        code, text = smtp.starttls(context=client_context(cert, max_version=tls_version))
        self.assertEqual(code, 220, text)
        self.assertEqual(smtp.ehlo()[0], 250)
        return smtp

    def smtps_session(self, port: int, cert, tls_version=None, context=None):
        """smtplib.SMTP_SSL (TLS from the first byte): connected, greeting checked, EHLO."""
        smtp = smtps_client(context or client_context(cert, max_version=tls_version))
        self.addCleanup(smtp.close)
        code, text = smtp.connect("127.0.0.1", port)
        self.assertEqual(code, 220, text)
        self.assertRegex(f"220 {text.decode()}", Expect.GREETING)
        code, _ = smtp.ehlo()
        self.assertEqual(code, 250)
        return smtp

    def message_for(self, rcpt: str, subject: str) -> tuple[str, bytes]:
        return harness.unique_message(subject, SENDER, [rcpt])

    def backend_message(self, message_id: str) -> bytes:
        """The content the backend received for the message with this Message-ID."""
        return self.backend.wait_for(
            lambda b: next((m for c in b.sessions() for m in c.messages
                            if message_id.encode() in m), None),
            timeout=10.0, what=f"message {message_id} at the backend")

    def deliver(self, proxy, cert, rcpt: str | None = None, port: int | None = None):
        """A whole session with `cert` that relays one message (RCPT must get 250). Returns
        (the certrelay Received header of the message at the backend, the proxy's log lines of
        the session)."""
        rcpt = rcpt or f"relay-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        mark = proxy.mark()
        smtp = self.smtplib_session(proxy, cert, port)
        message_id, content = self.message_for(rcpt, "deliver")
        code, text = smtp.mail(SENDER)
        self.assertEqual(code, 250, text)
        code, text = smtp.rcpt(rcpt)
        self.assertEqual(code, 250, f"{cert} should relay to {rcpt}: {code} {text!r}\n"
                         + proxy.dump())
        code, text = smtp.data(content)
        self.assertEqual(code, 250, text)
        smtp.quit()
        received, _ = harness.split_received(self.backend_message(message_id))
        self.wait_line(proxy, re.compile(r"disconnect from unknown"), mark)
        return received, proxy.lines()[mark:]

    def established(self, lines) -> str:
        """"Trusted", "Untrusted" or "Anonymous" from the session's TLS line."""
        for line in lines:
            m = Expect.LOG_TLS_ESTABLISHED.search(line)
            if m:
                return m.group(1)
        self.fail("no 'TLS connection established' line:\n" + "\n".join(lines))

    def count_lines(self, proxy, pattern, start: int, end: int | None = None) -> list[str]:
        return [l for l in proxy.lines()[start:end] if pattern.search(l)]

    def line_index(self, proxy, pattern, start: int) -> int:
        """Index of the first line at or after `start` matching `pattern` (which must exist)."""
        for i, line in enumerate(proxy.lines()):
            if i >= start and pattern.search(line):
                return i
        self.fail(f"no line {pattern.pattern!r}\n" + proxy.dump())

    def sighup(self, proxy):
        proxy.proc.send_signal(signal.SIGHUP)
