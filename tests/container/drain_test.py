#!/usr/bin/python3
"""The running part of tests/container/run.sh: certrelay's image in front of a backend on
loopback, one message relayed, then SIGTERM while a second message is in DATA.

  drain_test.py --image IMAGE --name CONTAINER --work DIR [--deadline SECONDS]

DIR holds tls/ (ca.crt, server.crt, server.key), policy/relay_clientcerts, client/
(trusted.crt, trusted.key) and an empty config/ where certrelay.toml is written. The three
certrelay directories are mounted read-only as siblings: /etc/certrelay, /etc/certrelay-tls,
/etc/certrelay-policy. The container runs --read-only --user 65532:65532 --cap-drop ALL
--security-opt no-new-privileges --network host. run.sh removes it on exit.

Synchronisation is by events: the backend signals when it holds the second message's
end-of-data reply, the SIGTERM is sent then, and the reply is released only once certrelay
has logged that the drain began. Every wait has a deadline. Only the standard library of
Debian's /usr/bin/python3 is used.
"""

from __future__ import annotations

import argparse
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

HOSTNAME = "mx.container.example"
IDENTITY = "container-client"
HOLD_HEADER = "X-Test-Hold-Reply: yes"
XCLIENT = "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT"


def log(text: str) -> None:
    print(text, flush=True)


class Backend:
    """A small SMTP server on 127.0.0.1:<kernel's port>, a thread per connection. It records
    XCLIENT attributes and each message; for a message carrying HOLD_HEADER it sets `held` and
    keeps its end-of-data reply until `release` is set (at most `hold_timeout` seconds)."""

    def __init__(self, hold_timeout: float):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.hold_timeout = hold_timeout
        self.held = threading.Event()
        self.release = threading.Event()
        self.cond = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []   # (XCLIENT line, message)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def wait_messages(self, count: int, timeout: float) -> list[tuple[str, bytes]]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"the backend did not get {count} message(s) in {timeout} s")
            return list(self.messages)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.hold_timeout + 30)
        f = conn.makefile("rb")

        def send(*lines: str) -> None:
            conn.sendall("".join(line + "\r\n" for line in lines).encode())

        xclient = ""
        try:
            send("220 backend.container.example ESMTP test backend")
            while True:
                raw = f.readline(4096)
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    send("250-backend.container.example", "250-PIPELINING", "250-8BITMIME",
                         "250-ENHANCEDSTATUSCODES", "250-SIZE 10240000", "250 " + XCLIENT)
                elif verb == "XCLIENT":
                    xclient = line
                    send("220 backend.container.example ESMTP test backend")
                elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                    send("250 2.0.0 Ok")
                elif verb == "DATA":
                    send("354 End data with <CR><LF>.<CR><LF>")
                    body = b""
                    while True:
                        chunk = f.readline(65536)
                        if not chunk:
                            return
                        if chunk == b".\r\n":
                            break
                        body += chunk
                    if HOLD_HEADER.encode() in body:
                        self.held.set()
                        if not self.release.wait(self.hold_timeout):
                            log("backend: release never came; replying anyway")
                    with self.cond:
                        self.messages.append((xclient, body))
                        self.cond.notify_all()
                    send("250 2.0.0 Ok: queued as T%d" % len(self.messages))
                elif verb == "QUIT":
                    send("221 2.0.0 Bye")
                    return
                else:
                    send("502 5.5.2 Error: command not recognized")
        except OSError:
            return
        finally:
            conn.close()


class Container:
    def __init__(self, name: str, deadline: float):
        self.name = name
        self.deadline = deadline

    def logs(self) -> str:
        proc = subprocess.run(["podman", "logs", self.name], capture_output=True, timeout=30)
        return proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")

    def wait_log(self, pattern: str, timeout: float, what: str) -> re.Match:
        """Polls `podman logs` (no event to block on from here) until `pattern` matches."""
        end = min(time.monotonic() + timeout, self.deadline)
        regex = re.compile(pattern, re.MULTILINE)
        while True:
            text = self.logs()
            m = regex.search(text)
            if m:
                return m
            if time.monotonic() >= end:
                raise TimeoutError(f"no {what} in the container's log after {timeout} s:\n{text}")
            state = subprocess.run(["podman", "inspect", "--format", "{{.State.Status}}",
                                    self.name], capture_output=True, timeout=30)
            if state.stdout.strip() in (b"exited", b"stopped"):
                raise RuntimeError(f"the container exited before its {what}:\n{text}")
            time.sleep(0.05)


def write_config(work: str, backend_port: int) -> None:
    config = f"""# written by tests/container/drain_test.py
hostname = "{HOSTNAME}"
workers = 1

[[listener]]
name = "mx"
address = "127.0.0.1:0"

[backend]
address = "127.0.0.1:{backend_port}"

[tls]
cert = "/etc/certrelay-tls/server.crt"
key = "/etc/certrelay-tls/server.key"
client_ca = "/etc/certrelay-tls/ca.crt"

[policy]
fingerprints = "/etc/certrelay-policy/relay_clientcerts"
local_domains = ["local.example"]

[admin]
address = "127.0.0.1:0"

[shutdown]
delay = "1s"
timeout = "20s"
"""
    path = os.path.join(work, "config", "certrelay.toml")
    with open(path, "w") as f:
        f.write(config)
    os.chmod(path, 0o644)


def client_context(work: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=os.path.join(work, "tls", "ca.crt"))
    ctx.load_cert_chain(os.path.join(work, "client", "trusted.crt"),
                        os.path.join(work, "client", "trusted.key"))
    return ctx


def send_message(port: int, ctx: ssl.SSLContext, subject: str, extra_header: str = "",
                 timeout: float = 60) -> tuple[int, bytes]:
    """One transaction through STARTTLS with the client certificate, to a remote recipient
    (relaying: allowed only for a listed certificate). Returns the end-of-data reply."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.container.example",
                      timeout=timeout) as smtp:
        smtp.ehlo()
        code, text = smtp.starttls(context=ctx)
        if code != 220:
            raise RuntimeError(f"STARTTLS: {code} {text!r}")
        smtp.ehlo()
        for cmd, reply in (("MAIL", smtp.mail("alice@client.example")),
                           ("RCPT", smtp.rcpt("bob@remote.example"))):
            if reply[0] != 250:
                raise RuntimeError(f"{cmd}: {reply[0]} {reply[1]!r}")
        headers = f"From: alice@client.example\r\nTo: bob@remote.example\r\nSubject: {subject}\r\n"
        if extra_header:
            headers += extra_header + "\r\n"
        reply = smtp.data(headers + "\r\n" + f"{subject}: relayed through the container.\r\n")
        return reply


def run_podman(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, timeout=timeout, text=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--deadline", type=float, default=90.0, help="whole test, seconds")
    args = ap.parse_args()
    deadline = time.monotonic() + args.deadline
    t0 = time.monotonic()

    def stamp(text: str) -> None:
        log(f"[{time.monotonic() - t0:5.1f} s] {text}")

    backend = Backend(hold_timeout=30)
    write_config(args.work, backend.port)
    w = args.work
    start = run_podman(["run", "-d", "--name", args.name,
                        "--read-only", "--user", "65532:65532", "--cap-drop", "ALL",
                        "--security-opt", "no-new-privileges", "--network", "host",
                        "-v", f"{w}/config:/etc/certrelay:ro",
                        "-v", f"{w}/tls:/etc/certrelay-tls:ro",
                        "-v", f"{w}/policy:/etc/certrelay-policy:ro",
                        args.image], timeout=60)
    if start.returncode != 0:
        log(f"podman run failed ({start.returncode}): {start.stderr}")
        return 1
    container = Container(args.name, deadline)
    m = container.wait_log(r"listening: name=mx address=127\.0\.0\.1:(\d+)", 30, "listener")
    port = int(m.group(1))
    admin = int(container.wait_log(r"admin: listening on 127\.0\.0\.1:(\d+)", 30,
                                   "admin endpoint").group(1))
    container.wait_log(r"ready: workers=", 30, "ready line")
    stamp(f"certrelay ready in the container: smtp 127.0.0.1:{port}, admin :{admin}, "
          f"backend :{backend.port}")

    # Readiness as a kubelet would ask it (the backend probe may need a moment).
    end = time.monotonic() + 15
    status = 0
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5) as r:
                status = r.status
        except OSError as e:
            status = getattr(e, "code", 0)
        if status == 200:
            break
        time.sleep(0.1)
    if status != 200:
        log(f"/readyz never answered 200 (last {status})\n{container.logs()}")
        return 1
    stamp("/readyz: 200")

    # 1. One message from the trusted client, relayed to the backend with its identity.
    ctx = client_context(w)
    code, text = send_message(port, ctx, "first")
    if code != 250:
        log(f"first message: {code} {text!r}\n{container.logs()}")
        return 1
    msgs = backend.wait_messages(1, 10)
    xclient, body = msgs[0]
    if f"LOGIN={IDENTITY}" not in xclient or b"Subject: first" not in body:
        log(f"the backend got something else: {xclient!r}\n{body!r}")
        return 1
    stamp(f"first message relayed: {code} {text.decode()}; backend saw {xclient!r}")

    # 2. SIGTERM while the second message waits for its end-of-data reply.
    result: dict = {}

    def second() -> None:
        try:
            result["reply"] = send_message(port, ctx, "second", HOLD_HEADER)
        except Exception as e:  # reported below
            result["error"] = repr(e)

    client = threading.Thread(target=second, daemon=True)
    client.start()
    if not backend.held.wait(max(0.0, min(30, deadline - time.monotonic()))):
        log(f"the second message never reached the backend's end of data\n{container.logs()}")
        return 1
    stamp("backend holds the second message's end-of-data reply; sending SIGTERM")
    kill = run_podman(["kill", "--signal", "TERM", args.name], timeout=30)
    if kill.returncode != 0:
        log(f"podman kill failed: {kill.stderr}")
        return 1
    container.wait_log(r"stopping \(SIGTERM\)", 15, "drain start")
    stamp("certrelay logged the drain; releasing the backend's reply")
    backend.release.set()
    client.join(max(0.0, min(60, deadline - time.monotonic())))
    if client.is_alive() or "reply" not in result:
        log(f"second message: no reply ({result.get('error', 'timed out')})\n{container.logs()}")
        return 1
    code, text = result["reply"]
    if code != 250:
        log(f"second message during the drain: {code} {text!r}\n{container.logs()}")
        return 1
    stamp(f"second message, in DATA at SIGTERM: {code} {text.decode()}")
    if len(backend.wait_messages(2, 5)) != 2:
        return 1

    waited = run_podman(["wait", args.name], timeout=max(1.0, min(40, deadline - time.monotonic())))
    exit_code = waited.stdout.strip()
    stamp(f"container exited: {exit_code}")
    tail = [line for line in container.logs().splitlines() if "stop" in line]
    log("certrelay's last lines:\n  " + "\n  ".join(tail[-4:]))
    if waited.returncode != 0 or exit_code != "0":
        log(f"podman wait: {waited.returncode} {waited.stderr}\n{container.logs()}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (TimeoutError, RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
