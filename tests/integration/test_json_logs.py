#!/usr/bin/python3
"""[log] format = "json" (issue 11): every line is one JSON object with ts, level, session and
msg (the text mode's Postfix sentence) and the fields as keys; every refusal a client sees has
its NOQUEUE line, certrelay's own (552, 454) and the backend's relayed (with its words). Runs
with the default flush interval (50 ms): lines are waited for, never assumed written."""

import json
import os
import re
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOCAL_DOMAIN, REMOTE_DOMAIN, TRUSTED_IDENTITY, client_context  # noqa: E402

SENDER = "alice@sender.example"
UNKNOWN_LOCAL = f"nobody@{LOCAL_DOMAIN}"
REMOTE = f"bob@{REMOTE_DOMAIN}"
BACKEND_REFUSAL = f"550 5.1.1 <{UNKNOWN_LOCAL}>: Recipient address rejected: User unknown"
DISCONNECT = re.compile(r'"msg":"disconnect from ')


class JsonLogsTest(harness.IntegrationTest):

    def objects(self, proxy, count_disconnects: int) -> list[dict]:
        """Every line parsed, once `count_disconnects` sessions have ended in the log."""
        seen = 0
        start = 0
        while seen < count_disconnects:
            found = proxy.wait_log(DISCONNECT, 10.0, start=start)
            self.assertIsNotNone(found, proxy.dump())
            start = proxy.lines().index(found.string, start) + 1
            seen += 1
        parsed = []
        for line in proxy.lines():
            try:
                parsed.append(json.loads(line))
            except ValueError as e:
                self.fail(f"not JSON ({e}): {line!r}\n{proxy.dump()}")
        return parsed

    def test_lines_parse_and_refusals_are_logged_with_their_fields(self):
        behaviour = harness.Behaviour()
        behaviour.replies = {"RCPT": BACKEND_REFUSAL}
        backend = self.start_backend(behaviour)
        proxy = self.start_proxy(backend.port, log={"format": "json", "flush_interval": "50ms"})

        # An untrusted client: certrelay's own 552 and 454, and the backend's 550 relayed.
        c = self.client(proxy)
        self.assertReply(c.ehlo("json.test.example"), 250, c)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}> SIZE=999999999"), 552, c)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE}>"), 454, c)
        self.assertReply(c.command(f"RCPT TO:<{UNKNOWN_LOCAL}>"), 550, c)
        c.quit()

        # A trusted client relays one message.
        behaviour.replies = {}
        client = smtplib.SMTP("127.0.0.1", proxy.port, local_hostname="trusted.test.example",
                              timeout=10)
        self.addCleanup(client.close)
        client.starttls(context=client_context(self.pki.trusted))
        client.ehlo()
        refused = client.sendmail(SENDER, [REMOTE], b"Subject: json\r\n\r\nhello\r\n")
        self.assertEqual(refused, {})
        client.quit()

        lines = self.objects(proxy, 2)
        for obj in lines:
            self.assertLessEqual({"ts", "level", "msg"}, set(obj), obj)
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(obj["level"], ("debug", "info", "warning", "error"))
        by_event = {}
        for obj in lines:
            by_event.setdefault(obj.get("event"), []).append(obj)

        rejects = by_event.get("reject", [])
        self.assertEqual(len(rejects), 3, proxy.dump())
        size, denied, refused = rejects
        self.assertTrue(size["msg"].startswith(
            "NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 552 5.3.4 Message size exceeds"),
            size)
        self.assertEqual((size["stage"], size["code"], size["from"] if "from" in size else None),
                         ("MAIL", 552, None))
        self.assertEqual(denied["msg"],
                         f"NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 454 4.7.1 <{REMOTE}>: "
                         f"Relay access denied; from=<{SENDER}> to=<{REMOTE}> proto=ESMTP "
                         "helo=<json.test.example>")
        self.assertEqual((denied["stage"], denied["code"], denied["from"], denied["to"]),
                         ("RCPT", 454, SENDER, REMOTE))
        self.assertEqual((denied["client_address"], denied["helo"]),
                         ("127.0.0.1", "json.test.example"))
        self.assertEqual(refused["reply"], BACKEND_REFUSAL)
        self.assertEqual((refused["stage"], refused["code"], refused["to"]),
                         ("RCPT", 550, UNKNOWN_LOCAL))
        self.assertIn("Recipient address rejected: User unknown; from=<", refused["msg"])
        # All three in one session, with its id; the trusted session has another.
        self.assertEqual(len({r["session"] for r in rejects}), 1)

        accepted = by_event.get("message_accepted", [])
        self.assertEqual(len(accepted), 1, proxy.dump())
        self.assertEqual((accepted[0]["identity"], accepted[0]["code"], accepted[0]["from"],
                          accepted[0]["recipients"]), (TRUSTED_IDENTITY, 250, SENDER, 1))
        self.assertRegex(accepted[0]["fingerprint"], r"^[0-9A-F]{64}$")
        self.assertNotEqual(accepted[0]["session"], rejects[0]["session"])
        connects = by_event.get("connect", [])
        self.assertEqual(len(connects), 2)
        self.assertTrue(all(c["client_address"] == "127.0.0.1" for c in connects))
        # Process lines (no session) are JSON too.
        self.assertTrue(any(o["msg"].startswith("ready: workers=") and "session" not in o
                            for o in lines), proxy.dump())


if __name__ == "__main__":
    harness.main()
