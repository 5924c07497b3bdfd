"""Shared pieces of the policy hot-reload tests (test_policy_reload.py,
test_policy_kubernetes.py): writing fingerprint tables the way operators and kubelet do, the
log lines the policy watcher prints, and one-shot relay attempts.

The content hash in the watcher's log lines is the SHA-256 of the file's bytes (first 16 hex
digits), so every wait below names the exact content it expects to be in force."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile

import harness
from harness import LOCAL_DOMAIN, REMOTE_DOMAIN, SmtpClient, client_context

SENDER = "alice@client.test.example"
HELO = "client.test.example"
TRUSTED_ID = harness.TRUSTED_IDENTITY
UNTRUSTED_ID = "untrusted-client"

# Reload settings for the tests: a short debounce keeps them quick, and a poll of an hour
# means only the directory watch (or SIGHUP) can have seen a change.
FAST_DEBOUNCE = "100ms"
NO_POLL = "1h"


# ---------------------------------------------------------------------------------------------
# Tables on disk
# ---------------------------------------------------------------------------------------------
def table_bytes(entries, header: str = "relay_clientcerts written by the policy tests") -> bytes:
    """A Postfix relay_clientcerts table: a comment line, then `FINGERPRINT identity` lines.
    An entry that is a plain str is written as it is (to make malformed lines)."""
    lines = [f"# {header}"]
    for entry in entries:
        lines.append(entry if isinstance(entry, str) else f"{entry[0]} {entry[1]}")
    return ("\n".join(lines) + "\n").encode()


def content_hash(data: bytes) -> str:
    """What the log lines show as `sha256 <16 hex>`."""
    return hashlib.sha256(data).hexdigest()[:16]


def replace_atomically(path: str, data: bytes):
    """What a careful operator (or a config management tool) does: write a temporary file in
    the same directory, then rename it over the table."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-table-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_in_place(path: str, data: bytes):
    """Rewrites an existing file through its own inode (follows a symlink)."""
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def sha1_fingerprint(cert) -> str:
    out = harness.run([harness.OPENSSL, "x509", "-noout", "-fingerprint", "-sha1",
                       "-in", cert.cert]).stdout.decode()
    return out.strip().split("=", 1)[1].upper()


def md5_fingerprint(cert) -> str:
    out = harness.run([harness.OPENSSL, "x509", "-noout", "-fingerprint", "-md5",
                       "-in", cert.cert]).stdout.decode()
    return out.strip().split("=", 1)[1].upper()


class KubeletVolume:
    """A ConfigMap/Secret volume as kubelet's AtomicWriter lays it out:

        D/..2026_11_20_00_00_00.1/relay_clientcerts   the payload of one version
        D/..data -> ..2026_11_20_00_00_00.1           the version in force
        D/relay_clientcerts -> ..data/relay_clientcerts

    update() publishes a new version exactly as kubelet does: new timestamped directory,
    `..data_tmp` symlink to it, rename over `..data`, then remove the old directory."""

    NAME = "relay_clientcerts"

    def __init__(self, directory: str, data: bytes):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.version = 0
        self.current = self._write_version(data)
        os.symlink(self.current, os.path.join(directory, "..data"))
        os.symlink(os.path.join("..data", self.NAME), os.path.join(directory, self.NAME))

    @property
    def path(self) -> str:
        """What the config names: D/relay_clientcerts."""
        return os.path.join(self.dir, self.NAME)

    def _write_version(self, data: bytes) -> str:
        self.version += 1
        name = f"..2026_11_20_00_00_00.{self.version}"
        os.mkdir(os.path.join(self.dir, name), 0o755)
        with open(os.path.join(self.dir, name, self.NAME), "wb") as f:
            f.write(data)
        return name

    def update(self, data: bytes):
        old = self.current
        new = self._write_version(data)
        tmp_link = os.path.join(self.dir, "..data_tmp")
        os.symlink(new, tmp_link)
        os.replace(tmp_link, os.path.join(self.dir, "..data"))
        self.current = new
        old_dir = os.path.join(self.dir, old)
        for name in os.listdir(old_dir):
            os.unlink(os.path.join(old_dir, name))
        os.rmdir(old_dir)


# ---------------------------------------------------------------------------------------------
# Log lines of the policy watcher
# ---------------------------------------------------------------------------------------------
def log_loaded(path: str, entries: int, data: bytes) -> re.Pattern:
    return re.compile(r"policy: loaded " + re.escape(path) + f": {entries} entries, sha256 "
                      + content_hash(data) + r"\b")


def log_watching(directory: str, name: str, poll_ms: int) -> re.Pattern:
    return re.compile(r"policy: watching " + re.escape(directory) + " for changes to "
                      + re.escape(name) + rf" \(poll every {poll_ms} ms\)")


def log_reloaded(path: str, entries: int | None = None, data: bytes | None = None,
                 reason: str = r"change|poll|SIGHUP") -> re.Pattern:
    count = r"\d+" if entries is None else str(entries)
    digest = r"[0-9a-f]{16}" if data is None else content_hash(data)
    return re.compile(rf"policy: reloaded \(({reason})\) " + re.escape(path)
                      + rf": {count} entries, sha256 {digest}\b")


LOG_ANY_RELOAD = re.compile(r"policy: reloaded \(")


def log_unchanged(path: str, reason: str = "SIGHUP") -> re.Pattern:
    return re.compile(rf"policy: {reason}: " + re.escape(path) + r" unchanged \(")


def log_keeping(problem: str, entries: int, data: bytes) -> re.Pattern:
    """`warning: policy: <problem>; keeping the table in force (N entries, sha256 H)`;
    `problem` is a regex."""
    return re.compile(r"warning: policy: " + problem + r"; keeping the table in force \("
                      + f"{entries} entries, sha256 {content_hash(data)}" + r"\)")


def log_identity(identity: str) -> re.Pattern:
    return re.compile(r"relay identity=" + re.escape(identity) + r"$")


LOG_NOT_LISTED = re.compile(r", not listed for relay$")


# ---------------------------------------------------------------------------------------------
# Test base
# ---------------------------------------------------------------------------------------------
class PolicyTest(harness.IntegrationTest):
    """A scripted backend per test and helpers for one-shot relay attempts."""

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()

    def start(self, entries=None, overrides=None, **policy) -> harness.Proxy:
        """A proxy with the test reload settings. `entries`: the harness-written table in the
        proxy's directory (default: the trusted client); keyword arguments go to [policy]
        (fingerprints=<path> points the config at another file); `overrides`: other sections."""
        settings = {"reload_debounce": FAST_DEBOUNCE, "reload_poll_interval": NO_POLL}
        settings.update(policy)
        return self.start_proxy(self.backend.port, fingerprints=entries, policy=settings,
                                **(overrides or {}))

    def wait_line(self, proxy, pattern, start: int, timeout: float = 10.0, what: str = ""):
        match = proxy.wait_log(pattern, timeout, start=start)
        if not match:
            self.fail(f"no log line {pattern.pattern!r} within {timeout}s{' (' + what + ')' if what else ''}\n"
                      + proxy.dump())
        return match

    def assert_no_line(self, proxy, pattern, start: int, seconds: float, what: str):
        """Bounded absence check: nothing matching `pattern` for `seconds`."""
        match = proxy.wait_log(pattern, seconds, start=start)
        if match:
            self.fail(f"unexpected log line ({what}): {match.string}\n" + proxy.dump())

    def session(self, proxy, cert, tls: bool = True, context=None, tls_session=None,
                timeout: float = 10.0) -> SmtpClient:
        """Connected, EHLO, STARTTLS with `cert` (unless tls=False), EHLO again."""
        c = self.client(proxy, timeout)
        self.assertReply(c.ehlo(HELO), 250, c)
        if tls:
            c.starttls(context or client_context(cert), session=tls_session)
            self.assertReply(c.ehlo(HELO), 250, c)
        return c

    def attempt(self, proxy, cert, rcpt: str | None = None, tls: bool = True):
        """A fresh session: MAIL, one RCPT; returns (reply, client) after QUIT."""
        rcpt = rcpt or f"bob-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        c = self.session(proxy, cert, tls=tls)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        reply = c.command(f"RCPT TO:<{rcpt}>")
        c.quit()
        return reply, c

    def assert_relays(self, proxy, cert, what: str = "", tls: bool = True):
        rcpt = f"relay-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        reply, c = self.attempt(proxy, cert, rcpt, tls=tls)
        self.assertEqual(reply.code, 250,
                         f"{cert or 'no certificate'} should relay {what}: {reply.text}\n{c.dump()}")
        return rcpt

    def assert_denied(self, proxy, cert, what: str = "", tls: bool = True):
        rcpt = f"denied-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        reply, c = self.attempt(proxy, cert, rcpt, tls=tls)
        self.assertEqual(reply.last, harness.Expect.relay_denied(rcpt),
                         f"{cert or 'no certificate'} should be refused {what}\n{c.dump()}")
        return rcpt

    def assert_local_accepted(self, proxy, cert):
        reply, c = self.attempt(proxy, cert, f"carol@{LOCAL_DOMAIN}")
        self.assertEqual(reply.code, 250, c.dump())

    def backend_login_for(self, rcpt: str):
        """The XCLIENT LOGIN= (None if absent) of the backend session that carried `rcpt`."""
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if x.find(f"RCPT TO:<{rcpt}>")), None),
            what=f"backend session with RCPT {rcpt}")
        xclients = conn.find("XCLIENT ")
        self.assertTrue(xclients, conn.commands)
        attrs = {}
        for line in xclients:
            attrs.update(dict(harness.xclient_attributes(line)))
        return attrs.get("LOGIN")
