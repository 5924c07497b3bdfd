#!/usr/bin/python3
"""The client's verified host name (issue 13 item 4): with dns.reverse_lookup, certrelay looks up
the client address's PTR record and confirms it with a forward lookup, Postfix's rules, against
a private resolver the test controls (Debian's dnsmasq on a loopback port), and a real Postfix
behind it sees the outcome through XCLIENT: its log and Received header name a confirmed client,
and its reject_unknown_client_hostname / reject_unknown_reverse_client_hostname answer each
failing name with the code of its kind (550 for [UNAVAILABLE], 450 for [TEMPUNAVAIL]).

The test's clients connect from 127.0.0.x, one address per case:
  127.0.0.2  PTR good.example.test, whose A is 127.0.0.2           confirmed
  127.0.0.3  PTR liar.example.test, whose A is 127.0.0.33          unconfirmed
  127.0.0.4  PTR query refused (dnsmasq has no server for it)      temporary failure
  127.0.0.5  PTR slow.example.test, whose A query goes to a silent
             upstream                                              timeout (dns.timeout)
  127.0.0.6  no PTR record (NXDOMAIN)                              no name
Needs root (Postfix) and dnsmasq (scripts/install-deps.sh installs dnsmasq-base)."""

import os
import re
import socket
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (LOCAL_DOMAIN, REMOTE_DOMAIN, TRUSTED_IDENTITY, LogCapture,  # noqa: E402
                     PostfixInstance, SmtpClient, client_context, split_received,
                     unique_message, wait_until)

DNSMASQ = "/usr/sbin/dnsmasq"
HELO = "client.test.example"
SENDER = "alice@client.test.example"
# Only this recipient is checked for the client's names by Postfix (a restriction class), so
# that the other cases can still deliver.
NAMES_RCPT = f"names@{LOCAL_DOMAIN}"
DNS_TIMEOUT = "1500ms"

GOOD, LIAR, REFUSED, SLOW, NONAME = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5",
                                     "127.0.0.6")


def dns_query(port: int, name: str, qtype: int, timeout: float = 1.0) -> int | None:
    """The RCODE of a query to 127.0.0.1:<port>, None without an answer."""
    qid = int.from_bytes(os.urandom(2), "big")
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + b"\0" + \
        struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            answer = s.recv(512)
        except (socket.timeout, TimeoutError):
            return None
    return answer[3] & 0x0F if answer[:2] == packet[:2] else None


class Dnsmasq:
    """dnsmasq on 127.0.0.1:<port> with only the records given, no upstream but a silent one
    for slow.example.test, logging every query to stderr (kept for dumps)."""

    def __init__(self, tmpdir: str):
        # An upstream that never answers: a bound UDP socket nobody reads.
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.silent.bind(("127.0.0.1", 0))
        silent = self.silent.getsockname()[1]
        self.proc = None
        self.log = None
        last = ""
        for _attempt in range(5):
            self.port = harness.free_port()
            self.proc = subprocess.Popen(
                [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
                 "--user=root", "--no-resolv", "--no-hosts", f"--port={self.port}",
                 "--listen-address=127.0.0.1", "--bind-interfaces", "--log-facility=-",
                 "--log-queries", "--cache-size=0",
                 "--local=/example.test/", "--local=/6.0.0.127.in-addr.arpa/",
                 "--ptr-record=2.0.0.127.in-addr.arpa,good.example.test",
                 "--host-record=good.example.test,127.0.0.2",
                 "--ptr-record=3.0.0.127.in-addr.arpa,liar.example.test",
                 "--host-record=liar.example.test,127.0.0.33",
                 "--ptr-record=5.0.0.127.in-addr.arpa,slow.example.test",
                 f"--server=/slow.example.test/127.0.0.1#{silent}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.log = LogCapture(self.proc.stderr, "dnsmasq")
            try:
                # Ready when it answers: the confirmed name's A record, from its own config.
                wait_until(lambda: self.proc.poll() is not None
                           or dns_query(self.port, "good.example.test", 1, 0.2) == 0,
                           5.0, what="dnsmasq to answer")
            except TimeoutError:
                pass
            if self.proc.poll() is None and dns_query(self.port, "good.example.test", 1) == 0:
                return
            last = self.log.text()
            self.stop()  # the port was taken meanwhile (or dnsmasq refused): another one
        raise RuntimeError(f"dnsmasq did not start:\n{last}")

    def stop(self):
        harness.stop_process(self.proc)
        if self.log is not None:
            self.log.wait_eof(2.0)

    def close(self):
        self.stop()
        self.silent.close()

    def dump(self) -> str:
        return f"--- dnsmasq (127.0.0.1:{self.port}) ---\n{self.log.text() if self.log else ''}"


class ReverseDnsTest(harness.IntegrationTest):
    postfix: PostfixInstance = None
    dns: Dnsmasq = None

    @classmethod
    def setUpClass(cls):
        if not harness.is_root():
            raise unittest.SkipTest("a private Postfix needs root")
        if not os.path.exists(DNSMASQ):
            raise unittest.SkipTest("dnsmasq is not installed (scripts/install-deps.sh)")
        super().setUpClass()
        try:
            cls.dns = Dnsmasq(os.path.join(cls._class_dir, "dnsmasq"))
            cls.sink = harness.SmtpSink(os.path.join(cls._class_dir, "sink"))
            # Postfix checks the names only for NAMES_RCPT; unknown_client_reject_code = 550 makes
            # a permanent unknown ([UNAVAILABLE]) and a temporary one ([TEMPUNAVAIL], always 450)
            # tell apart. Relayed mail goes to the sink, where the test reads its headers.
            cls.postfix = PostfixInstance(
                os.path.join(cls._class_dir, "postfix"), relay_to=cls.sink.port,
                modes=("xclient", "xforward"),
                extra_main={
                    "smtpd_restriction_classes": "names",
                    "names": "reject_unknown_reverse_client_hostname, "
                             "reject_unknown_client_hostname",
                    "smtpd_recipient_restrictions":
                        f"check_recipient_access inline:{{ {NAMES_RCPT}=names }}",
                    "unknown_client_reject_code": "550",
                })
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.postfix:
            cls.postfix.stop()
        if getattr(cls, "sink", None):
            cls.sink.stop()
        if cls.dns:
            cls.dns.close()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.watch(self.postfix)
        self.watch(self.dns)
        self.proxy = self.start_proxy(
            self.postfix.ports["xclient"],
            dns={"reverse_lookup": True, "servers": [f"127.0.0.1:{self.dns.port}"],
                 "timeout": DNS_TIMEOUT})

    def connect(self, source: str, proxy=None) -> SmtpClient:
        c = SmtpClient((proxy or self.proxy).port, source=source, timeout=10.0)
        self.addCleanup(c.close)
        self.watch(c)
        return c

    def names_reply(self, source: str):
        """A session from `source` up to RCPT NAMES_RCPT; returns the client, the RCPT reply and
        the proxy log's mark at connect."""
        mark = self.proxy.mark()
        c = self.connect(source)
        self.assertEqual(c.greeting().code, 220, c.dump())
        self.assertEqual(c.ehlo(HELO).code, 250, c.dump())
        self.assertEqual(c.command(f"MAIL FROM:<{SENDER}>").code, 250, c.dump())
        return c, c.command(f"RCPT TO:<{NAMES_RCPT}>"), mark

    def assert_proxy_log(self, pattern: str, mark: int):
        self.assertTrue(self.proxy.wait_log(re.compile(pattern), 5.0, start=mark),
                        self.proxy.dump())

    def test_confirmed_name_reaches_postfix_logs_and_both_received_headers(self):
        start = len(self.postfix.log_lines())
        c, rcpt, mark = self.names_reply(GOOD)
        self.assertEqual(rcpt.code, 250, c.dump())  # both of Postfix's name checks pass
        c.command("RSET")
        # A relayed message (the trusted certificate: XCLIENT LOGIN) shows the headers.
        c.starttls(client_context(self.pki.trusted))
        self.assertEqual(c.ehlo(HELO).code, 250, c.dump())
        rcpt = f"bob-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        self.assertEqual(c.command(f"MAIL FROM:<{SENDER}>").code, 250, c.dump())
        self.assertEqual(c.command(f"RCPT TO:<{rcpt}>").code, 250, c.dump())
        self.assertEqual(c.command("DATA").code, 354, c.dump())
        message_id, message = unique_message("reverse dns", SENDER, [rcpt])
        last = f"end of {message_id}".encode()
        c.send(message.rstrip(b"\r\n") + b"\r\n" + last + b"\r\n.\r\n")
        queued = c.read_reply()
        self.assertEqual(queued.code, 250, c.dump())
        c.quit()
        queue_id = re.search(r"queued as ([0-9A-Za-z]+)", queued.text).group(1)
        self.postfix.wait_log(
            rf"smtpd\[\d+\]: {queue_id}: client=good\.example\.test\[127\.0\.0\.2\], "
            rf"sasl_method=XCLIENT, sasl_username={re.escape(TRUSTED_IDENTITY)}$", start=start)
        self.postfix.wait_log(r"smtpd\[\d+\]: disconnect from good\.example\.test\[127\.0\.0\.2\]",
                              start=start)
        delivered = self.sink.wait_message(last, 20.0)
        body = delivered[delivered.index(b"Received: "):].replace(b"\n", b"\r\n")
        fields = harness.received_fields(body)
        # Postfix's own header (from XCLIENT's NAME) above certrelay's (the sink adds a third).
        postfix = [f for f in fields if b"(Postfix)" in f]
        ours = [f for f in fields if harness.is_certrelay(f)]
        self.assertEqual((len(postfix), len(ours)), (1, 1), delivered)
        self.assertLess(fields.index(postfix[0]), fields.index(ours[0]), delivered)
        for field in (postfix[0], ours[0]):
            self.assertTrue(field.startswith(
                b"Received: from client.test.example (good.example.test [127.0.0.2])"), field)
        parsed, _rest = split_received(body[body.index(ours[0]):])
        self.assertEqual((parsed.helo, parsed.name, parsed.addr),
                         ("client.test.example", "good.example.test", "127.0.0.2"))
        # certrelay's own log: connect before the lookup ended, the name once it had.
        self.assert_proxy_log(r"connect from unknown\[127\.0\.0\.2\] to mx ", mark)
        self.assert_proxy_log(r"disconnect from good\.example\.test\[127\.0\.0\.2\] ", mark)

    def test_unconfirmed_name_is_unknown_with_its_ptr_name_as_reverse_name(self):
        start = len(self.postfix.log_lines())
        c, rcpt, mark = self.names_reply(LIAR)
        # REVERSE_NAME=liar.example.test passes the reverse check; NAME=[UNAVAILABLE] fails
        # reject_unknown_client_hostname with the permanent code.
        self.assertEqual(rcpt.code, 550, c.dump())
        self.assertIn("cannot find your hostname, [127.0.0.3]", rcpt.text)
        c.quit()
        self.postfix.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.3\]: 550 5\.7\.\d+ "
                              r"Client host rejected: cannot find your hostname", start=start)
        self.assert_proxy_log(r"hostname liar\.example\.test does not resolve to address "
                              r"127\.0\.0\.3$", mark)
        self.assert_proxy_log(r"disconnect from unknown\[127\.0\.0\.3\] ", mark)

    def test_no_ptr_record_is_a_permanent_unknown(self):
        c, rcpt, mark = self.names_reply(NONAME)
        # NAME=[UNAVAILABLE] REVERSE_NAME=[UNAVAILABLE]: the reverse check fails first, 550.
        self.assertEqual(rcpt.code, 550, c.dump())
        self.assertIn("cannot find your reverse hostname, [127.0.0.6]", rcpt.text)
        c.quit()
        self.assert_proxy_log(r"disconnect from unknown\[127\.0\.0\.6\] ", mark)

    def test_refused_ptr_query_is_a_temporary_failure(self):
        c, rcpt, mark = self.names_reply(REFUSED)
        # NAME=[TEMPUNAVAIL] REVERSE_NAME=[TEMPUNAVAIL]: 450, whatever the configured code.
        self.assertEqual(rcpt.code, 450, c.dump())
        self.assertIn("cannot find your reverse hostname, [127.0.0.4]", rcpt.text)
        c.quit()
        self.assert_proxy_log(r"cannot find the name of 127\.0\.0\.4: Temporary failure in name "
                              r"resolution", mark)

    def test_silent_forward_lookup_is_tempunavail_at_the_deadline_and_the_greeting_is_not_held(self):
        mark = self.proxy.mark()
        c = self.connect(SLOW)
        self.assertEqual(c.greeting().code, 220, c.dump())
        self.assertEqual(c.ehlo(HELO).code, 250, c.dump())
        # The greeting and EHLO came while the lookup still ran: its outcome is not logged yet.
        timeout_line = re.compile(r"hostname slow\.example\.test does not resolve to address "
                                  r"127\.0\.0\.5: Temporary failure in name resolution \(no answer "
                                  r"within dns\.timeout 1500ms\)")
        self.assertFalse([line for line in self.proxy.lines()[mark:] if timeout_line.search(line)],
                         self.proxy.dump())
        # MAIL waits for the deadline: the backend is told the outcome (the 450 below shows it
        # got NAME=[TEMPUNAVAIL], which exists only once the deadline passed).
        self.assertEqual(c.command(f"MAIL FROM:<{SENDER}>").code, 250, c.dump())
        self.assertTrue(self.proxy.wait_log(timeout_line, 5.0, start=mark), self.proxy.dump())
        rcpt = c.command(f"RCPT TO:<{NAMES_RCPT}>")
        # REVERSE_NAME=slow.example.test passes; NAME=[TEMPUNAVAIL] gets the temporary 450.
        self.assertEqual(rcpt.code, 450, c.dump())
        self.assertIn("cannot find your hostname, [127.0.0.5]", rcpt.text)
        c.quit()

    def test_client_gone_before_its_lookup_ends_and_a_stop_with_lookups_running(self):
        mark = self.proxy.mark()
        slow_line = "hostname slow.example.test does not resolve to address 127.0.0.5"

        def slow_lines():
            return [line for line in self.proxy.lines()[mark:] if slow_line in line]
        # Gone while the forward lookup still waits on the silent upstream: the lookup is
        # cancelled, and its outcome never reaches a session that no longer exists.
        gone = self.connect(SLOW)
        self.assertEqual(gone.greeting().code, 220, gone.dump())
        gone.quit()
        self.assert_proxy_log(r"disconnect from unknown\[127\.0\.0\.5\] ", mark)
        # A second client waits at MAIL past the first one's deadline (deadlines come in order).
        c, rcpt, _ = self.names_reply(SLOW)
        self.assertEqual(rcpt.code, 450, c.dump())
        c.quit()
        self.assert_proxy_log(re.escape(slow_line), mark)
        self.assertEqual(len(slow_lines()), 1, self.proxy.dump())
        # A session whose lookup still runs when the proxy stops (its c-ares queries with it).
        waiting = self.connect(SLOW)
        self.assertEqual(waiting.greeting().code, 220, waiting.dump())
        self.assertEqual(self.proxy.stop(), 0, self.proxy.dump())
        self.assertEqual(len(slow_lines()), 1, self.proxy.dump())

    def test_xforward_carries_the_confirmed_name_and_unknown_otherwise(self):
        proxy = self.start_proxy(
            self.postfix.ports["xforward"], backend={"identity": "xforward"},
            dns={"reverse_lookup": True, "servers": [f"127.0.0.1:{self.dns.port}"],
                 "timeout": DNS_TIMEOUT})
        start = len(self.postfix.log_lines())
        for source, orig in ((GOOD, r"good\.example\.test\[127\.0\.0\.2\]"),
                             (LIAR, r"unknown\[127\.0\.0\.3\]")):
            c = self.connect(source, proxy)
            self.assertEqual(c.greeting().code, 220, c.dump())
            self.assertEqual(c.ehlo(HELO).code, 250, c.dump())
            rcpt = f"carol-{os.urandom(3).hex()}@{LOCAL_DOMAIN}"
            self.assertEqual(c.command(f"MAIL FROM:<{SENDER}>").code, 250, c.dump())
            self.assertEqual(c.command(f"RCPT TO:<{rcpt}>").code, 250, c.dump())
            self.assertEqual(c.command("DATA").code, 354, c.dump())
            _mid, message = unique_message("xforward name", SENDER, [rcpt])
            c.send(message.rstrip(b"\r\n") + b"\r\n.\r\n")
            queued = c.read_reply()
            self.assertEqual(queued.code, 250, c.dump())
            c.quit()
            queue_id = re.search(r"queued as ([0-9A-Za-z]+)", queued.text).group(1)
            self.postfix.wait_log(rf"{self.postfix.smtpd_log('xforward')}: {queue_id}: "
                                  rf"client=localhost\[127\.0\.0\.1\], .*orig_client={orig}",
                                  start=start)


if __name__ == "__main__":
    harness.main()
