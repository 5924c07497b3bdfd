#!/usr/bin/python3
"""Metrics through the admin endpoint, scraped by a real Prometheus (Debian's `prometheus`,
started privately on a free port with a 1 s scrape interval): after one 454, Prometheus's own
HTTP API answers certrelay_rcpt_total{result="relay_denied"} = 1; `promtool check metrics` on
the exposition prints nothing."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import REMOTE_DOMAIN, Expect  # noqa: E402

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


class MetricsTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.proxy = self.start_proxy(self.backend.port, admin={"address": harness.ADMIN_FREE})
        self.admin_port = self.proxy.admin_port

    def exposition(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            return response.read().decode()
        finally:
            conn.close()

    def sample(self, text: str, name: str, labels: str = "") -> float | None:
        """The value of one series in an exposition, e.g. sample(t, "x_total", 'result="a"')."""
        wanted = name + ("{" + labels + "}" if labels else "")
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return None

    def deny_one(self):
        c = self.tls_client(self.proxy, self.pki.untrusted, helo="metrics.example")
        self.assertReply(c.command("MAIL FROM:<a@x.example>"), 250, c)
        self.assertEqual(c.command(f"RCPT TO:<r@{REMOTE_DOMAIN}>").last,
                         Expect.relay_denied(f"r@{REMOTE_DOMAIN}"), c.dump())
        self.assertReply(c.command("QUIT"), 221, c)

    @unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
    def test_exposition_passes_promtool_and_counts_a_denial(self):
        self.deny_one()
        text = self.exposition()
        for name in ("certrelay_build_info", "certrelay_connections_total",
                     "certrelay_tls_handshakes_total", "certrelay_rcpt_total",
                     "certrelay_smtp_replies_total", "certrelay_backend_up",
                     "certrelay_policy_entries", "certrelay_reloads_total",
                     "certrelay_tls_certificate_not_after_timestamp_seconds",
                     "certrelay_draining"):
            self.assertIn(f"# TYPE {name} ", text, f"{name} missing\n{text}")
        self.assertEqual(self.sample(text, "certrelay_rcpt_total", 'result="relay_denied"'), 1.0,
                         text)
        self.assertEqual(self.sample(text, "certrelay_smtp_replies_total", 'code="454"'), 1.0, text)
        self.assertEqual(self.sample(text, "certrelay_backend_up"), 1.0, text)
        self.assertEqual(self.sample(text, "certrelay_draining"), 0.0, text)
        result = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                                capture_output=True, timeout=30)
        output = (result.stdout + result.stderr).decode()
        self.assertEqual(result.returncode, 0, output)
        self.assertEqual(output.strip(), "", output)

    @unittest.skipUnless(PROMETHEUS, "prometheus not installed (Debian package prometheus)")
    def test_a_real_prometheus_scrapes_the_denial(self):
        port = harness.free_port()
        directory = self._subdir("prometheus")
        os.makedirs(directory, exist_ok=True)
        config = os.path.join(directory, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: certrelay\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{self.admin_port}']\n")
        server = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={directory}/data",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (server.terminate(), server.wait(10)))
        self.deny_one()
        query = urllib.parse.quote('certrelay_rcpt_total{result="relay_denied"}')
        value = None
        deadline = time.monotonic() + 30
        # Bounded polling of Prometheus's API: a scrape is the event, every second.
        while time.monotonic() < deadline and value is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", f"/api/v1/query?query={query}")
                body = json.loads(conn.getresponse().read())
                conn.close()
                results = body.get("data", {}).get("result", [])
                if results:
                    value = float(results[0]["value"][1])
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        self.assertEqual(value, 1.0, "Prometheus never returned the series")


if __name__ == "__main__":
    harness.main()
