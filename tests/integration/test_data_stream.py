#!/usr/bin/python3
"""DATA reaches the backend as a canonical stream (hostile-inputs.md SM-01, SM-02): odd line
endings from the client can never end the message early at the backend and smuggle a second
transaction into it."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Expect, REMOTE_DOMAIN  # noqa: E402

# End-of-data look-alikes from the SMTP smuggling research (SEC Consult, CVE-2023-51764).
FAKE_ENDINGS = [b"\n.\n", b"\n.\r", b"\r.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n",
                b"\r\n\x00.\r\n", b"\r\n.\r\r\n", b"\r\r\n.\r\r\n"]
SMUGGLED = (b"mail FROM:<smuggled@x.example>\r\nrcpt TO:<victim@remote.example>\r\ndata\r\n"
            b"Subject: smuggled\r\n\r\nhi\r\n")


def canonical_problems(body: bytes) -> list[str]:
    """What is wrong with a DATA stream as the backend received it (before its terminator).
    A lone "." line cannot occur here: the backend would have ended the message there."""
    problems = []
    if re.search(rb"(?<!\r)\n", body):
        problems.append("bare LF")
    if re.search(rb"\r(?!\n)", body):
        problems.append("bare CR")
    return problems


class DataStreamTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.proxy = self.start_proxy(self.backend.port)

    def send_message(self, body: bytes):
        """Trusted session, one transaction with `body` followed by the real end of data.
        Returns (client, final reply)."""
        c = self.tls_client(self.proxy, self.pki.trusted, helo="data.example")
        self.assertReply(c.command("MAIL FROM:<sender@client.test.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<rcpt@{REMOTE_DOMAIN}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        c.send(body + b"\r\n.\r\n")
        return c, c.read_reply(timeout=10)

    def backend_messages(self):
        try:
            self.backend.wait_for(lambda b: all(x.closed for x in b.sessions()), 3.0)
        except TimeoutError:
            pass
        return [x for x in self.backend.sessions()]

    def test_fake_end_of_data_sequences_do_not_smuggle(self):
        for ending in FAKE_ENDINGS:
            with self.subTest(ending=ending):
                before = len(self.backend.sessions())
                c, reply = self.send_message(b"Subject: carrier\r\n\r\nX" + ending + SMUGGLED)
                # One final reply: the backend's 250 for the canonicalised message.
                self.assertEqual(reply.code, 250, c.dump())
                self.assertEqual(c.silent_for(0.3), b"", "more than one final reply\n" + c.dump())
                c.quit()
                sessions = self.backend_messages()[before:]
                commands = [cmd.lower() for x in sessions for cmd in x.commands]
                self.assertFalse([cmd for cmd in commands if "smuggled@" in cmd or "victim@" in cmd],
                                 f"smuggled commands reached the backend: {commands}")
                messages = [m for x in sessions for m in x.messages]
                self.assertEqual(len(messages), 1, messages)
                self.assertEqual(canonical_problems(messages[0]), [], messages[0])

    def test_dot_stuffing_and_line_endings(self):
        # On the wire from the client (dot-stuffed): "..starts" is the content ".starts" and
        # "..." is "..". Both must reach the backend stuffed again, i.e. unchanged here.
        body = b"Subject: dots\r\n\r\n..starts with a dot\r\n...\r\nbare LF line\nnext"
        c, reply = self.send_message(body)
        # A bare LF is canonicalised to CR LF, not refused (README "Message content").
        self.assertReply(reply, 250, c)
        c.quit()
        message = next(m for x in self.backend_messages() for m in x.messages)
        self.assertEqual(canonical_problems(message), [], message)
        self.assertIn(b"\r\n..starts with a dot\r\n...\r\n", message)
        self.assertTrue(message.endswith(b"bare LF line\r\nnext\r\n"), message)

    def test_one_log_line_per_message_with_envelope_and_backend_reply(self):
        mark = self.proxy.mark()
        body = b"Subject: logged\r\n\r\n" + b"x" * 100
        c, reply = self.send_message(body)
        self.assertReply(reply, 250, c)
        size = len(body) + 2  # the content's own final CRLF counts, the terminator does not
        line = self.proxy.wait_log(
            re.compile(r"message accepted by backend: from=<sender@client\.test\.example> "
                       rf"size={size}: 250 "), 5.0, start=mark)
        self.assertTrue(line, self.proxy.lines()[mark:])
        # The envelope is on the verdict's line: no separate end-of-data line any more.
        self.assertFalse([x for x in self.proxy.lines()[mark:] if "end of data" in x])

if __name__ == "__main__":
    harness.main()
