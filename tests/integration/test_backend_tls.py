#!/usr/bin/python3
"""TLS from certrelay to its backend (backend.tls = "starttls" | "implicit"): a real Postfix
that requires TLS (smtpd_tls_security_level = encrypt) gets the session, XCLIENT included,
only over a TLS connection whose certificate the proxy verified; a wrong CA or a wrong name
gets the client a 4xx and never a plaintext session; a backend without STARTTLS keeps the proxy
from starting, and fails sessions closed when it stops offering it; bytes a backend sends after
its 220 to STARTTLS are refused. The Postfix tests need root (they skip otherwise); the
scripted-backend tests do not."""

import os
import re
import shutil
import smtplib
import ssl
import sys
import tomllib
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import recipes  # noqa: E402
from harness import (Expect, REMOTE_DOMAIN, TRUSTED_IDENTITY, Behaviour,  # noqa: E402
                     PostfixInstance, RefusingPort, ScriptedBackend, client_context,
                     unique_message)
from pki import issue_cert, issue_client, make_ca  # noqa: E402
from tls_support import run_expecting_exit  # noqa: E402

HELO = "client.test.example"
SENDER = "alice@client.test.example"
BACKEND_NAME = "backend.test.example"   # the only name in the backend's certificate (no IP)
SERVER_EXTENSIONS = [f"subjectAltName=DNS:{BACKEND_NAME}", "extendedKeyUsage=serverAuth",
                     "keyUsage=critical,digitalSignature"]

# certrelay's lines.
LOG_READY_TLS = re.compile(r"backend connection to 127\.0\.0\.1:(?P<port>\d+) ready \("
                           r"(?P<tls>TLSv1\.[23] with cipher \S+ .*verified for "
                           + re.escape(BACKEND_NAME) + r".*)\)$")
LOG_NOT_STARTING = re.compile(r'backend\.tls = "starttls" but backend 127\.0\.0\.1:\d+ does not '
                              r"offer STARTTLS \(the backend's EHLO reply has no STARTTLS; .*\); "
                              r"not starting")
# Postfix's smtpd: a TLS session from the proxy (before XCLIENT, the proxy's own address).
PF_TLS = (r"(?P<pid>\[\d+\]): (?P<kind>Anonymous|Untrusted|Trusted) TLS connection established "
          r"from \S+\[127\.0\.0\.1\]: (?P<what>TLSv1\.[23] with cipher .*)$")


class PostfixTlsTest(harness.IntegrationTest):
    """One private Postfix for the class: its smtpd on `port` requires STARTTLS (encrypt), and
    an smtps service (wrapper mode) serves implicit TLS; both ask for a client certificate and
    verify it against the test CA (Trusted when it verifies)."""

    postfix: PostfixInstance = None

    @classmethod
    def setUpClass(cls):
        if not harness.is_root():
            raise unittest.SkipTest("a private Postfix needs root")
        super().setUpClass()
        try:
            certs = os.path.join(cls._class_dir, "backend-pki")
            cls.backend_cert = issue_cert(certs, "backend", f"/CN={BACKEND_NAME}", cls.pki.ca,
                                          SERVER_EXTENSIONS)
            cls.other_ca = make_ca(certs, "other-ca", "/CN=some other CA")
            cls.proxy_cert = issue_client(certs, "proxy-client", "relay.proxy.test.example",
                                          cls.pki.ca)
            tls = {
                "smtpd_tls_cert_file": cls.backend_cert.cert,
                "smtpd_tls_key_file": cls.backend_cert.key,
                "smtpd_tls_CAfile": cls.pki.ca.cert,
                "smtpd_tls_security_level": "encrypt",
                "smtpd_tls_ask_ccert": "yes",
                "smtpd_tls_loglevel": "1",
            }
            # smtps: implicit TLS (RFC 8314). ccert: as the main service, but with Postfix's
            # TLS log level 2, which names the client certificate (subject CN, issuer,
            # fingerprint); level 1 only says "Trusted" and the client's signature. certrelay:
            # docs/backends.md's recipe.
            cls.postfix = PostfixInstance(
                os.path.join(cls._class_dir, "postfix"), extra_main=tls,
                services={"smtps": {"smtpd_tls_wrappermode": "yes"},
                          "ccert": {"smtpd_tls_loglevel": "2"},
                          "certrelay": cls.recipe_service()})
        except Exception:
            super().tearDownClass()
            raise

    @classmethod
    def recipe_paths(cls) -> dict:
        """docs/backends.md's TLS recipe on this machine: its names, addresses and files."""
        return {"/etc/postfix/tls/mx.internal.example.crt": cls.backend_cert.cert,
                "/etc/postfix/tls/mx.internal.example.key": cls.backend_cert.key,
                "/etc/postfix/tls/internal-ca.crt": cls.pki.ca.cert,
                "/etc/certrelay/backend/internal-ca.crt": cls.pki.ca.cert,
                "/etc/certrelay/backend/proxy.crt": cls.proxy_cert.cert,
                "/etc/certrelay/backend/proxy.key": cls.proxy_cert.key,
                "10.0.0.7": "127.0.0.1", "10.0.1.5": "127.0.0.1",
                "mx.internal.example": BACKEND_NAME}

    @classmethod
    def recipe_service(cls) -> dict:
        """The recipe's master.cf service as PostfixInstance -o settings (PostfixInstance writes
        the service line itself, on its own port)."""
        paths = {k: v for k, v in cls.recipe_paths().items()
                 if k.startswith("/etc/postfix") or k.startswith("10.")}
        lines = recipes.recipe("postfix-tls-master.cf", 10025, paths).splitlines()
        if not re.fullmatch(r"127\.0\.0\.1:10025\s+inet(\s+[-n]){5}\s+smtpd", lines[0]):
            raise AssertionError(f"unexpected service line in the recipe: {lines[0]!r}")
        settings = {}
        for line in lines[1:]:
            m = re.fullmatch(r"\s+-o (\w+)=(\S*)", line)
            if not m:
                raise AssertionError(f"not an -o line in the recipe: {line!r}")
            settings[m.group(1)] = m.group(2)
        return settings

    @classmethod
    def tearDownClass(cls):
        if cls.postfix:
            cls.postfix.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.watch(self.postfix)

    def tls_proxy(self, port=None, **backend):
        """A proxy whose backend is this Postfix, with `backend` merged into [backend]."""
        settings = {"tls": "starttls", "tls_ca": self.pki.ca.cert,
                    "tls_server_name": BACKEND_NAME}
        settings.update(backend)
        settings = {k: v for k, v in settings.items() if v is not None}
        port = port or self.postfix.port
        settings["address"] = f"127.0.0.1:{port}"
        return self.start_proxy(port, backend=settings)

    def smtp(self, proxy) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", proxy.port, local_hostname=HELO, timeout=15)
        self.addCleanup(client.close)
        client.ehlo()
        code, text = client.starttls(context=client_context(self.pki.trusted))
        self.assertEqual(code, 220, text)
        client.ehlo()
        return client

    def relay(self, proxy) -> tuple[str, str]:
        """One message from a trusted client to a remote recipient; (message id, queue id)."""
        client = self.smtp(proxy)
        rcpt = f"bob-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        self.assertEqual(client.mail(SENDER)[0], 250)
        code, text = client.rcpt(rcpt)
        self.assertEqual(code, 250, text)
        message_id, message = unique_message("over backend TLS", SENDER, [rcpt])
        code, text = client.data(message)
        self.assertEqual(code, 250, text)
        client.quit()
        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
        self.assertIsNotNone(m, f"not Postfix's end-of-data reply: {text!r}")
        return message_id, m.group(1).decode()

    def session_tls(self, queue_id: str, start: int, service: str = "postfix") -> re.Match:
        """The TLS line of the smtpd process that queued `queue_id` (its group "pid" is that
        "[1234]"), which must also log the client as XCLIENT described it (the proxy's trusted
        client, by XCLIENT LOGIN)."""
        pf = self.postfix
        queued = pf.wait_log(rf"{re.escape(service)}/smtpd(\[\d+\]): {re.escape(queue_id)}: "
                             rf"client=unknown\[127\.0\.0\.1\], sasl_method=XCLIENT, "
                             rf"sasl_username={re.escape(TRUSTED_IDENTITY)}$", start=start)
        pid = re.escape(queued.group(1))
        tls = pf.wait_log(re.escape(service) + r"/smtpd" + PF_TLS.replace(
            r"\[\d+\]", pid, 1), start=start)
        pf.wait_log(rf"{re.escape(queue_id)}: to=<bob-[0-9a-f]+@{re.escape(REMOTE_DOMAIN)}>, "
                    r".*status=sent", start=start)
        return tls

    def test_starttls_relays_over_verified_tls_and_resumes(self):
        start = len(self.postfix.log_lines())
        proxy = self.tls_proxy()
        _, first = self.relay(proxy)
        tls = self.session_tls(first, start)
        self.assertEqual(tls.group("kind"), "Anonymous", self.postfix.dump())  # no proxy cert
        ready = proxy.wait_log(LOG_READY_TLS)
        self.assertIsNotNone(ready, proxy.dump())
        self.assertEqual(int(ready.group("port")), self.postfix.port)
        # The next backend connection resumes the session an earlier one (or the probe) got:
        # no certificate, no signature on either side.
        mark = proxy.mark()
        _, second = self.relay(proxy)
        self.session_tls(second, start)
        resumed = proxy.wait_log(LOG_READY_TLS, start=mark)
        self.assertIsNotNone(resumed, proxy.dump())
        self.assertTrue(resumed.group("tls").endswith(", resumed"), resumed.group(0))

    def test_wrong_ca_is_a_4xx_and_a_logged_verify_error(self):
        start = len(self.postfix.log_lines())
        proxy = self.tls_proxy(tls_ca=self.other_ca.cert)
        client = self.smtp(proxy)
        code, text = client.mail(SENDER)
        self.assertEqual(code, 451, text)
        self.assertRegex(f"{code} {text.decode()}", Expect.BACKEND_TROUBLE)
        # Postfix sends its chain up to the CA of smtpd_tls_CAfile, which the proxy does not trust;
        # without that CA in the chain the reason would be "unable to get local issuer
        # certificate".
        line = proxy.wait_log(r"TLS failed: TLS handshake with 127\.0\.0\.1:\d+ failed: "
                              r"certificate verify failed: (self-signed certificate in "
                              r"certificate chain|unable to get local issuer certificate) "
                              r"\(expected name " + re.escape(BACKEND_NAME) + r"\)")
        self.assertIsNotNone(line, proxy.dump())
        client.quit()
        # Postfix saw handshakes it lost, never a session: no XCLIENT, no MAIL, nothing queued.
        after = "\n".join(self.postfix.log_lines()[start:])
        self.assertNotIn("client=unknown", after)
        self.assertNotIn("TLS connection established", after)

    def test_backend_ca_reloads_without_a_restart(self):
        # backend.tls_ca is watched like the server's certificates: the right CA, written over
        # the wrong one, is in force for the next backend connection.
        ca_file = os.path.join(self.tmpdir, "backend-ca.pem")
        shutil.copy(self.other_ca.cert, ca_file)
        proxy = self.tls_proxy(tls_ca=ca_file)
        client = self.smtp(proxy)
        self.assertEqual(client.mail(SENDER)[0], 451)
        client.quit()
        mark = proxy.mark()
        staged = ca_file + ".new"
        shutil.copy(self.pki.ca.cert, staged)
        os.replace(staged, ca_file)
        reloaded = proxy.wait_log(r"backend_tls: reloaded \((change|poll)\) CA 1 certificate, no "
                                  r"client certificate, sha256 [0-9a-f]{16}", start=mark)
        self.assertIsNotNone(reloaded, proxy.dump())
        start = len(self.postfix.log_lines())
        _, queue_id = self.relay(proxy)
        self.session_tls(queue_id, start)

    def test_certificate_without_the_address_is_refused(self):
        # Addressed by IP without tls_server_name: the certificate names only BACKEND_NAME.
        proxy = self.tls_proxy(tls_server_name=None)
        client = self.smtp(proxy)
        code, text = client.mail(SENDER)
        self.assertEqual(code, 451, text)
        line = proxy.wait_log(r"certificate verify failed: IP address mismatch "
                              r"\(expected name 127\.0\.0\.1\)")
        self.assertIsNotNone(line, proxy.dump())

    def test_plaintext_proxy_is_refused_by_an_encrypt_backend(self):
        # The status quo the option exists for: without backend.tls, this Postfix refuses MAIL
        # with its 530, which certrelay reports as a backend that refuses the proxy.
        proxy = self.tls_proxy(tls="none", tls_ca=None, tls_server_name=None)
        client = self.smtp(proxy)
        code, text = client.mail(SENDER)
        self.assertRegex(f"{code} {text.decode()}", Expect.BACKEND_REFUSED_PROXY)
        line = proxy.wait_log(r"refused the proxy: 530 5\.7\.0 Must issue a STARTTLS command "
                              r"first")
        self.assertIsNotNone(line, proxy.dump())

    def test_recipe_from_backends_md(self):
        port = self.postfix.ports["certrelay"]
        paths = {k: v for k, v in self.recipe_paths().items()
                 if not k.startswith("/etc/postfix") and k != "10.0.1.5"}
        settings = tomllib.loads(recipes.recipe("postfix-tls-certrelay", port, paths))
        self.assertEqual(settings["backend"]["address"], f"127.0.0.1:{port}")
        start = len(self.postfix.log_lines())
        proxy = self.start_proxy(port, **settings)
        _, queue_id = self.relay(proxy)
        tls = self.session_tls(queue_id, start, service="postfix/certrelay")
        self.assertEqual(tls.group("kind"), "Trusted", self.postfix.dump())
        # smtpd_tls_req_ccert: without its certificate the proxy's EHLO inside TLS is refused,
        # so its clients get a 451 (and nothing of theirs reached Postfix).
        backend = {k: v for k, v in settings["backend"].items() if k not in ("tls_cert", "tls_key")}
        bare = self.start_proxy(port, backend=backend)
        client = self.smtp(bare)
        code, text = client.mail(SENDER)
        self.assertEqual(code, 451, text)
        self.assertIsNotNone(bare.wait_log(r"refused: EHLO: 4\.7\.1 \S+ Error: No client "
                                           r"certificate presented"), bare.dump())

    def test_implicit_tls_to_a_wrapper_mode_port(self):
        start = len(self.postfix.log_lines())
        smtps = self.postfix.ports["smtps"]
        proxy = self.tls_proxy(port=smtps, tls="implicit")
        _, queue_id = self.relay(proxy)
        self.session_tls(queue_id, start, service="postfix/smtps")
        ready = proxy.wait_log(LOG_READY_TLS)
        self.assertIsNotNone(ready, proxy.dump())
        self.assertEqual(int(ready.group("port")), smtps)

    def test_proxy_client_certificate_reaches_postfix(self):
        start = len(self.postfix.log_lines())
        proxy = self.tls_proxy(port=self.postfix.ports["ccert"], tls_cert=self.proxy_cert.cert,
                               tls_key=self.proxy_cert.key)
        _, queue_id = self.relay(proxy)
        tls = self.session_tls(queue_id, start, service="postfix/ccert")
        # Trusted: Postfix verified the proxy's certificate against smtpd_tls_CAfile; its TLS 1.3
        # summary names the client's signature, and the same smtpd names the certificate.
        self.assertEqual(tls.group("kind"), "Trusted", self.postfix.dump())
        self.assertRegex(tls.group("what"), r"client-signature ECDSA", self.postfix.dump())
        pid = re.escape(tls.group("pid"))
        fingerprint = re.escape(harness.Pki.fingerprint(self.proxy_cert))
        self.postfix.wait_log(rf"postfix/ccert/smtpd{pid}: \S+\[127\.0\.0\.1\]: "
                              r"subject_CN=relay\.proxy\.test\.example, issuer=certrelay "
                              rf"integration test CA, fingerprint={fingerprint}, ", start=start)


class ScriptedBackendTlsTest(harness.IntegrationTest):
    """Scripted backends (no root needed): one that speaks TLS, where the test sees exactly what
    arrived inside it, and ones that do not do what backend.tls requires."""

    def tls_backend(self, implicit: bool = False, ask_cert: bool = False) -> ScriptedBackend:
        """A scripted backend serving TLS with the test PKI's server certificate (its names
        include 127.0.0.1); `ask_cert`: it asks for a client certificate and verifies it."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pki.server_chain, self.pki.server.key)
        if ask_cert:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(self.pki.ca.cert)
        behaviour = Behaviour()
        behaviour.tls = context
        behaviour.implicit_tls = implicit
        return self.start_backend(behaviour)

    def relay_one(self, proxy) -> ScriptedBackend:
        client = self.tls_client(proxy, self.pki.trusted, helo=HELO)
        self.assertEqual(client.command(f"MAIL FROM:<{SENDER}>").code, 250, client.dump())
        self.assertEqual(client.command(f"RCPT TO:<bob@{REMOTE_DOMAIN}>").code, 250, client.dump())
        self.assertEqual(client.command("DATA").code, 354, client.dump())
        reply = client.command("Subject: over backend TLS\r\n\r\nbody\r\n.")
        self.assertEqual(reply.code, 250, client.dump())
        client.quit()

    def test_starttls_everything_of_the_session_travels_inside_tls(self):
        backend = self.tls_backend()
        proxy = self.start_proxy(backend.port, backend={"tls": "starttls",
                                                        "tls_ca": self.pki.ca.cert})
        self.relay_one(proxy)
        session = backend.wait_for(lambda b: next(iter(b.sessions()), None), 5.0,
                                   what="the session's backend connection")
        names = session.command_names()
        # Before TLS: EHLO and STARTTLS only. Inside: EHLO again (what it offered before is
        # forgotten), then the hand-off and the transaction.
        self.assertEqual(session.tls_after, 2, backend.transcript())
        self.assertEqual(names[:3], ["EHLO", "STARTTLS", "EHLO"], backend.transcript())
        self.assertEqual(names[3], "XCLIENT", backend.transcript())
        self.assertIn("LOGIN=trusted-client", session.commands[3], backend.transcript())
        self.assertEqual(len(session.messages), 1, backend.transcript())
        self.assertIsNone(session.peer_cert)  # no tls_cert configured
        ready = proxy.wait_log(r"backend connection to 127\.0\.0\.1:\d+ ready \(TLSv1\.3 with "
                               r"cipher \S+ \(\d+/\d+ bits\), CN=\S+ verified for 127\.0\.0\.1")
        self.assertIsNotNone(ready, proxy.dump())

    def test_implicit_tls_with_the_proxy_certificate(self):
        backend = self.tls_backend(implicit=True, ask_cert=True)
        proxy = self.start_proxy(backend.port, backend={
            "tls": "implicit", "tls_ca": self.pki.ca.cert,
            "tls_cert": self.pki.trusted.cert, "tls_key": self.pki.trusted.key})
        self.relay_one(proxy)
        session = backend.wait_for(lambda b: next(iter(b.sessions()), None), 5.0,
                                   what="the session's backend connection")
        self.assertEqual(session.tls_after, 0, backend.transcript())  # TLS before the greeting
        self.assertNotIn("STARTTLS", session.command_names(), backend.transcript())
        subject = dict(pair[0] for pair in session.peer_cert["subject"])
        self.assertEqual(subject["commonName"], "trusted.client.example")

    def test_backend_ending_tls_ends_the_backend_session(self):
        # close_notify with the TCP connection left open: the session is over for the proxy at
        # once (the transaction in progress fails with 451), not when a reply times out.
        backend = self.tls_backend()
        backend.behaviour.end_tls_after = {"MAIL"}
        proxy = self.start_proxy(backend.port, backend={"tls": "starttls",
                                                        "tls_ca": self.pki.ca.cert})
        client = self.tls_client(proxy, self.pki.trusted, helo=HELO)
        self.assertEqual(client.command(f"MAIL FROM:<{SENDER}>").code, 250, client.dump())
        reply = client.command(f"RCPT TO:<bob@{REMOTE_DOMAIN}>")
        self.assertRegex(reply.text, Expect.BACKEND_TROUBLE)
        line = proxy.wait_log(r"connection lost: backend ended the TLS session \(close_notify\)")
        self.assertIsNotNone(line, proxy.dump())
        backend.wait_for(lambda b: all(c.closed for c in b.sessions()), 5.0,
                         what="the proxy to close its end")

    def proxy_before_backend(self, behaviour: Behaviour, **overrides):
        """A proxy started while its backend's port refuses connections (so the start-up probe
        cannot refuse the start), then the scripted backend on that port."""
        refusing = RefusingPort()
        port = refusing.port
        try:
            proxy = self.start_proxy(port, backend={"tls": "starttls",
                                                    "tls_ca": self.pki.ca.cert}, **overrides)
        finally:
            refusing.close()
        backend = self.start_backend_on(port, behaviour)
        return proxy, backend

    def start_backend_on(self, port: int, behaviour: Behaviour) -> ScriptedBackend:
        backend = ScriptedBackend(behaviour, port=port)
        self.addCleanup(backend.close)
        return self.watch(backend)

    def mail_reply(self, proxy) -> str:
        client = self.tls_client(proxy, self.pki.trusted, helo=HELO)
        reply = client.command(f"MAIL FROM:<{SENDER}>")
        return reply.text

    def assert_nothing_after(self, backend: ScriptedBackend, last: str):
        """The backend got EHLO ... `last` and nothing of the session afterwards."""
        conn = harness.wait_until(lambda: next(iter(backend.snapshot()), None), 5.0,
                                  what="the backend connection")
        names = conn.command_names()
        self.assertIn(last, names, backend.transcript())
        for never in ("XCLIENT", "XFORWARD", "MAIL", "RCPT", "DATA"):
            self.assertNotIn(never, names, backend.transcript())

    def test_no_starttls_at_startup_refuses_to_start(self):
        backend = self.start_backend()   # offers no STARTTLS
        proxy = harness.Proxy(self._subdir("proxy"), self.pki, backend.port, start=False,
                              backend={"address": f"127.0.0.1:{backend.port}",
                                       "tls": "starttls", "tls_ca": self.pki.ca.cert})
        code, text = run_expecting_exit(proxy.binary, proxy.config_path)
        self.assertEqual(code, 1, text)
        self.assertRegex(text, LOG_NOT_STARTING)

    def test_backend_that_stops_offering_starttls_fails_sessions_closed(self):
        proxy, backend = self.proxy_before_backend(Behaviour())
        text = self.mail_reply(proxy)
        self.assertRegex(text, Expect.BACKEND_CONFIG_ERROR)
        line = proxy.wait_log(r"STARTTLS not offered: the backend's EHLO reply has no STARTTLS")
        self.assertIsNotNone(line, proxy.dump())
        self.assert_nothing_after(backend, "EHLO")
        self.assertNotIn("STARTTLS", backend.snapshot()[0].command_names())

    def test_starttls_refused_is_a_451(self):
        behaviour = Behaviour()
        behaviour.capabilities.append("STARTTLS")
        behaviour.replies["STARTTLS"] = "454 4.7.0 TLS not available due to local problem"
        proxy, backend = self.proxy_before_backend(behaviour)
        self.assertRegex(self.mail_reply(proxy), Expect.BACKEND_TROUBLE)
        line = proxy.wait_log(r"TLS failed: backend refused STARTTLS: 4\.7\.0 TLS not available")
        self.assertIsNotNone(line, proxy.dump())
        self.assert_nothing_after(backend, "STARTTLS")

    def test_plaintext_after_the_220_is_refused(self):
        # An injection (CVE-2011-0411 class, client side): a reply smuggled behind the 220 must
        # never pass for one of the backend's answers inside TLS.
        behaviour = Behaviour()
        behaviour.capabilities.append("STARTTLS")
        behaviour.replies["STARTTLS"] = ("220 2.0.0 Ready to start TLS\r\n"
                                         f"250-{behaviour.hostname}\r\n250 XCLIENT NAME ADDR")
        proxy, backend = self.proxy_before_backend(behaviour)
        self.assertRegex(self.mail_reply(proxy), Expect.BACKEND_TROUBLE)
        line = proxy.wait_log(r"malformed reply: backend sent \d+ bytes after its 220 to "
                              r"STARTTLS, before TLS")
        self.assertIsNotNone(line, proxy.dump())
        self.assert_nothing_after(backend, "STARTTLS")
        # Not even a ClientHello followed: the connection ended at the injection.
        conn = backend.snapshot()[0]
        self.assertTrue(bytes(conn.received).endswith(b"STARTTLS\r\n"), backend.transcript())

    def test_backend_that_does_not_speak_tls_after_220(self):
        # It takes the ClientHello for the start of a command line and waits for its end: the
        # handshake is bounded by timeouts.backend_connect.
        behaviour = Behaviour()
        behaviour.capabilities.append("STARTTLS")
        behaviour.replies["STARTTLS"] = "220 2.0.0 Ready to start TLS"
        proxy, backend = self.proxy_before_backend(
            behaviour, timeouts={"backend_connect": "1s", "backend_reply": "300s"})
        self.assertRegex(self.mail_reply(proxy), Expect.BACKEND_TROUBLE)
        line = proxy.wait_log(r"timeout: timeout in the TLS handshake with 127\.0\.0\.1:\d+$")
        self.assertIsNotNone(line, proxy.dump())
        self.assert_nothing_after(backend, "STARTTLS")


if __name__ == "__main__":
    harness.main()
