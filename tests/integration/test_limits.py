#!/usr/bin/python3
"""Limits and local answers: line length, error budget, timeouts, recipients per message,
commands the proxy answers itself and never forwards (XCLIENT, XFORWARD, unknown)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Expect, LOCAL_DOMAIN  # noqa: E402

RCPT = f"user@{LOCAL_DOMAIN}"


class LimitsTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()

    def proxy_with(self, **overrides):
        self.proxy = self.start_proxy(self.backend.port, **overrides)
        return self.proxy

    def test_line_too_long(self):
        self.proxy_with()
        c = self.client(self.proxy)
        c.ehlo("limits.example")
        c.send("NOOP " + "x" * 3000 + "\r\n")
        self.assertEqual(c.read_reply().last, Expect.LINE_TOO_LONG, c.dump())
        # The rest of the long line is not taken as a command; the session goes on.
        self.assertReply(c.command("NOOP"), 250, c)
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        c.send(f"RCPT TO:<{'y' * 3000}@{LOCAL_DOMAIN}>\r\n")
        self.assertEqual(c.read_reply().last, Expect.LINE_TOO_LONG, c.dump())
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)

    def test_line_at_the_limit_is_accepted(self):
        # max_line_length counts the CRLF: a 2048-byte line (2046 + CRLF) is fine. NOOP may
        # carry a parameter string (RFC 5321 4.1.1.9; Postfix ignores it).
        self.proxy_with()
        c = self.client(self.proxy)
        c.ehlo("limits.example")
        c.send("NOOP " + "x" * (2048 - 2 - 5) + "\r\n")
        reply = c.read_reply()
        self.assertNotEqual(reply.last, Expect.LINE_TOO_LONG, "limit is 2048 including CRLF")
        self.assertReply(reply, 250, c)

    def test_error_budget(self):
        self.proxy_with(limits={"max_errors": 3})
        c = self.client(self.proxy)
        for i in range(3):
            self.assertEqual(c.command(f"BOGUS{i}").last, Expect.UNKNOWN_COMMAND, c.dump())
        # The 421 may come at once (as Postfix does) or at the next command.
        if c.silent_for(1.0) == b"":
            try:
                c.send("NOOP\r\n")
            except OSError:
                pass
        self.assertReply(c.read_reply(), Expect.TOO_MANY_ERRORS, c)
        self.assertTrue(c.wait_closed(5.0), "connection not closed after 421\n" + c.dump())

    def test_error_budget_stops_pipelined_commands(self):
        # Refused RCPTs count as errors (as in Postfix). Once the budget is spent the session
        # is over: commands pipelined behind the last error must not be executed, in
        # particular not forwarded to the backend.
        self.proxy_with(limits={"max_errors": 3})
        c = self.client(self.proxy)
        c.ehlo("limits.example")
        remote = [f"r{i}@remote.example" for i in range(3)]
        c.send("MAIL FROM:<a@x.example>\r\n"
               + "".join(f"RCPT TO:<{r}>\r\n" for r in remote)
               + f"RCPT TO:<{RCPT}>\r\nNOOP\r\n")
        replies = c.read_replies(4)
        self.assertEqual([r.last for r in replies[1:]], [Expect.relay_denied(r) for r in remote],
                         c.dump())
        self.assertReply(c.read_reply(), Expect.TOO_MANY_ERRORS, c)
        self.assertTrue(c.wait_closed(5.0), c.dump())
        self.assertEqual(c.buf, b"", "replies after the 421\n" + c.dump())
        try:
            self.backend.wait_for(lambda b: all(x.closed for x in b.sessions()), 3.0)
        except TimeoutError:
            pass
        forwarded = [cmd for x in self.backend.sessions() for cmd in x.commands]
        self.assertNotIn(f"RCPT TO:<{RCPT}>", forwarded,
                         "a command after the 421 reached the backend")

    def test_command_timeout(self):
        self.proxy_with(timeouts={"command": "1s"})
        c = self.client(self.proxy)
        c.ehlo("limits.example")
        started = time.monotonic()
        reply = c.read_reply(timeout=6.0)
        elapsed = time.monotonic() - started
        self.assertReply(reply, Expect.TIMEOUT, c)
        self.assertGreater(elapsed, 0.5)
        self.assertLess(elapsed, 4.0)
        self.assertTrue(c.wait_closed(5.0), "connection not closed after timeout\n" + c.dump())

    def test_greeting_timeout(self):
        # Nothing at all after the greeting: the same command timer applies.
        self.proxy_with(timeouts={"command": "1s"})
        c = self.client(self.proxy)
        self.assertReply(c.read_reply(timeout=6.0), Expect.TIMEOUT, c)
        self.assertTrue(c.wait_closed(5.0), c.dump())

    def test_data_timeout(self):
        self.proxy_with(timeouts={"data": "1s"})
        c = self.client(self.proxy)
        c.ehlo("limits.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        c.send("Subject: stalled\r\n\r\npart of a body\r\n")
        reply = c.read_reply(timeout=6.0)
        self.assertTrue(reply.code >= 400 and reply.code != 250, c.dump())
        self.assertReply(reply, Expect.TIMEOUT, c)
        self.assertTrue(c.wait_closed(5.0), c.dump())
        # The backend got no complete message. Let the backend side wind down first
        # (bounded), so a late "." would be seen.
        try:
            self.backend.wait_for(lambda b: all(x.closed for x in b.sessions()), 3.0)
        except TimeoutError:
            pass
        self.assertEqual([m for x in self.backend.sessions() for m in x.messages], [])

    def test_max_recipients(self):
        self.proxy_with(limits={"max_recipients": 2})
        c = self.client(self.proxy)
        c.ehlo("limits.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<a1@{LOCAL_DOMAIN}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<a2@{LOCAL_DOMAIN}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<a3@{LOCAL_DOMAIN}>"), Expect.TOO_MANY_RECIPIENTS, c)

    def test_client_xclient_and_xforward_are_refused_locally(self):
        self.proxy_with()
        c = self.client(self.proxy)
        ehlo = c.ehlo("limits.example")
        self.assertNotIn("XCLIENT", ehlo.keywords())
        self.assertReply(c.command("XCLIENT ADDR=192.0.2.66 LOGIN=mallory NAME=spoofed.example"),
                         Expect.XCLIENT_REFUSED, c)
        self.assertReply(c.command("XFORWARD ADDR=192.0.2.66 NAME=spoofed.example"),
                         Expect.XCLIENT_REFUSED, c)
        # A whole transaction afterwards, so the backend connection exists and can be checked.
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command("XCLIENT LOGIN=mallory"), Expect.XCLIENT_REFUSED, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        self.assertReply(c.command("Subject: spoof\r\n\r\nbody\r\n."), 250, c)
        c.quit()
        conn = self.backend.wait_for(lambda b: next((x for x in b.sessions() if x.messages), None),
                                     what="the message at the backend")
        self.assertEqual(len(conn.find("XCLIENT")), 1, conn.commands)   # the proxy's own
        xclient = conn.find("XCLIENT")[0]
        for spoof in ("192.0.2.66", "mallory", "spoofed.example"):
            self.assertNotIn(spoof, xclient)
        self.assertEqual(conn.find("XFORWARD"), [], conn.commands)
        self.assertNotIn("mallory", bytes(conn.received).decode("utf-8", "replace"))

    def test_unknown_command(self):
        self.proxy_with()
        c = self.client(self.proxy)
        c.ehlo("limits.example")
        self.assertEqual(c.command("FROBNICATE now").last, Expect.UNKNOWN_COMMAND, c.dump())
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        # Inside a transaction too, and it is not forwarded.
        self.assertEqual(c.command("FROBNICATE again").last, Expect.UNKNOWN_COMMAND, c.dump())
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        c.quit()
        conn = self.backend.wait_command("RCPT")
        self.assertFalse([cmd for cmd in conn.commands if re.match("FROBNICATE", cmd, re.I)],
                         conn.commands)


if __name__ == "__main__":
    harness.main()
