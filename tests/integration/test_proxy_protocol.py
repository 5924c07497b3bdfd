#!/usr/bin/python3
"""PROXY protocol in (issue 13): a listener with proxy_protocol = true takes a v1 or v2 header
from a peer in proxy_networks, and the header's source address is the client everywhere
(relay_networks, logs, XCLIENT ADDR/PORT); from any other peer, or without a valid header, the
connection is closed before the greeting; a v2 LOCAL health check is greeted as the balancer
itself. The test's client plays the balancer by connecting from 127.0.0.2."""

import os
import re
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Expect, REMOTE_DOMAIN, TRUSTED_IDENTITY, PostfixInstance,  # noqa: E402
                     SmtpClient, SmtpError, client_context, unique_message)

BALANCER = "127.0.0.2"
OTHER_PEER = "127.0.0.3"
CLIENT = "192.0.2.77"          # the address the balancer accepted, in relay_networks below
CLIENT_PORT = 40123
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(source=CLIENT, port=CLIENT_PORT, dest="198.51.100.1", dport=25) -> bytes:
    return f"PROXY TCP4 {source} {dest} {port} {dport}\r\n".encode()


def v2(command: int = 1, source=CLIENT, port=CLIENT_PORT) -> bytes:
    block = b""
    family = 0x00
    if command == 1:
        family = 0x11
        block = (socket.inet_aton(source) + socket.inet_aton("198.51.100.1")
                 + struct.pack("!HH", port, 25))
        block += b"\x04\x00\x02ab"  # a TLV (ignored)
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(block)) + block


class ProxyProtocolTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.proxy = self.start_proxy(
            self.backend.port,
            listener=[{"name": "edge", "address": "127.0.0.1:0", "require_tls": False,
                       "proxy_protocol": True, "proxy_networks": [f"{BALANCER}/32"]}],
            policy={"relay_networks": ["192.0.2.0/24"]},
            timeouts={"proxy_header": "2s"})

    def balancer(self, header: bytes, source: str = BALANCER) -> SmtpClient:
        c = SmtpClient(self.proxy.port, source=source)
        self.addCleanup(c.close)
        self.watch(c)
        if header:
            c.send(header)
        return c

    def assert_closed_without_greeting(self, c: SmtpClient, why: re.Pattern, mark: int):
        self.assertTrue(c.wait_closed(5.0), c.dump())
        self.assertEqual(c.buf, b"", "the proxy greeted\n" + c.dump())
        self.assertTrue(self.proxy.wait_log(why, 5.0, start=mark), self.proxy.dump())

    def test_v1_header_address_is_the_client_for_relaying_logs_and_xclient(self):
        mark = self.proxy.mark()
        c = self.balancer(v1())
        self.assertRegex(c.greeting().first, Expect.GREETING)
        self.assertReply(c.ehlo("behind.example"), 250, c)
        self.assertReply(c.command("MAIL FROM:<a@behind.example>"), 250, c)
        # 192.0.2.77 is in relay_networks; the balancer's 127.0.0.2 is not.
        self.assertReply(c.command(f"RCPT TO:<r@{REMOTE_DOMAIN}>"), 250, c)
        c.quit()
        self.assertTrue(self.proxy.wait_log(
            re.compile(rf"connect from unknown\[{re.escape(CLIENT)}\] to edge "), 5.0,
            start=mark), self.proxy.dump())
        session = self.backend.wait_for(lambda b: next(iter(b.sessions()), None),
                                        what="a backend session")
        xclient = next(line for line in session.commands if line.startswith("XCLIENT"))
        attributes = dict(w.split("=", 1) for w in xclient.split()[1:])
        self.assertEqual((attributes["ADDR"], attributes["PORT"]), (CLIENT, str(CLIENT_PORT)),
                         xclient)

    def test_v2_header_split_across_writes_and_client_bytes_behind_it(self):
        header = v2()
        c = self.balancer(header[:7])
        c.send(header[7:20])
        c.send(header[20:])
        self.assertRegex(c.greeting().first, Expect.GREETING)
        self.assertReply(c.ehlo("behind.example"), 250, c)
        self.assertReply(c.command("MAIL FROM:<a@behind.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<r@{REMOTE_DOMAIN}>"), 250, c)
        c.quit()

    def test_v2_local_is_a_health_check_from_the_balancer(self):
        mark = self.proxy.mark()
        c = self.balancer(v2(command=0))
        self.assertRegex(c.greeting().first, Expect.GREETING)
        self.assertReply(c.ehlo("lb.example"), 250, c)
        self.assertReply(c.command("MAIL FROM:<a@lb.example>"), 250, c)
        # As the balancer itself: not in relay_networks, so no relaying.
        self.assertReply(c.command(f"RCPT TO:<r@{REMOTE_DOMAIN}>"),
                         Expect.relay_denied(f"r@{REMOTE_DOMAIN}"), c)
        c.quit()
        self.assertTrue(self.proxy.wait_log(
            re.compile(rf"connect from unknown\[{re.escape(BALANCER)}\] to edge "), 5.0,
            start=mark), self.proxy.dump())

    def test_header_from_a_peer_outside_proxy_networks_is_refused(self):
        mark = self.proxy.mark()
        c = self.balancer(v1(), source=OTHER_PEER)
        self.assert_closed_without_greeting(
            c, re.compile(r"PROXY protocol: closing the connection from unknown\[127\.0\.0\.3\]: "
                          r"not in listener edge's proxy_networks"), mark)

    def test_no_header_or_a_malformed_one_is_refused(self):
        for wire, why in ((b"EHLO client.example\r\n", r"not a PROXY protocol header"),
                          (b"PROXY TCP4 192.0.2.77 198.51.100.1 40123  25\r\n", r"v1 header"),
                          (v2()[:13] + b"\x12" + v2()[14:], r"only TCP over IPv4/IPv6")):
            with self.subTest(wire=wire):
                mark = self.proxy.mark()
                c = self.balancer(wire)
                self.assert_closed_without_greeting(
                    c, re.compile(r"PROXY protocol: closing the connection from "
                                  r"unknown\[127\.0\.0\.2\]: malformed header: .*" + why), mark)
        self.assertEqual(self.backend.sessions(), [])

    def test_a_silent_peer_is_closed_at_the_header_deadline(self):
        mark = self.proxy.mark()
        c = self.balancer(b"")
        self.assert_closed_without_greeting(
            c, re.compile(r"timeout waiting for the header"), mark)


class ProxyProtocolPostfixTest(harness.IntegrationTest):
    """A real Postfix behind certrelay logs the PROXY header's client, handed over by XCLIENT."""

    def test_postfix_logs_the_header_address(self):
        if not harness.is_root():
            raise unittest.SkipTest("a private Postfix needs root")
        postfix = PostfixInstance(self._subdir("postfix"))
        self.addCleanup(postfix.stop)
        self.watch(postfix)
        proxy = self.start_proxy(
            postfix.port,
            listener=[{"name": "edge", "address": "127.0.0.1:0", "require_tls": False,
                       "proxy_protocol": True, "proxy_networks": [f"{BALANCER}/32"]}])
        c = SmtpClient(proxy.port, source=BALANCER)
        self.addCleanup(c.close)
        c.send(v1())
        self.assertRegex(c.greeting().first, Expect.GREETING)
        self.assertReply(c.ehlo("behind.example"), 250, c)
        c.starttls(client_context(self.pki.trusted))
        self.assertReply(c.ehlo("behind.example"), 250, c)
        rcpt = f"bob-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        self.assertReply(c.command("MAIL FROM:<a@behind.example>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{rcpt}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        _, message = unique_message("via proxy protocol", "a@behind.example", [rcpt])
        reply = c.command(message.replace(b"\r\n.", b"\r\n..").decode() + ".")
        self.assertReply(reply, 250, c)
        queue_id = re.search(r"queued as ([0-9A-Za-z]+)", reply.last).group(1)
        c.quit()
        postfix.wait_log(rf"smtpd\[\d+\]: {queue_id}: client=unknown\[{re.escape(CLIENT)}\], "
                         rf"sasl_method=XCLIENT, sasl_username={re.escape(TRUSTED_IDENTITY)}$")


if __name__ == "__main__":
    harness.main()
