#!/usr/bin/python3
"""Hot reload of the fingerprint table (issue 3): a certificate added on disk is trusted
without a restart; a removed one is refused on the next RCPT of an open session and on a
resumed TLS session; a malformed update keeps the old table and is reported once; SIGHUP
reloads at once; the poll catches what the watch cannot see; an emptied file trusts nobody and
a deleted one keeps the last good table; and the event loop keeps serving while a
100,000-entry table reloads.

Every wait is on a log line naming the exact content hash expected (SHA-256 of the file) or
on an SMTP reply. The Kubernetes volume update, digests, relay_networks and --check-config are
in test_policy_kubernetes.py."""

import os
import re
import shutil
import signal
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Expect, LOCAL_DOMAIN, REMOTE_DOMAIN, Pki, client_context, wait_until  # noqa: E402
from policy_support import (HELO, NO_POLL, SENDER, TRUSTED_ID, UNTRUSTED_ID,  # noqa: E402
                            LOG_ANY_RELOAD, LOG_NOT_LISTED, PolicyTest, content_hash,
                            log_identity, log_keeping, log_loaded, log_reloaded, log_unchanged,
                            log_watching, read_bytes, replace_atomically, table_bytes,
                            write_in_place)


class PolicyReloadTest(PolicyTest):

    def trusted_entry(self):
        return (Pki.fingerprint(self.pki.trusted), TRUSTED_ID)

    def untrusted_entry(self):
        return (Pki.fingerprint(self.pki.untrusted), UNTRUSTED_ID)

    # -- 1. added ----------------------------------------------------------------------------
    def test_added_certificate_trusted_without_restart(self):
        proxy = self.start([self.untrusted_entry()])
        path = proxy.fingerprints_path
        self.wait_line(proxy, log_loaded(path, 1, read_bytes(path)), 0)
        self.wait_line(proxy, log_watching(os.path.dirname(path), "relay_clientcerts", 3600000), 0)

        mark = proxy.mark()
        self.assert_denied(proxy, self.pki.trusted, "before it is listed")
        self.wait_line(proxy, LOG_NOT_LISTED, mark)

        new = table_bytes([self.untrusted_entry(), self.trusted_entry()])
        mark = proxy.mark()
        replace_atomically(path, new)
        self.wait_line(proxy, log_reloaded(path, 2, new, "change"), mark)

        mark = proxy.mark()
        rcpt = self.assert_relays(proxy, self.pki.trusted, "once added")
        self.wait_line(proxy, log_identity(TRUSTED_ID), mark)
        self.assertEqual(self.backend_login_for(rcpt), TRUSTED_ID)
        self.assertEqual(proxy.proc.poll(), None, "the proxy must not restart")

    # -- 2. removed --------------------------------------------------------------------------
    def test_removed_certificate_refused_on_next_rcpt_of_open_session(self):
        proxy = self.start([self.trusted_entry(), self.untrusted_entry()])
        path = proxy.fingerprints_path
        c = self.session(proxy, self.pki.trusted)
        first, second = f"first@{REMOTE_DOMAIN}", f"second@{REMOTE_DOMAIN}"
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        self.assertReply(c.command(f"RCPT TO:<{first}>"), 250, c)

        new = table_bytes([self.untrusted_entry()])
        mark = proxy.mark()
        replace_atomically(path, new)
        self.wait_line(proxy, log_reloaded(path, 1, new, "change"), mark)

        # Same session, same transaction: the next RCPT reads the new table.
        self.assertEqual(c.command(f"RCPT TO:<{second}>").last, Expect.relay_denied(second),
                         c.dump())
        self.wait_line(proxy, Expect.log_noqueue_reject(second, SENDER, HELO), mark)
        # The session goes on: local mail is still accepted, and the message goes out to the
        # recipients accepted so far.
        self.assertReply(c.command(f"RCPT TO:<carol@{LOCAL_DOMAIN}>"), 250, c)
        self.assertReply(c.command("DATA"), 354, c)
        self.assertReply(c.command("Subject: revoked mid-session\r\n\r\nbody\r\n."), 250, c)
        c.quit()
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if x.messages), None),
            what="the message at the backend")
        self.assertIn(f"RCPT TO:<{first}>", conn.commands)
        self.assertNotIn(f"RCPT TO:<{second}>", conn.commands, "refused RCPT was forwarded")

    def test_removed_certificate_refused_on_resumed_tls_session(self):
        proxy = self.start([self.trusted_entry(), self.untrusted_entry()])
        path = proxy.fingerprints_path
        # TLS 1.3 (ticket) and TLS 1.2 (ticket or server cache): a session established while
        # the certificate was listed, saved by the client.
        contexts = {"TLSv1.3": client_context(self.pki.trusted),
                    "TLSv1.2": client_context(self.pki.trusted,
                                              max_version=ssl.TLSVersion.TLSv1_2)}
        saved = {}
        for name, ctx in contexts.items():
            c = self.session(proxy, self.pki.trusted, context=ctx)
            self.assertEqual(c.sock.version(), name)
            self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
            self.assertReply(c.command(f"RCPT TO:<while-listed@{REMOTE_DOMAIN}>"), 250, c)
            saved[name] = c.sock.session
            c.quit()
            self.assertIsNotNone(saved[name], f"{name}: server gave no resumable session")

        new = table_bytes([self.untrusted_entry()])
        mark = proxy.mark()
        replace_atomically(path, new)
        self.wait_line(proxy, log_reloaded(path, 1, new, "change"), mark)

        for name, ctx in contexts.items():
            with self.subTest(version=name):
                mark = proxy.mark()
                c = self.session(proxy, self.pki.trusted, context=ctx, tls_session=saved[name])
                self.assertTrue(c.sock.session_reused, f"{name}: not resumed\n{c.dump()}")
                rcpt = f"after-removal@{REMOTE_DOMAIN}"
                self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
                self.assertEqual(c.command(f"RCPT TO:<{rcpt}>").last, Expect.relay_denied(rcpt),
                                 f"{name}: resumed session relayed after removal\n{c.dump()}")
                c.quit()
                self.wait_line(proxy, LOG_NOT_LISTED, mark, what="resumed handshake")

    # -- 4. malformed ------------------------------------------------------------------------
    def test_malformed_update_keeps_old_table_and_is_reported_once(self):
        proxy = self.start([self.trusted_entry()])
        path = proxy.fingerprints_path
        good = read_bytes(path)
        bad = table_bytes([self.trusted_entry(), self.untrusted_entry(),
                           "this-is-not-a-fingerprint someone"])   # line 4
        problem = re.escape(path) + r":4: \S.*"
        warning = log_keeping(problem, 1, good)

        mark = proxy.mark()
        replace_atomically(path, bad)
        self.wait_line(proxy, warning, mark)
        self.assert_relays(proxy, self.pki.trusted, "after a malformed update")
        self.assert_denied(proxy, self.pki.untrusted,
                           "after a malformed update that would have listed it")

        # More events on the same bad content: a touch, then the same bytes written twice.
        # Each gets 1.2 s, many times the 100 ms debounce plus a read; none may log again.
        os.utime(path)
        for step in ("touch", "rewrite 1", "rewrite 2"):
            if step != "touch":
                replace_atomically(path, bad)
            self.assert_no_line_after_first(proxy, warning, mark, 1.2, step)
        self.assert_no_line(proxy, LOG_ANY_RELOAD, mark, 0, "bad content was swapped in")
        self.assert_relays(proxy, self.pki.trusted, "after repeated malformed updates")
        self.assert_denied(proxy, self.pki.untrusted, "after repeated malformed updates")

        # A different problem is a new warning (once per problem, not once for ever).
        other = table_bytes([self.trusted_entry(), "AB:CD trusted-too-short"])   # line 3
        replace_atomically(path, other)
        self.wait_line(proxy, log_keeping(re.escape(path) + r":3: \S.*", 1, good), mark)

        fixed = table_bytes([self.trusted_entry(), self.untrusted_entry()])
        replace_atomically(path, fixed)
        self.wait_line(proxy, log_reloaded(path, 2, fixed, "change"), mark)
        self.assert_relays(proxy, self.pki.untrusted, "once the fixed table is in")
        self.assert_relays(proxy, self.pki.trusted, "once the fixed table is in")
        warnings = [l for l in proxy.lines()[mark:] if "warning: policy:" in l]
        self.assertEqual(len(warnings), 2, "one warning per distinct problem:\n"
                         + "\n".join(warnings))

    def assert_no_line_after_first(self, proxy, pattern, start, seconds, step):
        """The first match after `start` is expected; a second one within `seconds` fails."""
        first = next(i for i, l in enumerate(proxy.lines()) if i >= start and pattern.search(l))
        match = proxy.wait_log(pattern, seconds, start=first + 1)
        if match:
            self.fail(f"{step}: the same problem was logged again: {match.string}\n"
                      + proxy.dump())

    # -- 5. SIGHUP ---------------------------------------------------------------------------
    def unwatched_symlink_setup(self, poll: str):
        """The table is a symlink into a second directory that nobody watches; the config names
        the symlink. Returns (proxy, symlink path, target path)."""
        target_dir = harness.make_tmpdir("unwatched")
        self.addCleanup(shutil.rmtree, target_dir, True)
        target = os.path.join(target_dir, "table")
        with open(target, "wb") as f:
            f.write(table_bytes([self.trusted_entry()]))
        link_dir = harness.make_tmpdir("linkdir")
        self.addCleanup(shutil.rmtree, link_dir, True)
        link = os.path.join(link_dir, "relay_clientcerts")
        os.symlink(target, link)
        proxy = self.start([], fingerprints=link, reload_poll_interval=poll)
        self.wait_line(proxy, log_loaded(link, 1, read_bytes(target)), 0)
        return proxy, link, target

    def test_sighup_reloads_at_once(self):
        proxy, link, target = self.unwatched_symlink_setup(NO_POLL)
        new = table_bytes([self.untrusted_entry()])
        mark = proxy.mark()
        write_in_place(target, new)
        # Nothing watches the target's directory and the poll is an hour away.
        self.assert_no_line(proxy, LOG_ANY_RELOAD, mark, 1.0, "reload without a trigger")
        self.assert_relays(proxy, self.pki.trusted, "before SIGHUP (old table still in force)")

        proxy.proc.send_signal(signal.SIGHUP)
        self.wait_line(proxy, log_reloaded(link, 1, new, "SIGHUP"), mark)
        self.assert_denied(proxy, self.pki.trusted, "after SIGHUP")
        self.assert_relays(proxy, self.pki.untrusted, "after SIGHUP")

        mark = proxy.mark()
        proxy.proc.send_signal(signal.SIGHUP)
        unchanged = self.wait_line(proxy, log_unchanged(link), mark)
        self.assertIn(f"1 entries, sha256 {content_hash(new)}", unchanged.string)
        self.assert_no_line(proxy, LOG_ANY_RELOAD, mark, 0, "unchanged content reloaded")

    # -- 6. poll -----------------------------------------------------------------------------
    def test_poll_picks_up_what_the_watch_cannot_see(self):
        proxy, link, target = self.unwatched_symlink_setup("1s")
        self.wait_line(proxy, log_watching(os.path.dirname(link), "relay_clientcerts", 1000), 0)
        new = table_bytes([self.untrusted_entry()])
        mark = proxy.mark()
        # Atomic inside the unwatched directory, so a poll can never read a half-written file.
        replace_atomically(target, new)
        self.wait_line(proxy, log_reloaded(link, 1, new, "poll"), mark, timeout=10.0)
        self.assert_denied(proxy, self.pki.trusted, "after the poll reload")
        self.assert_relays(proxy, self.pki.untrusted, "after the poll reload")

    # -- 7. emptied / deleted ----------------------------------------------------------------
    def test_emptied_file_trusts_nobody(self):
        proxy = self.start([self.trusted_entry()])
        path = proxy.fingerprints_path
        self.assert_relays(proxy, self.pki.trusted, "before the table is emptied")
        mark = proxy.mark()
        replace_atomically(path, b"")
        self.wait_line(proxy, log_reloaded(path, 0, b"", "change"), mark)
        self.assert_denied(proxy, self.pki.trusted, "with an empty table")
        self.assert_local_accepted(proxy, self.pki.trusted)

    def test_deleted_file_keeps_last_good_table(self):
        proxy = self.start([self.trusted_entry()])
        path = proxy.fingerprints_path
        good = read_bytes(path)
        mark = proxy.mark()
        os.unlink(path)
        self.wait_line(proxy, log_keeping(re.escape(path) + r": cannot read: .*", 1, good),
                       mark)
        self.assert_relays(proxy, self.pki.trusted, "after the file was deleted")
        self.assert_denied(proxy, self.pki.untrusted, "after the file was deleted")
        # A file that comes back is read again.
        back = table_bytes([self.trusted_entry(), self.untrusted_entry()])
        replace_atomically(path, back)
        self.wait_line(proxy, log_reloaded(path, 2, back, "change"), mark)
        self.assert_relays(proxy, self.pki.untrusted, "once the file is back")

    # -- 8. large table under load -----------------------------------------------------------
    def test_event_loop_serves_while_large_table_reloads(self):
        count = 100_000
        bulk = [f"{os.urandom(32).hex(':').upper()} bulk-{i}\n" for i in range(count)]
        trusted_line = "{} {}\n".format(*self.trusted_entry())

        def generation(n: int) -> bytes:
            # The trusted client is listed in every generation, at a different place, so every
            # session must relay whichever table is in force.
            at = count // 2 if n % 2 else 0
            return "".join([f"# generation {n}\n", *bulk[:at], trusted_line,
                            *bulk[at:]]).encode()

        proxy = self.start([])
        path = proxy.fingerprints_path
        first = generation(0)
        mark = proxy.mark()
        replace_atomically(path, first)
        self.wait_line(proxy, log_reloaded(path, count + 1, first), mark, timeout=60.0)

        stop = threading.Event()
        results = []          # (end time, outcome): "ok" or what went wrong

        def client_loop():
            # Bounded: until the reloads are done, at most 120 s (the reloads take far less;
            # under scripts/test.sh --tsan, a Debug build, each one takes about 10 s).
            deadline = time.monotonic() + 120.0
            n = 0
            while not stop.is_set() and time.monotonic() < deadline:
                n += 1
                rcpt = f"load-{n}@{REMOTE_DOMAIN}"
                try:
                    c = harness.connect(proxy.port, timeout=10.0)
                    try:
                        c.ehlo(HELO)
                        c.starttls(client_context(self.pki.trusted))
                        c.ehlo(HELO)
                        replies = [c.command(f"MAIL FROM:<{SENDER}>"),
                                   c.command(f"RCPT TO:<{rcpt}>"), c.command("DATA"),
                                   c.command(f"Subject: load {n}\r\n\r\nbody\r\n.")]
                        codes = [r.code for r in replies]
                        outcome = "ok" if codes == [250, 250, 354, 250] else \
                            f"session {n}: replies {[r.text for r in replies]}"
                        c.quit()
                    finally:
                        c.close()
                except Exception as e:   # a timeout or a dropped connection is the failure
                    outcome = f"session {n}: {type(e).__name__}: {e}"
                results.append((time.monotonic(), outcome))

        thread = threading.Thread(target=client_loop, daemon=True)
        thread.start()
        windows = []          # (write time, time the reload line was seen)
        try:
            # Sessions are running before the first reload starts.
            wait_until(lambda: len(results) >= 3, 10.0, what="the first client sessions")
            for n in range(1, 6):
                data = generation(n)
                mark = proxy.mark()
                began = time.monotonic()
                replace_atomically(path, data)
                if n % 2:
                    proxy.proc.send_signal(signal.SIGHUP)   # at once, besides the watch
                self.wait_line(proxy, log_reloaded(path, count + 1, data), mark, timeout=60.0,
                               what=f"reload {n}")
                windows.append((began, time.monotonic()))
            self.assertTrue(thread.is_alive() and not stop.is_set(),
                            "the client loop ended before the reloads did")
            # And the sessions go on after the last swap.
            done = len(results)
            wait_until(lambda: len(results) >= done + 3, 10.0, what="sessions after the reloads")
        finally:
            stop.set()
            thread.join(30.0)
        self.assertFalse(thread.is_alive(), "client thread did not finish")
        failures = [outcome for _, outcome in results if outcome != "ok"]
        self.assertFalse(failures, f"{len(failures)} of {len(results)} sessions failed: "
                         f"{failures[:5]}\n" + proxy.dump()[-4000:])
        during = sum(1 for t, _ in results if any(a <= t <= b for a, b in windows))
        # Information only (no timing is asserted).
        sys.stderr.write(f"\n  {len(results)} sessions, {during} of them ended while a "
                         f"{count + 1}-entry table was being reloaded ... ")
        self.assertTrue(proxy.alive())


if __name__ == "__main__":
    harness.main()
