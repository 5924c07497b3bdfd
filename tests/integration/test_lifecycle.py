#!/usr/bin/python3
"""The process's lifecycle (issue 11): a drain that Kubernetes can drive (readiness 503 at once,
still accepting for shutdown.delay, then listeners closed), POST /drain, SIGHUP during a drain,
SIGQUIT as graceful as SIGTERM, a second SIGTERM that still delivers the message in DATA, and a
second process on a served address refused with "address in use"."""

import http.client
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import REMOTE_DOMAIN, Expect  # noqa: E402

LOG_LISTENERS_CLOSED = re.compile(r"stopping: listeners closed")
LOG_FAST = re.compile(r"stopping fast \(second SIGTERM\)")


class LifecycleTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.behaviour = harness.Behaviour()
        self.backend = self.start_backend(self.behaviour)

    def start(self, delay: str = "0s", **overrides):
        self.proxy = self.start_proxy(self.backend.port, admin={"address": harness.ADMIN_FREE},
                                      shutdown={"delay": delay}, timeouts={"shutdown": "30s"},
                                      **overrides)
        self.admin_port = self.proxy.admin_port
        return self.proxy

    def http(self, method: str, target: str):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request(method, target)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def begin_message(self, helo: str):
        """A trusted session inside DATA, its first content bytes at the backend."""
        c = self.tls_client(self.proxy, self.pki.trusted, helo=helo)
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<r@{REMOTE_DOMAIN}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        c.send(f"Subject: {helo}\r\n\r\nfirst part\r\n")
        marker = f"Subject: {helo}".encode()
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if marker in x.received), None),
            what="the first part of the body at the backend")
        return c, conn

    def finish_message(self, c, conn):
        c.send("second part\r\n.\r\n")
        self.assertEqual(c.read_reply(timeout=10).last, self.behaviour.dot_reply, c.dump())
        self.backend.wait_for(lambda b: conn.messages, what="the message at the backend")

    def test_sigterm_readiness_fails_at_once_and_listeners_stay_for_the_delay(self):
        self.start(delay="3s")
        self.assertEqual(self.http("GET", "/readyz")[0], 200)
        mark = self.proxy.mark()
        self.proxy.proc.send_signal(signal.SIGTERM)
        self.assertTrue(self.proxy.wait_log(Expect.LOG_STOPPING, 5.0, start=mark), self.proxy.dump())
        status, body = self.http("GET", "/readyz?verbose")
        self.assertEqual(status, 503, body)
        self.assertIn("[-]draining failed", body)
        # Liveness never depends on the drain (a restart now would cut sessions).
        self.assertEqual(self.http("GET", "/livez")[0], 200)
        # Endpoint removal has not caught up yet: new sessions are still served in full.
        late = self.client(self.proxy)
        self.assertReply(late.ehlo("late.example"), 250, late)
        self.assertFalse(self.proxy.wait_log(LOG_LISTENERS_CLOSED, 1.0, start=mark),
                         "listeners closed before shutdown.delay")
        self.assertTrue(self.proxy.wait_log(LOG_LISTENERS_CLOSED, 10.0, start=mark),
                        self.proxy.dump())
        # The idle session is told 421 4.3.2, and the process ends cleanly.
        self.assertReply(late.read_reply(timeout=5), Expect.SHUTTING_DOWN, late)
        self.assertEqual(self.proxy.proc.wait(timeout=15), 0, self.proxy.dump())

    def test_post_drain_and_sighup_during_the_drain(self):
        self.start()
        busy, conn = self.begin_message("busy.example")
        mark = self.proxy.mark()
        self.assertEqual(self.http("POST", "/drain"), (202, "draining\n"))
        self.assertTrue(self.proxy.wait_log(re.compile(r"stopping \(admin /drain\)"), 5.0,
                                            start=mark), self.proxy.dump())
        self.assertEqual(self.http("GET", "/readyz")[0], 503)
        self.assertTrue(self.proxy.wait_log(LOG_LISTENERS_CLOSED, 5.0, start=mark),
                        self.proxy.dump())
        # SIGHUP while the drain waits for the message: a reload, never a kill.
        self.proxy.proc.send_signal(signal.SIGHUP)
        self.assertTrue(self.proxy.wait_log(re.compile(r"tls: SIGHUP: unchanged"), 5.0,
                                            start=mark), self.proxy.dump())
        self.assertTrue(self.proxy.alive(), self.proxy.dump())
        self.finish_message(busy, conn)
        self.assertEqual(self.proxy.proc.wait(timeout=15), 0, self.proxy.dump())

    def test_second_sigterm_delivers_the_message_in_data_and_closes_the_rest(self):
        self.start(delay="30s")
        busy, conn = self.begin_message("busy.example")
        # In a transaction but not in DATA: a fast stop does not wait for it.
        other = self.tls_client(self.proxy, self.pki.trusted, helo="other.example")
        self.assertReply(other.command("MAIL FROM:<b@x.example>"), 250, other)
        mark = self.proxy.mark()
        self.proxy.proc.send_signal(signal.SIGTERM)
        self.assertTrue(self.proxy.wait_log(Expect.LOG_STOPPING, 5.0, start=mark), self.proxy.dump())
        self.proxy.proc.send_signal(signal.SIGTERM)
        self.assertTrue(self.proxy.wait_log(LOG_FAST, 5.0, start=mark), self.proxy.dump())
        self.assertReply(other.read_reply(timeout=5), Expect.SHUTTING_DOWN, other)
        self.assertTrue(other.wait_closed(5.0), other.dump())
        self.assertTrue(self.proxy.alive(), "exited with a message in DATA\n" + self.proxy.dump())
        self.finish_message(busy, conn)
        self.assertEqual(self.proxy.proc.wait(timeout=15), 0, self.proxy.dump())

    def test_sigterm_after_post_drain_keeps_draining(self):
        # The kubelet sends SIGTERM as soon as a preStop `certrelay ctl drain` returns: that
        # SIGTERM is the first, not the impatient second one.
        self.start(delay="30s")
        busy, conn = self.begin_message("busy.example")
        other = self.tls_client(self.proxy, self.pki.trusted, helo="other.example")
        self.assertReply(other.command("MAIL FROM:<b@x.example>"), 250, other)
        mark = self.proxy.mark()
        self.assertEqual(self.http("POST", "/drain"), (202, "draining\n"))
        self.assertTrue(self.proxy.wait_log(re.compile(r"stopping \(admin /drain\)"), 5.0,
                                            start=mark), self.proxy.dump())
        self.proxy.proc.send_signal(signal.SIGTERM)
        self.assertTrue(self.proxy.wait_log(re.compile(r"SIGTERM: draining already"), 5.0,
                                            start=mark), self.proxy.dump())
        # Still graceful: the session in a transaction is not cut, the message completes.
        self.assertReply(other.command(f"RCPT TO:<r@{REMOTE_DOMAIN}>"), 250, other)
        self.assertFalse(self.proxy.wait_log(LOG_FAST, 0.5, start=mark), self.proxy.dump())
        self.finish_message(busy, conn)
        # A second SIGTERM is the fast one.
        self.proxy.proc.send_signal(signal.SIGTERM)
        self.assertTrue(self.proxy.wait_log(LOG_FAST, 5.0, start=mark), self.proxy.dump())
        self.assertEqual(self.proxy.proc.wait(timeout=15), 0, self.proxy.dump())

    def test_sigquit_is_a_graceful_drain(self):
        self.start()
        idle = self.client(self.proxy)
        self.assertReply(idle.ehlo("idle.example"), 250, idle)
        started = time.monotonic()
        self.proxy.proc.send_signal(signal.SIGQUIT)
        self.assertReply(idle.read_reply(timeout=5), Expect.SHUTTING_DOWN, idle)
        self.assertEqual(self.proxy.proc.wait(timeout=15), 0, self.proxy.dump())
        self.assertLess(time.monotonic() - started, 15)
        self.assertRegex(self.proxy.log.text(), r"stopping \(SIGQUIT\)")

    def test_second_process_on_a_served_address_is_refused(self):
        first = self.start()
        address = f"127.0.0.1:{first.port}"
        second = harness.Proxy(self._subdir("second"), self.pki, self.backend.port, start=False,
                               listener=[{"name": "mx", "address": address}])
        result = harness.run([harness.CERTRELAY_BIN, "--config", second.config_path],
                             timeout=15, check=False)
        output = (result.stdout + result.stderr).decode()
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn(f"listener mx: cannot listen on {address}: address in use", output)
        self.assertNotRegex(output, Expect.LOG_READY)
        # The first one still serves every connection.
        c = self.client(first)
        self.assertReply(c.ehlo("still.example"), 250, c)


if __name__ == "__main__":
    harness.main()
