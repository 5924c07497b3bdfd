#!/usr/bin/python3
"""`openssl s_client -starttls smtp` with a client certificate: the dialogue an operator
would type by hand. s_client does EHLO + STARTTLS itself; we then talk inside TLS."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Expect, OPENSSL, REMOTE_DOMAIN, LOCAL_DOMAIN  # noqa: E402


class SClient:
    """openssl s_client driven line by line through pipes. s_client writes what it receives
    straight to stdout (unbuffered), so replies can be awaited as lines."""

    def __init__(self, port: int, ca: str, cert=None, helo: str = "sclient.test.example"):
        args = [OPENSSL, "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{port}",
                "-name", helo, "-crlf", "-quiet",
                # Verify the proxy's chain (leaf then CA, as configured) and name.
                "-CAfile", ca, "-verify_return_error", "-verify_hostname", harness.HOSTNAME]
        if cert is not None:
            args += ["-cert", cert.cert, "-key", cert.key]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = harness.LogCapture(self.proc.stdout, "s_client stdout")
        self.err = harness.LogCapture(self.proc.stderr, "s_client stderr")
        self.seen = 0          # stdout lines already consumed as replies
        self.sent: list[str] = []

    def send(self, line: str):
        self.sent.append(line)
        self.proc.stdin.write(line.encode() + b"\n")   # -crlf turns LF into CRLF
        self.proc.stdin.flush()

    def reply(self, timeout: float = 5.0) -> list[str]:
        """The next complete SMTP reply (all its lines)."""
        lines = []
        while True:
            m = self.out.wait_for(re.compile(r"^\d{3}[ -]?"), timeout, start=self.seen)
            if m is None:
                raise AssertionError(f"no reply from s_client within {timeout}s\n{self.dump()}")
            line = self.out.lines()[self.seen]
            self.seen += 1
            if not re.match(r"^\d{3}([ -]|$)", line):
                continue    # anything else s_client prints
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return lines

    def command(self, line: str, timeout: float = 5.0) -> list[str]:
        self.send(line)
        return self.reply(timeout)

    def close(self, timeout: float = 5.0):
        try:
            self.proc.stdin.close()     # EOF; with -quiet (-ign_eof) s_client still waits
        except OSError:                 # for the server to close
            pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def dump(self) -> str:
        return ("--- s_client sent ---\n" + "\n".join(self.sent)
                + "\n--- s_client stdout ---\n" + self.out.text()
                + "\n--- s_client stderr ---\n" + self.err.text())


class SClientTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.proxy = self.start_proxy(self.backend.port)

    def s_client(self, cert) -> SClient:
        client = SClient(self.proxy.port, self.pki.ca.cert, cert)
        self.addCleanup(client.close)
        return self.watch(client)

    def test_dialogue_inside_tls_with_trusted_certificate(self):
        mark = self.proxy.mark()
        s = self.s_client(self.pki.trusted)
        ehlo = s.command("EHLO sclient.test.example")
        self.assertTrue(ehlo[-1].startswith("250 "), ehlo)
        keywords = [l[4:].split(" ")[0].upper() for l in ehlo[1:]]
        self.assertNotIn("STARTTLS", keywords, f"STARTTLS offered inside TLS: {ehlo}")
        self.assertIn("PIPELINING", keywords)
        again = s.command("STARTTLS")
        self.assertEqual(again, [Expect.TLS_ALREADY_ACTIVE])
        # TLS is unaffected: the session goes on.
        self.assertTrue(s.command("NOOP")[-1].startswith("250"), s.dump())
        self.assertTrue(s.command("MAIL FROM:<ops@client.test.example>")[-1].startswith("250"))
        self.assertTrue(s.command(f"RCPT TO:<ops@{REMOTE_DOMAIN}>")[-1].startswith("250"),
                        "trusted client over s_client must be allowed to relay")
        self.assertTrue(s.command("QUIT")[-1].startswith("221"))
        s.close()   # exit status: see test_quit_ends_tls_with_close_notify
        self.assertTrue(self.proxy.wait_log(Expect.LOG_TRUSTED_TLS, start=mark))
        session = self.backend.wait_for(lambda b: b.sessions(), what="backend session")[-1]
        self.assertIn(f"LOGIN={harness.TRUSTED_IDENTITY}", session.find("XCLIENT")[0])

    def test_without_certificate_remote_is_refused(self):
        s = self.s_client(None)
        s.command("EHLO sclient.test.example")
        self.assertTrue(s.command("MAIL FROM:<ops@client.test.example>")[-1].startswith("250"))
        rcpt = f"ops@{REMOTE_DOMAIN}"
        self.assertEqual(s.command(f"RCPT TO:<{rcpt}>"), [Expect.relay_denied(rcpt)])
        self.assertTrue(s.command(f"RCPT TO:<ops@{LOCAL_DOMAIN}>")[-1].startswith("250"))
        self.assertTrue(s.command("QUIT")[-1].startswith("221"))

    def test_quit_ends_tls_with_close_notify(self):
        # After 221 the server should end TLS properly (close_notify) before closing TCP, as
        # Postfix does. OpenSSL 3 clients otherwise report "unexpected eof while reading" and
        # s_client exits 1 (a truncation they cannot tell from an attack).
        s = self.s_client(self.pki.trusted)
        s.command("EHLO sclient.test.example")
        self.assertTrue(s.command("QUIT")[-1].startswith("221"))
        code = s.close()
        self.assertNotIn("unexpected eof", s.err.text(), s.dump())
        self.assertEqual(code, 0, s.dump())


if __name__ == "__main__":
    harness.main()
