#!/usr/bin/python3
"""The exact bytes a backend receives (issue 4): Postfix's smtp-sink with -d capture in each
identity mode (by default its XCLIENT has no ADDR, so auto takes XFORWARD; -C: XFORWARD only;
-C -F: neither), and the scripted backend,
which records raw bytes, for the XFORWARD lines sent before each MAIL and for BDAT relayed by
count (the Received header as its own leading chunk, pipelined chunks, BDAT 0 LAST, refused
BDATs whose chunk is read and dropped, DATA after BDAT, malformed counts, no CHUNKING)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Behaviour, Expect, LOCAL_DOMAIN, REMOTE_DOMAIN, TRUSTED_IDENTITY,  # noqa: E402
                     Pki)

HELO = "client.test.example"
SENDER = "alice@client.test.example"
REMOTE_RCPT = f"bob@{REMOTE_DOMAIN}"
LOCAL_RCPT = f"carol@{LOCAL_DOMAIN}"
XFORWARD_ALL = "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"
MAX_COMMAND = 512                  # octets, CR LF included (RFC 5321 4.5.3.1.4)


def xforward_words(line: str) -> list[tuple[str, str]]:
    words = line.split(" ")
    assert words[0] == "XFORWARD", line
    return [tuple(w.split("=", 1)) for w in words[1:]]


class SmtpSinkCaptureTest(harness.IntegrationTest):
    """Real smtp-sink: the captured file per identity mode."""

    def send_trusted(self, proxy, last_line: str) -> tuple[str, bytes]:
        """A trusted TLS client relays one message; returns (session id, wire content)."""
        mark = proxy.mark()
        c = self.tls_client(proxy, self.pki.trusted, helo=HELO)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        content = (f"Subject: sink\r\n\r\n..leading dot, stuffed\r\nplain\r\n{last_line}\r\n"
                   .encode())
        self.assertReply(c.command(content.decode() + "."), 250, c)
        c.quit()
        return proxy.session_ids(mark)[0], content

    def check_handoff(self, proxy, mode):
        m = proxy.handoff()
        self.assertIsNotNone(m, proxy.dump())
        # smtp-sink offers no CHUNKING: the line must not claim it is relayed.
        self.assertTrue(m.group(0).endswith(Expect.handoff_line(mode, chunking=False)),
                        m.group(0))
        self.assertIsNone(m.group("chunking"), m.group(0))

    def test_default_sink_auto_takes_xforward_as_its_xclient_has_no_addr(self):
        # smtp-sink offers "XCLIENT NAME HELO" (no ADDR) and "XFORWARD NAME ADDR PROTO HELO":
        # XCLIENT would leave it judging the proxy's address, so auto takes XFORWARD, and says
        # why, without naming Postfix's settings (smtp-sink does not greet as Postfix).
        sink = self.start_sink()
        proxy = self.start_proxy(sink.port)
        self.check_handoff(proxy, "xforward")
        warning = proxy.wait_log(r"offers no XCLIENT with ADDR, so XFORWARD is used", 5.0)
        self.assertIsNotNone(warning, proxy.dump())
        self.assertNotIn("smtpd_authorized", proxy.log.text())
        last = f"end-{os.urandom(6).hex()}"
        session, content = self.send_trusted(proxy, last)
        captured = sink.wait_message(last.encode())
        # No XCLIENT: smtp-sink saw the proxy's own EHLO; certrelay's Received header names the
        # client, then the content (LF, dot-stuffing undone) and the dump's closing empty line.
        self.assertIn(f"X-Helo-Args: {harness.HOSTNAME}\n".encode(), captured)
        fields = harness.received_fields(captured, eol=b"\n")
        self.assertEqual(len(fields), 2, captured)
        received = harness.Received(fields[1], eol=b"\n")
        self.assertEqual((received.helo, received.protocol, received.id, received.rcpt),
                         (HELO, "ESMTPSA", session + "M1", f"<{REMOTE_RCPT}>"), received.raw)
        self.assertEqual(received.fingerprint["identity"], TRUSTED_IDENTITY, received.raw)
        self.assertTrue(captured.endswith(
            content.replace(b"\r\n..", b"\r\n.").replace(b"\r\n", b"\n") + b"\n"), captured)

    def test_explicit_xclient_to_a_sink_without_addr_does_not_start(self):
        sink = self.start_sink()
        proxy = harness.Proxy(self._subdir("proxy"), self.pki, sink.port, start=False,
                              backend={"identity": "xclient"})
        proc = harness.run([proxy.binary, "--config", proxy.config_path], timeout=20,
                           check=False)
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 1, out)
        self.assertIn("does not offer XCLIENT with ADDR to the proxy; allow the proxy's address "
                      "to use XCLIENT on the backend; not starting", out)
        self.assertNotRegex(out, Expect.LOG_READY)

    def test_sink_without_xclient_gets_xforward(self):
        sink = self.start_sink(["-C"])
        proxy = self.start_proxy(sink.port)
        self.check_handoff(proxy, "xforward")
        last = f"end-{os.urandom(6).hex()}"
        session, _ = self.send_trusted(proxy, last)
        captured = sink.wait_message(last.encode())
        # No XCLIENT: smtp-sink saw the proxy's own EHLO.
        self.assertIn(f"X-Helo-Args: {harness.HOSTNAME}\n".encode(), captured)
        fields = harness.received_fields(captured, eol=b"\n")
        self.assertEqual(len(fields), 2, captured)
        received = harness.Received(fields[1], eol=b"\n")
        self.assertEqual((received.helo, received.id), (HELO, session + "M1"), received.raw)

    def test_sink_without_xclient_and_xforward_gets_none(self):
        sink = self.start_sink(["-C", "-F"])
        proxy = self.start_proxy(sink.port)
        self.check_handoff(proxy, "none")
        last = f"end-{os.urandom(6).hex()}"
        session, _ = self.send_trusted(proxy, last)
        captured = sink.wait_message(last.encode())
        self.assertIn(f"X-Helo-Args: {harness.HOSTNAME}\n".encode(), captured)
        fields = harness.received_fields(captured, eol=b"\n")
        self.assertEqual(len(fields), 2, captured)
        received = harness.Received(fields[1], eol=b"\n")
        self.assertEqual((received.helo, received.id), (HELO, session + "M1"), received.raw)
        self.assertEqual(received.fingerprint["fp"], Pki.fingerprint(self.pki.trusted))

    def test_sink_without_chunking_bdat_is_521_and_close(self):
        # smtp-sink offers no CHUNKING: neither does the proxy, and BDAT ends the session
        # before its chunk could be read as commands.
        sink = self.start_sink()
        proxy = self.start_proxy(sink.port)
        c = self.tls_client(proxy, self.pki.trusted, helo=HELO)
        ehlo = c.ehlo(HELO)
        self.assertNotIn("CHUNKING", ehlo.keywords(), ehlo.text)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        chunk = f"RSET\r\nMAIL FROM:<x@y.example>\r\nRCPT TO:<{LOCAL_RCPT}>\r\nQUIT\r\n"
        c.send(f"BDAT {len(chunk)} LAST\r\n{chunk}")
        self.assertEqual(c.read_reply().last, Expect.BDAT_NOT_IMPLEMENTED, c.dump())
        self.assertTrue(c.wait_closed(5.0), "not closed after 521\n" + c.dump())
        self.assertEqual(c.buf, b"", "replies to the chunk's lines\n" + c.dump())
        # smtp-sink opens its dump file early in a transaction: an empty file is the aborted
        # transaction; nothing may have been written into it.
        self.assertEqual([m for m in sink.messages() if m], [])


class ScriptedBytesTest(harness.IntegrationTest):
    """The scripted backend: raw bytes of XFORWARD and BDAT."""

    def setUp(self):
        super().setUp()
        self.behaviour = Behaviour()
        self.backend = self.start_backend(self.behaviour)

    def proxy_with(self, capabilities, **overrides):
        self.behaviour.capabilities = capabilities
        self.proxy = self.start_proxy(self.backend.port, **overrides)
        return self.proxy

    def session_conn(self, with_messages: int = 1):
        return self.backend.wait_for(
            lambda b: next((x for x in b.sessions()
                            if len(x.messages) + len(x.bdat_messages) >= with_messages), None),
            what=f"{with_messages} message(s) at the backend")

    # -- XFORWARD -------------------------------------------------------------------------------
    def xforward_session(self, tls: bool, helo: str = HELO, verb: str = "EHLO",
                         rcpt: str = REMOTE_RCPT, **overrides):
        """Two messages in one session through a backend offering only XFORWARD. Returns
        (backend connection, session id, client port)."""
        self.proxy_with(["PIPELINING", "SIZE 10240000", XFORWARD_ALL, "ENHANCEDSTATUSCODES",
                         "8BITMIME"], **overrides)
        mark = self.proxy.mark()
        if tls:
            c = self.tls_client(self.proxy, self.pki.trusted, helo=helo)
        else:
            c = self.client(self.proxy)
            self.assertReply(c.command(f"{verb} {helo}"), 250, c)
        port = c.sock.getsockname()[1]
        for n in (1, 2):
            self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
            self.assertReply(c.command(f"RCPT TO:<{rcpt}>"), 250, c)
            self.assertReply(c.command("DATA"), 354, c)
            self.assertReply(c.command(f"Subject: {n}\r\n\r\nmessage {n}\r\n."), 250, c)
        c.quit()
        conn = self.session_conn(2)
        self.backend.wait_for(lambda b: conn.closed, what="the backend session to end")
        return conn, self.proxy.session_ids(mark)[0], port

    def check_xforward(self, conn, expected: list[str]):
        """Exactly the `expected` XFORWARD line(s) right before each MAIL, in the raw bytes;
        the proxy's own EHLO (no XCLIENT, no second EHLO) before the first."""
        raw = bytes(conn.received)
        self.assertTrue(raw.startswith(f"EHLO {harness.HOSTNAME}\r\n".encode()), raw[:300])
        self.assertNotIn(b"XCLIENT", raw)
        self.assertEqual(conn.command_names().count("EHLO"), 1, conn.commands)
        mails = [i for i, name in enumerate(conn.command_names()) if name == "MAIL"]
        self.assertEqual(len(mails), 2, conn.commands)
        for n, i in enumerate(mails):
            lines = expected[n]
            before = conn.commands[i - len(lines):i]
            self.assertEqual(before, lines, conn.commands)
            self.assertEqual(conn.command_names()[i - len(lines) - 1]
                             if i - len(lines) - 1 >= 0 else None,
                             "EHLO" if n == 0 else "DATA", conn.commands)
            wire = "".join(l + "\r\n" for l in lines) + conn.commands[i] + "\r\n"
            self.assertIn(wire.encode(), raw)
            for line in lines:
                self.assertLessEqual(len(line) + 2, MAX_COMMAND, line)

    def test_xforward_before_each_mail_trusted_tls(self):
        conn, session, port = self.xforward_session(tls=True)
        self.check_xforward(conn, [
            [f"XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1 PORT={port} PROTO=ESMTPSA "
             f"HELO={HELO} IDENT={session}M{n} SOURCE=REMOTE"] for n in (1, 2)])
        # IDENT is the id in certrelay's Received header of that message.
        for n, message in enumerate(conn.messages, 1):
            received, _ = harness.split_received(message)
            self.assertEqual((received.id, received.protocol), (f"{session}M{n}", "ESMTPSA"))

    def test_xforward_plaintext_and_xtext(self):
        # '+' and '=' in the HELO name are xtext-encoded (+2B, +3D).
        conn, session, port = self.xforward_session(tls=False, helo="a+b=c.example",
                                                    rcpt=LOCAL_RCPT)
        self.check_xforward(conn, [
            [f"XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1 PORT={port} PROTO=ESMTP "
             f"HELO=a+2Bb+3Dc.example IDENT={session}M{n} SOURCE=REMOTE"] for n in (1, 2)])

    def test_xforward_helo_session(self):
        conn, session, port = self.xforward_session(tls=False, verb="HELO", rcpt=LOCAL_RCPT)
        self.check_xforward(conn, [
            [f"XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1 PORT={port} PROTO=SMTP "
             f"HELO={HELO} IDENT={session}M{n} SOURCE=REMOTE"] for n in (1, 2)])

    def test_xforward_only_offered_attributes(self):
        # The scripted backend's default XFORWARD list: NAME ADDR PROTO HELO.
        self.proxy_with(["PIPELINING", "XFORWARD NAME ADDR PROTO HELO", "8BITMIME"])
        c = self.tls_client(self.proxy, self.pki.trusted, helo=HELO)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        c.quit()
        conn = self.backend.wait_command("MAIL")
        self.backend.wait_for(lambda b: conn.closed, what="the backend session to end")
        self.assertEqual(conn.find("XFORWARD"),
                         ["XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1 PROTO=ESMTPSA "
                          f"HELO={HELO}"], conn.commands)

    def test_xforward_long_helo_stays_within_limits(self):
        # 200 '=' encode to 600 octets of xtext: over XFORWARD's 255, so not sent as it is;
        # every line stays within 512 octets.
        helo = "=" * 200
        conn, session, port = self.xforward_session(tls=False, helo=helo, rcpt=LOCAL_RCPT)
        lines = conn.find("XFORWARD")
        self.assertGreaterEqual(len(lines), 2, conn.commands)
        seen = {}
        for line in lines:
            self.assertLessEqual(len(line) + 2, MAX_COMMAND, line)
            for name, value in xforward_words(line):
                self.assertLessEqual(len(value), 255, line)
                seen.setdefault(name, value)
        self.assertEqual(seen.get("HELO"), "[UNAVAILABLE]", lines)
        self.assertEqual(seen.get("IDENT"), f"{session}M1", lines)

    def test_xforward_proto_of_a_client_trusted_by_network(self):
        # relay_networks trust is not authentication: no "A" (RFC 3848), like the Received
        # header's "with" for the same message.
        conn, session, port = self.xforward_session(
            tls=False, policy={"relay_networks": ["127.0.0.0/8"]})
        protos = [dict(xforward_words(l)).get("PROTO") for l in conn.find("XFORWARD")]
        received, _ = harness.split_received(conn.messages[0])
        self.assertEqual(received.protocol, "ESMTP", received.raw)
        self.assertEqual(protos, ["ESMTP", "ESMTP"], conn.commands)

    # -- BDAT -----------------------------------------------------------------------------------
    def bdat_proxy(self, **overrides):
        return self.proxy_with(["PIPELINING", "SIZE 10240000", "XCLIENT NAME ADDR PORT PROTO HELO "
                                "LOGIN DESTADDR DESTPORT", "ENHANCEDSTATUSCODES", "8BITMIME",
                                "CHUNKING"], **overrides)

    def bdat_client(self):
        c = self.tls_client(self.proxy, self.pki.trusted, helo=HELO)
        ehlo = c.ehlo(HELO)
        self.assertIn("CHUNKING", ehlo.keywords(), ehlo.text)
        return c

    def after_rcpt(self, conn) -> bytes:
        """The raw bytes the backend received after the client's last RCPT line."""
        raw = bytes(conn.received)
        at = raw.rindex(b"RCPT TO:")
        return raw[raw.index(b"\r\n", at) + 2:]

    def test_bdat_exact_byte_stream(self):
        self.bdat_proxy()
        mark = self.proxy.mark()
        c = self.bdat_client()
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        first, last = b"Subject: a", b"\r\n\r\nb\r\n"
        c.send(b"BDAT 10\r\n" + first + b"BDAT 7 LAST\r\n" + last)
        replies = c.read_replies(2)
        # Each chunk's reply is the backend's own.
        self.assertEqual([r.last for r in replies],
                         ["250 2.0.0 Ok: 10 bytes", self.behaviour.dot_reply], c.dump())
        self.assertEqual(c.silent_for(0.3), b"", "a reply for the header chunk\n" + c.dump())
        conn = self.session_conn()
        header = conn.chunks[0][2]
        self.assertEqual(self.after_rcpt(conn),
                         b"BDAT %d\r\n" % len(header) + header
                         + b"BDAT 10\r\n" + first + b"BDAT 7 LAST\r\n" + last)
        # The leading chunk is certrelay's Received header, alone, and not LAST.
        self.assertEqual([(n, l) for n, l, _ in conn.chunks],
                         [(len(header), False), (10, False), (7, True)])
        received, rest = harness.split_received(header)
        self.assertEqual(rest, b"")
        self.assertEqual(harness.hygiene(header), [], header)
        self.assertEqual((received.id, received.protocol, received.rcpt),
                         (self.proxy.session_ids(mark)[0] + "M1", "ESMTPSA", f"<{REMOTE_RCPT}>"))
        self.assertEqual(conn.bdat_messages, [header + first + last])
        self.assertEqual(conn.messages, [])
        self.assertReply(c.command("NOOP"), 250, c)

    def test_bdat_pipelined_transactions(self):
        # Two whole transactions in one write, chunk bytes that look like commands included.
        self.bdat_proxy()
        mark = self.proxy.mark()
        c = self.bdat_client()
        one = [b"Subject: one\r\n\r\nQUIT\r\n", b"RSET\r\n.\r\n"]
        two = b"Subject: two\r\n\r\nDATA\r\n"
        c.send(b"".join([
            f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{REMOTE_RCPT}>\r\n".encode(),
            b"BDAT %d\r\n" % len(one[0]), one[0], b"BDAT %d LAST\r\n" % len(one[1]), one[1],
            f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{LOCAL_RCPT}>\r\nRCPT TO:<{REMOTE_RCPT}>\r\n"
            .encode(),
            b"BDAT %d LAST\r\n" % len(two), two,
            b"NOOP\r\n"]))
        replies = c.read_replies(9)
        self.assertEqual([r.last for r in replies], [
            "250 2.1.0 Ok", "250 2.1.5 Ok", f"250 2.0.0 Ok: {len(one[0])} bytes",
            self.behaviour.dot_reply,
            "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", self.behaviour.dot_reply,
            Expect.NOOP_OK], c.dump())
        conn = self.session_conn(2)
        session = self.proxy.session_ids(mark)[0]
        self.assertEqual(len(conn.bdat_messages), 2, conn.chunks)
        for n, (message, body) in enumerate(zip(conn.bdat_messages, [b"".join(one), two]), 1):
            received, rest = harness.split_received(message)
            self.assertEqual(rest, body)
            self.assertEqual(received.id, f"{session}M{n}")
        # Two recipients: no "for" clause.
        self.assertIsNone(harness.split_received(conn.bdat_messages[1])[0].rcpt)
        # The chunk bytes were content, never commands.
        self.assertEqual(conn.command_names().count("QUIT"), 0, conn.commands)
        self.assertNotIn("RSET", conn.command_names(), conn.commands)

    def test_bdat_zero_last(self):
        self.bdat_proxy()
        c = self.bdat_client()
        # A chunk, then BDAT 0 LAST ends the message.
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        c.send(b"BDAT 5\r\nhelloBDAT 0 LAST\r\n")
        self.assertEqual([r.last for r in c.read_replies(2)],
                         ["250 2.0.0 Ok: 5 bytes", self.behaviour.dot_reply], c.dump())
        # BDAT 0 LAST alone: the header chunk, then the empty last chunk.
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        self.assertEqual(c.command("BDAT 0 LAST").last, self.behaviour.dot_reply, c.dump())
        conn = self.session_conn(2)
        h1, h2 = conn.chunks[0][2], conn.chunks[3][2]
        self.assertEqual([(n, l) for n, l, _ in conn.chunks],
                         [(len(h1), False), (5, False), (0, True), (len(h2), False), (0, True)])
        self.assertEqual(conn.bdat_messages, [h1 + b"hello", h2])
        raw = bytes(conn.received)
        self.assertIn(b"BDAT %d\r\n" % len(h1) + h1 + b"BDAT 5\r\nhelloBDAT 0 LAST\r\n", raw)
        self.assertTrue(raw.endswith(b"BDAT %d\r\n" % len(h2) + h2 + b"BDAT 0 LAST\r\nQUIT\r\n")
                        or raw.endswith(b"BDAT %d\r\n" % len(h2) + h2 + b"BDAT 0 LAST\r\n"),
                        raw[-400:])

    def test_refused_bdat_chunk_is_read_and_dropped(self):
        self.bdat_proxy()
        c = self.bdat_client()
        chunk = b"QUIT\r\n"            # executed as a command, it would end the session
        cases = [
            ("no MAIL", [], Expect.NEED_MAIL),
            ("no RCPT", [f"MAIL FROM:<{SENDER}>"], Expect.NEED_RCPT),
            # The only recipient refused by the proxy (untrusted is not this client: a
            # recipient the backend refuses is forwarded, so use one the proxy refuses).
        ]
        for name, commands, expected in cases:
            with self.subTest(name):
                for command in commands:
                    self.assertReply(c.command(command), 250, c)
                c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
                reply = c.read_reply()
                self.assertReply(reply, expected, c)
                # The session goes on; the chunk was not read as QUIT.
                self.assertReply(c.command("NOOP"), 250, c)
                self.assertReply(c.command("RSET"), 250, c)
        # And a real message afterwards.
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        c.send(b"BDAT 2 LAST\r\nok")
        self.assertEqual(c.read_reply().last, self.behaviour.dot_reply, c.dump())
        conn = self.session_conn()
        self.assertEqual(len(conn.bdat_messages), 1)
        self.assertEqual(harness.split_received(conn.bdat_messages[0])[1], b"ok")
        self.assertNotIn(b"QUIT\r\n", bytes(conn.received)[:bytes(conn.received).index(b"BDAT")])
        self.assertEqual(conn.command_names().count("BDAT"), 2, conn.commands)

    def test_bdat_with_every_recipient_refused(self):
        # An untrusted (no certificate) client, remote recipient refused by the proxy: BDAT
        # gets the error, its chunk is dropped, the backend sees no BDAT.
        self.bdat_proxy()
        c = self.client(self.proxy)
        self.assertReply(c.ehlo(HELO), 250, c)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertEqual(c.command(f"RCPT TO:<{REMOTE_RCPT}>").last,
                         Expect.relay_denied(REMOTE_RCPT), c.dump())
        c.send(b"BDAT 6 LAST\r\nQUIT\r\n")
        self.assertEqual(c.read_reply().last, Expect.NO_VALID_RCPT, c.dump())
        self.assertReply(c.command("NOOP"), 250, c)
        c.quit()
        self.assertNotIn(b"BDAT", b"".join(bytes(x.received) for x in self.backend.snapshot()))

    def test_data_after_bdat(self):
        self.bdat_proxy()
        c = self.bdat_client()
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
        c.send(b"BDAT 5\r\nhello")
        self.assertEqual(c.read_reply().last, "250 2.0.0 Ok: 5 bytes", c.dump())
        self.assertEqual(c.command("DATA").last, Expect.DATA_AFTER_BDAT, c.dump())
        # The transaction is still there and ends with BDAT LAST.
        c.send(b"BDAT 6 LAST\r\n world")
        self.assertEqual(c.read_reply().last, self.behaviour.dot_reply, c.dump())
        self.assertEqual(c.silent_for(0.3), b"", c.dump())
        conn = self.session_conn()
        self.assertNotIn("DATA", conn.command_names(), conn.commands)
        self.assertEqual(harness.split_received(conn.bdat_messages[0])[1], b"hello world")

    def test_malformed_bdat_count_is_501_and_close(self):
        self.bdat_proxy()
        for argument in ("", "abc", "-1", "10 LATS", "10 LAST LAST", "1x", "+5",
                         "99999999999999999999999999"):
            with self.subTest(argument=argument):
                c = self.bdat_client()
                self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
                self.assertReply(c.command(f"RCPT TO:<{REMOTE_RCPT}>"), 250, c)
                c.send(f"BDAT {argument}\r\nNOOP\r\n".replace("BDAT \r\n", "BDAT\r\n"))
                self.assertEqual(c.read_reply().last, Expect.BDAT_SYNTAX, c.dump())
                self.assertTrue(c.wait_closed(5.0), "not closed after 501\n" + c.dump())
                self.assertEqual(c.buf, b"", "the bytes after BDAT were read as commands\n"
                                 + c.dump())
        self.assertNotIn(b"BDAT", b"".join(bytes(x.received) for x in self.backend.snapshot()))

    def test_scripted_backend_without_chunking(self):
        self.proxy_with(["PIPELINING", "SIZE 10240000", "XCLIENT NAME ADDR PORT PROTO HELO LOGIN",
                         "8BITMIME"])
        m = self.proxy.handoff()
        self.assertIsNone(m.group("chunking"), m.group(0))
        c = self.tls_client(self.proxy, self.pki.trusted, helo=HELO)
        ehlo = c.ehlo(HELO)
        self.assertNotIn("CHUNKING", ehlo.keywords(), ehlo.text)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        c.send(b"BDAT 6 LAST\r\nQUIT\r\n")
        self.assertEqual(c.read_reply().last, Expect.BDAT_NOT_IMPLEMENTED, c.dump())
        self.assertTrue(c.wait_closed(5.0), c.dump())
        self.assertEqual(c.buf, b"", c.dump())
        self.assertNotIn(b"BDAT", b"".join(bytes(x.received) for x in self.backend.snapshot()))


if __name__ == "__main__":
    harness.main()
