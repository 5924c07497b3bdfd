#!/usr/bin/python3
"""The operator's side of issue 11 through the real binary: --version and --help, and
`certrelay ctl` (usage errors, a config without [admin], an endpoint that refuses). The admin
endpoint of a running daemon is tested in AdminEndpointTest, skipped until the server starts
it (the AdminServer itself is unit-tested in tests/unit/proxy/admin)."""

import http.client
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Proxy, RefusingPort  # noqa: E402

ADMIN_LISTENING = re.compile(r"admin: listening on 127\.0\.0\.1:(?P<port>\d+)")


class CommandLineTest(harness.IntegrationTest):

    def cli(self, *args, timeout=10):
        result = harness.run([harness.CERTRELAY_BIN, *args], timeout=timeout, check=False)
        return result.returncode, result.stdout.decode(), result.stderr.decode()

    def config(self, **overrides) -> Proxy:
        """A valid config on disk, daemon not started; the backend is never contacted."""
        refusing = RefusingPort()
        self.addCleanup(refusing.close)
        return Proxy(self._subdir("proxy"), self.pki, refusing.port, start=False, **overrides)

    def test_version_names_revision_and_libraries(self):
        code, out, _ = self.cli("--version")
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertEqual(len(lines), 3, out)
        self.assertRegex(lines[0], r"^certrelay \d+\.\d+\.\d+\S* \(revision \S+\)$")
        # The OpenSSL and libuv actually loaded, as they name themselves.
        self.assertRegex(lines[1], r"^OpenSSL 3\.\d+\.\d+")
        self.assertRegex(lines[2], r"^libuv \d+\.\d+\.\d+")

    def test_help_lists_options_ctl_signals_and_exit_codes(self):
        code, out, err = self.cli("--help")
        self.assertEqual(code, 0)
        self.assertEqual(err, "")
        for text in ("--config FILE", "--check-config", "--version", "ctl drain", "ctl reload",
                     "ctl health", "SIGTERM, SIGQUIT", "SIGINT, a 2nd SIGTERM", "SIGHUP",
                     "exit status: 0 clean, 1 runtime or configuration error, 2 usage error",
                     "docs: README.md"):
            self.assertIn(text, out)
        self.assertEqual(self.cli("-h")[1], out)

    def test_unknown_argument_is_a_usage_error(self):
        code, out, err = self.cli("--frobnicate")
        self.assertEqual(code, 2)
        self.assertIn("unknown argument '--frobnicate'", err)

    def test_ctl_usage_errors_exit_2(self):
        cases = [((), "which command? drain, reload or health"),
                 (("restart",), "unknown command 'restart'"),
                 (("drain", "health"), "one command at a time"),
                 (("drain", "-c"), "-c needs a file name"),
                 (("drain", "--now"), "unknown option '--now'")]
        for args, message in cases:
            with self.subTest(args=args):
                code, out, err = self.cli("ctl", *args)
                self.assertEqual(code, 2, err)
                self.assertEqual(out, "")
                self.assertIn(f"certrelay ctl: {message}", err)
                self.assertIn("usage: certrelay ctl drain|reload|health", err)
        code, out, _ = self.cli("ctl", "--help")
        self.assertEqual(code, 0)
        self.assertIn("usage: certrelay ctl", out)

    def test_ctl_needs_a_config_with_admin(self):
        missing = os.path.join(self.tmpdir, "no-such.toml")
        code, _, err = self.cli("ctl", "drain", "-c", missing)
        self.assertEqual(code, 2)
        self.assertIn(missing, err)

        proxy = self.config()
        code, out, err = self.cli("ctl", "health", "-c", proxy.config_path)
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertIn("has no [admin] address", err)

    def test_ctl_unreachable_endpoint_exit_2(self):
        refusing = RefusingPort()
        self.addCleanup(refusing.close)
        address = f"127.0.0.1:{refusing.port}"
        proxy = self.config(admin={"address": address})
        for command in ("drain", "reload", "health"):
            with self.subTest(command):
                code, out, err = self.cli("ctl", command, "--config", proxy.config_path)
                self.assertEqual(code, 2, err)
                self.assertEqual(out, "")
                self.assertIn(f"cannot reach the admin endpoint {address}", err)


class AdminEndpointTest(harness.IntegrationTest):
    """A running daemon with [admin]: probes over HTTP and `certrelay ctl`."""

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        # A fixed port: `certrelay ctl` reads it from the config (port 0 would name no endpoint).
        self.proxy = self.start_proxy(self.backend.port,
                                      admin={"address": harness.ADMIN_FREE})
        match = next((m for m in map(ADMIN_LISTENING.search, self.proxy.lines()) if m), None)
        self.assertIsNotNone(match, "no 'admin: listening on' line before 'ready:'")
        self.admin_port = int(match.group("port"))

    def get(self, target: str, method: str = "GET"):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request(method, target)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type"), response.read().decode()
        finally:
            conn.close()

    def ctl(self, command: str):
        result = harness.run([harness.CERTRELAY_BIN, "ctl", command, "-c", self.proxy.config_path],
                             timeout=10, check=False)
        return result.returncode, result.stdout.decode(), result.stderr.decode()

    def test_probes_and_metrics(self):
        self.assertEqual(self.get("/livez"), (200, "text/plain; charset=utf-8", "ok\n"))
        self.assertEqual(self.get("/healthz")[0], 200)
        status, _, body = self.get("/readyz?verbose")
        self.assertEqual(status, 200, body)
        self.assertTrue(body.endswith("readyz check passed\n"), body)
        self.assertTrue(all(line.startswith("[+]") for line in body.splitlines()[:-1]), body)
        status, content_type, _ = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(content_type, "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(self.get("/nowhere")[0], 404)
        self.assertEqual(self.get("/drain")[0], 405)

    def test_ctl_health_then_drain(self):
        code, out, err = self.ctl("health")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.endswith("readyz check passed\n"), out)
        code, out, err = self.ctl("drain")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, "draining\n")
        self.assertEqual(self.proxy.proc.wait(timeout=15), 0, self.proxy.log.text())


if __name__ == "__main__":
    harness.main()
