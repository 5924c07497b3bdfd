"""SMTP clients for the tests: a raw one (exact bytes, one write per send, bounded reads,
STARTTLS with a client certificate) and TLS contexts for smtplib; plus small SMTP helpers."""

from __future__ import annotations

import os
import re
import socket
import ssl
import time

from pki import Cert
from util import HOSTNAME

def client_context(cert: Cert | None = None, ca: str | None = None,
                   max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """Client TLS context: presents `cert` if given; verifies the server against `ca` if given,
    otherwise does not verify (the tests are about the client side)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = True
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


class Reply:
    def __init__(self, lines: list[str]):
        self.lines = lines
        self.code = int(lines[-1][:3])
        self.text = "\n".join(lines)

    @property
    def first(self) -> str:
        return self.lines[0]

    @property
    def last(self) -> str:
        return self.lines[-1]

    def keywords(self) -> list[str]:
        """EHLO keywords (upper case, without the first greeting line)."""
        return [l[4:].split(" ", 1)[0].upper() for l in self.lines[1:]]

    def __repr__(self):
        return f"Reply({self.text!r})"


class SmtpError(AssertionError):
    pass


class SmtpClient:
    """A raw SMTP client: `send` writes its bytes in one sendall; replies are read with a
    deadline; `transcript` keeps C:/S: lines for failure messages."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0,
                 source: str | None = None):
        """`source`: the local address to connect from (e.g. 127.0.0.2), else the default."""
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source is not None else None)
        self.buf = b""
        self.transcript: list[str] = []
        self.tls = False

    # -- io ----------------------------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        for line in data.split(b"\r\n")[:-1] if data.endswith(b"\r\n") else data.split(b"\r\n"):
            self.transcript.append("C: " + line.decode("utf-8", "replace")[:200])
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Reads more bytes; False on EOF. Raises socket.timeout at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_line(self, timeout: float | None = None) -> str:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\r\n" not in self.buf:
            try:
                more = self._fill(deadline)
            except (socket.timeout, TimeoutError):
                raise SmtpError("timed out waiting for a reply line\n" + self.dump()) from None
            if not more:
                raise SmtpError("connection closed while waiting for a reply line\n" + self.dump())
        line, self.buf = self.buf.split(b"\r\n", 1)
        text = line.decode("utf-8", "replace")
        self.transcript.append("S: " + text)
        return text

    def read_reply(self, timeout: float | None = None) -> Reply:
        lines = []
        while True:
            line = self.read_line(timeout)
            if not re.match(r"^\d{3}([ -]|$)", line):
                raise SmtpError(f"malformed reply line {line!r}\n" + self.dump())
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return Reply(lines)

    def read_replies(self, count: int, timeout: float | None = None) -> list[Reply]:
        return [self.read_reply(timeout) for _ in range(count)]

    def command(self, line: str, timeout: float | None = None) -> Reply:
        self.send(line + "\r\n")
        return self.read_reply(timeout)

    def silent_for(self, seconds: float) -> bytes:
        """Waits `seconds` for unsolicited bytes; returns what arrived (b"" = nothing).
        On EOF returns b"<EOF>"."""
        if self.buf:
            return self.buf
        deadline = time.monotonic() + seconds
        try:
            if not self._fill(deadline):
                return b"<EOF>"
        except (socket.timeout, TimeoutError):
            return b""
        except ssl.SSLError:
            return b"<SSL error>"
        return self.buf

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection within `timeout` (data before EOF is kept
        in the buffer)."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
            return True
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True

    # -- session helpers ---------------------------------------------------------------------
    def greeting(self) -> Reply:
        return self.read_reply()

    def ehlo(self, name: str = "client.test.example") -> Reply:
        return self.command(f"EHLO {name}")

    def starttls(self, context: ssl.SSLContext | None = None, *, send: bool = True,
                 server_hostname: str = HOSTNAME, session=None) -> Reply | None:
        """Sends STARTTLS (unless send=False: already sent), expects 220, and does the
        handshake. Plaintext bytes received after the 220 would be a protocol violation:
        fail if any are buffered."""
        reply = None
        if send:
            reply = self.command("STARTTLS")
            if reply.code != 220:
                raise SmtpError(f"STARTTLS refused: {reply.text}\n" + self.dump())
        if self.buf:
            raise SmtpError(f"plaintext after STARTTLS's 220: {self.buf!r}\n" + self.dump())
        self.upgrade(context or client_context(), server_hostname=server_hostname, session=session)
        return reply

    def upgrade(self, context: ssl.SSLContext, server_hostname: str = HOSTNAME, session=None):
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname,
                                        session=session)
        self.tls = True
        self.transcript.append(f"-- TLS {self.sock.version()} {self.sock.cipher()[0]}"
                               f"{' (resumed)' if self.sock.session_reused else ''} --")

    def quit(self):
        try:
            self.command("QUIT", timeout=2)
        except (SmtpError, OSError):
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def dump(self) -> str:
        return "transcript:\n  " + "\n  ".join(self.transcript[-60:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def xclient_attributes(line: str) -> list[tuple[str, str]]:
    """`XCLIENT NAME=x ADDR=y` -> [("NAME", "x"), ("ADDR", "y")] (names upper-cased, values
    still xtext-encoded)."""
    words = line.split()
    if not words or words[0].upper() != "XCLIENT":
        raise ValueError(f"not an XCLIENT command: {line!r}")
    attrs = []
    for word in words[1:]:
        name, _, value = word.partition("=")
        attrs.append((name.upper(), value))
    return attrs


def unique_message(subject: str, sender: str, recipients) -> tuple[str, bytes]:
    """A small RFC 5322 message with a unique Message-ID; returns (message_id, bytes)."""
    message_id = f"<{os.urandom(8).hex()}@client.test.example>"
    text = (f"From: <{sender}>\r\nTo: {', '.join('<' + r + '>' for r in recipients)}\r\n"
            f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n\r\n"
            f"certrelay integration test: {subject}\r\n.leading dot line\r\n")
    return message_id, text.encode()
