#!/usr/bin/python3
"""Relay decisions as a stock client sees them: Python's smtplib with STARTTLS and a client
certificate (trusted / CA-signed but unlisted / none / self-signed listed by public key), and
what the backend receives (XCLIENT with LOGIN for trusted clients only, ADDR last)."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Behaviour, Expect, Pki, LOCAL_DOMAIN, REMOTE_DOMAIN, SELFSIGNED_IDENTITY,  # noqa: E402
                     TRUSTED_IDENTITY, XCLIENT_ALL, client_context, unique_message,
                     xclient_attributes)

HELO = "client.test.example"
SENDER = "alice@client.test.example"
REMOTE_RCPT = f"bob@{REMOTE_DOMAIN}"
LOCAL_RCPT = f"carol@{LOCAL_DOMAIN}"


class RelayTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        # Trusted: the certificate fingerprint (colon form). Self-signed: its public-key
        # fingerprint, written lower-case without colons (the table accepts both forms).
        fingerprints = [
            (Pki.fingerprint(self.pki.trusted), TRUSTED_IDENTITY),
            (Pki.pkey_fingerprint(self.pki.selfsigned).replace(":", "").lower(),
             SELFSIGNED_IDENTITY),
        ]
        self.proxy = self.start_proxy(self.backend.port, fingerprints=fingerprints)

    # -- helpers ----------------------------------------------------------------------------
    def smtp(self, cert=None, tls=True) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.proxy.port, local_hostname=HELO, timeout=10)
        self.addCleanup(client.close)
        code, _ = client.ehlo()
        self.assertEqual(code, 250)
        if tls:
            code, text = client.starttls(context=client_context(cert))
            self.assertEqual(code, 220, text)
            code, _ = client.ehlo()
            self.assertEqual(code, 250)
        return client

    def backend_session(self):
        """The backend connection that carried the client's session (not a probe)."""
        return self.backend.wait_for(lambda b: (lambda s: s[-1] if s else None)(b.sessions()),
                                     what="a client session at the backend")

    def assert_xclient(self, login):
        conn = self.backend_session()
        xclients = conn.find("XCLIENT ")
        self.assertEqual(len(xclients), 1, f"exactly one XCLIENT expected: {conn.commands}")
        attrs = xclient_attributes(xclients[0])
        names = [n for n, _ in attrs]
        offered = XCLIENT_ALL.split()[1:]
        self.assertTrue(set(names) <= set(offered), f"not offered: {xclients[0]}")
        self.assertEqual(attrs[-1], ("ADDR", "127.0.0.1"), f"ADDR must be last: {xclients[0]}")
        values = dict(attrs)
        self.assertEqual(values.get("NAME"), "[UNAVAILABLE]", xclients[0])
        self.assertEqual(values.get("HELO"), HELO, xclients[0])
        if login is None:
            self.assertNotIn("LOGIN", values, f"untrusted client must not get LOGIN: {xclients[0]}")
        else:
            self.assertEqual(values.get("LOGIN"), login, xclients[0])
        # Order on the backend: EHLO <proxy>, XCLIENT, EHLO <client helo>, then the transaction.
        names_seen = conn.command_names()
        i = names_seen.index("XCLIENT")
        self.assertEqual(conn.commands[0].upper(), f"EHLO {harness.HOSTNAME}".upper(), conn.commands)
        self.assertEqual(conn.commands[i + 1], f"EHLO {HELO}", conn.commands)
        self.assertLess(i, names_seen.index("MAIL"), conn.commands)
        return conn

    def send_one(self, client, rcpts):
        """MAIL, one RCPT each, DATA if anything was accepted. Returns (rcpt replies, data reply)."""
        code, text = client.mail(SENDER)
        self.assertEqual(code, 250, text)
        replies = {r: client.rcpt(r) for r in rcpts}
        accepted = [r for r, (code, _) in replies.items() if code == 250]
        data_reply = None
        if accepted:
            _, message = unique_message("relay test", SENDER, accepted)
            data_reply = client.data(message)
        return replies, data_reply

    def assert_relay_denied(self, reply, rcpt):
        code, text = reply
        self.assertEqual(f"{code} {text.decode()}", Expect.relay_denied(rcpt))

    # -- tests ------------------------------------------------------------------------------
    def test_trusted_certificate_relays_to_remote(self):
        mark = self.proxy.mark()
        client = self.smtp(self.pki.trusted)
        replies, data_reply = self.send_one(client, [REMOTE_RCPT])
        self.assertEqual(replies[REMOTE_RCPT][0], 250, replies)
        self.assertEqual(data_reply[0], 250, data_reply)
        # The end-of-data reply is the backend's own.
        self.assertIn(b"queued as SCRIPTED", data_reply[1])
        client.quit()
        conn = self.assert_xclient(login=TRUSTED_IDENTITY)
        self.assertIn(f"RCPT TO:<{REMOTE_RCPT}>", conn.commands)
        self.assertEqual(len(conn.messages), 1)
        # certrelay's Received header (issue 4) names the certificate, then the message as sent.
        received, content = harness.split_received(conn.messages[0])
        self.assertEqual(received.fingerprint,
                         {"digest": "SHA256", "fp": Pki.fingerprint(self.pki.trusted),
                          "identity": TRUSTED_IDENTITY}, received.raw)
        self.assertEqual(received.protocol, "ESMTPSA", received.raw)
        self.assertTrue(content.startswith(f"From: <{SENDER}>".encode()), content[:200])
        self.assertIn(b"Subject: relay test", content)
        self.assertTrue(self.proxy.wait_log(Expect.LOG_TRUSTED_TLS, start=mark),
                        "no 'Trusted TLS connection established' log line")

    def test_trusted_certificate_relays_into_smtp_sink(self):
        # The same through Postfix's smtp-sink, which keeps the message as received.
        sink = self.start_sink()
        proxy = self.start_proxy(sink.port)
        client = smtplib.SMTP("127.0.0.1", proxy.port, local_hostname=HELO, timeout=10)
        self.addCleanup(client.close)
        client.ehlo()
        client.starttls(context=client_context(self.pki.trusted))
        client.ehlo()
        message_id, message = unique_message("via smtp-sink", SENDER, [REMOTE_RCPT])
        refused = client.sendmail(SENDER, [REMOTE_RCPT], message)
        self.assertEqual(refused, {})
        client.quit()
        captured = sink.wait_messages(1)[0]
        self.assertIn(message_id.encode(), captured)
        # smtp-sink's own Received header, then certrelay's, then the message.
        fields = harness.received_fields(captured, eol=b"\n")
        self.assertEqual(len(fields), 2, captured)
        self.assertIn(b"(smtp-sink)", fields[0])
        self.assertTrue(harness.is_certrelay(fields[1]), captured)
        self.assertIn(f"X-Rcpt-Args: <{REMOTE_RCPT}>".encode(), captured)
        self.assertIn(f"X-Mail-Args: <{SENDER}>".encode(), captured)

    def test_untrusted_certificate_gets_454_for_remote_250_for_local(self):
        mark = self.proxy.mark()
        client = self.smtp(self.pki.untrusted)
        replies, data_reply = self.send_one(client, [REMOTE_RCPT, LOCAL_RCPT])
        self.assert_relay_denied(replies[REMOTE_RCPT], REMOTE_RCPT)
        self.assertEqual(replies[LOCAL_RCPT][0], 250, replies)
        self.assertEqual(data_reply[0], 250, data_reply)
        client.quit()
        conn = self.assert_xclient(login=None)
        self.assertNotIn(f"RCPT TO:<{REMOTE_RCPT}>", conn.commands, "refused RCPT was forwarded")
        self.assertIn(f"RCPT TO:<{LOCAL_RCPT}>", conn.commands)
        # CA-signed: the chain verifies, so Postfix's wording says "Trusted" (it is not listed).
        self.assertTrue(self.proxy.wait_log(Expect.LOG_TRUSTED_TLS, start=mark))
        self.assertTrue(self.proxy.wait_log(Expect.log_noqueue_reject(REMOTE_RCPT, SENDER, HELO),
                                            start=mark), "no NOQUEUE: reject log line")

    def test_no_certificate_gets_454_for_remote_250_for_local(self):
        mark = self.proxy.mark()
        client = self.smtp(None)
        replies, data_reply = self.send_one(client, [REMOTE_RCPT, LOCAL_RCPT])
        self.assert_relay_denied(replies[REMOTE_RCPT], REMOTE_RCPT)
        self.assertEqual(replies[LOCAL_RCPT][0], 250, replies)
        self.assertEqual(data_reply[0], 250, data_reply)
        client.quit()
        self.assert_xclient(login=None)
        self.assertTrue(self.proxy.wait_log(Expect.LOG_ANONYMOUS_TLS, start=mark),
                        "no 'Anonymous TLS connection established' log line")
        self.assertTrue(self.proxy.wait_log(Expect.log_noqueue_reject(REMOTE_RCPT, SENDER, HELO),
                                            start=mark))

    def test_plaintext_gets_454_for_remote_250_for_local(self):
        mark = self.proxy.mark()
        client = self.smtp(tls=False)
        replies, data_reply = self.send_one(client, [REMOTE_RCPT, LOCAL_RCPT])
        self.assert_relay_denied(replies[REMOTE_RCPT], REMOTE_RCPT)
        self.assertEqual(replies[LOCAL_RCPT][0], 250, replies)
        self.assertEqual(data_reply[0], 250, data_reply)
        client.quit()
        self.assert_xclient(login=None)
        self.assertTrue(self.proxy.wait_log(Expect.log_noqueue_reject(REMOTE_RCPT, SENDER, HELO),
                                            start=mark))

    def test_selfsigned_listed_by_public_key_fingerprint_is_trusted(self):
        mark = self.proxy.mark()
        client = self.smtp(self.pki.selfsigned)
        replies, data_reply = self.send_one(client, [REMOTE_RCPT])
        self.assertEqual(replies[REMOTE_RCPT][0], 250, replies)
        self.assertEqual(data_reply[0], 250, data_reply)
        client.quit()
        self.assert_xclient(login=SELFSIGNED_IDENTITY)
        # The chain does not verify: "Untrusted TLS", yet the fingerprint decides (as Postfix).
        self.assertTrue(self.proxy.wait_log(Expect.LOG_UNTRUSTED_TLS, start=mark),
                        "no 'Untrusted TLS connection established' log line")

    def test_ehlo_shows_backend_capabilities_filtered(self):
        # The scripted backend offers PIPELINING, SIZE, ETRN, XCLIENT, XFORWARD, AUTH,
        # ENHANCEDSTATUSCODES, 8BITMIME, DSN, CHUNKING.
        client = smtplib.SMTP("127.0.0.1", self.proxy.port, local_hostname=HELO, timeout=10)
        self.addCleanup(client.close)
        client.ehlo()
        before = dict(client.esmtp_features)
        for keyword in Expect.FORBIDDEN_EHLO:
            self.assertNotIn(keyword.lower(), before, f"EHLO must not offer {keyword}")
        self.assertIn("starttls", before)
        self.assertIn("pipelining", before)
        # Passed on from the backend's real list; CHUNKING too since issue 4 (relayed by
        # count, test_smtp_sink_bytes.py).
        self.assertEqual(before.get("size"), "10240000", before)
        for keyword in ("8bitmime", "dsn", "enhancedstatuscodes", "chunking"):
            self.assertIn(keyword, before, f"{keyword} offered by the backend, not by the proxy")
        self.assertNotIn("smtputf8", before, "SMTPUTF8 offered though the backend lacks it")
        client.starttls(context=client_context(self.pki.trusted))
        client.ehlo()
        after = dict(client.esmtp_features)
        self.assertNotIn("starttls", after, "STARTTLS offered inside TLS")
        self.assertIn("pipelining", after)
        self.assertIn("chunking", after)
        for keyword in Expect.FORBIDDEN_EHLO:
            self.assertNotIn(keyword.lower(), after)

    def test_ehlo_does_not_invent_capabilities(self):
        # A backend with a short list: the proxy must not advertise what it lacks.
        behaviour = Behaviour()
        behaviour.capabilities = ["SIZE 12345", XCLIENT_ALL]
        backend = self.start_backend(behaviour)
        proxy = self.start_proxy(backend.port)
        client = smtplib.SMTP("127.0.0.1", proxy.port, local_hostname=HELO, timeout=10)
        self.addCleanup(client.close)
        client.ehlo()
        features = dict(client.esmtp_features)
        self.assertEqual(features.get("size"), "12345", features)
        for keyword in ("8bitmime", "dsn", "smtputf8", "chunking", "etrn"):
            self.assertNotIn(keyword, features, f"{keyword} offered though the backend lacks it")
        self.assertIn("starttls", features)
        self.assertIn("pipelining", features)   # the proxy itself always pipelines


if __name__ == "__main__":
    harness.main()
