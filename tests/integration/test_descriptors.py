#!/usr/bin/python3
"""File descriptors: RLIMIT_NOFILE's soft limit is raised to the hard one at start; a
limits.max_connections that cannot fit refuses to start, an unset one is lowered to fit; and at
descriptor exhaustion a client is told 421 4.3.2 (the reserved descriptor) instead of being cut
off without a word (libuv's own EMFILE handling)."""

import os
import re
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OUT_OF_DESCRIPTORS = re.compile(r"^421 4\.3\.2 \S+ Service not available: out of file descriptors")


def limit_leaving(pid: int, free: int) -> int:
    """The RLIMIT_NOFILE under which `pid` has exactly `free` descriptor numbers left (the kernel
    hands out the lowest free number below the limit, so holes count)."""
    taken = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    limit = 0
    while limit - len([fd for fd in taken if fd < limit]) < free or limit in taken:
        limit += 1
    return limit


def reserves(pid: int) -> int:
    """Descriptors open on /dev/null: the workers' reserves (certrelay's and libuv's)."""
    return sum(1 for fd in os.listdir(f"/proc/{pid}/fd")
               if os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null")


def soft_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


class DescriptorTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()

    def test_soft_limit_raised_to_the_hard_one(self):
        proxy = self.start_proxy(self.backend.port, nofile=(200, 4096))
        self.assertEqual(soft_limit(proxy.proc.pid), 4096)

    def test_unset_max_connections_is_lowered_to_fit(self):
        proxy = self.start_proxy(self.backend.port, nofile=(512, 512))
        self.assertTrue(proxy.wait_log(r"warning: limits\.max_connections not set: using \d+ "
                                       r"instead of 10000, what RLIMIT_NOFILE \(512\) fits"),
                        proxy.dump())
        # And the proxy serves.
        c = self.client(proxy)
        self.assertReply(c.ehlo(), 250, c)

    def test_max_connections_that_cannot_fit_refuses_to_start(self):
        with self.assertRaises(harness.ProxyStartError) as raised:
            self.start_proxy(self.backend.port, nofile=(512, 512),
                             limits={"max_connections": 10000})
        message = str(raised.exception)
        self.assertIn("(exit code 1)", message)
        self.assertRegex(message, r"limits\.max_connections = 10000 needs about \d+ file "
                                  r"descriptors .* but RLIMIT_NOFILE allows 512; raise it")
        self.assertIn("not starting", message)

    def test_exhaustion_answers_421_and_recovers(self):
        proxy = self.start_proxy(self.backend.port)
        pid = proxy.proc.pid
        # The first session also makes libuv open its own reserve on the worker's loop.
        first = self.client(proxy)
        # Room for exactly one more descriptor: a plaintext client (no backend connection before
        # MAIL), then the next one finds none.
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        reserves_before = reserves(pid)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit_leaving(pid, 1), hard))
        second = self.client(proxy)
        mark = proxy.mark()
        third = harness.SmtpClient(proxy.port)
        self.addCleanup(third.close)
        self.watch(third)
        self.assertRegex(third.read_reply().last, OUT_OF_DESCRIPTORS, third.dump())
        self.assertTrue(third.wait_closed(5.0), "not closed after the 421\n" + third.dump())
        self.assertTrue(proxy.wait_log(r"warning: listener mx: out of file descriptors "
                                       r"\(Too many open files, RLIMIT_NOFILE \d+\): 1 "
                                       r"connection\(s\) answered 421 and closed",
                                       start=mark), proxy.dump())
        # The reserve is taken back: as many /dev/null descriptors as before the refusal.
        self.assertEqual(reserves(pid), reserves_before)
        self.assertReply(second.command("NOOP"), 250, second)
        # With room again, clients are greeted. (The limit goes back up before any session
        # ends: the sanitizers' own checks need descriptors, and at the limit they misreport.)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
        mark = proxy.mark()
        first.quit()
        self.assertTrue(proxy.wait_log(r"disconnect from", 5.0, start=mark))
        fourth = self.client(proxy)  # client() checks the 220
        self.assertReply(fourth.ehlo(), 250, fourth)

if __name__ == "__main__":
    harness.main()
