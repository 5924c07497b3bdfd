#!/usr/bin/python3
"""The server-side session cache is bounded by bytes (tls.session_cache_memory, issue 14): many
distinct clients' sessions keep certrelay_tls_session_cache_bytes at or under the bound (the
least recently used sessions are evicted and counted), and the newest sessions still resume with
their client certificate's identity and relay decision, TLS 1.3 and TLS 1.2."""

import http.client
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Expect, REMOTE_DOMAIN, TRUSTED_IDENTITY, client_context,  # noqa: E402
                     xclient_attributes)

BOUND = 64 * 1024
SESSIONS = 150  # ~1-2 KiB per session with the test PKI: two to three times what BOUND holds


class SessionCacheTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.proxy = self.start_proxy(self.backend.port, admin={"address": harness.ADMIN_FREE},
                                      tls={"session_cache_memory": "64KiB"})

    def metrics(self) -> dict[str, float]:
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.admin_port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            text = response.read().decode()
        finally:
            conn.close()
        values = {}
        for line in text.splitlines():
            if line.startswith("certrelay_tls_session_cache_"):
                name, value = line.split()
                values[name] = float(value)
        return values

    def session(self, context, tls_session=None):
        """Connect, EHLO, STARTTLS (offering `tls_session`), EHLO. Reading the EHLO reply also
        makes Python process TLS 1.3 NewSessionTicket messages."""
        c = self.client(self.proxy)
        c.ehlo("cache.example")
        c.starttls(context, session=tls_session)
        self.assertReply(c.ehlo("cache.example"), 250, c)
        return c

    def fill(self, context, count: int):
        """`count` distinct sessions (each a full handshake, closed with QUIT); returns the first
        and the last one's saved session."""
        first = last = None
        for _ in range(count):
            c = self.session(context)
            self.assertFalse(c.sock.session_reused, c.dump())
            last = c.sock.session
            first = first or last
            c.quit()
        return first, last

    def relays_as_trusted(self, c, rcpt: str):
        self.assertReply(c.command("MAIL FROM:<a@client.test.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{rcpt}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        self.assertReply(c.command("Subject: resumed\r\n\r\nbody\r\n."), 250, c)
        c.quit()
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if x.find(f"RCPT TO:<{rcpt}>")), None),
            what="the resumed session at the backend")
        login = dict(xclient_attributes(conn.find("XCLIENT")[0])).get("LOGIN")
        self.assertEqual(login, TRUSTED_IDENTITY, conn.commands)

    def check_bound_and_resumption(self, max_version):
        trusted = client_context(self.pki.trusted, max_version=max_version)
        first, last = self.fill(trusted, SESSIONS)
        values = self.metrics()
        self.assertLessEqual(values["certrelay_tls_session_cache_bytes"], BOUND, values)
        self.assertGreater(values["certrelay_tls_session_cache_entries"], 0, values)
        self.assertGreater(values["certrelay_tls_session_cache_evictions_total"], 0, values)
        self.assertLess(values["certrelay_tls_session_cache_entries"], SESSIONS, values)

        # The oldest session was evicted: a full handshake, no error.
        c = self.session(trusted, first)
        self.assertFalse(c.sock.session_reused, c.dump())
        c.quit()
        # The newest one resumes and keeps the certificate's identity and relay decision.
        c = self.session(trusted, last)
        self.assertTrue(c.sock.session_reused, c.dump())
        self.relays_as_trusted(c, f"resumed@{REMOTE_DOMAIN}")
        self.assertLessEqual(self.metrics()["certrelay_tls_session_cache_bytes"], BOUND)

    def test_tls13_distinct_sessions_stay_within_the_bound_and_the_newest_resume(self):
        self.check_bound_and_resumption(None)

    def test_tls12_distinct_sessions_stay_within_the_bound_and_the_newest_resume(self):
        self.check_bound_and_resumption(ssl.TLSVersion.TLSv1_2)

    def test_resumed_untrusted_session_stays_untrusted(self):
        context = client_context(self.pki.untrusted)
        _, last = self.fill(context, 3)
        c = self.session(context, last)
        self.assertTrue(c.sock.session_reused, c.dump())
        rcpt = f"x@{REMOTE_DOMAIN}"
        self.assertReply(c.command("MAIL FROM:<a@client.test.example>"), 250, c)
        self.assertEqual(c.command(f"RCPT TO:<{rcpt}>").last, Expect.relay_denied(rcpt),
                         c.dump())


if __name__ == "__main__":
    harness.main()
