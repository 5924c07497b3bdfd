"""Integration-test harness for certrelay: the one module the tests import.

Everything runs on loopback with kernel-chosen ports, and every wait has a deadline.

  Expect          every reply / log text the tests compare against, in one place (here)
  Proxy           the certrelay binary under test, with a generated config (here)
  IntegrationTest unittest.TestCase base: temp dirs, fixtures, log dumps on failure (here)
  main()          unittest runner that exits 77 when everything was skipped (ctest SKIP)
  Pki             a throwaway CA, server and client certificates (pki.py)
  SmtpSink        Postfix's smtp-sink as a capturing backend (backends.py)
  ScriptedBackend a Python SMTP server with fault hooks a real MTA cannot produce (backends.py)
  PostfixInstance a private, real Postfix (root only) that shows XCLIENT's effect, or only
                  XFORWARD's, or neither, and can deliver into an smtp-sink (postfix.py)
  Received        certrelay's Received header: split off a message, parsed, checked (received.py)
  SmtpClient      a raw SMTP client: one write per send, bounded reads, STARTTLS (smtp_client.py)
  client_context  ssl.SSLContext for smtplib / SmtpClient with an optional client cert
  util.py         constants, processes with deadlines, ports, bounded polling, LogCapture

Only Debian's /usr/bin/python3 standard library is used.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The pieces live in modules of their own; tests import everything from here.
from backends import XCLIENT_ALL, BackendConnection, Behaviour, ScriptedBackend, SmtpSink  # noqa: E402
from pki import Cert, Pki, write_fingerprints  # noqa: E402
from postfix import PostfixInstance  # noqa: E402
from received import (Received, header_fields, hygiene, is_certrelay,  # noqa: E402
                      received_fields, sanitized, split_received)
from smtp_client import (Reply, SmtpClient, SmtpError, client_context, unique_message,  # noqa: E402
                         xclient_attributes)
from util import (CERTRELAY_BIN, HOSTNAME, LOCAL_DOMAIN, OPENSSL, REMOTE_DOMAIN,  # noqa: E402
                  SELFSIGNED_IDENTITY, TRUSTED_IDENTITY, LogCapture, RefusingPort, free_port,
                  is_root, make_tmpdir, pid_alive, port_accepts, read_text, rss_bytes, run,
                  stop_process, wait_until)

__all__ = [
    "ADMIN_FREE", "Expect", "Proxy", "ProxyStartError", "IntegrationTest", "main", "connect", "render_toml",
    "deep_merge",
    "XCLIENT_ALL", "BackendConnection", "Behaviour", "ScriptedBackend", "SmtpSink",
    "Cert", "Pki", "write_fingerprints", "PostfixInstance",
    "Received", "header_fields", "hygiene", "is_certrelay", "received_fields", "sanitized", "split_received",
    "Reply", "SmtpClient", "SmtpError", "client_context", "unique_message", "xclient_attributes",
    "CERTRELAY_BIN", "HOSTNAME", "LOCAL_DOMAIN", "OPENSSL", "REMOTE_DOMAIN",
    "SELFSIGNED_IDENTITY", "TRUSTED_IDENTITY", "LogCapture", "RefusingPort", "free_port",
    "is_root", "make_tmpdir", "pid_alive", "port_accepts", "read_text", "rss_bytes", "run",
    "stop_process", "wait_until",
]


# ---------------------------------------------------------------------------------------------
# Expected texts. The daemon's exact wording may still move a little; adjust here only.
# Most checks compare the code and the enhanced status code; a few compare the full text that
# the contract (design.md / Postfix) fixes.
# ---------------------------------------------------------------------------------------------
class Expect:
    GREETING = re.compile(r"^220 " + re.escape(HOSTNAME) + r" ESMTP certrelay")
    STARTTLS_READY = "220 2.0.0 Ready to start TLS"
    TLS_ALREADY_ACTIVE = "554 5.5.1 Error: TLS already active"
    STARTTLS_SYNTAX = "501 5.5.4 Syntax: STARTTLS"
    NEED_MAIL = "503 5.5.1"                       # DATA / RCPT without MAIL
    NO_VALID_RCPT = "554 5.5.1 Error: no valid recipients"
    UNKNOWN_COMMAND = "502 5.5.2 Error: command not recognized"
    LINE_TOO_LONG = "500 5.5.2 Error: line too long"
    XCLIENT_REFUSED = "550 5.7.0"                 # client sends XCLIENT / XFORWARD
    TOO_MANY_ERRORS = re.compile(r"^421 4\.7\.0 (\S+ )?Error: too many errors")
    TIMEOUT = re.compile(r"^421 4\.4\.2 (\S+ )?Error: timeout exceeded")
    TOO_MANY_RECIPIENTS = "452 4.5.3"
    SHUTDOWN = re.compile(r"^421 4\.3\.2")          # draining: idle sessions at SIGTERM
    # Backend reply lost/malformed after "." (outcome unknown).
    UNKNOWN_OUTCOME = re.compile(r"^451 4\.3\.0")
    # Backend silent after "." beyond timeouts.backend_reply.
    BACKEND_REPLY_TIMEOUT = re.compile(r"^451 4\.3\.0 .*status unknown")
    # Backend trouble during a command: 451 4.3.0 for the command in flight (design.md), never a
    # 5xx the backend did not send; the session stays usable.
    BACKEND_TROUBLE = re.compile(r"^451 4\.3\.0 Error: backend unavailable")
    # The backend wants authentication from the proxy (530): a configuration error.
    BACKEND_REFUSED_PROXY = re.compile(r"^421 4\.3\.5 ")
    # Postfix's smtpd_forbidden_commands reply (HTTP request lines, header lines).
    FORBIDDEN_COMMAND = "221 2.7.0"
    # --check-config and start-up errors.
    CONFIG_ERROR = re.compile(r"certrelay\.toml:(?P<line>\d+): (?P<reason>\S.*)")
    # Capabilities the proxy must never show a client (README "The SMTP dialogue": never
    # XCLIENT, XFORWARD, AUTH, VRFY, ETRN). CHUNKING is shown exactly when the backend offers
    # it (issue 4), like SIZE, 8BITMIME, SMTPUTF8, DSN and ENHANCEDSTATUSCODES.
    FORBIDDEN_EHLO = ("XCLIENT", "XFORWARD", "AUTH", "VRFY", "ETRN")
    PASSED_EHLO = ("SIZE", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "CHUNKING")

    # Flow control, TLS edges and the local dialogue (README "The SMTP dialogue" table).
    TOO_MANY_CONNECTIONS = "421 4.7.0 " + HOSTNAME + " Error: too many connections"
    MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"
    SEND_HELO_FIRST = "503 5.5.1 Error: send HELO/EHLO first"
    BDAT_NOT_IMPLEMENTED = "521 5.5.1 Error: command not implemented"
    BDAT_SYNTAX = "501 5.5.4 Syntax: BDAT count [LAST]"              # and close
    DATA_AFTER_BDAT = "503 5.5.1 Error: DATA after BDAT"
    NEED_RCPT = "503 5.5.1"                       # BDAT / DATA after MAIL without RCPT
    # An identity hand-off that the backend stopped offering (or refuses): 421 4.3.0 and close.
    BACKEND_CONFIG_ERROR = re.compile(r"^421 4\.3\.0 (\S+ )?Error: backend configuration error")
    AUTH_NOT_ENABLED = "503 5.5.1"                # Error: authentication not enabled
    VRFY = "252 2.0.0"
    HELP = "214 2.0.0"
    NOOP_OK = "250 2.0.0 Ok"
    SIZE_EXCEEDED = "552 5.3.4"
    UNSUPPORTED_OPTION = "555 5.5.4"              # unknown or duplicate MAIL/RCPT parameter
    SYNC_ERROR = "554 5.5.0 Error: SMTP protocol synchronization"
    SHUTTING_DOWN = re.compile(r"^421 4\.3\.2 (\S+ )?Service shutting down")
    # Backend lost while the client was still sending content (README table).
    DATA_NOT_DELIVERED = re.compile(r"^451 4\.3\.0 .*message not delivered")
    LOG_TLS_HANDSHAKE_TIMEOUT = re.compile(r"TLS handshake timeout")
    LOG_SSL_ACCEPT_ERROR = re.compile(r"SSL_accept error")
    LOG_TLS_ESTABLISHED = re.compile(r"(Trusted|Untrusted|Anonymous) TLS connection established")
    LOG_STOPPING = re.compile(r"stopping \(SIGTERM\)")

    @staticmethod
    def relay_denied(rcpt: str) -> str:
        return f"454 4.7.1 <{rcpt}>: Relay access denied"

    # Log lines (stdout of the daemon).
    LOG_LISTENING = re.compile(r"listening: name=(?P<name>\S+) address=(?P<addr>\S+):(?P<port>\d+)")
    LOG_READY = re.compile(r"ready: workers=\d+")
    LOG_ADMIN_LISTENING = re.compile(r"admin: listening on \S+:(?P<port>\d+)")
    LOG_ADMIN_IN_USE = re.compile(r"admin: cannot listen on \S+: address already in use")
    LOG_TRUSTED_TLS = re.compile(r"Trusted TLS connection established from unknown\[127\.0\.0\.1\]")
    LOG_UNTRUSTED_TLS = re.compile(r"Untrusted TLS connection established from unknown\[127\.0\.0\.1\]")
    LOG_ANONYMOUS_TLS = re.compile(r"Anonymous TLS connection established from unknown\[127\.0\.0\.1\]")
    LOG_XCLIENT_SETTING = re.compile(r"smtpd_authorized_xclient_hosts")
    # The hint for a backend that does not greet as Postfix: no Postfix setting named.
    LOG_XCLIENT_GRANT = re.compile(r"allow the proxy's address to use XCLIENT on the backend")
    LOG_XFORWARD_SETTING = re.compile(r"smtpd_authorized_xforward_hosts")
    LOG_NOT_STARTING = re.compile(r"not starting")
    # The capability probe's line: "backend 127.0.0.1:N answered the capability probe;
    # identity hand-off: xclient (auto), CHUNKING relayed".
    LOG_HANDOFF = re.compile(r"answered the capability probe; identity hand-off: "
                             r"(?P<mode>xclient|xforward|none)(?P<auto> \(auto\))?"
                             r"(?P<chunking>, CHUNKING relayed)?$")

    @staticmethod
    def handoff_line(mode: str, auto: bool = True, chunking: bool = False) -> str:
        """The end of the probe line for this hand-off, exactly."""
        return (f"identity hand-off: {mode}{' (auto)' if auto else ''}"
                f"{', CHUNKING relayed' if chunking else ''}")

    @staticmethod
    def log_noqueue_reject(rcpt: str, sender: str, helo: str) -> re.Pattern:
        return re.compile(
            r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: "
            + re.escape(Expect.relay_denied(rcpt))
            + re.escape(f"; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{helo}>"))


# ---------------------------------------------------------------------------------------------
# TOML writer (just enough for the certrelay config)
# ---------------------------------------------------------------------------------------------
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def render_toml(config: dict) -> str:
    scalars = [(k, v) for k, v in config.items() if not isinstance(v, dict)
               and not (isinstance(v, list) and v and isinstance(v[0], dict))]
    out = [f"{k} = {_toml_value(v)}" for k, v in scalars if v is not None]
    for key, value in config.items():
        if isinstance(value, dict):
            out.append(f"\n[{key}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                out.append(f"\n[[{key}]]")
                out += [f"{k} = {_toml_value(v)}" for k, v in item.items() if v is not None]
    return "\n".join(out) + "\n"


def deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------------------------------
# The daemon under test
# ---------------------------------------------------------------------------------------------
# admin={"address": ADMIN_FREE}: a free loopback port, written into the config.
ADMIN_FREE = "127.0.0.1:free"


class ProxyStartError(RuntimeError):
    pass


class Proxy:
    """certrelay with a generated config. Keyword overrides are merged into the config dict
    (e.g. timeouts={"command": "1s"}, limits={"max_errors": 3}, listener=[{...}])."""

    READY_TIMEOUT = 10.0

    def __init__(self, tmpdir: str, pki: Pki, backend_port: int, *, fingerprints=None,
                 binary: str | None = None, start: bool = True, nofile=None, **overrides):
        self.binary = binary or CERTRELAY_BIN
        self.nofile = nofile  # (soft, hard) RLIMIT_NOFILE to start with, else inherited
        self.dir = tmpdir
        os.makedirs(tmpdir, exist_ok=True)
        if fingerprints is None:
            fingerprints = [(Pki.fingerprint(pki.trusted), TRUSTED_IDENTITY)]
        self.fingerprints_path = write_fingerprints(os.path.join(tmpdir, "relay_clientcerts"),
                                                    fingerprints)
        # Config paths are relative to the config file (tests that relative resolution works).
        for src in (pki.server_chain, pki.server.key, pki.ca.cert):
            shutil.copy(src, tmpdir)
        config = {
            "hostname": HOSTNAME,
            # scripts/test.sh --tsan sets 2: the same tests, with workers racing each other.
            "workers": int(os.environ.get("CERTRELAY_TEST_WORKERS", "1")),
            "listener": [{"name": "mx", "address": "127.0.0.1:0", "require_tls": False}],
            "backend": {"address": f"127.0.0.1:{backend_port}", "probe_interval": "30s"},
            "tls": {"cert": os.path.basename(pki.server_chain),
                    "key": os.path.basename(pki.server.key),
                    "client_ca": os.path.basename(pki.ca.cert)},
            "policy": {"fingerprints": "relay_clientcerts", "local_domains": [LOCAL_DOMAIN]},
            "timeouts": {"command": "300s", "tls_handshake": "60s", "data": "180s",
                         "backend_connect": "30s", "backend_reply": "300s", "shutdown": "5s"},
            # No endpoint removal to wait for: listeners close at SIGTERM (tests of the delay
            # set it).
            "shutdown": {"delay": "0s"},
            # Lines out at the end of each loop iteration, not after up to 50 ms: many tests read
            # the log right after a reply (a mark, then what follows it). test_json_logs runs
            # with the default.
            "log": {"flush_interval": "0s"},
            # max_connections left to its default: lowered to what RLIMIT_NOFILE fits.
            "limits": {"max_line_length": 2048, "max_recipients": 1000, "max_errors": 20},
        }
        self.config = deep_merge(config, overrides)
        self.config_path = os.path.join(tmpdir, "certrelay.toml")
        # admin.address = ADMIN_FREE: a fixed port (`certrelay ctl` reads it from the config),
        # picked here and picked again if another process takes it before certrelay binds.
        self.admin_free = self.config.get("admin", {}).get("address") == ADMIN_FREE
        self.admin_port = None
        self.write_config()
        self.proc = None
        self.log = None
        self.ports: dict[str, int] = {}
        if start:
            self.start()

    def write_config(self):
        """(Re)writes the config file from self.config; an ADMIN_FREE address gets a port."""
        if self.admin_free:
            self.config["admin"]["address"] = f"127.0.0.1:{free_port()}"
        with open(self.config_path, "w") as f:
            f.write(render_toml(self.config))

    # -- life cycle --------------------------------------------------------------------------
    def start(self):
        for _ in range(4 if self.admin_free else 1):
            try:
                return self._start_once()
            except ProxyStartError as e:
                if not (self.admin_free and Expect.LOG_ADMIN_IN_USE.search(str(e))):
                    raise
                self.write_config()  # free_port()'s race lost: another port
        raise ProxyStartError("admin: four free ports were taken before certrelay bound them")

    def _start_once(self):
        if not os.access(self.binary, os.X_OK):
            raise ProxyStartError(f"certrelay binary not found: {self.binary}")
        nofile = self.nofile
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.config_path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile))
            if nofile else None)
        self.log = LogCapture(self.proc.stdout, f"certrelay[{self.proc.pid}]")
        if not self.log.wait_for(Expect.LOG_READY, self.READY_TIMEOUT):
            self._kill()
            text = self.log.text()
            sys.stderr.write(f"--- certrelay log (did not get ready) ---\n{text}\n---\n")
            raise ProxyStartError(f"certrelay did not print 'ready:' within {self.READY_TIMEOUT}s "
                                  f"(exit code {self.proc.returncode}):\n{text}")
        for line in self.log.lines():
            m = Expect.LOG_LISTENING.search(line)
            if m:
                self.ports[m.group("name")] = int(m.group("port"))
        if not self.ports:
            self._kill()
            raise ProxyStartError("no 'listening:' line before 'ready:':\n" + self.log.text())
        for line in self.log.lines():
            m = Expect.LOG_ADMIN_LISTENING.search(line)
            if m:
                self.admin_port = int(m.group("port"))

    @property
    def port(self) -> int:
        return self.ports.get("mx") or next(iter(self.ports.values()))

    def lines(self) -> list[str]:
        return self.log.lines() if self.log else []

    def mark(self) -> int:
        """Index of the next log line; pass as `start` to wait_log to look only at what follows."""
        return len(self.lines())

    def wait_log(self, pattern, timeout: float = 5.0, start: int = 0):
        return self.log.wait_for(pattern, timeout, start=start)

    def handoff(self):
        """The capability probe's hand-off line (an Expect.LOG_HANDOFF match), or None."""
        for line in self.lines():
            m = Expect.LOG_HANDOFF.search(line)
            if m:
                return m
        return None

    def session_ids(self, start: int = 0) -> list[str]:
        """Session ids of the `connect from` lines at index >= start, in order. A message id
        (Received `id`, XFORWARD IDENT) is `<session id>M<n>` for the session's n-th message."""
        ids = []
        for line in self.lines()[start:]:
            m = re.search(r"certrelay\[\d+\]: (\w+): connect from ", line)
            if m:
                ids.append(m.group(1))
        return ids

    def rss(self) -> int:
        """The daemon's resident set size in bytes (VmRSS)."""
        return rss_bytes(self.proc.pid)

    def sanitized(self) -> bool:
        """True when the binary under test is built with AddressSanitizer (scripts/test.sh
        --sanitize): its allocator keeps freed memory in quarantine, so RSS is no measure of
        what the daemon holds."""
        try:
            with open(f"/proc/{self.proc.pid}/maps") as f:
                if "libasan" in f.read():
                    return True
        except OSError:
            pass
        with open(self.binary, "rb") as f:
            return b"__asan_init" in f.read()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0):
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                sys.stderr.write(f"certrelay did not exit {timeout}s after SIGTERM; killing\n")
                self._kill()
        self.log.wait_eof(2.0)
        return self.proc.returncode

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            sys.stderr.write(f"--- certrelay log ---\n{self.log.text() if self.log else ''}\n---\n")
        return False

    def dump(self) -> str:
        return f"--- certrelay log ({self.config_path}) ---\n{self.log.text() if self.log else ''}"


def connect(port: int, timeout: float = 5.0) -> SmtpClient:
    """Connects and reads the greeting (which must be the proxy's)."""
    client = SmtpClient(port, timeout=timeout)
    greeting = client.greeting()
    if not Expect.GREETING.search(greeting.first):
        raise SmtpError(f"unexpected greeting {greeting.text!r}")
    return client


# ---------------------------------------------------------------------------------------------
# unittest glue
# ---------------------------------------------------------------------------------------------
class IntegrationTest(unittest.TestCase):
    """Base class: per-test temp dir, shared per-class PKI, and log dumps on failure.

    Register anything with a dump() method via self.watch(obj); when the test fails or errors,
    their dumps go to stderr so a failure shows the daemon's and backends' side."""

    pki: Pki = None
    _class_dir: str = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._class_dir = make_tmpdir(cls.__name__.lower())
        cls.pki = Pki(os.path.join(cls._class_dir, "pki"))

    @classmethod
    def tearDownClass(cls):
        if cls._class_dir and not os.environ.get("CERTRELAY_KEEP_TMP"):
            shutil.rmtree(cls._class_dir, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self._watched = []
        self.tmpdir = make_tmpdir(self._testMethodName)
        if not os.environ.get("CERTRELAY_KEEP_TMP"):
            self.addCleanup(shutil.rmtree, self.tmpdir, True)

    def watch(self, obj):
        self._watched.append(obj)
        return obj

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        self._watched = []
        super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for obj in self._watched:
                try:
                    sys.stderr.write(obj.dump() + "\n")
                except Exception as e:  # a dump must never hide the failure itself
                    sys.stderr.write(f"(dump of {obj!r} failed: {e})\n")
        return result

    # -- fixtures ----------------------------------------------------------------------------
    def start_backend(self, behaviour: Behaviour | None = None) -> ScriptedBackend:
        backend = ScriptedBackend(behaviour)
        self.addCleanup(backend.close)
        return self.watch(backend)

    def _subdir(self, name: str) -> str:
        """A fresh directory per fixture instance (a second proxy must not share files)."""
        n = 1
        while os.path.exists(os.path.join(self.tmpdir, f"{name}-{n}")):
            n += 1
        return os.path.join(self.tmpdir, f"{name}-{n}")

    def start_proxy(self, backend_port: int, **kw) -> Proxy:
        proxy = Proxy(self._subdir("proxy"), self.pki, backend_port, **kw)
        self.addCleanup(proxy.stop)
        return self.watch(proxy)

    def start_sink(self, flags=()) -> SmtpSink:
        sink = SmtpSink(self._subdir("sink"), flags)
        self.addCleanup(sink.stop)
        return sink

    def client(self, proxy: Proxy, timeout: float = 5.0) -> SmtpClient:
        c = connect(proxy.port, timeout)
        self.addCleanup(c.close)
        return self.watch(c)

    def tls_client(self, proxy: Proxy, cert: Cert | None, helo: str = "client.test.example",
                   timeout: float = 5.0) -> SmtpClient:
        """Connected, EHLO, STARTTLS with `cert`, EHLO again."""
        c = self.client(proxy, timeout)
        self.assertEqual(c.ehlo(helo).code, 250, c.dump())
        c.starttls(client_context(cert))
        self.assertEqual(c.ehlo(helo).code, 250, c.dump())
        return c

    def assertReply(self, reply: Reply, expected, client: SmtpClient | None = None):
        """expected: an int code, a text prefix, or a compiled regex."""
        where = ("\n" + client.dump()) if client else ""
        if isinstance(expected, int):
            self.assertEqual(reply.code, expected, f"got {reply.text!r}{where}")
        elif isinstance(expected, re.Pattern):
            self.assertRegex(reply.last, expected, where)
        else:
            self.assertTrue(reply.last.startswith(expected),
                            f"expected {expected!r}, got {reply.text!r}{where}")


def main():
    """Runs the module's tests; exit 0 ok, 1 failure, 77 if every test was skipped."""
    program = unittest.main(exit=False, verbosity=2)
    result = program.result
    if not result.wasSuccessful():
        sys.exit(1)
    # A SkipTest from setUpClass counts as one skip with no test run.
    if result.skipped and len(result.skipped) >= result.testsRun:
        sys.exit(77)
    sys.exit(0)
