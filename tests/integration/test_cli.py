#!/usr/bin/python3
"""The command line: --version, --check-config (ok, and `file:line: reason` on errors), a
daemon that refuses a bad config instead of half-starting, and a clean SIGTERM exit."""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pki as pki_module  # noqa: E402
from harness import Expect, Proxy  # noqa: E402

CONFIG_ERROR = Expect.CONFIG_ERROR


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class CliTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()

    def config(self) -> Proxy:
        """A valid config written to disk, daemon not started."""
        return Proxy(self._subdir("proxy"), self.pki, self.backend.port, start=False)

    def cli(self, *args, timeout=10):
        return harness.run([harness.CERTRELAY_BIN, *args], timeout=timeout, check=False)

    def break_line(self, proxy: Proxy, startswith: str, replacement: str) -> int:
        """Replaces the config line starting with `startswith`; returns its 1-based number."""
        lines = harness.read_text(proxy.config_path).split("\n")
        index = next(i for i, line in enumerate(lines) if line.startswith(startswith))
        lines[index] = replacement
        with open(proxy.config_path, "w") as f:
            f.write("\n".join(lines))
        return index + 1

    def test_version(self):
        result = self.cli("--version")
        self.assertEqual(result.returncode, 0, result)
        first = result.stdout.decode().splitlines()[0]
        self.assertRegex(first, r"^certrelay \d+\.\d+(\.\d+)?\S* \(revision \S+\)$")

    def test_check_config_ok(self):
        proxy = self.config()
        for args in (["--check-config", "-c", proxy.config_path],
                     ["-t", "--config", proxy.config_path]):
            result = self.cli(*args)
            self.assertEqual(result.returncode, 0, f"{args}: {result}")

    def test_check_config_errors_name_file_and_line(self):
        cases = [
            ("TOML syntax", "workers =", "workers = = 1"),
            ("bad address", 'address = "127.0.0.1:0"', 'address = "127.0.0.1:99999"'),
            ("bad duration", "command =", 'command = "5 fortnights"'),
            ("missing certificate file", "cert =", 'cert = "no-such-file.crt"'),
            ("missing fingerprints file", "fingerprints =", 'fingerprints = "no-such-table"'),
            ("line length out of range", "max_line_length =", "max_line_length = 0"),
        ]
        for what, key, replacement in cases:
            with self.subTest(what):
                proxy = self.config()
                line = self.break_line(proxy, key, replacement)
                result = self.cli("--check-config", "-c", proxy.config_path)
                output = (result.stdout + result.stderr).decode()
                self.assertEqual(result.returncode, 1, f"{what}: exit {result.returncode}\n{output}")
                match = CONFIG_ERROR.search(output)
                self.assertIsNotNone(match, f"{what}: no 'file:line: reason' in {output!r}")
                self.assertEqual(int(match.group("line")), line, f"{what}: {output!r}")

    def check_tls_files(self, chain: bytes | None = None, key: bytes | None = None):
        """--check-config after replacing the proxy's server chain and/or key; (exit, output)."""
        proxy = self.config()
        for name, content in ((os.path.basename(self.pki.server_chain), chain),
                              (os.path.basename(self.pki.server.key), key)):
            if content is not None:
                with open(os.path.join(proxy.dir, name), "wb") as f:
                    f.write(content)
        result = self.cli("--check-config", "-c", proxy.config_path)
        return result.returncode, (result.stdout + result.stderr).decode(), proxy

    def test_check_config_reports_tls_material(self):
        # A certificate expiring in 3 days: fine today, with a warning naming the file.
        soon = pki_module.issue_server(self._subdir("soon"), "soon", self.pki.ca, days=3)
        code, output, proxy = self.check_tls_files(pki_module.chain_bytes(soon, self.pki.ca),
                                                   read_bytes(soon.key))
        chain = os.path.join(proxy.dir, os.path.basename(self.pki.server_chain))
        self.assertEqual(code, 0, output)
        self.assertRegex(output, r"warning: tls\.cert " + re.escape(chain) +
                         r": certificate expires in [23] days \(\d{4}-\d\d-\d\d ")
        # The key of another certificate: an error naming both files.
        code, output, proxy = self.check_tls_files(key=read_bytes(self.pki.untrusted.key))
        self.assertEqual(code, 1, output)
        self.assertIn(" does not match tls.cert ", output)
        # An encrypted key: one sentence, none of OpenSSL's error lines.
        encrypted = os.path.join(self.tmpdir, "encrypted.key")
        harness.run([harness.OPENSSL, "pkey", "-in", self.pki.server.key, "-aes256",
                     "-passout", "pass:secret", "-out", encrypted])
        code, output, proxy = self.check_tls_files(key=read_bytes(encrypted))
        self.assertEqual(code, 1, output)
        self.assertRegex(output.strip(), r"^tls\.key \S+: the private key is encrypted; certrelay "
                         r"needs it unencrypted \(it reads keys without a passphrase\)$")

    def test_daemon_refuses_bad_config(self):
        proxy = self.config()
        self.break_line(proxy, "cert =", 'cert = "no-such-file.crt"')
        try:
            result = self.cli("--config", proxy.config_path, timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("daemon with a bad config kept running")
        output = (result.stdout + result.stderr).decode()
        self.assertNotEqual(result.returncode, 0, output)
        self.assertNotRegex(output, Expect.LOG_READY)
        self.assertRegex(output, CONFIG_ERROR)

    def test_missing_config_file(self):
        result = self.cli("--config", os.path.join(self.tmpdir, "absent.toml"))
        self.assertNotEqual(result.returncode, 0, result)

    def test_listens_on_reported_port_and_exits_0_on_sigterm(self):
        proxy = self.start_proxy(self.backend.port)
        self.assertIn("mx", proxy.ports)
        with harness.connect(proxy.port) as c:     # checks the greeting
            self.assertReply(c.ehlo("cli.example"), 250, c)
            c.quit()
        self.assertEqual(proxy.stop(), 0, proxy.dump())

    def test_sigterm_with_idle_session(self):
        proxy = self.start_proxy(self.backend.port, timeouts={"shutdown": "2s"})
        c = self.client(proxy)
        self.assertReply(c.ehlo("cli.example"), 250, c)
        started = time.monotonic()
        proxy.proc.send_signal(signal.SIGTERM)
        try:
            proxy.proc.wait(2 + 3)
        except subprocess.TimeoutExpired:
            self.fail("not exited within shutdown timeout (2s) + 3s")
        self.assertEqual(proxy.proc.returncode, 0, proxy.dump())
        self.assertLess(time.monotonic() - started, 5)
        # The idle session was told (421) or closed; never left hanging.
        self.assertTrue(c.wait_closed(3.0), c.dump())
        if c.buf:
            self.assertRegex(c.buf.decode(errors="replace"), Expect.SHUTDOWN)


if __name__ == "__main__":
    harness.main()
