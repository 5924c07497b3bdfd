#!/usr/bin/python3
"""certrelay's Received header as the backend receives it (issue 4; README "The Received
header"): golden headers for TLS 1.3 and TLS 1.2, verified / not verified / no certificate /
no TLS, HELO, several recipients, SMTPUTF8 (smtplib), hostile certificate subjects and
issuers generated here with python3-cryptography (CR, LF, NUL, quotes, parentheses,
backslash, non-ASCII, 300 characters), a hostile EHLO name, `received_header = false`, and the
SIZE limit refused at MAIL."""

import datetime
import os
import re
import smtplib
import ssl
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (HOSTNAME, LOCAL_DOMAIN, REMOTE_DOMAIN, SELFSIGNED_IDENTITY,  # noqa: E402
                     TRUSTED_IDENTITY, Behaviour, Cert, Expect, Pki, client_context, sanitized)

HELO = "client.test.example"
SENDER = "alice@client.test.example"
REMOTE_RCPT = f"bob@{REMOTE_DOMAIN}"
LOCAL_RCPT = f"carol@{LOCAL_DOMAIN}"
CA_CN = "certrelay integration test CA"
CONTENT = b"Subject: received header\r\n\r\nbody\r\n"


# ---------------------------------------------------------------------------------------------
# Hostile certificates
# ---------------------------------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    # _validate=False: a CN of 300 characters is beyond X.509's upper bound (64), which is
    # exactly what an attacker's certificate may carry.
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)])


def _write_key(key, path):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def make_hostile_pki(directory: str, cases):
    """cases: [(name, subject CN, issuer CA CN)]. Each leaf is signed by a CA with that CN
    (CAs shared by CN; none of them is in the proxy's client_ca). Returns {name: Cert}."""
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    cas, out = {}, {}
    for name, cn, issuer_cn in cases:
        if issuer_cn not in cas:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (x509.CertificateBuilder().subject_name(_name(issuer_cn))
                    .issuer_name(_name(issuer_cn)).public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - datetime.timedelta(hours=1))
                    .not_valid_after(now + datetime.timedelta(days=2))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                    .sign(key, hashes.SHA256()))
            cas[issuer_cn] = (key, cert)
        ca_key, ca_cert = cas[issuer_cn]
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(cn))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .sign(ca_key, hashes.SHA256()))
        crt, keyfile = (os.path.join(directory, f"{name}{ext}") for ext in (".crt", ".key"))
        with open(crt, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, keyfile)
        out[name] = Cert(name, crt, keyfile)
    return out


HOSTILE_ISSUER = 'Evil "CA" (x) \\ back\r\nX-Injected-Issuer: 1 \u00fcml'
NUL_ISSUER = "nul\x00issuer CA"
# name, subject CN, issuer CN, identity in the table
HOSTILE = [
    ("crlf", "evil.example\r\nX-Injected: yes\r\n\tfolded", HOSTILE_ISSUER, "hostile-crlf"),
    ("quotes", 'a"b(c)d\\e")\\', HOSTILE_ISSUER, 'quote"paren(x)back\\slash'),
    ("nul", "good.example\x00evil.example", HOSTILE_ISSUER, "hostile-nul"),
    ("unicode", "Z\u00fcrich \u00dcn\u00efc\u00f6d\u00e9 \u2713 \U0001F600", NUL_ISSUER,
     "hostile-unicode"),
    ("long", "L" + "x" * 298 + "E", NUL_ISSUER, "hostile-long"),
    ("controls", "tab\there\x7fdel\x1bescape\x08bs", NUL_ISSUER, "hostile-controls"),
]


class ReceivedHeaderTest(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.hostile = make_hostile_pki(os.path.join(cls._class_dir, "hostile"),
                                       [(n, cn, issuer) for n, cn, issuer, _ in HOSTILE])

    def setUp(self):
        super().setUp()
        self.behaviour = Behaviour()
        self.behaviour.capabilities = self.behaviour.capabilities + ["SMTPUTF8"]
        self.backend = self.start_backend(self.behaviour)
        self.fingerprints = [
            (Pki.fingerprint(self.pki.trusted), TRUSTED_IDENTITY),
            (Pki.pkey_fingerprint(self.pki.selfsigned), SELFSIGNED_IDENTITY),
        ] + [(Pki.fingerprint(self.hostile[n]), identity) for n, _, _, identity in HOSTILE]
        self.proxy = self.start_proxy(self.backend.port, fingerprints=self.fingerprints)

    # -- helpers ----------------------------------------------------------------------------
    def deliver(self, c, rcpts=(REMOTE_RCPT,), content=CONTENT, proxy=None):
        """MAIL, RCPTs, DATA with `content` on an open session; returns (Received, rest of
        the message, raw header bytes) as the backend got them."""
        proxy = proxy or self.proxy
        before = sum(len(x.messages) for x in self.backend.snapshot())
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        for rcpt in rcpts:
            self.assertReply(c.command(f"RCPT TO:<{rcpt}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        self.assertReply(c.command(content.decode() + "."), 250, c)
        message = self.backend.wait_for(
            lambda b: (lambda m: m[before] if len(m) > before else None)(
                [m for x in b.snapshot() for m in x.messages]),
            what="the message at the backend")
        received, rest = harness.split_received(message)
        self.assertEqual(harness.hygiene(received.raw), [], received.raw)
        self.assertEqual(rest, content)
        return received, rest

    def tls_session(self, cert, max_version=None, helo=HELO):
        mark = self.proxy.mark()
        c = self.client(self.proxy)
        self.assertReply(c.ehlo(helo), 250, c)
        c.starttls(client_context(cert, max_version=max_version))
        self.assertReply(c.ehlo(helo), 250, c)
        return c, mark

    def established(self, mark) -> str:
        """What the proxy logged after "TLS connection established from ...: "."""
        m = self.proxy.wait_log(r"TLS connection established from unknown\[127\.0\.0\.1\]: (.*)$",
                                start=mark)
        self.assertIsNotNone(m, self.proxy.dump())
        return m.group(1)

    def message_id(self, mark, n=1) -> str:
        return f"{self.proxy.session_ids(mark)[0]}M{n}"

    def assert_golden(self, received, lines):
        expected = ("\r\n".join(lines) + "\r\n").encode()
        self.assertEqual(received.raw.decode("utf-8", "replace"), expected.decode(),
                         "Received header differs from the golden one")

    def tls13_lines(self, c, mark, client_signature: bool):
        """The golden "(using ...)" lines for a TLS 1.3 session with the test PKI's ECDSA P-256
        keys; the group is the one the proxy logged (and checked against the client)."""
        name, version, bits = c.sock.cipher()
        self.assertEqual(version, "TLSv1.3")
        logged = self.established(mark)
        group = re.search(r" key-exchange (\S+) ", logged)
        self.assertIsNotNone(group, logged)
        server = (f"\t key-exchange {group.group(1)} server-signature ECDSA (prime256v1) "
                  "server-digest SHA256")
        lines = [f"\t(using TLSv1.3 with cipher {name} ({bits}/{bits} bits)"]
        if client_signature:
            return lines + [server, "\t client-signature ECDSA (prime256v1) client-digest SHA256)"]
        return lines + [server + ")"]

    # -- golden headers ----------------------------------------------------------------------
    def test_tls13_verified_listed_certificate(self):
        c, mark = self.tls_session(self.pki.trusted)
        received, _ = self.deliver(c)
        self.assert_golden(received, [
            f"Received: from {HELO} (unknown [127.0.0.1])",
            *self.tls13_lines(c, mark, client_signature=True),
            f'\t(Client CN "trusted.client.example", Issuer "{CA_CN}" (verified OK))',
            f"\t(Client fingerprint SHA256 {Pki.fingerprint(self.pki.trusted)}, "
            f'identity "{TRUSTED_IDENTITY}")',
            f"\tby {HOSTNAME} (certrelay) with ESMTPSA id {self.message_id(mark)}",
            f"\tfor <{REMOTE_RCPT}>; {received.date}",
        ])
        # The TLS facts are the ones the proxy logged for the session.
        self.assertEqual(received.using_text, self.established(mark))
        self.assertEqual(Pki.fingerprint(self.pki.trusted), Pki.der_sha256(self.pki.trusted))

    def test_tls12(self):
        c, mark = self.tls_session(self.pki.trusted, max_version=ssl.TLSVersion.TLSv1_2)
        name, version, bits = c.sock.cipher()
        self.assertEqual(version, "TLSv1.2")
        received, _ = self.deliver(c)
        self.assert_golden(received, [
            f"Received: from {HELO} (unknown [127.0.0.1])",
            # One line: no key-exchange or signature details below TLS 1.3 (as Postfix).
            f"\t(using TLSv1.2 with cipher {name} ({bits}/{bits} bits))",
            f'\t(Client CN "trusted.client.example", Issuer "{CA_CN}" (verified OK))',
            f"\t(Client fingerprint SHA256 {Pki.fingerprint(self.pki.trusted)}, "
            f'identity "{TRUSTED_IDENTITY}")',
            f"\tby {HOSTNAME} (certrelay) with ESMTPSA id {self.message_id(mark)}",
            f"\tfor <{REMOTE_RCPT}>; {received.date}",
        ])

    def test_not_verified_selfsigned_listed_by_public_key(self):
        c, mark = self.tls_session(self.pki.selfsigned)
        received, _ = self.deliver(c)
        self.assert_golden(received, [
            f"Received: from {HELO} (unknown [127.0.0.1])",
            *self.tls13_lines(c, mark, client_signature=True),
            '\t(Client CN "selfsigned.client.example", Issuer "selfsigned.client.example" '
            "(not verified))",
            # The certificate's fingerprint, although the table lists its public key.
            f"\t(Client fingerprint SHA256 {Pki.fingerprint(self.pki.selfsigned)}, "
            f'identity "{SELFSIGNED_IDENTITY}")',
            f"\tby {HOSTNAME} (certrelay) with ESMTPSA id {self.message_id(mark)}",
            f"\tfor <{REMOTE_RCPT}>; {received.date}",
        ])

    def test_verified_but_unlisted_certificate(self):
        c, mark = self.tls_session(self.pki.untrusted)
        received, _ = self.deliver(c, rcpts=(LOCAL_RCPT,))
        self.assert_golden(received, [
            f"Received: from {HELO} (unknown [127.0.0.1])",
            *self.tls13_lines(c, mark, client_signature=True),
            f'\t(Client CN "untrusted.client.example", Issuer "{CA_CN}" (verified OK))',
            f"\t(Client fingerprint SHA256 {Pki.fingerprint(self.pki.untrusted)})",
            f"\tby {HOSTNAME} (certrelay) with ESMTPS id {self.message_id(mark)}",
            f"\tfor <{LOCAL_RCPT}>; {received.date}",
        ])

    def test_no_certificate(self):
        c, mark = self.tls_session(None)
        received, _ = self.deliver(c, rcpts=(LOCAL_RCPT,))
        self.assert_golden(received, [
            f"Received: from {HELO} (unknown [127.0.0.1])",
            *self.tls13_lines(c, mark, client_signature=False),
            "\t(Client did not present a certificate)",
            f"\tby {HOSTNAME} (certrelay) with ESMTPS id {self.message_id(mark)}",
            f"\tfor <{LOCAL_RCPT}>; {received.date}",
        ])

    def test_plaintext(self):
        mark = self.proxy.mark()
        c = self.client(self.proxy)
        self.assertReply(c.ehlo(HELO), 250, c)
        received, _ = self.deliver(c, rcpts=(LOCAL_RCPT,))
        self.assert_golden(received, [
            f"Received: from {HELO} (unknown [127.0.0.1])",
            f"\tby {HOSTNAME} (certrelay) with ESMTP id {self.message_id(mark)}",
            f"\tfor <{LOCAL_RCPT}>; {received.date}",
        ])

    def test_helo_session(self):
        mark = self.proxy.mark()
        c = self.client(self.proxy)
        self.assertReply(c.command("HELO helo.test.example"), 250, c)
        received, _ = self.deliver(c, rcpts=(LOCAL_RCPT,))
        self.assert_golden(received, [
            "Received: from helo.test.example (unknown [127.0.0.1])",
            f"\tby {HOSTNAME} (certrelay) with SMTP id {self.message_id(mark)}",
            f"\tfor <{LOCAL_RCPT}>; {received.date}",
        ])

    def test_two_recipients_and_second_message(self):
        c, mark = self.tls_session(self.pki.trusted)
        received, _ = self.deliver(c, rcpts=(REMOTE_RCPT, LOCAL_RCPT))
        # No "for" with more than one recipient: "id X;" then the date alone.
        self.assertEqual(received.lines[-2:], [
            f"\tby {HOSTNAME} (certrelay) with ESMTPSA id {self.message_id(mark)};",
            f"\t{received.date}"])
        # The second message of the session has the next id and its own header.
        second, _ = self.deliver(c, rcpts=(LOCAL_RCPT,))
        self.assertEqual((second.id, second.rcpt), (self.message_id(mark, 2), f"<{LOCAL_RCPT}>"))
        self.assertEqual(second.lines[:-2], received.lines[:-2])

    def test_smtputf8_with_smtplib(self):
        rcpt = f"b\u00f8b@{REMOTE_DOMAIN}"
        client = smtplib.SMTP("127.0.0.1", self.proxy.port, local_hostname=HELO, timeout=10)
        self.addCleanup(client.close)
        client.ehlo()
        client.starttls(context=client_context(self.pki.trusted))
        client.ehlo()
        self.assertTrue(client.has_extn("smtputf8"), client.esmtp_features)
        content = "Subject: caf\u00e9\r\n\r\nunicode \u2713\r\n".encode()
        refused = client.sendmail(SENDER, [rcpt], content, mail_options=["SMTPUTF8"])
        self.assertEqual(refused, {})
        client.quit()
        conn = self.backend.wait_for(lambda b: next((x for x in b.sessions() if x.messages), None),
                                     what="the message at the backend")
        mail = conn.find("MAIL")[0]
        self.assertRegex(mail, r"(?i)^MAIL FROM:<alice@client\.test\.example>.* SMTPUTF8")
        received, rest = harness.split_received(conn.messages[0])
        self.assertEqual(rest, content)
        self.assertEqual(received.protocol, "UTF8SMTPSA", received.raw)
        # RFC 6532: the UTF-8 recipient may stay as it is in an SMTPUTF8 message's header.
        self.assertEqual(received.rcpt, f"<{rcpt}>", received.raw)
        self.assertEqual(harness.hygiene(received.raw, allow_utf8=True), [], received.raw)

    # -- hostile input -------------------------------------------------------------------------
    def test_hostile_certificates(self):
        for name, cn, issuer_cn, identity in HOSTILE:
            with self.subTest(name):
                cert = self.hostile[name]
                c, mark = self.tls_session(cert)
                received, _ = self.deliver(c)
                raw = received.raw
                # Nothing escaped the header: it parses as the documented layout, every line
                # is short, printable ASCII (and TAB), no bare CR or LF, and the message has
                # no header field the certificate tried to inject.
                self.assertEqual(harness.hygiene(raw), [], raw)
                message = raw + CONTENT
                self.assertFalse([f for f in harness.header_fields(message)
                                  if f.lower().startswith(b"x-injected")], message)
                want_cn, want_issuer = sanitized(cn), sanitized(issuer_cn)
                got = received.certificate
                if name == "long":
                    # Cut (a line never reaches 998 octets), never rewritten.
                    self.assertTrue(want_cn.startswith(got["cn"]) and len(got["cn"]) >= 64,
                                    got["cn"])
                else:
                    self.assertEqual(got["cn"], want_cn, raw)
                self.assertEqual(got["issuer"], want_issuer, raw)
                self.assertFalse(got["verified"], raw)
                self.assertEqual(received.fingerprint,
                                 {"digest": "SHA256", "fp": Pki.fingerprint(cert),
                                  "identity": sanitized(identity)}, raw)
                self.assertEqual(received.protocol, "ESMTPSA", raw)
                c.quit()
        # Spot checks of the rule itself (README): quotes, backslashes, parentheses, control
        # characters and non-ASCII become '?'; a NUL makes the name absent.
        self.assertEqual(sanitized(HOSTILE[1][1]), "a?b?c?d?e???")
        self.assertEqual(sanitized(HOSTILE[2][1]), "")
        self.assertEqual(sanitized(NUL_ISSUER), "")

    def test_hostile_ehlo_name(self):
        # Non-ASCII, quotes, parentheses and a backslash in the EHLO name (control bytes are
        # refused as bad syntax before they get this far).
        helo = 'h\u00e9lo"(x)\\.example'
        c = self.client(self.proxy)
        reply = c.command(f"EHLO {helo}")
        self.assertReply(reply, 250, c)
        received, _ = self.deliver(c, rcpts=(LOCAL_RCPT,))
        self.assertEqual(received.helo, sanitized(helo), received.raw)
        self.assertEqual(received.helo, "h??lo??x??.example", received.raw)

    # -- switched off --------------------------------------------------------------------------
    def test_received_header_false(self):
        proxy = self.start_proxy(self.backend.port, fingerprints=self.fingerprints,
                                 backend={"received_header": False})
        c = self.tls_client(proxy, self.pki.trusted, helo=HELO)
        # DATA: the content exactly as sent, nothing before it.
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        self.assertReply(c.command(CONTENT.decode() + "."), 250, c)
        # BDAT: no leading header chunk.
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        c.send(b"BDAT 10\r\nSubject: aBDAT 7 LAST\r\n\r\n\r\nb\r\n")
        self.assertEqual([r.code for r in c.read_replies(2)], [250, 250], c.dump())
        c.quit()
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if x.messages and x.bdat_messages), None),
            what="both messages at the backend")
        self.assertEqual(conn.messages, [CONTENT])
        self.assertEqual(conn.chunks, [(10, False, b"Subject: a"), (7, True, b"\r\n\r\nb\r\n")])
        raw = bytes(conn.received)
        self.assertNotIn(b"(certrelay)", raw)
        self.assertIn(b"\r\nDATA\r\n" + CONTENT + b".\r\n", raw)
        self.assertIn(f"RCPT TO:<{REMOTE_RCPT}>\r\nBDAT 10\r\n".encode(), raw)

    # -- SIZE ----------------------------------------------------------------------------------
    def test_size_over_the_backend_limit(self):
        self.behaviour.capabilities = ["PIPELINING", "SIZE 1000000", harness.XCLIENT_ALL,
                                       "ENHANCEDSTATUSCODES", "8BITMIME"]
        backend = self.start_backend(self.behaviour)
        proxy = self.start_proxy(backend.port, fingerprints=self.fingerprints)
        client = smtplib.SMTP("127.0.0.1", proxy.port, local_hostname=HELO, timeout=10)
        self.addCleanup(client.close)
        client.ehlo()
        client.starttls(context=client_context(self.pki.trusted))
        client.ehlo()
        self.assertEqual(client.esmtp_features.get("size"), "1000000", client.esmtp_features)
        code, text = client.mail(SENDER, ["SIZE=999999999"])
        self.assertEqual(f"{code} {text.decode()}"[:9], Expect.SIZE_EXCEEDED, text)
        # Within the limit: accepted and passed on.
        self.assertEqual(client.mail(SENDER, ["SIZE=1000"])[0], 250)
        client.quit()
        mails = [m for x in backend.snapshot() for m in x.find("MAIL")]
        self.assertEqual(mails, [f"MAIL FROM:<{SENDER}> SIZE=1000"], backend.transcript())


if __name__ == "__main__":
    harness.main()
