#!/usr/bin/python3
"""Backend faults a real MTA cannot be made to produce on demand (hostile-inputs.md BE-*),
from the scripted backend: the client must never get a 250 the backend did not give, and an
unknown outcome is a 4xx (a duplicate is possible, a loss is not)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Behaviour, Expect, LOCAL_DOMAIN  # noqa: E402

RCPT = f"user@{LOCAL_DOMAIN}"       # local: accepted for any client, so plaintext suffices
MESSAGE = "Subject: fault test\r\n\r\nbody\r\n."


class BackendFaultTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.behaviour = Behaviour()
        self.backend = self.start_backend(self.behaviour)

    def proxy_with(self, **overrides):
        self.proxy = self.start_proxy(self.backend.port, **overrides)
        return self.proxy

    def open_data(self, c):
        """EHLO, MAIL, RCPT (local), DATA -> 354."""
        self.assertReply(c.ehlo("faults.example"), 250, c)
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)

    def end_of_data_reply(self, timeout=10.0):
        c = self.client(self.proxy)
        self.open_data(c)
        started = time.monotonic()
        reply = c.command(MESSAGE, timeout=timeout)
        return c, reply, time.monotonic() - started

    # -- after the end of data ---------------------------------------------------------------
    def test_backend_closes_after_dot(self):
        # BE-08
        self.behaviour.after_dot = "close"
        self.proxy_with()
        c, reply, _ = self.end_of_data_reply()
        self.assertNotEqual(reply.code, 250, c.dump())
        self.assertReply(reply, Expect.UNKNOWN_OUTCOME, c)
        self.backend.wait_for(lambda b: any(x.messages for x in b.sessions()),
                              what="the message to have reached the backend")

    def test_backend_malformed_reply_after_dot(self):
        self.behaviour.after_dot = "malformed"
        self.proxy_with()
        c, reply, _ = self.end_of_data_reply()
        self.assertNotEqual(reply.code, 250, c.dump())
        self.assertReply(reply, Expect.UNKNOWN_OUTCOME, c)

    def test_backend_silent_after_dot_times_out(self):
        # BE-09 with a short backend_reply timer.
        self.behaviour.after_dot = "silent"
        self.proxy_with(timeouts={"backend_reply": "1s"})
        c, reply, elapsed = self.end_of_data_reply(timeout=10.0)
        self.assertReply(reply, Expect.BACKEND_REPLY_TIMEOUT, c)
        self.assertLess(elapsed, 6.0, "backend_reply timeout of 1s took too long")
        self.assertGreater(elapsed, 0.5, "answered before the backend could have replied")

    def test_backend_rejects_message(self):
        # BE-10: the backend's own 5xx for the end of data, enhanced code kept.
        self.behaviour.dot_reply = "554 5.6.0 Error: message content rejected"
        self.proxy_with()
        c, reply, _ = self.end_of_data_reply()
        self.assertReply(reply, "554 5.6.0", c)

    def test_backend_drops_at_data(self):
        # BE-06: no reply to DATA, connection closed: never 354.
        self.behaviour.replies["DATA"] = None
        self.proxy_with()
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        reply = c.command("DATA")
        self.assertNotEqual(reply.code, 354, c.dump())
        self.assertReply(reply, Expect.BACKEND_TROUBLE, c)

    # -- rejections are relayed with their class ---------------------------------------------
    def test_backend_rcpt_rejections_keep_their_class(self):
        # BE-04: 4xx stays 4xx, 5xx stays 5xx, and the session stays usable.
        self.behaviour.replies["RCPT"] = "450 4.2.1 <user@local.example>: mailbox busy"
        self.proxy_with()
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), "450 4.2.1", c)
        self.behaviour.replies["RCPT"] = "550 5.1.1 <user@local.example>: unknown user"
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), "550 5.1.1", c)
        self.assertReply(c.command("RSET"), 250, c)
        self.assertReply(c.command("NOOP"), 250, c)

    def test_backend_421_mid_session_closes_client(self):
        # BE-05: 421 relayed, then the client session closes.
        self.behaviour.replies["RCPT"] = "421 4.3.0 backend.test.example going down"
        self.proxy_with()
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        reply = c.command(f"RCPT TO:<{RCPT}>")
        self.assertEqual(reply.code, 421, c.dump())
        self.assertTrue(c.wait_closed(5.0), "client connection not closed after 421\n" + c.dump())

    # -- the backend lost inside a transaction: 4xx for what is in flight, never 5xx ---------
    def check_transaction_lost_after_rcpt(self, extra_lines):
        self.behaviour.then_close["RCPT"] = extra_lines
        self.proxy_with()
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        self.backend.wait_for(lambda b: any(x.closed for x in b.sessions()),
                              what="the backend to drop the connection")
        # Was 503 5.5.1 "need MAIL command": a permanent error that makes senders bounce.
        # Whether the proxy saw the close before DATA or only when forwarding it, DATA gets 451.
        # An unsolicited 421 can also cross the proxy's DATA on the wire and arrive as DATA's
        # reply: then it is relayed and the session ends (BE-05). Both are 4xx; never a 5xx.
        reply = c.command("DATA")
        if reply.code == 421:
            self.assertTrue(extra_lines and extra_lines[0].startswith("421"), c.dump())
            self.assertTrue(c.wait_closed(5.0), "421 must be followed by close\n" + c.dump())
            c = self.client(self.proxy)
            c.ehlo("faults.example")
        else:
            self.assertReply(reply, Expect.BACKEND_TROUBLE, c)
        # The next transaction gets a fresh backend.
        self.behaviour.then_close.clear()
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        self.assertReply(c.command(MESSAGE), 250, c)
        c.quit()

    def test_backend_drops_between_rcpt_and_data(self):
        # The backend restarts mid-transaction (seen: 50 of 50 clients got 503 at DATA).
        self.check_transaction_lost_after_rcpt([])

    def test_backend_unsolicited_421_between_rcpt_and_data(self):
        self.check_transaction_lost_after_rcpt(["421 4.3.2 backend.test.example going down"])

    def test_backend_530_means_421_4_3_5_and_close(self):
        # BE-13: the backend wants AUTH from the proxy; never relay the 530.
        self.behaviour.replies["MAIL"] = "530 5.7.0 Authentication required"
        self.proxy_with()
        mark = self.proxy.mark()
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), Expect.BACKEND_REFUSED_PROXY, c)
        self.assertTrue(c.wait_closed(5.0), "not closed after 421 4.3.5\n" + c.dump())
        self.assertTrue(self.proxy.wait_log(r"refused the proxy: 530", start=mark), self.proxy.dump())

    def test_backend_reply_that_makes_no_sense_is_not_relayed(self):
        # 354 to RCPT: a protocol error, answered 451 4.3.0; the backend is dropped.
        self.behaviour.replies["RCPT"] = "354 what?"
        self.proxy_with()
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{RCPT}>"), Expect.BACKEND_TROUBLE, c)
        self.assertReply(c.command("DATA"), Expect.BACKEND_TROUBLE, c)
        self.assertReply(c.command("NOOP"), 250, c)

    # -- the identity handshake --------------------------------------------------------------
    def check_xclient_problem(self, hint=Expect.LOG_XCLIENT_GRANT):
        mark = self.proxy.mark()
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        reply = c.command("MAIL FROM:<a@x.example>")
        self.assertTrue(400 <= reply.code < 500, f"expected 4xx at MAIL, got {reply.text}\n{c.dump()}")
        # README table: "421 4.3.0 <host> Error: backend configuration error", close.
        self.assertReply(reply, Expect.BACKEND_CONFIG_ERROR, c)
        self.assertTrue(c.wait_closed(5.0), "not closed after the 421\n" + c.dump())
        self.assertTrue(self.proxy.wait_log(hint, start=mark),
                        f"no log line matching {hint.pattern}\n{self.proxy.dump()}")
        if hint is not Expect.LOG_XCLIENT_SETTING:
            # Postfix's setting is named only for a backend that greets as Postfix.
            self.assertFalse(any(Expect.LOG_XCLIENT_SETTING.search(line)
                                 for line in self.proxy.lines()), self.proxy.dump())
        # Never a silent fallback to a session where the backend sees the proxy's address.
        self.assertEqual([x for x in self.backend.snapshot() if "MAIL" in x.command_names()], [],
                         self.backend.transcript())

    def test_backend_without_xclient_auto_takes_xforward(self):
        # Issue 4: identity = "auto" (the default) takes XFORWARD when XCLIENT is not offered
        # (it used to be a 4xx). The session works and the backend never sees XCLIENT.
        self.behaviour.capabilities = [c for c in self.behaviour.capabilities
                                       if not c.startswith("XCLIENT")]
        self.proxy_with()
        m = self.proxy.handoff()
        self.assertIsNotNone(m, self.proxy.dump())
        self.assertEqual(m.group("mode"), "xforward", m.group(0))
        self.assertTrue(m.group("auto"), m.group(0))
        c = self.client(self.proxy)
        self.open_data(c)
        self.assertReply(c.command(MESSAGE), 250, c)
        c.quit()
        conn = self.backend.wait_for(lambda b: next((x for x in b.sessions() if x.messages), None),
                                     what="the message at the backend")
        names = conn.command_names()
        self.assertNotIn("XCLIENT", names, conn.commands)
        self.assertEqual(names[names.index("MAIL") - 1], "XFORWARD", conn.commands)

    def test_backend_stops_offering_xclient(self):
        # Explicit identity = "xclient": offered at start-up, withdrawn later (README: "if the
        # backend stops offering it later, sessions get 421 4.3.0").
        self.proxy_with(backend={"identity": "xclient"})
        self.behaviour.capabilities = [c for c in self.behaviour.capabilities
                                       if not c.startswith("XCLIENT")]
        self.check_xclient_problem()

    def test_backend_refuses_xclient(self):
        self.behaviour.xclient_reply = "550 5.7.0 Error: insufficient authorization"
        self.proxy_with()
        self.check_xclient_problem()

    def test_backend_greeting_as_postfix_refuses_xclient_hint_names_its_setting(self):
        self.behaviour.greeting = f"220 {self.behaviour.hostname} ESMTP Postfix (Debian/GNU)"
        self.behaviour.xclient_reply = "550 5.7.0 Error: insufficient authorization"
        self.proxy_with()
        self.check_xclient_problem(Expect.LOG_XCLIENT_SETTING)

    # -- the backend is gone -----------------------------------------------------------------
    def test_backend_down_at_mail_and_back(self):
        # BE-01: refused connection at MAIL; no hang; the next session works again.
        self.proxy_with(timeouts={"backend_connect": "2s"})
        self.backend.stop_listening()
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        started = time.monotonic()
        reply = c.command("MAIL FROM:<a@x.example>", timeout=8.0)
        self.assertReply(reply, Expect.BACKEND_TROUBLE, c)
        self.assertLess(time.monotonic() - started, 5.0)
        # The session stays usable after a 451.
        self.assertReply(c.command("NOOP"), 250, c)
        self.assertTrue(self.proxy.alive())

        self.backend.listen()   # same port again
        c2 = self.client(self.proxy)
        self.open_data(c2)
        self.assertReply(c2.command(MESSAGE), 250, c2)
        c2.quit()

    def test_backend_greets_with_421(self):
        # BE-03, after the proxy became ready: the client's MAIL gets a 4xx, never 250.
        self.proxy_with()
        self.behaviour.greeting = "421 4.3.2 backend.test.example Service not available"
        c = self.client(self.proxy)
        c.ehlo("faults.example")
        reply = c.command("MAIL FROM:<a@x.example>")
        self.assertReply(reply, Expect.BACKEND_TROUBLE, c)


if __name__ == "__main__":
    harness.main()
