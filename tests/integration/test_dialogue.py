#!/usr/bin/python3
"""The dialogue the proxy speaks itself (README "The SMTP dialogue certrelay speaks"): order
of commands, commands answered locally, MAIL parameters, BDAT, content pipelined past DATA,
and a graceful stop while a message is in flight."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import XCLIENT_ALL, Behaviour, Expect, LOCAL_DOMAIN, REMOTE_DOMAIN  # noqa: E402

RCPT = f"user@{LOCAL_DOMAIN}"


class DialogueTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.behaviour = Behaviour()
        self.backend = self.start_backend(self.behaviour)

    def proxy_with(self, **overrides):
        self.proxy = self.start_proxy(self.backend.port, **overrides)
        return self.proxy

    def backend_settled(self):
        """Lets the backend side of finished sessions close (bounded), so that anything the
        proxy wrongly forwarded late would be recorded before the checks."""
        try:
            self.backend.wait_for(lambda b: all(x.closed for x in b.sessions()), 3.0)
        except TimeoutError:
            pass
        return self.backend.sessions()

    def forwarded(self) -> bytes:
        return b"".join(bytes(x.received) for x in self.backend_settled())

    # -- order -------------------------------------------------------------------------------
    def test_mail_before_helo(self):
        self.proxy_with()
        c = self.client(self.proxy)
        self.assertEqual(c.command("MAIL FROM:<a@x.example>").last, Expect.SEND_HELO_FIRST,
                         c.dump())
        # Not fatal: after EHLO the same MAIL is fine.
        self.assertReply(c.ehlo("dialogue.example"), 250, c)
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        c.quit()
        mails = [cmd for x in self.backend_settled() for cmd in x.find("MAIL")]
        self.assertEqual(mails, ["MAIL FROM:<a@x.example>"])

    def test_http_request_closes_at_once(self):
        # Cross-protocol attacks (hostile-inputs.md ST-13): Postfix's 221 and close, nothing
        # after the request line is processed or echoed, nothing reaches the backend.
        self.proxy_with()
        for request in (b"GET / HTTP/1.1\r\nHost: mx\r\n\r\n", b"POST /x HTTP/1.1\r\n",
                        b"CONNECT mx:25 HTTP/1.1\r\n"):
            with self.subTest(request=request):
                c = self.client(self.proxy)
                c.send(request + b"MAIL FROM:<a@x.example>\r\n")
                self.assertReply(c.read_reply(), Expect.FORBIDDEN_COMMAND, c)
                self.assertTrue(c.wait_closed(5.0), "not closed after 221\n" + c.dump())
        self.assertEqual(self.forwarded(), b"")

    # -- BDAT --------------------------------------------------------------------------------
    def test_bdat_is_refused_and_its_chunk_never_read_as_commands(self):
        # A backend without CHUNKING (issue 4: CHUNKING is offered exactly when the backend
        # offers it; BDAT relaying itself is in test_smtp_sink_bytes.py).
        self.behaviour.capabilities = [k for k in self.behaviour.capabilities if k != "CHUNKING"]
        self.proxy_with()
        c = self.client(self.proxy)
        ehlo = c.ehlo("dialogue.example")
        self.assertNotIn("CHUNKING", ehlo.keywords(), ehlo.text)
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        chunk = (f"RSET\r\nMAIL FROM:<smuggled@x.example>\r\nRCPT TO:<victim@{LOCAL_DOMAIN}>\r\n"
                 "NOOP\r\n")
        c.send(f"BDAT {len(chunk)} LAST\r\n{chunk}")
        self.assertEqual(c.read_reply().last, Expect.BDAT_NOT_IMPLEMENTED, c.dump())
        self.assertTrue(c.wait_closed(5.0), "not closed after 521\n" + c.dump())
        self.assertEqual(c.buf, b"", "replies to the chunk's lines\n" + c.dump())
        forwarded = self.forwarded()
        for word in (b"BDAT", b"smuggled", b"victim", b"RSET"):
            self.assertNotIn(word, forwarded, self.backend.transcript())

    # -- commands answered by the proxy ------------------------------------------------------
    def test_commands_answered_locally(self):
        self.proxy_with()
        c = self.client(self.proxy)
        self.assertReply(c.ehlo("dialogue.example"), 250, c)
        local = [("VRFY postmaster", Expect.VRFY), ("HELP", Expect.HELP),
                 ("NOOP", Expect.NOOP_OK), ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", Expect.AUTH_NOT_ENABLED),
                 ("EXPN staff", Expect.UNKNOWN_COMMAND), (f"ETRN {LOCAL_DOMAIN}", Expect.UNKNOWN_COMMAND)]
        for command, expected in local + [("RSET", 250)]:
            with self.subTest(command=command, transaction=False):
                self.assertReply(c.command(command), expected, c)
        # The same inside a transaction, where the backend connection exists: still local,
        # and the transaction survives them.
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        for command, expected in local:
            with self.subTest(command=command, transaction=True):
                self.assertReply(c.command(command), expected, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        self.assertReply(c.command("RSET"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), Expect.NEED_MAIL, c)
        c.quit()
        names = {n for x in self.backend_settled() for n in x.command_names()}
        self.assertFalse(names & {"VRFY", "HELP", "NOOP", "AUTH", "EXPN", "ETRN"},
                         self.backend.transcript())
        self.assertNotIn(b"AGFsaWNl", self.forwarded())

    # -- MAIL parameters ---------------------------------------------------------------------
    def test_mail_parameters(self):
        self.behaviour.capabilities = ["PIPELINING", "SIZE 1000000", XCLIENT_ALL,
                                       "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
        self.proxy_with()
        c = self.client(self.proxy)
        ehlo = c.ehlo("dialogue.example")
        self.assertIn("SIZE 1000000", [l[4:] for l in ehlo.lines], ehlo.text)
        self.assertReply(c.command("MAIL FROM:<big@x.example> SIZE=999999999"),
                         Expect.SIZE_EXCEEDED, c)
        self.assertEqual(c.command("MAIL FROM:<foo@x.example> FOO=bar").last,
                         "555 5.5.4 Unsupported option: FOO", c.dump())
        self.assertReply(c.command("MAIL FROM:<dup@x.example> BODY=8BITMIME BODY=7BIT"),
                         Expect.UNSUPPORTED_OPTION, c)
        self.assertReply(c.command("MAIL FROM:<auth@x.example> AUTH=<>"), 250, c)
        self.assertReply(c.command("RSET"), 250, c)
        self.assertReply(c.command("MAIL FROM:<ok@x.example> SIZE=1000 AUTH=<> BODY=8BITMIME"),
                         250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        c.quit()
        mails = [cmd for x in self.backend_settled() for cmd in x.find("MAIL")]
        self.assertEqual(mails, ["MAIL FROM:<auth@x.example>",
                                 "MAIL FROM:<ok@x.example> SIZE=1000 BODY=8BITMIME"],
                         self.backend.transcript())

    # -- graceful stop -----------------------------------------------------------------------
    def test_sigterm_during_data_lets_the_message_finish(self):
        # LM-18. A shutdown deadline far beyond the test: the exit must come from the session
        # ending, not from the force-close.
        self.proxy_with(timeouts={"shutdown": "30s"})
        busy = self.tls_client(self.proxy, self.pki.trusted, helo="busy.example")
        self.assertReply(busy.command("MAIL FROM:<a@x.example>"), 250, busy)
        self.assertReply(busy.command(f"RCPT TO:<r@{REMOTE_DOMAIN}>"), 250, busy)
        self.assertReply(busy.command("DATA"), 354, busy)
        busy.send("Subject: drain\r\n\r\nfirst part\r\n")
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if b"first part" in x.received), None),
            what="the first part of the body at the backend")
        idle = self.client(self.proxy)
        self.assertReply(idle.ehlo("idle.example"), 250, idle)

        mark = self.proxy.mark()
        started = time.monotonic()
        self.proxy.proc.send_signal(signal.SIGTERM)
        self.assertTrue(self.proxy.wait_log(Expect.LOG_STOPPING, 5.0, start=mark),
                        self.proxy.dump())
        # The idle session: 421 4.3.2 at once (README) or at its next command.
        if idle.silent_for(2.0) == b"":
            try:
                idle.send("NOOP\r\n")
            except OSError:
                pass
        self.assertReply(idle.read_reply(), Expect.SHUTTING_DOWN, idle)
        self.assertTrue(idle.wait_closed(5.0), idle.dump())
        self.assertFalse(harness.port_accepts(self.proxy.port), "listener still open")
        self.assertTrue(self.proxy.alive(), "exited with a message in flight\n" + self.proxy.dump())

        # The busy session finishes its message and gets the backend's own reply.
        busy.send("second part\r\n.\r\n")
        self.assertEqual(busy.read_reply(timeout=10).last, self.behaviour.dot_reply, busy.dump())
        self.backend.wait_for(lambda b: conn.messages, what="the message at the backend")
        # certrelay's Received header first (issue 4), then the content as sent.
        received, content = harness.split_received(conn.messages[0])
        self.assertEqual(received.helo, "busy.example", received.raw)
        self.assertEqual(received.protocol, "ESMTPSA", received.raw)
        self.assertEqual(received.rcpt, f"<r@{REMOTE_DOMAIN}>", received.raw)
        self.assertEqual(content, b"Subject: drain\r\n\r\nfirst part\r\nsecond part\r\n")
        # Its next command ends it (QUIT's 221, or the 421 of a draining proxy).
        reply = busy.command("QUIT")
        self.assertTrue(reply.code == 221 or Expect.SHUTTING_DOWN.search(reply.last), busy.dump())
        self.assertTrue(busy.wait_closed(5.0), busy.dump())
        try:
            code = self.proxy.proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self.fail("proxy still running 10s after its last session ended\n" + self.proxy.dump())
        self.assertEqual(code, 0, self.proxy.dump())
        self.assertLess(time.monotonic() - started, 25.0, "exit came from the shutdown deadline")
        self.proxy.log.wait_eof(2.0)
        self.assertFalse([l for l in self.proxy.lines()[mark:] if "shutdown deadline" in l],
                         self.proxy.dump())

    # -- content pipelined past DATA ---------------------------------------------------------
    PIPELINED = (f"MAIL FROM:<a@x.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n"
                 "Subject: x\r\n\r\nbody\r\n.\r\n")

    def test_content_pipelined_past_refused_data(self):
        self.behaviour.replies["DATA"] = "554 5.7.1 Error: transaction refused"
        self.proxy_with()
        c = self.client(self.proxy)
        self.assertReply(c.ehlo("dialogue.example"), 250, c)
        c.send(self.PIPELINED)
        replies = c.read_replies(4)
        self.assertEqual([r.last for r in replies],
                         ["250 2.1.0 Ok", "250 2.1.5 Ok", "554 5.7.1 Error: transaction refused",
                          Expect.SYNC_ERROR], c.dump())
        self.assertTrue(c.wait_closed(5.0), "not closed after the synchronization error\n"
                        + c.dump())
        self.assertEqual(c.buf, b"", c.dump())
        forwarded = self.forwarded()
        self.assertIn(b"DATA\r\n", forwarded)
        self.assertNotIn(b"Subject: x", forwarded, self.backend.transcript())
        self.assertNotIn(b"body", forwarded, self.backend.transcript())

    def test_content_pipelined_past_locally_refused_data(self):
        # The same rule when the proxy itself refuses DATA (README table: "content sent before
        # the 354, and DATA refused"): the content must never be read as commands. Here the
        # content holds a RCPT for a local recipient: executed as a command, it would reach
        # the backend.
        self.proxy_with()
        content = f"Subject: x\r\n\r\nRCPT TO:<content@{LOCAL_DOMAIN}>\r\nNOOP\r\n.\r\n"
        cases = [
            # untrusted client (no certificate), only a remote recipient: 454, then DATA 554
            ("no valid recipients",
             f"MAIL FROM:<a@x.example>\r\nRCPT TO:<r@{REMOTE_DOMAIN}>\r\nDATA\r\n",
             ["250 2.1.0 Ok", Expect.relay_denied(f"r@{REMOTE_DOMAIN}"), Expect.NO_VALID_RCPT]),
            # DATA without MAIL: 503
            ("no MAIL", "DATA\r\n", [Expect.NEED_MAIL]),
        ]
        for name, commands, expected in cases:
            with self.subTest(name):
                c = self.client(self.proxy)
                self.assertReply(c.ehlo("dialogue.example"), 250, c)
                c.send(commands + content)
                got = [r.last for r in c.read_replies(len(expected))]
                for reply, want in zip(got, expected):
                    self.assertTrue(reply.startswith(want), f"expected {want!r}\n{c.dump()}")
                # Then the synchronization error and the close, nothing else.
                closed = c.wait_closed(3.0)
                self.assertEqual(c.buf.decode("utf-8", "replace"), Expect.SYNC_ERROR + "\r\n",
                                 "content after the refused DATA was read as commands\n"
                                 + c.dump())
                self.assertTrue(closed, "not closed after the synchronization error\n" + c.dump())
                self.assertNotIn(b"content@", self.forwarded(), self.backend.transcript())

    def test_content_pipelined_past_accepted_data(self):
        self.proxy_with()
        c = self.client(self.proxy)
        self.assertReply(c.ehlo("dialogue.example"), 250, c)
        c.send(self.PIPELINED)
        replies = c.read_replies(4)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250], c.dump())
        self.assertEqual(replies[3].last, self.behaviour.dot_reply, c.dump())
        self.assertReply(c.command("QUIT"), 221, c)
        conn = self.backend.wait_for(lambda b: next((x for x in b.sessions() if x.messages), None),
                                     what="the message at the backend")
        self.assertEqual(len(conn.messages), 1, conn.messages)
        received, content = harness.split_received(conn.messages[0])
        self.assertEqual((received.helo, received.protocol, received.rcpt),
                         ("dialogue.example", "ESMTP", f"<{RCPT}>"), received.raw)
        self.assertEqual(content, b"Subject: x\r\n\r\nbody\r\n")


if __name__ == "__main__":
    harness.main()
