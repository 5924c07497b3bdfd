"""Shared constants and small utilities of the integration harness: processes with deadlines,
ports on loopback, bounded polling, and a thread that collects a child's output lines."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

CERTRELAY_BIN = os.environ.get("CERTRELAY_BIN", "/work/main/build/certrelay")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"

HOSTNAME = "mx.test.example"          # the proxy's hostname in every generated config
LOCAL_DOMAIN = "local.example"        # policy.local_domains
REMOTE_DOMAIN = "remote.example"      # anything not local: relaying
TRUSTED_IDENTITY = "trusted-client"   # right-hand side of the fingerprint table
SELFSIGNED_IDENTITY = "selfsigned-client"


# ---------------------------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------------------------
def is_root() -> bool:
    return os.geteuid() == 0


def run(cmd, *, input=None, timeout=30, check=True, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with a deadline and a readable error."""
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                           f"stdout: {proc.stdout!r}\nstderr: {proc.stderr!r}")
    return proc


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Polls `predicate` until it returns something truthy; raises TimeoutError at the deadline.
    Used only for state that has no event to block on (files appearing, ports opening)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A port that was free a moment ago. Callers must retry on EADDRINUSE."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RefusingPort:
    """A loopback port on which connections are refused: the socket is bound (so no other
    process gets the port) but never listens."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def stop_process(proc, grace: float = 5.0):
    """SIGTERM, then SIGKILL if `proc` has not exited within `grace` seconds; reaps it. Does
    nothing for None or a process that already exited."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def pid_alive(pid: int | None) -> bool:
    """True if the process exists and is not a zombie (daemonised Postfix masters are reaped
    by init, which may take a moment)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS in /proc/<pid>/status), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024   # "VmRSS:   1234 kB"
    raise RuntimeError(f"no VmRSS for pid {pid}")


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def read_text(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


class LogFile:
    """A daemon's log file, read afresh on every call (the daemon appends to it). Subclasses set
    `log_path` and may set `log_name` (how dump() and timeouts name it)."""

    log_path: str = ""
    log_name: str = ""

    def _log_label(self) -> str:
        return self.log_name or f"{type(self).__name__} log"

    def log_text(self) -> str:
        try:
            return read_text(self.log_path)
        except OSError:
            return ""

    def log_lines(self) -> list[str]:
        return self.log_text().splitlines()

    def wait_log(self, pattern, timeout: float = 15.0, start: int = 0):
        """First line at index >= start matching `pattern`; raises TimeoutError."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern

        def probe():
            for line in self.log_lines()[start:]:
                m = regex.search(line)
                if m:
                    return m
            return None
        return wait_until(probe, timeout, interval=0.05,
                          what=f"{self._log_label()} line /{regex.pattern}/")

    def dump(self) -> str:
        return f"--- {self._log_label()} ({self.log_path}) ---\n{self.log_text()}"


def make_tmpdir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=f"certrelay-it-{prefix}-")
    # Postfix daemons and smtp-sink (-u nobody) must traverse it.
    os.chmod(path, 0o755)
    return path


class LogCapture:
    """Lines of a child's stdout, collected by a thread, with blocking waits on new lines."""

    def __init__(self, stream, label: str):
        self.label = label
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream):
        for raw in iter(stream.readline, b""):
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self._cond.notify_all()
        stream.close()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.lines())

    def eof(self) -> bool:
        with self._cond:
            return self._eof

    def wait_eof(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._eof, timeout)

    def wait_for(self, pattern, timeout: float, start: int = 0, stop_at_eof: bool = True):
        """First line at index >= start matching `pattern` (regex or str); None at the deadline
        (or at EOF when stop_at_eof)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = start
        with self._cond:
            while True:
                while seen < len(self._lines):
                    match = regex.search(self._lines[seen])
                    if match:
                        return match
                    seen += 1
                if self._eof and stop_at_eof:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
