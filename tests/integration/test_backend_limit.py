#!/usr/bin/python3
"""backend.max_connections: concurrent backend sessions are capped; the early set-up at EHLO
(inside TLS) only happens below 80% of the cap, and MAIL at the cap gets 451 4.3.2."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOCAL_DOMAIN  # noqa: E402

BUSY = "451 4.3.2 Error: too many backend connections, try again later"


class BackendLimitTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()

    def open_sessions(self):
        return [x for x in self.backend.sessions() if not x.closed]

    def test_mail_at_the_cap_gets_451_and_succeeds_once_a_backend_is_free(self):
        # One worker: a backend connection closed before the next command is read is counted
        # out by then (its close callback runs in the same loop turn).
        proxy = self.start_proxy(self.backend.port, backend={"max_connections": 2},
                                 timeouts={"backend_idle": "60s"})
        a, b, c = self.client(proxy), self.client(proxy), self.client(proxy)
        for x in (a, b, c):
            x.ehlo()
        self.assertReply(a.command("MAIL FROM:<s@x.example>"), 250, a)
        self.assertReply(b.command("MAIL FROM:<s@x.example>"), 250, b)
        mark = proxy.mark()
        self.assertReply(c.command("MAIL FROM:<s@x.example>"), BUSY, c)
        self.assertTrue(proxy.wait_log("backend connection limit reached", start=mark),
                        proxy.dump())
        self.assertTrue(proxy.wait_log("NOQUEUE: reject: MAIL from .*: 451 4.3.2", start=mark))
        self.assertEqual(len(self.backend.sessions()), 2)
        a.quit()
        self.backend.wait_for(lambda be: len(self.open_sessions()) == 1)
        self.assertReply(c.command("MAIL FROM:<s@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<u@{LOCAL_DOMAIN}>"), 250, c)

    def test_early_setup_stops_at_80_percent(self):
        # Cap 5: TLS clients set the backend up at EHLO while fewer than 4 are open.
        proxy = self.start_proxy(self.backend.port, backend={"max_connections": 5},
                                 timeouts={"backend_idle": "60s"})
        tls = [self.tls_client(proxy, self.pki.trusted) for _ in range(5)]
        self.backend.wait_for(lambda be: len(be.sessions()) == 4)
        # The fifth TLS client has no backend yet: a plaintext client's MAIL takes the last one.
        plain = self.client(proxy)
        plain.ehlo()
        self.assertReply(plain.command("MAIL FROM:<s@x.example>"), 250, plain)
        self.assertReply(tls[4].command("MAIL FROM:<s@x.example>"), BUSY, tls[4])
        # The early ones have theirs.
        self.assertReply(tls[0].command("MAIL FROM:<s@x.example>"), 250, tls[0])


if __name__ == "__main__":
    harness.main()
