#!/usr/bin/python3
"""Pipelining (RFC 2920): replies come back in command order whether the proxy answers a
command itself (a refused RCPT) or waits for the backend (hostile-inputs.md LM-04)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Behaviour, Expect, LOCAL_DOMAIN, REMOTE_DOMAIN  # noqa: E402


class PipeliningTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.behaviour = Behaviour()
        self.backend = self.start_backend(self.behaviour)
        self.proxy = self.start_proxy(self.backend.port)

    def untrusted_session(self):
        """TLS with a CA-signed certificate that is not listed: untrusted for relaying."""
        return self.tls_client(self.proxy, self.pki.untrusted, helo="pipe.example")

    def assert_codes(self, replies, expected, client):
        got = [r.last for r in replies]
        for reply, want in zip(replies, expected):
            if isinstance(want, int):
                ok = reply.code == want
            else:
                ok = reply.last.startswith(want)
            self.assertTrue(ok, f"expected {expected}\ngot {got}\n{client.dump()}")
        self.assertEqual(len(replies), len(expected))

    def test_mixed_accept_and_refuse_in_one_write(self):
        # LM-04 with a second refused RCPT after the accepted one.
        c = self.untrusted_session()
        r1, l1, r2 = f"r1@{REMOTE_DOMAIN}", f"l1@{LOCAL_DOMAIN}", f"r2@{REMOTE_DOMAIN}"
        c.send("MAIL FROM:<a@x.example>\r\n"
               f"RCPT TO:<{r1}>\r\nRCPT TO:<{l1}>\r\nRCPT TO:<{r2}>\r\nDATA\r\n")
        replies = c.read_replies(5)
        self.assert_codes(replies, [250, Expect.relay_denied(r1), 250, Expect.relay_denied(r2), 354], c)
        self.assertReply(c.command("Subject: pipelined\r\n\r\nbody\r\n."), 250, c)
        self.assertReply(c.command("QUIT"), 221, c)
        conn = self.backend.wait_for(lambda b: next((x for x in b.sessions() if x.messages), None),
                                     what="the message at the backend")
        rcpts = conn.find("RCPT")
        self.assertEqual(rcpts, [f"RCPT TO:<{l1}>"], "only the local recipient may be forwarded")

    def test_all_refused_data_gets_554_and_backend_never_sees_data(self):
        c = self.untrusted_session()
        r1, r2 = f"r1@{REMOTE_DOMAIN}", f"r2@{REMOTE_DOMAIN}"
        c.send(f"MAIL FROM:<a@x.example>\r\nRCPT TO:<{r1}>\r\nRCPT TO:<{r2}>\r\nDATA\r\n")
        replies = c.read_replies(4)
        self.assert_codes(replies, [250, Expect.relay_denied(r1), Expect.relay_denied(r2),
                                    Expect.NO_VALID_RCPT], c)
        # The session is still in command mode (not swallowing a message).
        self.assertReply(c.command("RSET"), 250, c)
        self.assertReply(c.command("QUIT"), 221, c)
        # Give the proxy the chance to misbehave: wait for the backend side to close (bounded).
        try:
            self.backend.wait_for(lambda b: all(x.closed for x in b.sessions()), 3.0)
        except TimeoutError:
            pass
        for conn in self.backend.sessions():
            self.assertNotIn("DATA", conn.command_names(), self.backend.transcript())
            self.assertEqual(conn.messages, [])

    def test_replies_stay_in_order_when_backend_is_slow(self):
        # Backend RCPT replies come late; the proxy's own 454s are ready at once and must
        # wait for their turn.
        self.behaviour.delays["RCPT"] = 0.2
        c = self.untrusted_session()
        commands, expected = ["MAIL FROM:<a@x.example>"], [250]
        for i in range(4):
            local, remote = f"l{i}@{LOCAL_DOMAIN}", f"r{i}@{REMOTE_DOMAIN}"
            commands += [f"RCPT TO:<{local}>", f"RCPT TO:<{remote}>"]
            expected += [250, Expect.relay_denied(remote)]
        commands.append("NOOP")
        expected.append(250)
        c.send("".join(line + "\r\n" for line in commands))
        self.assert_codes(c.read_replies(len(commands), timeout=10), expected, c)

    def test_fifty_pipelined_commands_get_fifty_replies_in_order(self):
        # Refused RCPTs count as errors (as in Postfix), so stay below max_errors (20):
        # every third recipient is remote, 15 in all.
        c = self.untrusted_session()
        commands, expected = ["MAIL FROM:<a@x.example>"], [250]
        for i in range(46):
            if i % 3 == 1:
                rcpt = f"r{i}@{REMOTE_DOMAIN}"
                expected.append(Expect.relay_denied(rcpt))
            else:
                rcpt = f"l{i}@{LOCAL_DOMAIN}"
                expected.append(250)
            commands.append(f"RCPT TO:<{rcpt}>")
        commands += ["NOOP", "RSET", "NOOP"]
        expected += [250, 250, 250]
        self.assertEqual(len(commands), 50)
        c.send("".join(line + "\r\n" for line in commands))
        self.assert_codes(c.read_replies(50, timeout=10), expected, c)
        # Nothing extra.
        self.assertEqual(c.silent_for(0.5), b"", c.dump())

    def test_trusted_pipeline_through_to_backend(self):
        # Everything forwarded: MAIL, RCPTs (remote allowed), DATA, all in one write.
        c = self.tls_client(self.proxy, self.pki.trusted, helo="pipe.example")
        c.send(f"MAIL FROM:<a@x.example>\r\nRCPT TO:<r@{REMOTE_DOMAIN}>\r\n"
               f"RCPT TO:<l@{LOCAL_DOMAIN}>\r\nDATA\r\n")
        self.assert_codes(c.read_replies(4), [250, 250, 250, 354], c)
        # Message, end of data, and the next transaction pipelined behind it.
        c.send("Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@x.example>\r\n"
               f"RCPT TO:<r2@{REMOTE_DOMAIN}>\r\nDATA\r\n")
        self.assert_codes(c.read_replies(4), [250, 250, 250, 354], c)
        self.assertReply(c.command("Subject: two\r\n\r\nbody\r\n."), 250, c)
        c.quit()
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if len(x.messages) == 2), None),
            what="two messages at the backend")
        self.assertIn(b"Subject: one", conn.messages[0])
        self.assertIn(b"Subject: two", conn.messages[1])


class EndOfDataPipeliningTest(harness.IntegrationTest):
    """The next envelope behind the dot goes to a PIPELINING backend in the dot's own write,
    before the backend's final reply; without PIPELINING it waits for that reply."""

    def start(self, pipelining: bool):
        behaviour = Behaviour()
        behaviour.after_dot = "silent"  # the final reply never comes: only order can show
        if not pipelining:
            behaviour.capabilities.remove("PIPELINING")
        self.backend = self.start_backend(behaviour)
        self.proxy = self.start_proxy(self.backend.port)
        c = self.tls_client(self.proxy, self.pki.trusted, helo="pipe.example")
        c.send(f"MAIL FROM:<a@x.example>\r\nRCPT TO:<r@{REMOTE_DOMAIN}>\r\nDATA\r\n")
        self.assert_codes(c.read_replies(3), [250, 250, 354], c)
        c.send("Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@x.example>\r\n"
               f"RCPT TO:<r2@{REMOTE_DOMAIN}>\r\nDATA\r\n")
        return c

    def assert_codes(self, replies, codes, client):
        self.assertEqual([r.code for r in replies], codes, client.dump())

    def test_next_envelope_leaves_with_the_dot(self):
        self.start(pipelining=True)
        together = b"body\r\n.\r\nMAIL FROM:<b@x.example>\r\n"
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions()
                            if any(together in r for r in x.reads)), None),
            what="the dot and the next MAIL in one read")
        # The RCPT may come in a later read (it waits for its policy decision, not for the dot).
        self.backend.wait_for(lambda b: f"RCPT TO:<r2@{REMOTE_DOMAIN}>" in conn.commands,
                              what="the next RCPT at the backend")
        self.assertEqual(len(conn.messages), 1)  # and still no final reply to it

    def test_without_pipelining_the_dot_waits_for_its_reply(self):
        self.start(pipelining=False)
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if len(x.messages) == 1), None),
            what="the message at the backend")
        # The backend never answers the dot: nothing may follow it.
        with self.assertRaises(TimeoutError, msg=self.backend.dump()):
            self.backend.wait_for(lambda b: "MAIL FROM:<b@x.example>" in conn.commands, 1.0)


if __name__ == "__main__":
    harness.main()
