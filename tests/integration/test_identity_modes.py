#!/usr/bin/python3
"""backend.identity against a real, private Postfix (issue 4; README "Handing the client's
identity to the backend"): one Postfix with three smtpd services, (a) XCLIENT authorised,
(b) only XFORWARD authorised, (c) neither (the proxy trusted by mynetworks), relaying into an
smtp-sink that keeps every delivered message. For each, what the client's identity became:
the proxy's probe line, Postfix's log (sasl_username= / orig_client=, orig_queue_id= / neither)
and the delivered message (Postfix's Received header above certrelay's). Also an explicit mode
the backend does not offer (no start), an explicit mode it does, an untrusted client where the
proxy is the only gate, and a BDAT message through Postfix. Needs root (skips otherwise)."""

import os
import re
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Expect, LOCAL_DOMAIN, REMOTE_DOMAIN, TRUSTED_IDENTITY,  # noqa: E402
                     PostfixInstance, Pki, client_context)

HELO = "client.test.example"
SENDER = "alice@client.test.example"
MODES = ("xclient", "xforward", "none")
# Postfix's Received "from" when it sees the proxy itself: the proxy's EHLO name and address.
PROXY_AS_CLIENT = re.escape(harness.HOSTNAME) + r" \(\S+ \[127\.0\.0\.1\]\)"


class IdentityModesTest(harness.IntegrationTest):
    postfix: PostfixInstance = None
    sink: harness.SmtpSink = None

    @classmethod
    def setUpClass(cls):
        if not harness.is_root():
            raise unittest.SkipTest("a private Postfix needs root")
        super().setUpClass()
        try:
            cls.sink = harness.SmtpSink(os.path.join(cls._class_dir, "sink"))
            # local_header_rewrite_clients empty: Postfix adds no Message-ID/Date/From of its
            # own, so the delivered content can be compared byte for byte.
            cls.postfix = PostfixInstance(os.path.join(cls._class_dir, "postfix"), modes=MODES,
                                          relay_to=cls.sink.port,
                                          extra_main={"local_header_rewrite_clients": ""})
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.postfix:
            cls.postfix.stop()
        if cls.sink:
            cls.sink.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.watch(self.postfix)
        self.fingerprint = Pki.fingerprint(self.pki.trusted)

    # -- helpers ----------------------------------------------------------------------------
    def proxy_for(self, mode: str, identity: str = "auto") -> harness.Proxy:
        return self.start_proxy(self.postfix.ports[mode], backend={"identity": identity})

    def assert_handoff(self, proxy, mode: str, auto: bool = True):
        m = proxy.handoff()
        self.assertIsNotNone(m, "no 'identity hand-off:' line\n" + proxy.dump())
        # Postfix offers CHUNKING on every service.
        self.assertTrue(m.group(0).endswith(Expect.handoff_line(mode, auto, chunking=True)),
                        m.group(0))

    def relay_one(self, proxy, cert=None, tag: str = "") -> dict:
        """One message from a client with `cert` (trusted by default) to a unique remote
        recipient, through the proxy and Postfix into the sink. Returns what the test checks:
        rcpt, queue id, certrelay message id, the delivered bytes, the maillog start."""
        cert = cert or self.pki.trusted
        start = len(self.postfix.log_lines())
        mark = proxy.mark()
        rcpt = f"bob-{tag}{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        last_line = f"end-{os.urandom(6).hex()}"
        client = smtplib.SMTP("127.0.0.1", proxy.port, local_hostname=HELO, timeout=15)
        self.addCleanup(client.close)
        client.ehlo()
        code, text = client.starttls(context=client_context(cert))
        self.assertEqual(code, 220, text)
        client.ehlo()
        self.assertEqual(client.mail(SENDER)[0], 250)
        code, text = client.rcpt(rcpt)
        self.assertEqual(code, 250, text)
        body = f"Subject: identity {tag}\r\n\r\nhello\r\n{last_line}\r\n".encode()
        code, text = client.data(body)
        self.assertEqual(code, 250, text)
        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
        self.assertIsNotNone(m, f"not Postfix's end-of-data reply: {text!r}")
        client.quit()
        sessions = proxy.session_ids(mark)
        self.assertEqual(len(sessions), 1, proxy.dump())
        delivered = self.sink.wait_message(last_line.encode(), timeout=15.0)
        return {"rcpt": rcpt, "qid": m.group(1).decode(), "id": sessions[0] + "M1",
                "delivered": delivered, "start": start,
                "body": body.replace(b"\r\n", b"\n") + b"\n"}

    def check_delivered(self, got: dict, postfix_from: str, postfix_with: str):
        """Postfix's Received header directly above certrelay's, which names the certificate
        and the identity; then the client's message unchanged. `postfix_from`: a regex for
        what follows "Received: from " on Postfix's first line."""
        delivered = got["delivered"]
        fields = harness.received_fields(delivered, eol=b"\n")
        # smtp-sink's own, Postfix's, certrelay's: in that order, top first.
        self.assertEqual(len(fields), 3, delivered.decode("utf-8", "replace"))
        self.assertIn(b"(smtp-sink)", fields[0])
        postfix = fields[1].decode()
        self.assertRegex(postfix.split("\n", 1)[0], "^Received: from " + postfix_from + "$")
        self.assertIn(f"\tby backend.test.example (Postfix) with {postfix_with} id {got['qid']}\n",
                      postfix)
        self.assertIn(f"\tfor <{got['rcpt']}>; ", postfix)
        self.assertTrue(harness.is_certrelay(fields[2]), fields[2])
        received = harness.Received(fields[2], eol=b"\n")
        self.assertEqual(harness.hygiene(fields[2], eol=b"\n"), [], fields[2])
        self.assertEqual((received.helo, received.addr), (HELO, "127.0.0.1"), received.raw)
        self.assertEqual(received.tls["version"], "TLSv1.3", received.raw)
        self.assertEqual(received.certificate, {"cn": "trusted.client.example",
                                                "issuer": "certrelay integration test CA",
                                                "verified": True}, received.raw)
        self.assertEqual(received.fingerprint, {"digest": "SHA256", "fp": self.fingerprint,
                                                "identity": TRUSTED_IDENTITY}, received.raw)
        self.assertEqual((received.host, received.protocol, received.id, received.rcpt),
                         (harness.HOSTNAME, "ESMTPSA", got["id"], f"<{got['rcpt']}>"),
                         received.raw)
        # What follows certrelay's header is the client's message, as it sent it.
        at = delivered.index(fields[2]) + len(fields[2])
        self.assertEqual(delivered[at:], got["body"])
        return received

    def smtpd_line(self, mode: str, got: dict) -> str:
        """Postfix smtpd's `<queue id>: client=...` line for the message."""
        m = self.postfix.wait_log(
            rf"{self.postfix.smtpd_log(mode)}: {re.escape(got['qid'])}: (client=.*)$",
            start=got["start"])
        return m.group(1)

    # -- one test per mode (identity = "auto") ------------------------------------------------
    def test_a_xclient_authorised(self):
        proxy = self.proxy_for("xclient")
        self.assert_handoff(proxy, "xclient")
        got = self.relay_one(proxy, tag="a-")
        # The real client, authenticated by XCLIENT LOGIN; no XFORWARD attributes.
        self.assertEqual(self.smtpd_line("xclient", got),
                         f"client=unknown[127.0.0.1], sasl_method=XCLIENT, "
                         f"sasl_username={TRUSTED_IDENTITY}")
        # Postfix's Received header names the client (XCLIENT HELO) and the authentication.
        self.check_delivered(got, postfix_from=re.escape(f"{HELO} (unknown [127.0.0.1])"),
                             postfix_with="ESMTPA")

    def test_b_only_xforward_authorised(self):
        proxy = self.proxy_for("xforward")
        self.assert_handoff(proxy, "xforward")
        got = self.relay_one(proxy, tag="b-")
        line = self.smtpd_line("xforward", got)
        # Postfix's own client is the proxy; XFORWARD adds the original client and certrelay's
        # message id, and nothing authenticates.
        self.assertRegex(line, r"^client=\S+\[127\.0\.0\.1\], "
                         + re.escape(f"orig_queue_id={got['id']}, orig_client=unknown[127.0.0.1]")
                         + "$")
        self.assertNotIn("sasl_", line)
        # XFORWARD is for logging only: Postfix's Received header names the proxy.
        self.check_delivered(got, postfix_from=PROXY_AS_CLIENT, postfix_with="ESMTP")

    def test_c_neither_authorised(self):
        proxy = self.proxy_for("none")
        self.assert_handoff(proxy, "none")
        got = self.relay_one(proxy, tag="c-")
        line = self.smtpd_line("none", got)
        self.assertRegex(line, r"^client=\S+\[127\.0\.0\.1\]$")
        # certrelay's Received header is the only record of the client and its certificate.
        self.check_delivered(got, postfix_from=PROXY_AS_CLIENT, postfix_with="ESMTP")

    # -- explicit modes -----------------------------------------------------------------------
    def run_not_starting(self, mode: str, identity: str, setting: re.Pattern):
        proxy = harness.Proxy(self._subdir("proxy"), self.pki, self.postfix.ports[mode],
                              start=False, backend={"identity": identity})
        proc = harness.run([proxy.binary, "--config", proxy.config_path], timeout=20,
                           check=False)
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 1, out)
        self.assertRegex(out, Expect.LOG_NOT_STARTING)
        self.assertRegex(out, setting)
        # No half-started daemon: nothing was listening, nothing was ready.
        self.assertNotRegex(out, Expect.LOG_LISTENING)
        self.assertNotRegex(out, Expect.LOG_READY)

    def test_explicit_xclient_without_xclient_does_not_start(self):
        self.run_not_starting("xforward", "xclient", Expect.LOG_XCLIENT_SETTING)

    def test_explicit_xforward_without_xforward_does_not_start(self):
        self.run_not_starting("none", "xforward", Expect.LOG_XFORWARD_SETTING)

    def test_explicit_xforward_with_xforward(self):
        proxy = self.proxy_for("xforward", identity="xforward")
        self.assert_handoff(proxy, "xforward", auto=False)
        got = self.relay_one(proxy, tag="bx-")
        self.assertIn(f"orig_queue_id={got['id']}, orig_client=unknown[127.0.0.1]",
                      self.smtpd_line("xforward", got))
        self.check_delivered(got, postfix_from=PROXY_AS_CLIENT, postfix_with="ESMTP")

    # -- the proxy is the only gate when Postfix trusts its address ----------------------------
    def test_untrusted_client_is_refused_by_the_proxy_in_xforward_and_none_modes(self):
        for mode in ("xforward", "none"):
            with self.subTest(mode=mode):
                proxy = self.proxy_for(mode)
                start = len(self.postfix.log_lines())
                client = smtplib.SMTP("127.0.0.1", proxy.port, local_hostname=HELO, timeout=15)
                self.addCleanup(client.close)
                client.ehlo()
                client.starttls(context=client_context(self.pki.untrusted))
                client.ehlo()
                self.assertEqual(client.mail(SENDER)[0], 250)
                remote = f"eve-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
                code, text = client.rcpt(remote)
                self.assertEqual(f"{code} {text.decode()}", Expect.relay_denied(remote))
                local = f"carol-{os.urandom(3).hex()}@{LOCAL_DOMAIN}"
                self.assertEqual(client.rcpt(local)[0], 250)
                code, text = client.data(b"Subject: local\r\n\r\nx\r\n")
                self.assertEqual(code, 250, text)
                qid = re.search(rb"queued as ([0-9A-Za-z]+)", text).group(1).decode()
                client.quit()
                self.postfix.wait_log(rf"{qid}: to=<{re.escape(local)}>, .*status=sent",
                                      start=start)
                # Postfix would have relayed anything from the proxy: it never saw the RCPT.
                self.assertNotIn(remote, "\n".join(self.postfix.log_lines()[start:]))

    # -- BDAT through Postfix ------------------------------------------------------------------
    def test_bdat_through_postfix_with_xclient(self):
        proxy = self.proxy_for("xclient")
        start = len(self.postfix.log_lines())
        mark = proxy.mark()
        c = self.tls_client(proxy, self.pki.trusted, helo=HELO, timeout=15)
        ehlo = c.ehlo(HELO)
        self.assertIn("CHUNKING", ehlo.keywords(), ehlo.text)
        rcpt = f"bdat-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{rcpt}>"), 250, c)
        first, last = b"Subject: a", b"\r\n\r\nb\r\n"
        self.assertEqual((len(first), len(last)), (10, 7))
        c.send(b"BDAT 10\r\n" + first + b"BDAT 7 LAST\r\n" + last)
        replies = c.read_replies(2, timeout=15)
        self.assertEqual([r.code for r in replies], [250, 250], c.dump())
        m = re.search(r"queued as ([0-9A-Za-z]+)", replies[1].last)
        self.assertIsNotNone(m, c.dump())
        qid = m.group(1)
        c.quit()
        session = proxy.session_ids(mark)[0]

        def delivered_message():
            return next((x for x in self.sink.messages()
                         if f"<{rcpt}>".encode() in x and x.endswith(b"\nb\n\n")), None)
        delivered = harness.wait_until(delivered_message, 15.0, interval=0.05,
                                       what="the BDAT message in the sink")
        self.postfix.wait_log(rf"{self.postfix.smtpd_log('xclient')}: {qid}: "
                              rf"client=unknown\[127\.0\.0\.1\], sasl_method=XCLIENT, "
                              rf"sasl_username={re.escape(TRUSTED_IDENTITY)}$", start=start)
        fields = harness.received_fields(delivered, eol=b"\n")
        self.assertEqual(len(fields), 3, delivered)
        self.assertIn(b"(Postfix) with ESMTPA id " + qid.encode(), fields[1])
        received = harness.Received(fields[2], eol=b"\n")
        self.assertEqual((received.id, received.protocol, received.rcpt),
                         (session + "M1", "ESMTPSA", f"<{rcpt}>"), received.raw)
        self.assertEqual(received.fingerprint["identity"], TRUSTED_IDENTITY, received.raw)
        # certrelay's Received header, then exactly the 17 bytes (LF line ends in the dump,
        # which ends with an empty line of its own).
        at = delivered.index(fields[2]) + len(fields[2])
        self.assertEqual(delivered[at:], (first + last).replace(b"\r\n", b"\n") + b"\n")


if __name__ == "__main__":
    harness.main()
