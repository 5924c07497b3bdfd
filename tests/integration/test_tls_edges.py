#!/usr/bin/python3
"""TLS edges: the handshake deadline, non-TLS bytes after the 220, require_tls, ALPN (the
ALPACA defence) and refused TLS 1.2 renegotiation (README "The SMTP dialogue")."""

import os
import random
import re
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Expect, LOCAL_DOMAIN, OPENSSL, client_context  # noqa: E402


class TlsEdgesTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()

    def proxy_with(self, **overrides):
        self.proxy = self.start_proxy(self.backend.port, **overrides)
        return self.proxy

    def at_starttls(self):
        """A plaintext session that got `220 2.0.0 Ready to start TLS`."""
        c = self.client(self.proxy)
        self.assertReply(c.ehlo("edges.example"), 250, c)
        self.assertEqual(c.command("STARTTLS").last, Expect.STARTTLS_READY, c.dump())
        return c

    def assert_session_works(self, cert=None):
        c = self.tls_client(self.proxy, cert, helo="edges.example")
        self.assertReply(c.command("NOOP"), 250, c)
        self.assertReply(c.command("QUIT"), 221, c)

    # -- handshake deadline ------------------------------------------------------------------
    def test_tls_handshake_timeout(self):
        self.proxy_with(timeouts={"tls_handshake": "1s"})
        mark = self.proxy.mark()
        c = self.at_starttls()
        started = time.monotonic()
        self.assertTrue(c.wait_closed(5.0), "still open 5s after a 1s handshake deadline\n"
                        + c.dump())
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 0.5, "closed before the handshake deadline")
        self.assertLess(elapsed, 5.0)
        # No plaintext reply after the 220 (the session is no longer plaintext SMTP).
        self.assertEqual(c.buf, b"", c.dump())
        self.assertTrue(self.proxy.wait_log(Expect.LOG_TLS_HANDSHAKE_TIMEOUT, 5.0, start=mark),
                        self.proxy.dump())
        self.assert_session_works()

    def test_tls_handshake_timeout_covers_a_partial_client_hello(self):
        # The deadline is for the whole handshake: bytes that start a ClientHello and then
        # stop (a record header announcing 512 bytes, 3 of them sent) do not extend it.
        self.proxy_with(timeouts={"tls_handshake": "1s"})
        mark = self.proxy.mark()
        c = self.at_starttls()
        started = time.monotonic()
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01")
        self.assertTrue(c.wait_closed(5.0), "still open 5s after a 1s handshake deadline\n"
                        + c.dump())
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertEqual(c.buf, b"", c.dump())
        self.assertTrue(self.proxy.wait_log(Expect.LOG_TLS_HANDSHAKE_TIMEOUT, 5.0, start=mark),
                        self.proxy.dump())

    # -- not TLS at all ----------------------------------------------------------------------
    def check_garbage(self, garbage: bytes):
        mark = self.proxy.mark()
        c = self.at_starttls()
        c.send(garbage)
        self.assertTrue(c.wait_closed(5.0), "not closed after non-TLS bytes\n" + c.dump())
        # At most a TLS alert record (content type 21); never an SMTP reply in plaintext.
        self.assertFalse(re.search(rb"(^|\r\n)\d{3}[ -]", c.buf),
                         f"plaintext SMTP reply after the 220: {c.buf!r}")
        self.assertTrue(c.buf == b"" or c.buf[0] == 0x15, f"not a TLS alert: {c.buf[:64]!r}")
        self.assertTrue(self.proxy.wait_log(Expect.LOG_SSL_ACCEPT_ERROR, 5.0, start=mark),
                        self.proxy.dump())
        self.assertTrue(self.proxy.alive())

    def test_http_request_after_220(self):
        self.proxy_with()
        self.check_garbage(b"GET / HTTP/1.1\r\n\r\n")
        self.assert_session_works(self.pki.trusted)

    def test_random_bytes_after_220(self):
        self.proxy_with()
        garbage = bytearray(random.Random(0xC0FFEE).randbytes(4096))
        # The first record header is made invalid on purpose (type 0x01, version 0x00..):
        # a plausible header would make OpenSSL wait for the announced record length, and the
        # outcome would depend on the seed (that case is the handshake timeout above).
        garbage[0], garbage[1] = 0x01, 0x00
        self.check_garbage(bytes(garbage))
        self.assert_session_works(self.pki.trusted)

    # -- require_tls -------------------------------------------------------------------------
    def test_require_tls_listener(self):
        self.proxy_with(listener=[{"name": "mx", "address": "127.0.0.1:0", "require_tls": True}])
        c = self.client(self.proxy)
        ehlo = c.ehlo("edges.example")
        self.assertIn("STARTTLS", ehlo.keywords(), ehlo.text)
        self.assertEqual(c.command("MAIL FROM:<a@x.example>").last, Expect.MUST_STARTTLS, c.dump())
        self.assertReply(c.command("NOOP"), 250, c)
        c.starttls(client_context(None))
        self.assertReply(c.ehlo("edges.example"), 250, c)
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<u@{LOCAL_DOMAIN}>"), 250, c)
        c.quit()
        # The refused MAIL never reached the backend; the one after TLS did.
        conn = self.backend.wait_command("MAIL")
        self.assertEqual(conn.find("MAIL"), ["MAIL FROM:<a@x.example>"], conn.commands)

    # -- ALPN --------------------------------------------------------------------------------
    def alpn_context(self, protocols):
        ctx = client_context(None)
        ctx.set_alpn_protocols(protocols)
        return ctx

    def test_alpn_other_protocol_is_refused(self):
        self.proxy_with()
        mark = self.proxy.mark()
        c = self.at_starttls()
        with self.assertRaises((ssl.SSLError, OSError)) as caught:
            c.starttls(self.alpn_context(["http/1.1"]), send=False)
        # The proxy's alert: no_application_protocol (RFC 7301 section 3.2).
        self.assertRegex(str(caught.exception), re.compile("no.application.protocol", re.I))
        self.assertTrue(self.proxy.wait_log(Expect.LOG_SSL_ACCEPT_ERROR, 5.0, start=mark),
                        self.proxy.dump())
        self.assertFalse(self.proxy.wait_log(Expect.LOG_TLS_ESTABLISHED, 0.2, start=mark),
                         self.proxy.dump())

    def test_alpn_smtp_is_accepted(self):
        self.proxy_with()
        for protocols in (["smtp"], ["http/1.1", "smtp"]):
            with self.subTest(protocols=protocols):
                c = self.at_starttls()
                c.starttls(self.alpn_context(protocols), send=False)
                self.assertEqual(c.sock.selected_alpn_protocol(), "smtp")
                self.assertReply(c.ehlo("edges.example"), 250, c)
                self.assertReply(c.command("NOOP"), 250, c)
                c.quit()

    # -- renegotiation -----------------------------------------------------------------------
    def test_tls12_client_renegotiation_is_refused(self):
        # s_client without -quiet renegotiates when a line starting with "R" is typed. The
        # proxy sets SSL_OP_NO_RENEGOTIATION: it answers the new ClientHello with a
        # no_renegotiation alert, which the OpenSSL client treats as fatal.
        self.proxy_with()
        mark = self.proxy.mark()
        args = [OPENSSL, "s_client", "-starttls", "smtp", "-tls1_2",
                "-connect", f"127.0.0.1:{self.proxy.port}", "-name", "reneg.example", "-crlf",
                "-cert", self.pki.trusted.cert, "-key", self.pki.trusted.key]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

        def cleanup():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            proc.stdin.close()
        self.addCleanup(cleanup)
        out = harness.LogCapture(proc.stdout, "s_client stdout")
        err = harness.LogCapture(proc.stderr, "s_client stderr")

        def transcript():
            return f"--- stdout ---\n{out.text()}\n--- stderr ---\n{err.text()}"

        # The handshake is done once s_client printed its session summary and the proxy
        # logged the session.
        self.assertTrue(out.wait_for(r"Verify return code", 10.0), transcript())
        self.assertTrue(self.proxy.wait_log(Expect.LOG_TRUSTED_TLS, 5.0, start=mark),
                        self.proxy.dump())
        self.assertTrue(self.proxy.wait_log(r"TLSv1\.2", 1.0, start=mark), self.proxy.dump())
        proc.stdin.write(b"R\n")
        proc.stdin.flush()
        self.assertTrue(err.wait_for(r"RENEGOTIATING", 5.0), transcript())
        try:
            code = proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self.fail("s_client still running 10s after the renegotiation attempt\n"
                      + transcript())
        err.wait_eof(2.0)
        out.wait_eof(2.0)
        self.assertNotEqual(code, 0, "s_client reports success\n" + transcript())
        self.assertTrue(err.wait_for(r"no renegotiation|alert|error", 1.0), transcript())
        # One handshake only, and the session is over.
        self.assertTrue(self.proxy.wait_log(r"disconnect from", 5.0, start=mark),
                        self.proxy.dump())
        established = [l for l in self.proxy.lines()[mark:] if Expect.LOG_TLS_ESTABLISHED.search(l)]
        self.assertEqual(len(established), 1, self.proxy.dump())
        self.assertTrue(self.proxy.alive())
        self.assert_session_works(self.pki.trusted)


if __name__ == "__main__":
    harness.main()
