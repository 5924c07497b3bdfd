#!/usr/bin/python3
"""Session-ticket keys from files (`tls.ticket_keys`): replicas sharing a key directory resume
each other's sessions, TLS 1.3 and TLS 1.2, with the client certificate's facts intact; the
keys rotate (current -> previous, next -> current, new -> next) while running and old tickets
keep resuming, renewed under the new first key; a process with other keys falls back to a
full handshake; 48-byte keys work; a key file of any other size stops the start-up.

The proof that a ticket (and not a server-side cache) resumed a session is that it resumes
on another process."""

import os
import re
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import REMOTE_DOMAIN, Expect, TRUSTED_IDENTITY, client_context  # noqa: E402
from policy_support import HELO, SENDER  # noqa: E402
from tls_support import (LOG_TLS_KEEPING, KubeletSecret, TlsTest, check_config,  # noqa: E402
                         log_tls_reloaded, output, read_bytes, run_expecting_exit,
                         ticket_key_bytes, write_ticket_key)

VERSIONS = {"TLSv1.3": None, "TLSv1.2": ssl.TLSVersion.TLSv1_2}
KEY_NAMES = ("current.key", "next.key", "previous.key")


class TicketKeysTest(TlsTest):

    # -- fixtures ----------------------------------------------------------------------------
    def key_volume(self, name: str = "tickets", size: int = 80) -> KubeletSecret:
        """A Secret volume with current.key, next.key and previous.key."""
        return KubeletSecret(os.path.join(self.tmpdir, name),
                             {n: ticket_key_bytes(size) for n in KEY_NAMES})

    def key_paths(self, volume: KubeletSecret) -> list[str]:
        return [volume.path(n) for n in KEY_NAMES]

    def keyed_proxy(self, paths, **tls):
        settings = {"ticket_keys": list(paths)}
        settings.update(tls)
        proxy = self.start_tls_proxy(tls=settings)
        loaded = self.loaded(proxy)
        self.assertRegex(loaded.string, rf"\b{len(paths)} ticket keys?\b")
        return proxy

    def tls_session(self, proxy, context, saved=None):
        """Connected, EHLO, STARTTLS offering `saved`, EHLO (reading that reply makes Python
        process TLS 1.3 NewSessionTicket messages)."""
        c = self.client(proxy, timeout=10.0)
        self.assertReply(c.ehlo(HELO), 250, c)
        c.starttls(context, session=saved)
        self.assertReply(c.ehlo(HELO), 250, c)
        return c

    def issue(self, proxy, context, version: str):
        """A full handshake on `proxy` with the trusted certificate; returns its saved session
        (with a ticket)."""
        c = self.tls_session(proxy, context)
        self.assertEqual(c.sock.version(), version, c.dump())
        self.assertFalse(c.sock.session_reused, c.dump())
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<issue@{REMOTE_DOMAIN}>"), 250, c)
        saved = c.sock.session
        c.quit()
        self.assertIsNotNone(saved, f"{version}: no session from {proxy.config_path}")
        self.assertTrue(saved.has_ticket, f"{version}: the session has no ticket "
                        "(ticket_keys must turn stateless tickets on)")
        return saved

    def resume(self, proxy, context, saved, what: str, expect_reused: bool = True):
        """A session offering `saved` that relays one message with the trusted certificate.
        Returns (client before QUIT's session, the backend's XCLIENT LOGIN)."""
        mark = proxy.mark()
        c = self.tls_session(proxy, context, saved)
        self.assertEqual(c.sock.session_reused, expect_reused,
                         f"{what}: session_reused should be {expect_reused}\n{c.dump()}\n"
                         + proxy.dump())
        rcpt = f"resumed-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        reply = c.command(f"RCPT TO:<{rcpt}>")
        self.assertEqual(reply.code, 250, f"{what}: the trusted client must relay: "
                         f"{reply.text}\n{c.dump()}\n{proxy.dump()}")
        self.assertReply(c.command("DATA"), 354, c)
        self.assertReply(c.command(f"Subject: {what}\r\n\r\nbody\r\n."), 250, c)
        renewed = c.sock.session
        c.quit()
        established = self.wait_line(proxy, Expect.LOG_TRUSTED_TLS, mark,
                                     what=f"{what}: Trusted TLS line")
        self.assertEqual("(resumed)" in established.string, expect_reused, established.string)
        self.wait_line(proxy, re.compile(r"relay identity=" + re.escape(TRUSTED_IDENTITY) + "$"),
                       mark, what=f"{what}: relay identity")
        self.assertEqual(self.backend_login_for(rcpt), TRUSTED_IDENTITY, what)
        return renewed

    def contexts(self):
        """One client context per version: Python resumes a session only through the context
        that made it, so A and B are reached through the same context."""
        return {name: client_context(self.pki.trusted, max_version=v)
                for name, v in VERSIONS.items()}

    # -- 1. shared keys ----------------------------------------------------------------------
    def test_ticket_from_one_process_resumes_on_another(self):
        volume = self.key_volume()
        a = self.keyed_proxy(self.key_paths(volume))
        b = self.keyed_proxy(self.key_paths(volume))
        for version, context in self.contexts().items():
            with self.subTest(version=version):
                saved = self.issue(a, context, version)
                # The resumed session on B carries no certificate on the wire: its facts come
                # from the ticket, and the trusted certificate still relays.
                self.resume(b, context, saved, f"{version} ticket of A on B")
                self.assertTrue(b.alive() and a.alive())

    # -- 2. rotation -------------------------------------------------------------------------
    def test_rotation_keeps_old_tickets_and_renews_them_under_the_new_key(self):
        volume = self.key_volume()
        old_current = volume.files["current.key"]
        old_next = volume.files["next.key"]
        a = self.keyed_proxy(self.key_paths(volume))
        b = self.keyed_proxy(self.key_paths(volume))
        contexts = self.contexts()
        saved = {v: self.issue(a, ctx, v) for v, ctx in contexts.items()}

        # Rotate: previous <- current, current <- next, next <- a new key; kubelet-style, so
        # both processes see all three files change at once.
        mark_a, mark_b = a.mark(), b.mark()
        volume.update({"previous.key": old_current, "current.key": old_next,
                       "next.key": ticket_key_bytes(80)})
        self.wait_line(b, log_tls_reloaded("change"), mark_b, what="B: the key rotation")
        self.wait_line(a, log_tls_reloaded("change"), mark_a, what="A: the key rotation")

        # A process that knows only the new first key (the old next): tickets renewed after
        # the rotation resume there, the old ones cannot.
        only_new = os.path.join(self.tmpdir, "only-new", "current.key")
        os.makedirs(os.path.dirname(only_new))
        with open(only_new, "wb") as f:
            f.write(old_next)
        c = self.keyed_proxy([only_new])

        for version, context in contexts.items():
            with self.subTest(version=version):
                # The old ticket was encrypted under what is now the previous key.
                renewed = self.resume(b, context, saved[version],
                                      f"{version} pre-rotation ticket on B")
                self.assertIsNotNone(renewed)
                self.assertTrue(renewed.has_ticket, version)
                self.resume(c, context, renewed,
                            f"{version} ticket renewed by B, on a process with the new key only")
                self.resume(c, context, saved[version],
                            f"{version} pre-rotation ticket on a process without its key",
                            expect_reused=False)
        self.assertFalse(self.count_lines(b, LOG_TLS_KEEPING, 0), b.dump())

    # -- 3. unknown keys ---------------------------------------------------------------------
    def test_ticket_under_unknown_key_gets_a_full_handshake(self):
        a = self.keyed_proxy(self.key_paths(self.key_volume("tickets-a")))
        d = self.keyed_proxy(self.key_paths(self.key_volume("tickets-d")))
        for version, context in self.contexts().items():
            with self.subTest(version=version):
                saved = self.issue(a, context, version)
                mark = d.mark()
                # Not an error: a full handshake (the client sends its certificate again),
                # and the session relays.
                self.resume(d, context, saved, f"{version} ticket of A on D (other keys)",
                            expect_reused=False)
                self.assertFalse(d.wait_log(Expect.LOG_SSL_ACCEPT_ERROR, 0.0, start=mark),
                                 d.dump())

    # -- 4. 48-byte keys ---------------------------------------------------------------------
    def test_48_byte_keys_resume_across_processes(self):
        directory = os.path.join(self.tmpdir, "tickets48")
        paths = [write_ticket_key(os.path.join(directory, "current.key"), 48),
                 write_ticket_key(os.path.join(directory, "previous.key"), 48)]
        a = self.keyed_proxy(paths)
        b = self.keyed_proxy(paths)
        for version, context in self.contexts().items():
            with self.subTest(version=version):
                saved = self.issue(a, context, version)
                self.resume(b, context, saved, f"{version} 48-byte key ticket of A on B")

    # -- 5. wrong size -----------------------------------------------------------------------
    def test_79_byte_key_file_stops_the_start_up(self):
        proxy = harness.Proxy(self._subdir("proxy"), self.pki, self.backend.port, start=False,
                              tls={"ticket_keys": ["tickets/current.key", "tickets/next.key",
                                                   "tickets/previous.key"]})
        tickets = os.path.join(proxy.dir, "tickets")
        write_ticket_key(os.path.join(tickets, "current.key"), 80)
        write_ticket_key(os.path.join(tickets, "next.key"), 79)
        write_ticket_key(os.path.join(tickets, "previous.key"), 80)
        self.assertEqual(len(read_bytes(os.path.join(tickets, "next.key"))), 79)
        names_the_file = re.compile(r"next\.key\b.*\b79\b")

        code, text = run_expecting_exit(proxy.binary, proxy.config_path)
        self.assertIsNotNone(code, "certrelay started with a 79-byte ticket key:\n" + text)
        self.assertNotEqual(code, 0, text)
        self.assertRegex(text, names_the_file)
        self.assertNotRegex(text, Expect.LOG_READY)

        result = check_config(proxy.config_path)
        self.assertEqual(result.returncode, 1, output(result))
        self.assertRegex(output(result), names_the_file)
        # The same words at start-up and from --check-config.
        message = next(l for l in output(result).splitlines() if names_the_file.search(l))
        self.assertIn(message.strip(), text)

        # The same config with a right-sized key passes.
        write_ticket_key(os.path.join(tickets, "next.key"), 80)
        result = check_config(proxy.config_path)
        self.assertEqual(result.returncode, 0, output(result))


if __name__ == "__main__":
    harness.main()
