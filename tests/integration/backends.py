"""Backends for the proxy under test: Postfix's smtp-sink (captures every message) and a
scripted Python SMTP server with faults a real MTA cannot be made to produce."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import threading
import time

from util import SMTP_SINK, free_port, stop_process, is_root, port_accepts, read_text, wait_until

class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:<free port>; each message lands in its own file."""

    def __init__(self, tmpdir: str, flags=(), hostname: str = "sink.test.example"):
        self.dir = tmpdir
        self.capture_dir = os.path.join(tmpdir, "capture")
        os.makedirs(self.capture_dir, exist_ok=True)
        os.chmod(self.capture_dir, 0o777)   # smtp-sink writes as nobody
        self.proc = None
        self.stderr_path = os.path.join(tmpdir, "smtp-sink.stderr")
        for _attempt in range(5):
            self.port = free_port()
            args = [SMTP_SINK]
            if is_root():
                args += ["-u", "nobody"]   # smtp-sink refuses to run as root without -u
            # -d: one file per transaction; smtp-sink appends a random hex suffix to the
            # strftime expansion, so the names are unique per message.
            args += ["-h", hostname, "-d", os.path.join(self.capture_dir, "%Y%m%d%H%M%S."),
                     *flags, f"127.0.0.1:{self.port}", "64"]
            with open(self.stderr_path, "w") as stderr:
                self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr,
                                             stdin=subprocess.DEVNULL)
            try:
                wait_until(lambda: self.proc.poll() is not None or port_accepts(self.port), 5.0,
                           what="smtp-sink to accept connections")
            except TimeoutError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return
            # Exited: most likely the port was taken between free_port() and bind. Retry.
        raise RuntimeError("smtp-sink did not start: " + read_text(self.stderr_path))

    def messages(self) -> list[bytes]:
        out = []
        for name in sorted(os.listdir(self.capture_dir)):
            try:
                with open(os.path.join(self.capture_dir, name), "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                continue  # smtp-sink removes an aborted transaction's file: listed, then gone
        return out

    def wait_messages(self, count: int, timeout: float = 5.0) -> list[bytes]:
        return wait_until(lambda: (lambda m: m if len(m) >= count else None)(self.messages()),
                          timeout, what=f"{count} message(s) in the smtp-sink capture")

    def wait_message(self, last_line: bytes, timeout: float = 10.0) -> bytes:
        """The captured message whose last line is `last_line` (make it unique per message),
        once the file is complete. The dump format: smtp-sink's own headers, then the message
        with LF line ends and dot-stuffing undone, then an empty line; a file can be seen while
        it is still being written, hence the check for its end."""
        tail = last_line + b"\n\n"

        def probe():
            return next((m for m in self.messages() if m.endswith(tail)), None)
        return wait_until(probe, timeout, interval=0.05,
                          what=f"a message ending with {last_line!r} in the smtp-sink capture")

    def stop(self):
        stop_process(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# ---------------------------------------------------------------------------------------------
# Scripted backend
# ---------------------------------------------------------------------------------------------
XCLIENT_ALL = "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT"


class Behaviour:
    """What the scripted backend says. Change attributes before the proxy connects.

    after_dot: "reply" (default), "close" (drop the connection without a reply),
               "malformed" (send `malformed_reply`), "silent" (never answer).
    replies:   per-command override, e.g. {"XCLIENT": "550 5.7.0 Error: insufficient authorization"}
    """

    def __init__(self):
        self.hostname = "backend.test.example"
        self.greeting = f"220 {self.hostname} ESMTP scripted"
        self.capabilities = ["PIPELINING", "SIZE 10240000", "ETRN", XCLIENT_ALL,
                             "XFORWARD NAME ADDR PROTO HELO", "AUTH PLAIN LOGIN",
                             "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "CHUNKING"]
        self.xclient_reply = f"220 {self.hostname} ESMTP scripted"
        self.replies: dict[str, str] = {}
        self.after_dot = "reply"
        self.dot_reply = "250 2.0.0 Ok: queued as SCRIPTED"
        self.malformed_reply = "2x0 this is not an SMTP reply"
        self.delays: dict[str, float] = {}   # seconds to wait before answering a command
        # Flow control: with an Event here, the backend stops reading its socket right after
        # it answered DATA with 354, until the event is set (at most hold_timeout seconds);
        # then it goes on reading ("resume") or closes the connection unread ("close").
        self.hold_after_354: threading.Event | None = None
        self.hold_then = "resume"
        self.hold_timeout = 30.0
        # BDAT: the reply to a chunk that is not the last (the last one gets dot_reply). A
        # "BDAT" entry in `replies` overrides both (the chunk is still read first).
        self.bdat_reply = "250 2.0.0 Ok: {count} bytes"
        # After answering the named command: send these extra lines (an unsolicited reply,
        # e.g. a 421 of a backend going down), then close the connection. An empty list only
        # closes (the backend restarted between two commands).
        self.then_close: dict[str, list[str]] = {}
        # TLS (the proxy's backend.tls): with a server-side ssl.SSLContext here, EHLO offers
        # STARTTLS and a STARTTLS gets 220 and the handshake (a "STARTTLS" entry in `replies`
        # still overrides that); with implicit_tls, the handshake comes first and STARTTLS is
        # not offered. After answering a command named in end_tls_after inside TLS, the backend
        # sends close_notify and then neither reads nor writes, with the TCP connection left
        # open until the proxy closes it.
        self.tls: ssl.SSLContext | None = None
        self.implicit_tls = False
        self.end_tls_after: set[str] = set()


class BackendConnection:
    """One connection the scripted backend accepted, with everything it received."""

    def __init__(self, sock: socket.socket, peer):
        self.sock = sock
        self.peer = peer
        self.received = bytearray()          # raw bytes, exactly as read
        self.reads: list[bytes] = []         # the same, one entry per recv (what came together)
        self.commands: list[str] = []        # command lines (outside DATA), without CRLF
        self.messages: list[bytes] = []      # DATA contents up to (not incl.) the terminator
        # BDAT (RFC 3030): every chunk as (count, last, bytes), and each complete message
        # (the chunks of one transaction joined, at BDAT ... LAST).
        self.chunks: list[tuple[int, bool, bytes]] = []
        self.bdat_messages: list[bytes] = []
        self.closed = False
        self.holding = False                 # not reading (Behaviour.hold_after_354)
        # Behaviour.tls: how many commands came before the handshake (None: no TLS yet), the
        # proxy's certificate as ssl.getpeercert() gives it, and whether TLS was ended.
        self.tls_after: int | None = None
        self.peer_cert: dict | None = None
        self.tls_ended = False

    def command_names(self) -> list[str]:
        return [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in self.commands]

    def find(self, prefix: str) -> list[str]:
        return [c for c in self.commands if c.upper().startswith(prefix.upper())]


class ScriptedBackend:
    """A threaded SMTP server on 127.0.0.1:<kernel port>. It answers pipelined commands in
    order and records everything; `behaviour` selects faults."""

    def __init__(self, behaviour: Behaviour | None = None, port: int = 0):
        self.behaviour = behaviour or Behaviour()
        self.connections: list[BackendConnection] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._listener = None
        self._threads: list[threading.Thread] = []
        self.port = port
        self.listen()

    # -- server life cycle -------------------------------------------------------------------
    def listen(self):
        """(Re)opens the listening socket, on the same port after a stop_listening()."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._stopping = False
        thread = threading.Thread(target=self._accept_loop, args=(sock,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop_listening(self):
        """Stop accepting (connections are then refused); open connections stay."""
        sock, self._listener = self._listener, None
        if sock:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self):
        self._stopping = True
        self.stop_listening()
        with self._cond:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _accept_loop(self, listener):
        while True:
            try:
                sock, peer = listener.accept()
            except OSError:
                return
            conn = BackendConnection(sock, peer)
            with self._cond:
                self.connections.append(conn)
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # -- observation -------------------------------------------------------------------------
    def snapshot(self) -> list[BackendConnection]:
        with self._cond:
            return list(self.connections)

    def sessions(self) -> list[BackendConnection]:
        """Connections that carried a client session (XCLIENT or MAIL), not capability probes."""
        return [c for c in self.snapshot()
                if any(n in ("XCLIENT", "MAIL") for n in c.command_names())]

    def wait_for(self, predicate, timeout: float = 5.0, what: str = "backend condition"):
        """Blocks until predicate(self) is truthy (re-evaluated on every received line)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
                self._cond.wait(remaining)

    def wait_command(self, name: str, timeout: float = 5.0) -> BackendConnection:
        return self.wait_for(lambda b: next((c for c in b.connections
                                             if name.upper() in c.command_names()), None),
                             timeout, what=f"backend to receive {name}")

    def all_commands(self) -> list[str]:
        return [cmd for c in self.snapshot() for cmd in c.commands]

    def dump(self) -> str:
        return self.transcript()

    def transcript(self) -> str:
        parts = []
        for i, c in enumerate(self.snapshot()):
            parts.append(f"--- backend connection {i} from {c.peer} ---\n"
                         + bytes(c.received).decode("utf-8", "replace"))
        return "\n".join(parts)

    # -- protocol ----------------------------------------------------------------------------
    def _send(self, conn: BackendConnection, text: str):
        try:
            conn.sock.sendall(text.encode() + b"\r\n")
        except OSError:
            pass

    def _start_tls(self, conn: BackendConnection):
        """The server side of the handshake (blocking: a thread per connection); ssl.SSLError
        (an OSError) ends the connection."""
        conn.sock = self.behaviour.tls.wrap_socket(conn.sock, server_side=True)
        with self._cond:
            conn.tls_after = len(conn.commands)
            conn.peer_cert = conn.sock.getpeercert() or None
            self._cond.notify_all()

    def _end_tls(self, conn: BackendConnection):
        """close_notify; then wait, reading nothing into the session, until the proxy closes."""
        try:
            conn.sock = conn.sock.unwrap()
        except (OSError, ValueError):
            return
        with self._cond:
            conn.tls_ended = True
            self._cond.notify_all()
        while not self._stopping:
            try:
                if not conn.sock.recv(65536):
                    return
            except OSError:
                return

    def _reply_for(self, name: str, default: str) -> str:
        return self.behaviour.replies.get(name, default)

    def _end_chunk(self, conn: BackendConnection, count: int, last: bool, data: bytes,
                   earlier: bytearray):
        b = self.behaviour
        with self._cond:
            conn.chunks.append((count, last, data))
            if last:
                conn.bdat_messages.append(bytes(earlier) + data)
            self._cond.notify_all()
        if "BDAT" in b.replies:
            self._send(conn, b.replies["BDAT"])
        elif last:
            self._send(conn, self._reply_for(".", b.dot_reply))
        else:
            self._send(conn, b.bdat_reply.format(count=count))

    def _hold(self, conn: BackendConnection) -> bool:
        """Behaviour.hold_after_354: stop reading until released. False: close now."""
        b = self.behaviour
        if b.hold_after_354 is None:
            return True
        with self._cond:
            conn.holding = True
            self._cond.notify_all()
        b.hold_after_354.wait(b.hold_timeout)
        with self._cond:
            conn.holding = False
            self._cond.notify_all()
        return b.hold_then != "close" and not self._stopping

    def _serve(self, conn: BackendConnection):
        b = self.behaviour
        buf = b""
        in_data = False
        data = bytearray()
        scan_from = 0
        chunk_left: int | None = None     # BDAT bytes still to read (None: not in a chunk)
        chunk_buf, chunk_count, chunk_last = bytearray(), 0, False
        bdat = bytearray()                # this transaction's earlier chunks
        try:
            if b.tls is not None and b.implicit_tls:
                self._start_tls(conn)
            self._send(conn, b.greeting)
            if not b.greeting.startswith("2"):
                return
            while not self._stopping:
                chunk = conn.sock.recv(65536)
                if not chunk:
                    return
                with self._cond:
                    conn.received += chunk
                    conn.reads.append(chunk)
                    self._cond.notify_all()
                buf += chunk
                while True:
                    if chunk_left is not None:
                        # Inside a BDAT chunk: counted bytes, never lines.
                        take = min(chunk_left, len(buf))
                        chunk_buf += buf[:take]
                        buf = buf[take:]
                        chunk_left -= take
                        if chunk_left > 0:
                            break
                        self._end_chunk(conn, chunk_count, chunk_last, bytes(chunk_buf), bdat)
                        if chunk_last:
                            bdat = bytearray()
                        else:
                            bdat += chunk_buf
                        chunk_left, chunk_buf = None, bytearray()
                        continue
                    if in_data:
                        # The message ends at "." on a line of its own; the body kept
                        # is everything before that line, still dot-stuffed.
                        data += buf
                        buf = b""
                        if data.startswith(b".\r\n"):
                            body, rest = b"", bytes(data[3:])
                        else:
                            # Search only the new bytes (plus a terminator's worth of
                            # overlap): a large message stays linear.
                            end = data.find(b"\r\n.\r\n", scan_from)
                            if end < 0:
                                scan_from = max(0, len(data) - 4)
                                break
                            body, rest = bytes(data[:end + 2]), bytes(data[end + 5:])
                        buf, data, in_data, scan_from = rest, bytearray(), False, 0
                        with self._cond:
                            conn.messages.append(body)
                            self._cond.notify_all()
                        if b.after_dot == "close":
                            return
                        if b.after_dot == "silent":
                            continue
                        if b.after_dot == "malformed":
                            self._send(conn, b.malformed_reply)
                            continue
                        self._send(conn, self._reply_for(".", b.dot_reply))
                        continue
                    nl = buf.find(b"\r\n")
                    if nl < 0:
                        break
                    line, buf = buf[:nl].decode("utf-8", "replace"), buf[nl + 2:]
                    with self._cond:
                        conn.commands.append(line)
                        self._cond.notify_all()
                    name = line.split(" ", 1)[0].split(":", 1)[0].upper()
                    if b.delays.get(name):
                        time.sleep(b.delays[name])   # a slow backend, on purpose
                    if name in b.then_close:
                        self._send(conn, b.replies.get(name, "250 2.0.0 Ok"))
                        for extra in b.then_close[name]:
                            self._send(conn, extra)
                        return
                    if name == "BDAT":
                        m = re.fullmatch(r"BDAT (\d+)( LAST)?", line, re.IGNORECASE)
                        if not m:
                            self._send(conn, "501 5.5.4 Syntax: BDAT count [LAST]")
                            continue
                        chunk_count, chunk_last = int(m.group(1)), bool(m.group(2))
                        chunk_left, chunk_buf = chunk_count, bytearray()
                        continue
                    if name == "RSET":
                        bdat = bytearray()
                    if name == "STARTTLS" and b.tls is not None and name not in b.replies:
                        self._send(conn, "220 2.0.0 Ready to start TLS")
                        buf = b""    # plaintext behind STARTTLS is never read (RFC 3207)
                        self._start_tls(conn)
                        continue
                    if name in b.replies:
                        reply = b.replies[name]
                        if reply is None:          # None: close without a reply
                            return
                        self._send(conn, reply)
                        if name == "DATA" and reply.startswith("354"):
                            in_data = True
                            if not self._hold(conn):
                                return
                        if reply.startswith("421"):
                            return
                        continue
                    if name in ("EHLO", "LHLO"):
                        lines = [b.hostname] + list(b.capabilities)
                        if (b.tls is not None and conn.tls_after is None
                                and "STARTTLS" not in lines):
                            lines.append("STARTTLS")
                        self._send(conn, "\r\n".join(
                            f"250{'-' if i < len(lines) - 1 else ' '}{text}"
                            for i, text in enumerate(lines)))
                    elif name == "HELO":
                        self._send(conn, f"250 {b.hostname}")
                    elif name == "XCLIENT":
                        self._send(conn, b.xclient_reply)
                    elif name == "XFORWARD":
                        self._send(conn, "250 2.0.0 Ok")
                    elif name == "MAIL":
                        self._send(conn, "250 2.1.0 Ok")
                    elif name == "RCPT":
                        self._send(conn, "250 2.1.5 Ok")
                    elif name == "DATA":
                        self._send(conn, "354 End data with <CR><LF>.<CR><LF>")
                        in_data = True
                        if not self._hold(conn):
                            return
                    elif name in ("RSET", "NOOP"):
                        self._send(conn, "250 2.0.0 Ok")
                    elif name == "QUIT":
                        self._send(conn, "221 2.0.0 Bye")
                        return
                    else:
                        self._send(conn, "502 5.5.2 Error: command not recognized")
                    if conn.tls_after is not None and name in b.end_tls_after:
                        self._end_tls(conn)
                        return
        except OSError:
            return
        finally:
            with self._cond:
                conn.closed = True
                self._cond.notify_all()
            try:
                conn.sock.close()
            except OSError:
                pass
