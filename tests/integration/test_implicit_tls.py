#!/usr/bin/python3
"""Implicit TLS listeners (`tls_mode = "implicit"`, port 465 style: TLS from the first byte,
the greeting inside TLS), the listener's `client_cert` setting (request, require, none) and
`tls.strict_sni`.

- smtplib.SMTP_SSL with a listed certificate relays; an unlisted one gets 454 for a remote
  recipient; EHLO offers no STARTTLS and STARTTLS is refused; a plaintext client gets no
  greeting;
- client_cert = "require": a client without a certificate gets no session, and the log says
  why; with a certificate it relays;
- client_cert = "none": no CertificateRequest on the wire (openssl s_client -msg), so even a
  client holding a listed certificate is anonymous; "request" sends one;
- strict_sni: an SNI naming none of the certificates is refused; the certificate's names and
  no SNI at all are fine;
- ALPN other than smtp is refused on an implicit listener too (the STARTTLS case is in
  test_tls_edges.py)."""

import os
import re
import smtplib
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (HOSTNAME, LOCAL_DOMAIN, REMOTE_DOMAIN, Expect, SmtpClient,  # noqa: E402
                     TRUSTED_IDENTITY, client_context)
from tls_support import (HELO, LOG_REQUIRE_NO_CERT, SENDER, TlsTest, s_client,  # noqa: E402
                         smtps_client)

VERSIONS = {"TLSv1.3": None, "TLSv1.2": ssl.TLSVersion.TLSv1_2}


def listener(name: str, tls_mode: str | None = None, client_cert: str | None = None) -> dict:
    entry = {"name": name, "address": "127.0.0.1:0", "require_tls": False}
    if tls_mode is not None:
        entry["tls_mode"] = tls_mode
    if client_cert is not None:
        entry["client_cert"] = client_cert
    return entry


class ImplicitTlsTest(TlsTest):

    def implicit_proxy(self, client_cert: str | None = None, **kw):
        proxy = self.start_tls_proxy(listeners=[listener("smtps", "implicit", client_cert)], **kw)
        self.assertIn("smtps", proxy.ports, proxy.dump())
        return proxy

    def rcpt_reply(self, smtp, rcpt: str):
        code, text = smtp.mail(SENDER)
        self.assertEqual(code, 250, text)
        return smtp.rcpt(rcpt)

    # -- relaying ----------------------------------------------------------------------------
    def test_trusted_certificate_relays_over_implicit_tls(self):
        proxy = self.implicit_proxy()
        port = proxy.ports["smtps"]
        for version, max_version in VERSIONS.items():
            with self.subTest(version=version):
                mark = proxy.mark()
                smtp = self.smtps_session(port, self.pki.trusted, max_version)
                self.assertEqual(smtp.sock.version(), version)
                rcpt = f"implicit-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
                code, text = self.rcpt_reply(smtp, rcpt)
                self.assertEqual(code, 250, f"{code} {text!r}\n{proxy.dump()}")
                message_id, content = self.message_for(rcpt, f"implicit TLS {version}")
                code, text = smtp.data(content)
                self.assertEqual(code, 250, text)
                smtp.quit()
                received, _ = harness.split_received(self.backend_message(message_id))
                self.assertEqual(received.tls["version"], version, received.raw.decode())
                self.assertEqual(received.protocol, "ESMTPSA", received.raw.decode())
                self.assertTrue(received.certificate["verified"], received.raw.decode())
                self.assertEqual(self.backend_login_for(rcpt), TRUSTED_IDENTITY)
                self.wait_line(proxy, re.compile(r"connect from unknown\[127\.0\.0\.1\] to "
                                                 rf"smtps port {port}\b"), mark)
                self.wait_line(proxy, Expect.LOG_TRUSTED_TLS, mark)

    def test_untrusted_certificate_gets_454_for_remote_and_250_for_local(self):
        proxy = self.implicit_proxy()
        smtp = self.smtps_session(proxy.ports["smtps"], self.pki.untrusted)
        rcpt = f"denied@{REMOTE_DOMAIN}"
        code, text = self.rcpt_reply(smtp, rcpt)
        self.assertEqual(f"{code} {text.decode()}", Expect.relay_denied(rcpt))
        code, text = smtp.rcpt(f"carol@{LOCAL_DOMAIN}")
        self.assertEqual(code, 250, text)
        smtp.quit()

    def test_ehlo_offers_no_starttls_and_starttls_is_refused(self):
        proxy = self.implicit_proxy()
        smtp = self.smtps_session(proxy.ports["smtps"], self.pki.trusted)
        self.assertFalse(smtp.has_extn("starttls"), smtp.ehlo_resp)
        self.assertTrue(smtp.has_extn("pipelining"), smtp.ehlo_resp)
        code, text = smtp.docmd("STARTTLS")
        self.assertTrue(500 <= code < 600, f"STARTTLS inside implicit TLS: {code} {text!r}")
        # The session goes on inside the same TLS.
        self.assertEqual(smtp.noop()[0], 250)
        code, text = self.rcpt_reply(smtp, f"after-starttls@{REMOTE_DOMAIN}")
        self.assertEqual(code, 250, text)
        smtp.quit()

    def test_plaintext_client_gets_no_greeting(self):
        proxy = self.implicit_proxy(timeouts={"tls_handshake": "2s"})
        c = SmtpClient(proxy.ports["smtps"], timeout=5.0)
        self.addCleanup(c.close)
        # The server speaks first only inside TLS: nothing comes before a ClientHello.
        self.assertEqual(c.silent_for(0.3), b"", c.dump())
        c.send("EHLO plain.example\r\n")
        self.assertTrue(c.wait_closed(5.0), "an SMTP command as ClientHello did not end the "
                        "connection\n" + c.dump())
        self.assertNotIn(b"220", c.buf)
        self.assertTrue(c.buf == b"" or c.buf[0] == 0x15, f"not a TLS alert: {c.buf[:64]!r}")
        self.assertTrue(proxy.alive())
        # The listener still serves TLS clients.
        smtp = self.smtps_session(proxy.ports["smtps"], self.pki.trusted)
        smtp.quit()

    # -- client_cert = require ---------------------------------------------------------------
    def test_require_refuses_clients_without_certificate(self):
        proxy = self.start_tls_proxy(listeners=[listener("smtps", "implicit", "require"),
                                                listener("mx", client_cert="require")])
        cases = [(f"implicit {v}", "smtps", m) for v, m in VERSIONS.items()]
        cases += [(f"starttls {v}", "mx", m) for v, m in VERSIONS.items()]
        for what, name, max_version in cases:
            with self.subTest(what):
                port = proxy.ports[name]
                mark = proxy.mark()
                with self.assertRaises((ssl.SSLError, smtplib.SMTPException, OSError),
                                       msg=f"{what}: a client without a certificate got a "
                                           "session") as caught:
                    self.no_certificate_session(name, port, max_version)
                self.wait_line(proxy, LOG_REQUIRE_NO_CERT, mark, what=f"{what}: {caught.exception}")
                self.assertFalse(self.count_lines(proxy, Expect.LOG_TLS_ESTABLISHED, mark),
                                 proxy.dump())
                # With a certificate the same listener serves and relays.
                if name == "smtps":
                    smtp = self.smtps_session(port, self.pki.trusted, max_version)
                else:
                    smtp = self.smtplib_session(proxy, self.pki.trusted, port, max_version)
                code, text = self.rcpt_reply(smtp, f"required@{REMOTE_DOMAIN}")
                self.assertEqual(code, 250, text)
                smtp.quit()
        # The refused clients never reached the backend.
        self.assertFalse([c for c in self.backend.all_commands() if "nocert.example" in c],
                         self.backend.dump())

    def test_require_refuses_a_resumed_session_without_certificate(self):
        # Sessions made without a certificate on a "request" listener of the same process,
        # offered for resumption on a "require" listener: refused too (README).
        proxy = self.start_tls_proxy(listeners=[listener("mx"),
                                                listener("mx-req", client_cert="require")])
        for version, max_version in VERSIONS.items():
            with self.subTest(version=version):
                context = client_context(None, max_version=max_version)
                c = self.client(proxy)
                self.assertReply(c.ehlo(HELO), 250, c)
                c.starttls(context)
                self.assertReply(c.ehlo(HELO), 250, c)
                saved = c.sock.session
                c.quit()
                self.assertIsNotNone(saved)
                mark = proxy.mark()
                c = harness.connect(proxy.ports["mx-req"])
                self.addCleanup(c.close)
                self.assertReply(c.ehlo(HELO), 250, c)
                with self.assertRaises((ssl.SSLError, harness.SmtpError, OSError),
                                       msg=f"{version}: an anonymous session resumed on a "
                                           "require listener") as caught:
                    c.starttls(context, session=saved)
                    c.ehlo(HELO)
                self.wait_line(proxy, LOG_REQUIRE_NO_CERT, mark,
                               what=f"{version}: {caught.exception}")
                self.assertFalse(self.count_lines(proxy, Expect.LOG_TLS_ESTABLISHED, mark),
                                 proxy.dump())

    def no_certificate_session(self, name: str, port: int, max_version=None):
        """A whole attempt without a client certificate, as far as the server lets it go.
        In TLS 1.3 the client finishes its side before the server checks the (empty)
        Certificate, so the refusal shows at the first read."""
        context = client_context(None, max_version=max_version)
        if name == "smtps":
            smtp = smtps_client(context, "nocert.example")
            self.addCleanup(smtp.close)
            smtp.connect("127.0.0.1", port)
            smtp.ehlo()
            code, _ = smtp.mail(SENDER)
            raise AssertionError(f"MAIL got {code} without a client certificate")
        smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="nocert.example", timeout=10)
        self.addCleanup(smtp.close)
        smtp.ehlo()
        smtp.starttls(context=context)
        code, _ = smtp.ehlo()
        raise AssertionError(f"EHLO got {code} inside TLS without a client certificate")

    # -- client_cert = none / request --------------------------------------------------------
    def test_none_sends_no_certificate_request(self):
        proxy = self.start_tls_proxy(listeners=[listener("smtps", "implicit", "request"),
                                                listener("smtps-none", "implicit", "none"),
                                                listener("mx"),
                                                listener("mx-none", "starttls", "none")])
        for name, starttls, asks in (("smtps", False, True), ("smtps-none", False, False),
                                     ("mx", True, True), ("mx-none", True, False)):
            for version in ("-tls1_3", "-tls1_2"):
                with self.subTest(listener=name, version=version):
                    result = s_client(proxy.ports[name], starttls=starttls,
                                      ca=self.pki.ca.cert, extra=["-msg", version])
                    self.assertTrue(result.handshake_ok, result.dump())
                    self.assertEqual(result.certificate_request, asks, result.dump())
        # A client holding a listed certificate is never asked for it: anonymous, no relay.
        mark = proxy.mark()
        smtp = self.smtps_session(proxy.ports["smtps-none"], self.pki.trusted)
        rcpt = f"not-asked@{REMOTE_DOMAIN}"
        code, text = self.rcpt_reply(smtp, rcpt)
        self.assertEqual(f"{code} {text.decode()}", Expect.relay_denied(rcpt))
        smtp.quit()
        self.wait_line(proxy, Expect.LOG_ANONYMOUS_TLS, mark)
        mark = proxy.mark()
        smtp = self.smtplib_session(proxy, self.pki.trusted, proxy.ports["mx-none"])
        rcpt = f"not-asked-starttls@{REMOTE_DOMAIN}"
        code, text = self.rcpt_reply(smtp, rcpt)
        self.assertEqual(f"{code} {text.decode()}", Expect.relay_denied(rcpt))
        smtp.quit()
        self.wait_line(proxy, Expect.LOG_ANONYMOUS_TLS, mark)
        # The requesting listeners relay for it.
        smtp = self.smtps_session(proxy.ports["smtps"], self.pki.trusted)
        code, text = self.rcpt_reply(smtp, f"asked@{REMOTE_DOMAIN}")
        self.assertEqual(code, 250, text)
        smtp.quit()

    # -- strict SNI --------------------------------------------------------------------------
    def test_strict_sni_refuses_unknown_names(self):
        proxy = self.start_tls_proxy(tls={"strict_sni": True},
                                     listeners=[listener("mx", "starttls"),
                                                listener("smtps", "implicit")])
        for name, starttls in (("mx", True), ("smtps", False)):
            port = proxy.ports[name]
            for sni, accepted in ((["-servername", "other.example"], False),
                                  (["-servername", HOSTNAME], True),
                                  (["-servername", "localhost"], True),
                                  (["-noservername"], True)):
                with self.subTest(listener=name, sni=sni):
                    result = s_client(port, starttls=starttls, extra=sni)
                    self.assertEqual(result.handshake_ok, accepted, result.dump())
                    if not accepted:
                        self.assertNotEqual(result.returncode, 0, result.dump())
        # Python sends the server's name: the session works and relays.
        self.assert_relays(proxy, self.pki.trusted, "with strict_sni and the right name")
        self.assertTrue(proxy.alive())

    def test_without_strict_sni_any_name_is_served(self):
        proxy = self.start_tls_proxy(listeners=[listener("mx")])
        result = s_client(proxy.port, extra=["-servername", "other.example"])
        self.assertTrue(result.handshake_ok, result.dump())

    # -- ALPN --------------------------------------------------------------------------------
    def test_alpn_other_than_smtp_is_refused_on_implicit_listener(self):
        proxy = self.implicit_proxy()
        port = proxy.ports["smtps"]
        context = client_context(None)
        context.set_alpn_protocols(["http/1.1"])
        mark = proxy.mark()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with self.assertRaises((ssl.SSLError, OSError)) as caught:
                with context.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
                    tls.recv(1)
        self.assertRegex(str(caught.exception), re.compile("no.application.protocol", re.I))
        self.assertFalse(self.count_lines(proxy, Expect.LOG_TLS_ESTABLISHED, mark),
                         proxy.dump())
        for protocols in (["smtp"], ["http/1.1", "smtp"]):
            with self.subTest(protocols=protocols):
                context = client_context(self.pki.trusted)
                context.set_alpn_protocols(protocols)
                smtp = self.smtps_session(port, None, context=context)
                self.assertEqual(smtp.sock.selected_alpn_protocol(), "smtp")
                smtp.quit()


if __name__ == "__main__":
    harness.main()
