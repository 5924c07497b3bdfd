#!/usr/bin/python3
"""STARTTLS command injection and session fixation (hostile-inputs.md ST-01 .. ST-05):
plaintext pipelined behind STARTTLS must be thrown away, and nothing from before TLS
(HELO name, MAIL, RCPT) may survive the upgrade."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Expect, LOCAL_DOMAIN, REMOTE_DOMAIN, client_context, xclient_attributes  # noqa: E402

QUIET_PERIOD = 1.5   # how long "no reply until the client speaks" is watched


class StarttlsInjectionTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.proxy = self.start_proxy(self.backend.port)

    def inject(self, client, payload: str, cert=None):
        """One write of `payload` (which starts with STARTTLS); expects exactly the 220 before
        the handshake, then upgrades."""
        client.send(payload)
        reply = client.read_reply()
        self.assertReply(reply, Expect.STARTTLS_READY, client)
        # Any plaintext after the 220 (say, a 250 for the injected command) is a failure;
        # starttls(send=False) checks the buffer and then does the handshake.
        client.starttls(client_context(cert), send=False)

    def assert_quiet(self, client):
        extra = client.silent_for(QUIET_PERIOD)
        self.assertEqual(extra, b"", f"unsolicited bytes inside TLS: {extra!r}\n{client.dump()}")

    def test_injected_ehlo_gets_no_reply(self):
        # ST-01 / ST-03: only the 220 in plaintext; inside TLS nothing until the client speaks.
        c = self.client(self.proxy)
        self.assertEqual(c.ehlo("t.example").code, 250)
        self.inject(c, "STARTTLS\r\nEHLO x\r\n")
        self.assert_quiet(c)
        self.assertReply(c.command("NOOP"), 250, c)
        # Exactly one reply: a late 250 for the injected EHLO would show up here.
        self.assert_quiet(c)
        self.assertIn(c.command("FAKE x").code, (500, 502), c.dump())

    def test_injected_rset_never_reaches_backend(self):
        c = self.client(self.proxy)
        c.ehlo("t.example")
        self.inject(c, "STARTTLS\r\nRSET\r\n")
        self.assert_quiet(c)
        self.assertReply(c.command("NOOP"), 250, c)
        # Make the proxy talk to the backend, then check RSET never arrived there.
        c.ehlo("t.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command("QUIT"), 221, c)
        self.backend.wait_command("MAIL")
        # (Only client sessions count: the proxy's capability probes are its own business.)
        self.assertNotIn("RSET", [n for conn in self.backend.sessions()
                                  for n in conn.command_names()], self.backend.transcript())

    def test_injected_transaction_does_not_exist_after_tls(self):
        # ST-02: MAIL + RCPT behind STARTTLS, trusted certificate; DATA must find no MAIL.
        c = self.client(self.proxy)
        c.ehlo("t.example")
        self.inject(c, f"STARTTLS\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<v@{REMOTE_DOMAIN}>\r\n",
                    cert=self.pki.trusted)
        self.assert_quiet(c)
        self.assertReply(c.ehlo("t.example"), 250, c)
        self.assertReply(c.command("DATA"), Expect.NEED_MAIL, c)
        self.assertReply(c.command("QUIT"), 221, c)
        self.assertNotIn("a@x.example", "\n".join(self.backend.all_commands()),
                         "injected MAIL reached the backend")

    def test_pre_tls_transaction_is_forgotten(self):
        # ST-04: EHLO + MAIL before TLS; after TLS, RCPT needs a new MAIL.
        c = self.client(self.proxy)
        c.ehlo("pre.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        c.starttls(client_context(self.pki.trusted))
        self.assertReply(c.command(f"RCPT TO:<u@{LOCAL_DOMAIN}>"), Expect.NEED_MAIL, c)

    def test_pre_tls_helo_is_not_passed_to_backend(self):
        # ST-04, second half: after TLS the backend must see the post-TLS EHLO name only.
        c = self.client(self.proxy)
        c.ehlo("pre.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        c.starttls(client_context(self.pki.trusted))
        self.assertReply(c.ehlo("post.example"), 250, c)
        self.assertReply(c.command("MAIL FROM:<b@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<u@{LOCAL_DOMAIN}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        self.assertReply(c.command("Subject: fixation\r\n\r\nbody\r\n."), 250, c)
        c.quit()
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.snapshot() if x.messages), None),
            what="the message at the backend")
        names = conn.command_names()
        mail_index = max(i for i, cmd in enumerate(conn.commands)
                         if cmd.upper().startswith("MAIL FROM:<B@X.EXAMPLE>"))
        xclients = [i for i, n in enumerate(names[:mail_index]) if n == "XCLIENT"]
        self.assertTrue(xclients, f"no XCLIENT before the message: {conn.commands}")
        helo = dict(xclient_attributes(conn.commands[xclients[-1]])).get("HELO")
        self.assertEqual(helo, "post.example", conn.commands)
        ehlos = [cmd for cmd in conn.commands[xclients[-1]:mail_index] if cmd.upper().startswith("EHLO")]
        self.assertEqual(ehlos, ["EHLO post.example"], conn.commands)

    def test_starttls_inside_tls_is_refused(self):
        # ST-05
        c = self.client(self.proxy)
        c.ehlo("t.example")
        c.starttls(client_context(self.pki.trusted))
        self.assertEqual(c.command("STARTTLS").last, Expect.TLS_ALREADY_ACTIVE, c.dump())
        reply = c.ehlo("t.example")
        self.assertNotIn("STARTTLS", reply.keywords(), reply.text)
        self.assertReply(c.command("NOOP"), 250, c)

    def test_starttls_with_argument_is_a_syntax_error(self):
        c = self.client(self.proxy)
        c.ehlo("t.example")
        self.assertEqual(c.command("STARTTLS x").last, Expect.STARTTLS_SYNTAX, c.dump())
        # Still plaintext and usable: a proper STARTTLS works afterwards.
        c.starttls(client_context(None))
        self.assertReply(c.ehlo("t.example"), 250, c)


if __name__ == "__main__":
    harness.main()
