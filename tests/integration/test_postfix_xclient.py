#!/usr/bin/python3
"""A real, private Postfix as the backend: the XCLIENT identity the proxy sends must be what
Postfix logs and relays on (client address, sasl_method=XCLIENT, sasl_username=<identity>).
Needs root (skips otherwise)."""

import os
import re
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Expect, LOCAL_DOMAIN, REMOTE_DOMAIN, TRUSTED_IDENTITY,  # noqa: E402
                     PostfixInstance, client_context, unique_message)

HELO = "client.test.example"
SENDER = "alice@client.test.example"


class PostfixXclientTest(harness.IntegrationTest):
    postfix: PostfixInstance = None

    @classmethod
    def setUpClass(cls):
        if not harness.is_root():
            raise unittest.SkipTest("a private Postfix needs root")
        super().setUpClass()
        # One Postfix for the class (it takes a few seconds to start); tests use distinct
        # recipients and Message-IDs, so they do not depend on each other.
        try:
            cls.postfix = PostfixInstance(os.path.join(cls._class_dir, "postfix"))
        except Exception:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.postfix:
            cls.postfix.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.watch(self.postfix)
        self.postfix_mark = len(self.postfix.log_lines())  # where this test's proxy starts
        self.proxy = self.start_proxy(self.postfix.port)

    def smtp(self, cert) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.proxy.port, local_hostname=HELO, timeout=15)
        self.addCleanup(client.close)
        client.ehlo()
        code, text = client.starttls(context=client_context(cert))
        self.assertEqual(code, 220, text)
        client.ehlo()
        return client

    def deliver(self, client, rcpt):
        """MAIL, RCPT, DATA; returns (message_id, Postfix queue id from the end-of-data reply)."""
        self.assertEqual(client.mail(SENDER)[0], 250)
        code, text = client.rcpt(rcpt)
        self.assertEqual(code, 250, text)
        message_id, message = unique_message("via postfix", SENDER, [rcpt])
        code, text = client.data(message)
        self.assertEqual(code, 250, text)
        # The end-of-data reply is Postfix's own: "250 2.0.0 Ok: queued as <ID>".
        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
        self.assertIsNotNone(m, f"not Postfix's end-of-data reply: {text!r}")
        return message_id, m.group(1).decode()

    def test_client_quitting_before_mail_gets_the_backend_a_quit(self):
        # The backend is opened at the client's EHLO; a client that leaves at once must not
        # leave "lost connection after ..." in Postfix's log: certrelay QUITs at the end of the
        # set-up step in flight.
        def settled(lines):
            # Every smtpd session in these lines has ended (the proxy's start-up probe too).
            connects = sum(1 for line in lines if re.search(r"smtpd\[\d+\]: connect from ", line))
            ends = [line for line in lines if re.search(r"smtpd\[\d+\]: disconnect from ", line)]
            return connects == len(ends), ends

        # The proxy's start-up probe (EHLO, QUIT) must be in the log before the window opens:
        # it would otherwise count as one of the three.
        probe = re.compile(r"smtpd\[\d+\]: disconnect from \S+ ehlo=1 quit=1 commands=2$")
        harness.wait_until(
            lambda: settled(self.postfix.log_lines())[0]
            and any(probe.search(line) for line in self.postfix.log_lines()[self.postfix_mark:]),
            10.0, what="the proxy's probe and the sessions before the test to end")
        first = len(self.postfix.log_lines())
        for _ in range(3):
            client = self.smtp(self.pki.trusted)
            client.quit()

        def ours():
            done, ends = settled(self.postfix.log_lines()[first:])
            return ends if done and len(ends) == 3 else None
        ends = harness.wait_until(ours, 10.0, what="three Postfix sessions to end")
        self.assertTrue(all(re.search(r" quit=1 commands=[0-9/]+$", line) for line in ends),
                        self.postfix.dump())
        lost = [line for line in self.postfix.log_lines()[first:] if "lost connection" in line]
        self.assertEqual(lost, [], self.postfix.dump())

    def test_trusted_client_relays_with_xclient_login(self):
        start = len(self.postfix.log_lines())
        client = self.smtp(self.pki.trusted)
        rcpt = f"bob-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        message_id, queue_id = self.deliver(client, rcpt)
        client.quit()
        pf = self.postfix
        qid = re.escape(queue_id)
        # smtpd: the client as XCLIENT described it, authenticated by XCLIENT LOGIN.
        pf.wait_log(rf"smtpd\[\d+\]: {qid}: client=unknown\[127\.0\.0\.1\], "
                    rf"sasl_method=XCLIENT, sasl_username={re.escape(TRUSTED_IDENTITY)}$",
                    start=start)
        pf.wait_log(rf"cleanup\[\d+\]: {qid}: message-id={re.escape(message_id)}", start=start)
        # Queued (qmgr picked it up) and relayed to the remote domain (discarded here).
        pf.wait_log(rf"qmgr\[\d+\]: {qid}: from=<{re.escape(SENDER)}>, size=\d+, nrcpt=1 "
                    r"\(queue active\)", start=start)
        pf.wait_log(rf"{qid}: to=<{re.escape(rcpt)}>, .*status=sent", start=start)
        # XCLIENT only: no XFORWARD attributes in the smtpd line (issue 4, auto mode).
        self.assertFalse([l for l in pf.log_lines()[start:] if "orig_client=" in l],
                         pf.log_text())

    def test_untrusted_client_gets_454_from_proxy_and_local_mail_is_queued(self):
        start = len(self.postfix.log_lines())
        client = self.smtp(self.pki.untrusted)
        self.assertEqual(client.mail(SENDER)[0], 250)
        remote = f"eve-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        code, text = client.rcpt(remote)
        self.assertEqual(f"{code} {text.decode()}", Expect.relay_denied(remote))
        local = f"carol-{os.urandom(3).hex()}@{LOCAL_DOMAIN}"
        self.assertEqual(client.rcpt(local)[0], 250)
        message_id, message = unique_message("local via postfix", SENDER, [local])
        code, text = client.data(message)
        self.assertEqual(code, 250, text)
        queue_id = re.search(rb"queued as ([0-9A-Za-z]+)", text).group(1).decode()
        client.quit()
        pf = self.postfix
        # No LOGIN for an untrusted client: Postfix logs the client without sasl_*.
        pf.wait_log(rf"smtpd\[\d+\]: {re.escape(queue_id)}: client=unknown\[127\.0\.0\.1\]$",
                    start=start)
        pf.wait_log(rf"{re.escape(queue_id)}: to=<{re.escape(local)}>, .*status=sent", start=start)
        # The proxy refused the remote recipient itself; Postfix never saw it.
        self.assertNotIn(remote, "\n".join(pf.log_lines()[start:]))

    def test_postfix_capabilities_are_filtered(self):
        # Postfix here offers AUTH (smtpd_sasl_auth_enable), XCLIENT, CHUNKING, VRFY, ETRN.
        client = smtplib.SMTP("127.0.0.1", self.proxy.port, local_hostname=HELO, timeout=15)
        self.addCleanup(client.close)
        client.ehlo()
        features = dict(client.esmtp_features)
        for keyword in Expect.FORBIDDEN_EHLO:
            self.assertNotIn(keyword.lower(), features, f"{keyword} must not reach the client")
        self.assertEqual(features.get("size"), "10240000", features)
        self.assertIn("starttls", features)
        # Postfix offers CHUNKING, so the proxy does too (issue 4: BDAT relayed by count).
        self.assertIn("chunking", features)
        m = self.proxy.handoff()
        self.assertIsNotNone(m, self.proxy.dump())
        self.assertTrue(m.group(0).endswith(Expect.handoff_line("xclient", chunking=True)),
                        m.group(0))


if __name__ == "__main__":
    harness.main()
