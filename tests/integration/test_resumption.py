#!/usr/bin/python3
"""TLS session resumption keeps the client-certificate identity: on a resumed session no
certificate is sent, so the proxy must remember (and re-check) what the full handshake saw."""

import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Expect, REMOTE_DOMAIN, TRUSTED_IDENTITY, client_context,  # noqa: E402
                     xclient_attributes)


class ResumptionTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.proxy = self.start_proxy(self.backend.port)

    def session(self, context, tls_session=None):
        """Connect, EHLO, STARTTLS (offering `tls_session`), EHLO. Reading the EHLO reply also
        makes Python process TLS 1.3 NewSessionTicket messages."""
        c = self.client(self.proxy)
        c.ehlo("resume.example")
        c.starttls(context, session=tls_session)
        self.assertReply(c.ehlo("resume.example"), 250, c)
        return c

    def relay_attempt(self, c, rcpt):
        self.assertReply(c.command("MAIL FROM:<a@client.test.example>"), 250, c)
        return c.command(f"RCPT TO:<{rcpt}>")

    def check_resumption_keeps_identity(self, context):
        first = self.session(context)
        self.assertFalse(first.sock.session_reused)
        self.assertReply(self.relay_attempt(first, f"one@{REMOTE_DOMAIN}"), 250, first)
        saved = first.sock.session      # before close: a closed SSLSocket has no session
        first.quit()
        self.assertIsNotNone(saved, "server gave no resumable session")

        second = self.session(context, saved)
        self.assertTrue(second.sock.session_reused,
                        f"session not resumed (ticket: {saved.has_ticket})\n{second.dump()}")
        self.assertReply(self.relay_attempt(second, f"two@{REMOTE_DOMAIN}"), 250, second)
        self.assertReply(second.command("DATA"), 354, second)
        self.assertReply(second.command("Subject: resumed\r\n\r\nbody\r\n."), 250, second)
        second.quit()
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if x.find(f"RCPT TO:<two@{REMOTE_DOMAIN}>")),
                           None), what="the resumed session at the backend")
        login = dict(xclient_attributes(conn.find("XCLIENT")[0])).get("LOGIN")
        self.assertEqual(login, TRUSTED_IDENTITY, conn.commands)

    def test_tls13_resumed_session_keeps_trusted_identity(self):
        self.check_resumption_keeps_identity(client_context(self.pki.trusted))

    def test_tls12_resumed_session_keeps_trusted_identity(self):
        self.check_resumption_keeps_identity(
            client_context(self.pki.trusted, max_version=ssl.TLSVersion.TLSv1_2))

    def test_resumed_untrusted_session_stays_untrusted(self):
        context = client_context(self.pki.untrusted)
        first = self.session(context)
        saved = first.sock.session
        first.quit()
        second = self.session(context, saved)
        self.assertTrue(second.sock.session_reused, second.dump())
        rcpt = f"x@{REMOTE_DOMAIN}"
        self.assertEqual(self.relay_attempt(second, rcpt).last, Expect.relay_denied(rcpt),
                         second.dump())


if __name__ == "__main__":
    harness.main()
