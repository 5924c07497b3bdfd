#!/usr/bin/python3
"""backend.identity = "auto" is resolved once and kept (issue 11): when a later probe finds the
backend no longer offering XCLIENT, sessions fail closed with 421 4.3.0 and readiness fails;
nothing is ever sent under the proxy's own address."""

import http.client
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import XCLIENT_ALL, Expect  # noqa: E402

LOG_NO_LONGER = re.compile(r"no longer offers the identity hand-off in force "
                           r"\(xclient, resolved from auto\)")


class IdentityKeptTest(harness.IntegrationTest):

    def readyz(self, proxy) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=5)
        try:
            conn.request("GET", "/readyz?verbose")
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def test_auto_resolved_to_xclient_fails_closed_when_xclient_goes(self):
        behaviour = harness.Behaviour()
        backend = self.start_backend(behaviour)
        proxy = self.start_proxy(backend.port, backend={"probe_interval": "1s"},
                                 admin={"address": harness.ADMIN_FREE})
        self.assertTrue(any(harness.Expect.handoff_line("xclient") in line
                            for line in proxy.lines()), proxy.dump())
        # The backend stops authorising the proxy for XCLIENT (a Postfix reload, say).
        mark = proxy.mark()
        behaviour.capabilities = [c for c in behaviour.capabilities if c != XCLIENT_ALL]
        self.assertTrue(proxy.wait_log(LOG_NO_LONGER, 10.0, start=mark), proxy.dump())
        # The probe logs before it publishes the new backend set: readiness follows shortly.
        status, body = harness.wait_until(
            lambda: (lambda r: r if r[0] == 503 else None)(self.readyz(proxy)), 5.0,
            interval=0.05, what="/readyz to fail")
        self.assertIn("[-]backend failed", body)
        # A trusted session now: refused, never relayed under the proxy's address.
        sessions_before = len(backend.sessions())
        c = self.client(proxy)
        self.assertReply(c.ehlo("kept.example"), 250, c)
        c.starttls(harness.client_context(self.pki.trusted))
        reply = c.ehlo("kept.example")
        if reply.code == 250:
            reply = c.command("MAIL FROM:<a@x.example>")
        self.assertRegex(reply.last, Expect.BACKEND_CONFIG_ERROR, c.dump())
        for session in backend.sessions()[sessions_before:]:
            self.assertNotIn(b"MAIL FROM", bytes(session.received), backend.transcript())


if __name__ == "__main__":
    harness.main()
