#!/usr/bin/python3
"""Backends by name, several of them (issue 13, item 2): backend.address as a host name,
backend.addresses with failover and round_robin, per-address health in /readyz?verbose and
certrelay_backend_address_up, a name that does not resolve. Real backends on loopback: smtp-sink,
scripted backends, and a real Postfix (root only; that test skips otherwise)."""

import http.client
import os
import re
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOCAL_DOMAIN, PostfixInstance  # noqa: E402

HELO = "named.test.example"
RCPT = f"user@{LOCAL_DOMAIN}"
LOG_FAILOVER = r"backend 127\.0\.0\.1:{a} unreachable: connect to 127\.0\.0\.1:{a}: .*; trying 127\.0\.0\.1:{b}"


def connected_to(port: int) -> re.Pattern:
    return re.compile(rf"backend connection to 127\.0\.0\.1:{port} ready")


class NamedBackendsTest(harness.IntegrationTest):

    def proxy_with(self, addresses, **backend):
        """A proxy whose [backend] lists `addresses` (a string: backend.address; a list:
        backend.addresses), with an admin endpoint."""
        proxy = self.start_proxy(0, start=False, admin={"address": harness.ADMIN_FREE},
                                 backend=backend)
        del proxy.config["backend"]["address"]
        key = "address" if isinstance(addresses, str) else "addresses"
        proxy.config["backend"][key] = addresses
        proxy.write_config()
        proxy.start()
        return proxy

    def get(self, proxy, path):
        conn = http.client.HTTPConnection("127.0.0.1", proxy.admin_port, timeout=5)
        self.addCleanup(conn.close)
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()

    def metric(self, proxy, series: str):
        _, text = self.get(proxy, "/metrics")
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return None

    def send(self, proxy, tag: str):
        """One message to a local recipient (no relaying needed: plaintext, untrusted)."""
        client = smtplib.SMTP("127.0.0.1", proxy.port, local_hostname=HELO, timeout=15)
        self.addCleanup(client.close)
        client.ehlo()
        self.assertEqual(client.mail("a@client.test.example")[0], 250)
        self.assertEqual(client.rcpt(RCPT)[0], 250)
        code, text = client.data(f"Subject: {tag}\r\n\r\n{tag}\r\n".encode())
        self.assertEqual(code, 250, text)
        client.quit()

    def test_localhost_name_is_resolved_and_used(self):
        sink = self.start_sink()
        proxy = self.proxy_with(f"localhost:{sink.port}")
        self.assertTrue(proxy.wait_log(re.compile(
            rf"backend name localhost:{sink.port} resolves to .*127\.0\.0\.1:{sink.port}")),
            proxy.dump())
        self.assertTrue(proxy.handoff(), proxy.dump())
        mark = proxy.mark()
        self.send(proxy, "by-name")
        self.assertIn(b"by-name", sink.wait_messages(1)[0])
        self.assertTrue(proxy.wait_log(connected_to(sink.port), start=mark), proxy.dump())
        status, body = self.get(proxy, "/readyz?verbose")
        self.assertEqual(status, 200, body)
        self.assertIn(f"[+]backend 127.0.0.1:{sink.port} (localhost:{sink.port}) ok", body)

    def test_one_stopped_mid_run_sessions_go_to_the_other(self):
        first, second = self.start_sink(), self.start_sink()
        proxy = self.proxy_with([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"])
        self.send(proxy, "before")
        self.assertIn(b"before", first.wait_messages(1)[0])
        first.stop()
        # The probe (every 30 s) has not noticed: the session's connect is refused and moves on.
        mark = proxy.mark()
        self.send(proxy, "after")
        self.assertIn(b"after", second.wait_messages(1)[0])
        self.assertTrue(proxy.wait_log(re.compile(LOG_FAILOVER.format(a=first.port,
                                                                      b=second.port)),
                                       start=mark), proxy.dump())
        self.assertTrue(proxy.wait_log(connected_to(second.port), start=mark), proxy.dump())

    def test_round_robin_spreads_sessions_over_both(self):
        first, second = self.start_sink(), self.start_sink()
        proxy = self.proxy_with([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"],
                                balance="round_robin")
        for i in range(4):
            self.send(proxy, f"spread-{i}")
        harness.wait_until(lambda: len(first.messages()) + len(second.messages()) == 4, 10.0,
                           what="four messages delivered")
        self.assertGreaterEqual(len(first.messages()), 1)
        self.assertGreaterEqual(len(second.messages()), 1)
        if proxy.config["workers"] == 1:  # one worker: one turn counter, strictly alternating
            self.assertEqual((len(first.messages()), len(second.messages())), (2, 2))

    def test_health_transitions_logged_once_readiness_and_metrics(self):
        a, b = self.start_backend(), self.start_backend()
        proxy = self.proxy_with([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"],
                                probe_interval="1s")
        self.assertEqual(self.metric(proxy, "certrelay_backend_up"), 1.0)
        self.assertEqual(self.metric(
            proxy, f'certrelay_backend_address_up{{backend="127.0.0.1:{a.port}"}}'), 1.0)
        mark = proxy.mark()
        a.stop_listening()
        down = re.compile(rf"backend probe 127\.0\.0\.1:{a.port} unreachable")
        self.assertTrue(proxy.wait_log(down, 10.0, start=mark), proxy.dump())
        # Still ready: one backend is enough; the down one is listed, not required.
        status, body = self.get(proxy, "/readyz?verbose")
        self.assertEqual(status, 200, body)
        self.assertIn(f"[-]backend 127.0.0.1:{a.port} failed (not required): unreachable", body)
        self.assertIn(f"[+]backend 127.0.0.1:{b.port} ok", body)
        self.assertEqual(self.metric(
            proxy, f'certrelay_backend_address_up{{backend="127.0.0.1:{a.port}"}}'), 0.0)
        self.assertEqual(self.metric(proxy, "certrelay_backend_up"), 1.0)
        # Two more probe rounds: the transition was logged once.
        rounds = proxy.mark()
        self.assertTrue(proxy.wait_log(down, 0.1, start=mark))
        probes = len(b.snapshot())
        b.wait_for(lambda backend: len(backend.snapshot()) >= probes + 2, 10.0, "two more probes")
        self.assertEqual(len([x for x in proxy.lines()[mark:] if down.search(x)]), 1,
                         proxy.lines()[rounds:])
        a.listen()
        up = re.compile(rf"backend 127\.0\.0\.1:{a.port} answered the capability probe")
        self.assertTrue(proxy.wait_log(up, 10.0, start=mark), proxy.dump())

    def test_name_that_does_not_resolve(self):
        proxy = self.proxy_with("nonexistent.invalid:25")
        self.assertTrue(proxy.wait_log(re.compile(
            r"backend name nonexistent\.invalid:25 does not resolve: ")), proxy.dump())
        self.assertTrue(proxy.wait_log(re.compile(r"backend not answering yet")), proxy.dump())
        status, body = self.get(proxy, "/readyz?verbose")
        self.assertEqual(status, 503, body)
        self.assertIn("[-]backend failed: no healthy backend; nonexistent.invalid:25 does not "
                      "resolve", body)
        self.assertEqual(self.metric(proxy, "certrelay_backend_up"), 0.0)
        # A session: 4xx, never 5xx, for our own trouble.
        c = self.client(proxy)
        self.assertReply(c.ehlo(HELO), 250, c)
        reply = c.command("MAIL FROM:<a@client.test.example>")
        if reply.code == 250:
            reply = c.command(f"RCPT TO:<{RCPT}>")
        self.assertEqual(reply.code // 100, 4, c.dump())

    def test_unresolved_name_beside_a_working_backend(self):
        sink = self.start_sink()
        proxy = self.proxy_with(["nonexistent.invalid:25", f"127.0.0.1:{sink.port}"])
        status, body = self.get(proxy, "/readyz?verbose")
        self.assertEqual(status, 200, body)
        self.assertIn("[-]backend nonexistent.invalid:25 failed (not required): "
                      "nonexistent.invalid:25 does not resolve", body)
        self.send(proxy, "beside")
        self.assertIn(b"beside", sink.wait_messages(1)[0])


class PostfixAndSinkTest(harness.IntegrationTest):
    """A real Postfix first, smtp-sink second (smtp-sink offers XFORWARD, not XCLIENT ADDR)."""

    def test_postfix_stopped_sessions_go_to_the_sink(self):
        if not harness.is_root():
            raise unittest.SkipTest("a private Postfix needs root")
        postfix = PostfixInstance(os.path.join(self.tmpdir, "postfix"),
                                  extra_main={"smtpd_authorized_xforward_hosts": "127.0.0.0/8"})
        self.addCleanup(postfix.stop)
        self.watch(postfix)
        sink = self.start_sink()
        backends = [f"127.0.0.1:{postfix.port}", f"127.0.0.1:{sink.port}"]
        # auto resolves to XCLIENT from Postfix (first in the list): the sink, which cannot take
        # it, is unfit, logged, and gets no session; never a weaker hand-off.
        strict = NamedBackendsTest.proxy_with(self, backends)
        self.assertTrue(strict.wait_log(re.compile(
            rf"backend 127\.0\.0\.1:{sink.port} does not offer the identity hand-off in force "
            r"\(xclient, resolved from auto\)")), strict.dump())
        status, body = NamedBackendsTest.get(self, strict, "/readyz?verbose")
        self.assertEqual(status, 200, body)
        self.assertIn(f"[-]backend 127.0.0.1:{sink.port} failed (not required): does not offer",
                      body)
        NamedBackendsTest.send(self, strict, "xclient-to-postfix")
        strict.stop()
        # With XFORWARD in force both fit: Postfix first, the sink once Postfix is gone.
        proxy = NamedBackendsTest.proxy_with(self, backends, identity="xforward")
        mark = proxy.mark()
        NamedBackendsTest.send(self, proxy, "to-postfix")
        self.assertTrue(proxy.wait_log(connected_to(postfix.port), start=mark), proxy.dump())
        self.assertTrue(proxy.wait_log(re.compile(r"message accepted by backend: .*queued as"),
                                       start=mark), proxy.dump())
        self.assertEqual(sink.messages(), [])
        postfix.stop()
        mark = proxy.mark()
        NamedBackendsTest.send(self, proxy, "to-sink")
        self.assertIn(b"to-sink", sink.wait_messages(1)[0])
        self.assertTrue(proxy.wait_log(re.compile(LOG_FAILOVER.format(a=postfix.port,
                                                                      b=sink.port)),
                                       start=mark), proxy.dump())


if __name__ == "__main__":
    harness.main()
