#!/usr/bin/python3
"""timeouts.backend_idle (README): inside TLS the backend session is set up at the client's
EHLO; a client that then stays idle outside a transaction gives it back (QUIT), and its next
MAIL opens a new one with the same identity. Inside a transaction it is never given back."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import REMOTE_DOMAIN  # noqa: E402

IDLE = "300ms"
SENDER = "sender@client.test.example"


class BackendIdleTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.proxy = self.start_proxy(self.backend.port, timeouts={"backend_idle": IDLE})

    def transaction(self, c, body: bytes):
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<rcpt@{REMOTE_DOMAIN}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        c.send(body + b"\r\n.\r\n")
        self.assertReply(c.read_reply(timeout=10), 250, c)

    def test_idle_client_gives_the_backend_back_and_the_next_mail_opens_a_new_one(self):
        c = self.tls_client(self.proxy, self.pki.trusted)
        # The EHLO set up a backend session; the idle client gives it back, politely.
        first = self.backend.wait_for(lambda b: b.sessions() and b.sessions()[0].closed
                                      and b.sessions()[0], 5.0, what="first session closed")
        self.assertEqual(first.command_names()[-1], "QUIT", first.commands)
        self.assertNotIn("MAIL", first.command_names(), first.commands)
        self.transaction(c, b"Subject: after idle\r\n\r\nhello")
        c.quit()
        sessions = self.backend.wait_for(lambda b: len(b.sessions()) >= 2 and b.sessions(), 5.0,
                                         what="second backend session")
        second = sessions[1]
        # The new backend session carries the client's identity again, then the message.
        self.assertTrue(second.find("XCLIENT"), second.commands)
        self.assertTrue(any("ADDR=127.0.0.1" in x for x in second.find("XCLIENT")),
                        second.commands)
        self.assertEqual(len(second.find("MAIL FROM")), 1, second.commands)
        self.assertEqual(len(second.messages), 1)
        self.assertIn(b"after idle", second.messages[0])

    def test_a_transaction_keeps_its_backend_however_slow_the_client(self):
        c = self.tls_client(self.proxy, self.pki.trusted)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<rcpt@{REMOTE_DOMAIN}>"), 250, c)
        # Longer than backend_idle with the transaction open: the backend session must stay.
        # (A second, idle-released session would show up as a closed one without MAIL.)
        mark = self.proxy.mark()
        with self.assertRaises(TimeoutError):
            self.backend.wait_for(lambda b: any(s.closed or "QUIT" in s.command_names()
                                                for s in b.sessions()), 1.0,
                                  what="the backend session to end (it must not)")
        self.assertReply(c.command("DATA"), 354, c)
        c.send(b"Subject: slow\r\n\r\nslow client\r\n.\r\n")
        self.assertReply(c.read_reply(timeout=10), 250, c)
        sessions = self.backend.sessions()
        self.assertEqual(len(sessions), 1, [s.commands for s in sessions])
        self.assertFalse(sessions[0].closed)
        self.assertEqual(len(sessions[0].messages), 1)
        self.assertFalse([x for x in self.proxy.lines()[mark:] if "backend" in x and
                          "warning" in x], self.proxy.lines()[mark:])


if __name__ == "__main__":
    harness.main()
