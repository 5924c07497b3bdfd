#!/usr/bin/python3
"""Per-client limits (limits.client_connections, client_connection_rate, client_message_rate,
client_recipient_rate, exempt_networks, greeting_delay): Postfix's replies and warnings, counted across two
workers, keyed by the certificate's identity when it is listed."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOSTNAME, LOCAL_DOMAIN, REMOTE_DOMAIN, TRUSTED_IDENTITY, Pki  # noqa: E402

TOO_MANY_CONNECTIONS = f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1"
OTHER_IDENTITY = "second-client"
DISCONNECT = re.compile(r"disconnect from unknown\[127\.0\.0\.1\]")


class ClientLimitsTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()

    def proxy_with(self, limits, **overrides):
        # Loopback is exempt by default: the tests' clients all come from 127.0.0.1.
        limits = {"exempt_networks": [], **limits}
        return self.start_proxy(self.backend.port, workers=2, limits=limits, **overrides)

    def refused(self, proxy):
        c = self.watch(harness.SmtpClient(proxy.port))
        self.addCleanup(c.close)
        self.assertReply(c.read_reply(), TOO_MANY_CONNECTIONS, c)
        self.assertTrue(c.wait_closed(5.0), "not closed after 421\n" + c.dump())

    def send_message(self, c, rcpt):
        self.assertReply(c.command("MAIL FROM:<sender@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{rcpt}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        c.send("Subject: limits\r\n\r\nbody\r\n.\r\n")
        self.assertReply(c.read_reply(), 250, c)

    def test_one_connection_over_the_count_gets_421_and_a_freed_slot_is_reusable(self):
        proxy = self.proxy_with({"client_connections": 3})
        # Two workers: the connections spread over both, and the count is their sum.
        clients = [self.client(proxy) for _ in range(3)]
        mark = proxy.mark()
        self.refused(proxy)
        self.assertTrue(proxy.wait_log(
            re.compile(r"warning: \w+: Connection concurrency limit exceeded: 4 from "
                       r"unknown\[127\.0\.0\.1\] for service mx"), start=mark), proxy.dump())
        self.assertTrue(proxy.wait_log(DISCONNECT, start=mark))
        mark = proxy.mark()
        clients[0].quit()
        self.assertTrue(proxy.wait_log(DISCONNECT, start=mark))
        self.assertEqual(self.client(proxy).ehlo().code, 250)
        for c in clients[1:]:
            self.assertEqual(c.command("NOOP").code, 250, c.dump())

    def test_loopback_is_exempt_by_default(self):
        proxy = self.start_proxy(self.backend.port, limits={"client_connections": 1})
        first, second = self.client(proxy), self.client(proxy)
        self.assertEqual(second.ehlo().code, 250, second.dump())
        self.assertEqual(first.ehlo().code, 250, first.dump())

    def test_connection_rate(self):
        proxy = self.proxy_with({"client_connection_rate": 2, "rate_window": "60s"})
        for _ in range(2):
            self.client(proxy).quit()
        mark = proxy.mark()
        self.refused(proxy)
        self.assertTrue(proxy.wait_log(
            re.compile(r"warning: \w+: Connection rate limit exceeded: 3 from "
                       r"unknown\[127\.0\.0\.1\] for service mx"), start=mark), proxy.dump())

    def test_message_rate_per_identity_leaves_another_identity_relaying(self):
        fingerprints = [(Pki.fingerprint(self.pki.trusted), TRUSTED_IDENTITY),
                        (Pki.fingerprint(self.pki.untrusted), OTHER_IDENTITY)]
        proxy = self.proxy_with({"client_message_rate": 2}, fingerprints=fingerprints)
        c = self.tls_client(proxy, self.pki.trusted)
        for _ in range(2):
            self.send_message(c, f"far@{REMOTE_DOMAIN}")
        mark = proxy.mark()
        self.assertReply(c.command("MAIL FROM:<sender@x.example>"),
                         f"450 4.7.1 Error: too much mail from {TRUSTED_IDENTITY}", c)
        self.assertTrue(proxy.wait_log(
            re.compile(r"warning: \w+: Message delivery request rate limit exceeded: 3 from "
                       r"unknown\[127\.0\.0\.1\] \(" + TRUSTED_IDENTITY + r"\) for service mx"),
            start=mark), proxy.dump())
        self.assertTrue(proxy.wait_log(
            re.compile(r"NOQUEUE: reject: MAIL from unknown\[127\.0\.0\.1\]: 450 4\.7\.1 Error: "
                       r"too much mail from " + TRUSTED_IDENTITY), start=mark), proxy.dump())
        # The same address with another listed certificate: its own count, still relaying.
        other = self.tls_client(proxy, self.pki.untrusted)
        self.send_message(other, f"far@{REMOTE_DOMAIN}")
        # And the refused identity's session goes on: the refusal is a 4xx for this MAIL only.
        self.assertEqual(c.command("NOOP").code, 250, c.dump())
        self.backend.wait_for(lambda b: sum(len(x.messages) for x in b.sessions()) == 3)

    def test_recipient_rate_by_address(self):
        proxy = self.proxy_with({"client_recipient_rate": 2})
        c = self.client(proxy)
        c.ehlo()
        self.assertReply(c.command("MAIL FROM:<sender@x.example>"), 250, c)
        for i in range(2):
            self.assertReply(c.command(f"RCPT TO:<u{i}@{LOCAL_DOMAIN}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<u3@{LOCAL_DOMAIN}>"),
                         "450 4.7.1 Error: too many recipients from 127.0.0.1", c)
        self.assertReply(c.command("DATA"), 354, c)
        c.send("Subject: limits\r\n\r\nbody\r\n.\r\n")
        self.assertReply(c.read_reply(), 250, c)

    def test_greeting_delay_refuses_a_client_that_talks_first(self):
        proxy = self.start_proxy(self.backend.port, limits={"greeting_delay": "1s"})
        early = self.watch(harness.SmtpClient(proxy.port))
        self.addCleanup(early.close)
        mark = proxy.mark()
        early.send("EHLO early.example\r\n")
        self.assertReply(early.read_reply(), "554 5.5.0", early)
        self.assertTrue(early.wait_closed(5.0), early.dump())
        self.assertTrue(proxy.wait_log(
            re.compile(r"PREGREET 20 from unknown\[127\.0\.0\.1\]: EHLO early\.example"),
            start=mark), proxy.dump())
        # A patient client gets the greeting after the delay, and nothing before it.
        patient = self.watch(harness.SmtpClient(proxy.port))
        self.addCleanup(patient.close)
        self.assertEqual(patient.silent_for(0.5), b"", patient.dump())
        self.assertReply(patient.read_reply(timeout=5.0), harness.Expect.GREETING, patient)
        self.assertEqual(patient.ehlo().code, 250, patient.dump())

    def test_min_data_rate_cuts_a_slow_sender(self):
        # 10 bytes every 0.25 s: never idle for timeouts.data (1 s), but far below 100 bytes/s.
        proxy = self.start_proxy(self.backend.port, limits={"min_data_rate": 100},
                                 timeouts={"data": "1s"})
        c = self.client(proxy)
        c.ehlo()
        self.assertReply(c.command("MAIL FROM:<sender@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<u@{LOCAL_DOMAIN}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        for _ in range(40):  # at most 10 s; the cut is due after about 1.7 s
            try:
                c.send("0123456789")
            except OSError:
                break
            if c.silent_for(0.25):
                break
        self.assertReply(c.read_reply(), harness.Expect.TIMEOUT, c)
        self.assertTrue(c.wait_closed(5.0), c.dump())
        # The deadline's timer, or the next bytes after it, ends the session.
        self.assertTrue(proxy.wait_log("timeout after DATA from"), proxy.dump())
        self.assertEqual([m for x in self.backend.sessions() for m in x.messages], [])


if __name__ == "__main__":
    harness.main()
