#!/usr/bin/python3
"""Flow control and resource limits (README "limits"): reading from one side pauses while the
other side does not take the bytes (limits.high_watermark), so a stalled backend or a client
that never reads its replies costs the proxy a bounded amount of memory; a large message
arrives byte-exact in canonical form; limits.max_connections refuses at connect."""

import os
import random
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Behaviour, Expect, LOCAL_DOMAIN, REMOTE_DOMAIN  # noqa: E402

MiB = 1024 * 1024
STREAM_LIMIT = 64 * MiB        # the most a client tries to push into a stalled pipe
ACCEPTED_BOUND = 16 * MiB      # what the proxy plus the kernel buffers may swallow meanwhile
RSS_BOUND = 32 * MiB           # growth of the proxy's VmRSS allowed over its start
ASAN_QUARANTINE = 256 * MiB    # ASan's default quarantine_size_mb: freed, not yet reusable
BLOCKED_AFTER = 2.0            # a send making no progress for this long counts as blocked
CLIENT_SNDBUF = 256 * 1024     # the client's own kernel buffer, fixed: it is not the proxy's


def fix_send_buffer(sock):
    """A fixed SO_SNDBUF (no autotuning up to net.ipv4.tcp_wmem's maximum), so the bytes a
    client gets rid of measure the proxy's side of the pipe, not the host's sysctls."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SNDBUF)


def rss_growth(proxy: harness.Proxy, baseline: int) -> int:
    return proxy.rss() - baseline


def rss_bound(proxy: harness.Proxy) -> int:
    """Under ASan freed buffers stay resident in the quarantine; the byte counts (sends
    blocking, bytes accepted) are then what shows the backpressure."""
    return RSS_BOUND + (ASAN_QUARANTINE if proxy.sanitized() else 0)


class FlowControlTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.behaviour = Behaviour()
        self.backend = self.start_backend(self.behaviour)

    def proxy_with(self, **overrides):
        self.proxy = self.start_proxy(self.backend.port, **overrides)
        return self.proxy

    def open_trusted_data(self, timeout: float = 10.0):
        """Trusted TLS session up to the 354 of DATA (remote recipient: relaying)."""
        c = self.tls_client(self.proxy, self.pki.trusted, helo="flow.example", timeout=timeout)
        self.assertReply(c.command("MAIL FROM:<sender@client.test.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<rcpt@{REMOTE_DOMAIN}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        return c

    # -- client -> backend -------------------------------------------------------------------
    def stream_into_stalled_backend(self, then: str):
        """The backend answers DATA with 354 and stops reading; the client streams until its
        sends block. Checks the bounds, releases the backend (`then`: "resume" or "close") and
        returns (client, backend connection, bytes the client got rid of, the rest of the
        chunk whose send timed out, to be retried as it is)."""
        release = threading.Event()
        self.addCleanup(release.set)       # never leave the backend thread waiting
        self.behaviour.hold_after_354 = release
        self.behaviour.hold_then = then
        self.proxy_with()
        c = self.open_trusted_data()
        conn = self.backend.wait_for(lambda b: next((x for x in b.sessions() if x.holding), None),
                                     what="the backend to stop reading after its 354")
        baseline = self.proxy.rss()
        fix_send_buffer(c.sock)

        line = b"y" * 1022 + b"\r\n"                 # 1 KiB content lines
        chunk = line * 64                            # 64 KiB per send
        accepted, peak, pending, next_sample = 0, 0, None, 0
        c.sock.settimeout(BLOCKED_AFTER)
        while accepted < STREAM_LIMIT:
            view = memoryview(chunk)
            try:
                while len(view):
                    n = c.sock.send(view)
                    accepted += n
                    view = view[n:]
            except (socket.timeout, ssl.SSLWantWriteError):
                pending = bytes(view)     # must be retried as it is (SSL_write semantics)
                break
            if accepted >= next_sample:
                peak = max(peak, rss_growth(self.proxy, baseline))
                next_sample = accepted + MiB
        peak = max(peak, rss_growth(self.proxy, baseline))
        self.assertIsNotNone(pending, f"the client wrote {accepted} bytes without ever blocking: "
                                      "the proxy kept reading although the backend did not")
        self.assertLess(accepted, ACCEPTED_BOUND,
                        f"{accepted} bytes accepted before the client's sends blocked")
        peak = max(peak, rss_growth(self.proxy, baseline))
        self.assertLess(peak, rss_bound(self.proxy), f"proxy RSS grew by {peak} bytes (accepted {accepted})")
        self.assertTrue(conn.holding, "the backend stopped holding on its own (hold_timeout)")
        sys.stderr.write(f"[flow] accepted {accepted / MiB:.1f} MiB before blocking; backend had "
                         f"{len(conn.received) / MiB:.1f} MiB; RSS growth {peak / MiB:.1f} MiB\n")
        release.set()
        return c, conn, accepted, pending

    def finish_body(self, c, pending: bytes):
        c.sock.settimeout(20.0)
        view = memoryview(pending)
        while len(view):
            view = view[c.sock.send(view):]
        c.send(b".\r\n")
        return c.read_reply(timeout=20.0)

    def test_stalled_backend_stops_reading_from_client_then_resumes(self):
        c, conn, accepted, pending = self.stream_into_stalled_backend("resume")
        reply = self.finish_body(c, pending)
        # The backend resumed and answered 250: that, and only that, is relayed.
        self.assertEqual(reply.last, self.behaviour.dot_reply, c.dump())
        self.backend.wait_for(lambda b: conn.messages, 10.0, what="the message at the backend")
        # certrelay's Received header first (issue 4), then every byte the client sent.
        received, content = harness.split_received(conn.messages[0])
        self.assertEqual((received.helo, received.protocol), ("flow.example", "ESMTPSA"),
                         received.raw)
        self.assertEqual(len(content), accepted + len(pending),
                         "the backend did not get every byte the client sent")
        self.assertEqual(content.strip(b"y\r\n"), b"")
        self.assertReply(c.command("QUIT"), 221, c)

    def test_stalled_backend_that_closes_gives_a_4xx(self):
        c, conn, _accepted, pending = self.stream_into_stalled_backend("close")
        reply = self.finish_body(c, pending)
        self.assertNotEqual(reply.code, 250, c.dump())
        self.assertTrue(400 <= reply.code < 500, f"expected 4xx, got {reply.text}\n{c.dump()}")
        self.assertReply(reply, Expect.DATA_NOT_DELIVERED, c)
        self.assertEqual(conn.messages, [])
        # The session is back in command mode.
        self.assertReply(c.command("NOOP"), 250, c)

    # -- backend/proxy -> client -------------------------------------------------------------
    def test_client_that_never_reads_its_replies(self):
        # Millions of NOOPs: past limits.max_junk_commands each would count as an error and end
        # the session long before any buffer fills; this test is about the buffers.
        self.proxy_with(limits={"max_junk_commands": 0})
        c = self.client(self.proxy)
        self.assertReply(c.ehlo("flow.example"), 250, c)
        baseline = self.proxy.rss()
        fix_send_buffer(c.sock)
        noop = b"NOOP\r\n"
        chunk = noop * (65536 // len(noop))
        limit = 4_000_000 * len(noop)        # 4 million NOOPs, 24 MB: far past any buffer
        accepted, peak, blocked = 0, 0, False
        c.sock.settimeout(BLOCKED_AFTER)
        while accepted < limit:
            try:
                accepted += c.sock.send(chunk[accepted % len(chunk):])
            except socket.timeout:
                blocked = True
                break
            peak = max(peak, rss_growth(self.proxy, baseline))
        peak = max(peak, rss_growth(self.proxy, baseline))
        self.assertTrue(blocked, f"{accepted // len(noop)} NOOPs written without blocking")
        self.assertLess(peak, rss_bound(self.proxy), f"proxy RSS grew by {peak} bytes")
        sys.stderr.write(f"[flow] {accepted // len(noop)} NOOPs ({accepted / MiB:.1f} MiB) "
                         f"before blocking; RSS growth {peak / MiB:.1f} MiB\n")

        # Now read: every NOOP gets its 250, in order, nothing lost; then QUIT's 221.
        received = bytearray()
        done = threading.Event()

        def reader():
            c.sock.settimeout(20.0)
            try:
                while True:
                    data = c.sock.recv(1 << 20)
                    if not data:
                        break
                    received.extend(data)
            except OSError:
                pass
            done.set()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        rest = (-accepted) % len(noop)       # complete a NOOP split by the last send
        tail = noop[len(noop) - rest:] if rest else b""
        c.sock.settimeout(20.0)
        c.sock.sendall(tail + b"QUIT\r\n")
        self.assertTrue(done.wait(30.0), "the proxy did not close after QUIT")
        noops = (accepted + len(tail)) // len(noop)
        expected = Expect.NOOP_OK.encode() + b"\r\n"
        self.assertTrue(received.endswith(b"221 2.0.0 Bye\r\n"), bytes(received[-200:]))
        body = bytes(received[:-len(b"221 2.0.0 Bye\r\n")])
        self.assertEqual(len(body), noops * len(expected),
                         f"{noops} NOOPs sent, {body.count(expected)} replies received")
        self.assertEqual(body, expected * noops)

    # -- a large message ---------------------------------------------------------------------
    def test_large_message_arrives_byte_exact(self):
        # No 20 MiB backend transcript in a failure report: the assertion below says where.
        self._watched.remove(self.backend)
        self.proxy_with()
        rng = random.Random(0x5EED)
        filler = bytes(rng.randrange(0x21, 0x7F) for _ in range(1 << 17))
        wire, expected, size = [], [], 0
        while size < 20 * MiB:
            kind = rng.random()
            if kind < 0.05:
                content = b"." + filler[:rng.randrange(0, 300)]      # starts with a dot
            elif kind < 0.06:
                content = b"."                                       # a lone dot
            elif kind < 0.07:
                content = b".." + filler[:rng.randrange(0, 20)]
            elif kind < 0.15:
                content = b""
            elif kind < 0.20:
                start = rng.randrange(0, len(filler) - 100_000)
                content = filler[start:start + rng.randrange(1_000, 100_000)]   # long lines
            else:
                start = rng.randrange(0, len(filler) - 200)
                content = filler[start:start + rng.randrange(1, 200)]
            stuffed = b"." + content if content.startswith(b".") else content
            # A few bare LF line ends: they leave the proxy as CRLF.
            ending = b"\n" if rng.random() < 0.02 else b"\r\n"
            wire.append(stuffed + ending)
            expected.append(stuffed + b"\r\n")
            size += len(stuffed) + len(ending)
        wire.append(b"last line\r\n")
        expected.append(b"last line\r\n")
        wire_bytes, expected_bytes = b"".join(wire), b"".join(expected)

        c = self.open_trusted_data(timeout=30.0)
        started = time.monotonic()
        c.sock.settimeout(40.0)
        c.sock.sendall(wire_bytes + b".\r\n")
        reply = c.read_reply(timeout=40.0)
        self.assertEqual(reply.last, self.behaviour.dot_reply, c.dump())
        c.quit()
        conn = self.backend.wait_for(lambda b: next((x for x in b.sessions() if x.messages), None),
                                     10.0, what="the message at the backend")
        # certrelay's Received header first (issue 4), then the content byte-exact.
        received, got = harness.split_received(conn.messages[0])
        self.assertEqual((received.helo, received.protocol, received.rcpt),
                         ("flow.example", "ESMTPSA", f"<rcpt@{REMOTE_DOMAIN}>"), received.raw)
        if got != expected_bytes:
            at = next((i for i, (a, b) in enumerate(zip(got, expected_bytes)) if a != b),
                      min(len(got), len(expected_bytes)))
            self.fail(f"message differs at byte {at} (got {len(got)} bytes, expected "
                      f"{len(expected_bytes)}):\n got      {got[max(0, at - 40):at + 40]!r}\n"
                      f" expected {expected_bytes[max(0, at - 40):at + 40]!r}")
        sys.stderr.write(f"[flow] {len(wire_bytes) / MiB:.1f} MiB message relayed in "
                         f"{time.monotonic() - started:.1f}s\n")

    # -- connections -------------------------------------------------------------------------
    def test_max_connections(self):
        self.proxy_with(limits={"max_connections": 3})
        clients = [self.client(self.proxy) for _ in range(3)]     # each one greeted
        mark = self.proxy.mark()
        fourth = harness.SmtpClient(self.proxy.port)
        self.addCleanup(fourth.close)
        self.watch(fourth)
        self.assertEqual(fourth.read_reply().last, Expect.TOO_MANY_CONNECTIONS, fourth.dump())
        self.assertTrue(fourth.wait_closed(5.0), "not closed after the 421\n" + fourth.dump())
        self.assertEqual(fourth.buf, b"", fourth.dump())
        self.assertTrue(self.proxy.wait_log(r"disconnect from", 5.0, start=mark))
        # The three are still served.
        for c in clients:
            self.assertReply(c.command("NOOP"), 250, c)
        # One leaves; once the proxy has seen it go, a new client is greeted normally.
        mark = self.proxy.mark()
        clients[0].quit()
        self.assertTrue(self.proxy.wait_log(r"disconnect from", 5.0, start=mark))
        fifth = self.client(self.proxy)            # connect() checks the greeting
        self.assertReply(fifth.ehlo("flow.example"), 250, fifth)
        # And the limit holds again at four.
        sixth = harness.SmtpClient(self.proxy.port)
        self.addCleanup(sixth.close)
        self.assertEqual(sixth.read_reply().last, Expect.TOO_MANY_CONNECTIONS, sixth.dump())
        self.assertTrue(sixth.wait_closed(5.0), sixth.dump())


if __name__ == "__main__":
    harness.main()
