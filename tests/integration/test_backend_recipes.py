#!/usr/bin/python3
"""docs/backends.md's recipes, tried for real: each MTA runs with the configuration blocks read
from the document and certrelay with the recipe's [backend] settings; a trusted client relays
one message to a remote domain, an untrusted one gets certrelay's 454 for a remote recipient
that the MTA never sees. Postfix 3.7.11 (installed), Exim 4.96 and OpenSMTPD 6.8 (Debian 12's
.debs, unpacked privately: they conflict with Postfix). Root only (skips otherwise)."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Expect, REMOTE_DOMAIN, TRUSTED_IDENTITY, Pki, Received,  # noqa: E402
                     client_context, received_fields, is_certrelay, unique_message)
import recipes  # noqa: E402

HELO = "client.test.example"
SENDER = "alice@client.test.example"


class RecipeTest(harness.IntegrationTest):
    """One MTA per class (started in setUpClass), one certrelay per test with the recipe's
    settings."""

    CERTRELAY_RECIPE = ""          # name of the recipe's certrelay TOML block
    SESSION_END = ""               # the MTA's log line for an SMTP session ended by QUIT
    mta = None
    sink = None

    @classmethod
    def start_mta(cls, directory: str, relay_to: int):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        if not harness.is_root():
            raise unittest.SkipTest("the recipe backends need root")
        super().setUpClass()
        try:
            if cls.uses_sink():
                cls.sink = harness.SmtpSink(os.path.join(cls._class_dir, "sink"))
            cls.mta = cls.start_mta(os.path.join(cls._class_dir, "mta"),
                                    cls.sink.port if cls.sink else None)
        except BaseException:
            cls._stop_class()
            super().tearDownClass()
            raise

    @classmethod
    def uses_sink(cls) -> bool:
        return True

    @classmethod
    def _stop_class(cls):
        if cls.mta:
            cls.mta.stop()
        if cls.sink:
            cls.sink.stop()

    @classmethod
    def tearDownClass(cls):
        cls._stop_class()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.watch(self.mta)
        settings = recipes.certrelay_settings(self.CERTRELAY_RECIPE, self.mta.port)
        before = len(self.mta.log_lines())
        self.proxy = self.start_proxy(self.mta.port, **settings)
        # The proxy's capability probe session has ended at the MTA: whatever the MTA logs
        # from here on is the test's.
        self.mta.wait_log(self.SESSION_END, start=before)

    def data(self, c, message: bytes) -> harness.Reply:
        self.assertEqual(c.command("DATA").code, 354, c.dump())
        stuffed = re.sub(rb"(?m)^\.", b"..", message)
        c.send(stuffed + b".\r\n")
        return c.read_reply(20.0)

    def relay_trusted(self) -> tuple[str, str, harness.Reply]:
        """A trusted client relays one message to a remote recipient; returns (rcpt,
        message id, end-of-data reply)."""
        c = self.tls_client(self.proxy, self.pki.trusted, HELO, timeout=15)
        self.assertEqual(c.command(f"MAIL FROM:<{SENDER}>").code, 250, c.dump())
        rcpt = f"bob-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        self.assertEqual(c.command(f"RCPT TO:<{rcpt}>").code, 250, c.dump())
        message_id, message = unique_message(f"recipe {type(self).__name__}", SENDER, [rcpt])
        reply = self.data(c, message)
        self.assertEqual(reply.code, 250, c.dump())
        self.assertEqual(c.command("QUIT").code, 221, c.dump())
        return rcpt, message_id, reply

    def untrusted_denied(self) -> str:
        """An untrusted client's remote RCPT gets certrelay's 454; returns the recipient."""
        c = self.tls_client(self.proxy, self.pki.untrusted, HELO, timeout=15)
        self.assertEqual(c.command(f"MAIL FROM:<{SENDER}>").code, 250, c.dump())
        rcpt = f"eve-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        self.assertEqual(c.command(f"RCPT TO:<{rcpt}>").last, Expect.relay_denied(rcpt), c.dump())
        self.assertEqual(c.command("QUIT").code, 221, c.dump())
        return rcpt

    def check_delivered(self, message_id: str):
        """The message reached the smtp-sink behind the MTA with certrelay's Received header
        naming the client's certificate identity."""
        raw = self.sink.wait_message(b".leading dot line", 20.0)
        self.assertIn(f"Message-ID: {message_id}".encode(), raw)
        ours = [f for f in received_fields(raw, b"\n") if is_certrelay(f)]
        self.assertEqual(len(ours), 1, raw.decode(errors="replace"))
        header = Received(ours[0], b"\n")
        self.assertEqual(header.fingerprint["identity"], TRUSTED_IDENTITY, header.raw)
        self.assertEqual(header.fingerprint["fp"], Pki.fingerprint(self.pki.trusted), header.raw)
        self.assertEqual(header.protocol, "ESMTPSA")
        return raw

    def test_handoff_is_the_recipes(self):
        settings = recipes.certrelay_settings(self.CERTRELAY_RECIPE, self.mta.port)
        mode = settings["backend"]["identity"]
        m = self.proxy.handoff()
        self.assertIsNotNone(m, self.proxy.dump())
        self.assertEqual(m.group("mode"), mode, m.group(0))


class PostfixRecipeTest(RecipeTest):
    """Postfix 3.7.11 with XCLIENT LOGIN (and the SASL lines 3.7.11 needs)."""

    CERTRELAY_RECIPE = "postfix-certrelay"
    SESSION_END = r"postfix/certrelay/smtpd\[\d+\]: disconnect from .* quit=1"

    @classmethod
    def uses_sink(cls) -> bool:
        return False        # PostfixInstance discards relayed mail and logs status=sent

    @classmethod
    def start_mta(cls, directory, relay_to):
        return recipes.RecipePostfix(directory)

    def test_trusted_client_relays_through_xclient_login(self):
        pf = self.mta
        start = len(pf.log_lines())
        rcpt, message_id, reply = self.relay_trusted()
        m = re.search(r"queued as ([0-9A-Za-z]+)", reply.last)
        self.assertIsNotNone(m, f"not Postfix's end-of-data reply: {reply.text!r}")
        qid = re.escape(m.group(1))
        # The recipe's service (syslog_name postfix/certrelay), the client as XCLIENT described
        # it, authenticated by XCLIENT LOGIN: what made permit_sasl_authenticated relay.
        pf.wait_log(rf"postfix/certrelay/smtpd\[\d+\]: {qid}: client=unknown\[127\.0\.0\.1\], "
                    rf"sasl_method=XCLIENT, sasl_username={re.escape(TRUSTED_IDENTITY)}$",
                    start=start)
        pf.wait_log(rf"cleanup\[\d+\]: {qid}: message-id={re.escape(message_id)}", start=start)
        pf.wait_log(rf"{qid}: to=<{re.escape(rcpt)}>, .*status=sent", start=start)

    def test_untrusted_client_gets_454_from_certrelay(self):
        pf = self.mta
        start = len(pf.log_lines())
        rcpt = self.untrusted_denied()
        # The proxy's backend session for this client ended (QUIT), and never carried the RCPT.
        pf.wait_log(self.SESSION_END, start=start)
        self.assertNotIn(rcpt, "\n".join(pf.log_lines()[start:]))


class EximRecipeTest(RecipeTest):
    """Exim 4.96 (no XCLIENT, no XFORWARD) with identity none."""

    CERTRELAY_RECIPE = "exim-certrelay"
    SESSION_END = r"SMTP connection from \S* ?\[127\.0\.0\.1\] closed by QUIT"

    @classmethod
    def start_mta(cls, directory, relay_to):
        return recipes.EximInstance(directory, relay_to)

    def test_trusted_client_relays(self):
        exim = self.mta
        start = len(exim.log_lines())
        rcpt, message_id, reply = self.relay_trusted()
        m = re.search(r"id=(\S+)", reply.last)
        self.assertIsNotNone(m, f"not Exim's end-of-data reply: {reply.text!r}")
        exim_id = re.escape(m.group(1))
        # Received from the proxy's address (identity none), for the remote recipient...
        exim.wait_log(rf"{exim_id} <= {re.escape(SENDER)} H=\(\S+\) \[127\.0\.0\.1\] .*"
                      rf"for {re.escape(rcpt)}$", start=start)
        # ...and delivered (to the smtp-sink standing in for the remote MX).
        exim.wait_log(rf"{exim_id} => {re.escape(rcpt)} .*C=\"250 ", start=start)
        self.check_delivered(message_id)

    def test_untrusted_client_gets_454_from_certrelay(self):
        exim = self.mta
        start = len(exim.log_lines())
        rcpt = self.untrusted_denied()
        # certrelay's backend session for this client ended with QUIT; no trace of the RCPT.
        exim.wait_log(self.SESSION_END, start=start)
        self.assertNotIn(rcpt, "\n".join(exim.log_lines()[start:]))
        self.assertFalse([m for m in self.sink.messages() if rcpt.encode() in m])


class OpenSmtpdRecipeTest(RecipeTest):
    """OpenSMTPD 6.8.0p2 (no XCLIENT, no XFORWARD) with identity none."""

    CERTRELAY_RECIPE = "opensmtpd-certrelay"
    SESSION_END = r"smtp disconnected reason=quit"

    @classmethod
    def start_mta(cls, directory, relay_to):
        return recipes.OpenSmtpdInstance(directory, relay_to)

    def test_trusted_client_relays(self):
        osd = self.mta
        start = len(osd.log_lines())
        rcpt, message_id, _reply = self.relay_trusted()
        m = osd.wait_log(rf"smtp envelope evpid=(\w+) from=<{re.escape(SENDER)}> "
                         rf"to=<{re.escape(rcpt)}>", start=start)
        osd.wait_log(rf"mta delivery evpid={m.group(1)} .*to=<{re.escape(rcpt)}> .*"
                     r'result="Ok"', start=start)
        self.check_delivered(message_id)

    def test_untrusted_client_gets_454_from_certrelay(self):
        osd = self.mta
        start = len(osd.log_lines())
        rcpt = self.untrusted_denied()
        osd.wait_log(self.SESSION_END, start=start)
        self.assertNotIn(rcpt, "\n".join(osd.log_lines()[start:]))
        self.assertFalse([m for m in self.sink.messages() if rcpt.encode() in m])


del RecipeTest      # the base class itself has no MTA: not a test


if __name__ == "__main__":
    harness.main()
