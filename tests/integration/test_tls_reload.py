#!/usr/bin/python3
"""Hot reload of the TLS material: every TLS file (certificate chains, keys, client CA) is
watched like the policy table, re-read together after a debounce, validated, and swapped in
for new connections; a session keeps the generation it started with.

- a kubelet `..data` swap of tls.crt + tls.key (new key, same CA): new s_client connections
  get the new certificate; a session already past STARTTLS, mid-transaction, completes;
- a broken pair (key of another certificate, a truncated certificate) keeps the old
  certificate, warned once per content; the fixed pair reloads;
- a client-CA swap changes what the next session's certificate verifies against (the
  Trusted/Untrusted log word, the Received header's "verified OK", the CA names requested),
  never who may relay (the fingerprint table decides that);
- SIGHUP reloads an in-place rewrite nobody watches; unrelated files written next to the
  certificate reload nothing;
- a certificate that expires within 7 days is warned about at start-up;
- two certificate pairs (ECDSA and RSA): each client gets the one it can use.

Every wait is on a log line or a reply; the only fixed windows are bounded absence checks."""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOCAL_DOMAIN, REMOTE_DOMAIN, Pki  # noqa: E402
from pki import chain_bytes, issue_client, issue_server, make_ca  # noqa: E402
from policy_support import TRUSTED_ID, replace_atomically, write_in_place  # noqa: E402
from tls_support import (LOG_ANY_RELOAD, LOG_POLICY_UNCHANGED, LOG_TLS_ANY_RELOAD,  # noqa: E402
                         LOG_TLS_EXPIRES, LOG_TLS_KEEPING, LOG_TLS_UNCHANGED, SENDER,
                         KubeletSecret, TlsTest, log_tls_keeping, log_tls_reloaded,
                         peer_fingerprint, read_bytes, s_client)

CA2_CN = "certrelay integration test CA 2"
CA2_IDENTITY = "ca2-client"


class TlsReloadTest(TlsTest):

    def certs_dir(self) -> str:
        path = os.path.join(self.tmpdir, "certs")
        os.makedirs(path, exist_ok=True)
        return path

    def new_server(self, name: str, **kw):
        return issue_server(self.certs_dir(), name, self.pki.ca, **kw)

    def server_files(self, cert) -> dict:
        """A Secret payload: the chain (leaf then CA) and the key of `cert`."""
        return {"tls.crt": chain_bytes(cert, self.pki.ca), "tls.key": read_bytes(cert.key)}

    def volume_proxy(self, files: dict, **tls):
        volume = KubeletSecret(os.path.join(self.tmpdir, "secret"), files)
        settings = {"cert": volume.path("tls.crt"), "key": volume.path("tls.key")}
        settings.update(tls)
        proxy = self.start_tls_proxy(tls=settings)
        return volume, proxy

    # -- 1. kubelet swap of a new key and certificate ----------------------------------------
    def test_kubelet_swap_serves_new_certificate_and_open_session_completes(self):
        old = self.pki.server
        new = self.new_server("server-v2", cn="mx-v2.test.example")
        volume, proxy = self.volume_proxy(self.server_files(old))
        loaded = self.loaded(proxy)
        # The secret's directory is watched (the files are symlinks into `..data`).
        self.wait_line(proxy, re.compile(r"tls: watching .*" + re.escape(volume.dir)
                                         + r" for changes to tls\.crt, tls\.key\b"), 0)
        # A 30-day certificate is no cause for an expiry warning.
        self.assertFalse(self.count_lines(proxy, LOG_TLS_EXPIRES, 0), proxy.dump())
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(old))

        # A session past STARTTLS, in the middle of its transaction, on the old certificate.
        before = self.smtplib_session(proxy, self.pki.trusted)
        self.assertEqual(peer_fingerprint(before.sock), Pki.der_sha256(old))
        rcpt = f"across-swap@{REMOTE_DOMAIN}"
        self.assertEqual(before.mail(SENDER)[0], 250)
        code, text = before.rcpt(rcpt)
        self.assertEqual(code, 250, text)

        mark = proxy.mark()
        volume.update(self.server_files(new))
        reloaded = self.wait_line(proxy, log_tls_reloaded("change"), mark,
                                  what="the kubelet swap of tls.crt and tls.key")
        self.assertNotEqual(reloaded.group("hash"), loaded.group("hash"), reloaded.string)

        # New connections get the new certificate (and its chain verifies).
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(new))
        # The open session finishes its message on the generation it started with.
        message_id, content = self.message_for(rcpt, "across the swap")
        code, text = before.data(content)
        self.assertEqual(code, 250, f"{code} {text!r}\n{proxy.dump()}")
        before.quit()
        self.backend_message(message_id)
        conn = next(c for c in self.backend.sessions()
                    if any(message_id.encode() in m for m in c.messages))
        self.assertIn(f"RCPT TO:<{rcpt}>", conn.commands)

        # A new smtplib session is on the new certificate and relays as before.
        after = self.smtplib_session(proxy, self.pki.trusted)
        self.assertEqual(peer_fingerprint(after.sock), Pki.der_sha256(new))
        after.quit()
        self.assert_relays(proxy, self.pki.trusted, "after the swap")
        # One reload for one update: removing the old version directory is no new content.
        self.assertEqual(len(self.count_lines(proxy, LOG_TLS_ANY_RELOAD, mark)), 1, proxy.dump())
        self.assertFalse(self.count_lines(proxy, LOG_TLS_KEEPING, 0), proxy.dump())

    # -- 2. broken pairs ---------------------------------------------------------------------
    def test_broken_pair_keeps_old_certificate_until_fixed(self):
        old = self.pki.server
        new = self.new_server("server-v2")
        other = self.new_server("server-other")
        volume, proxy = self.volume_proxy(self.server_files(old))
        loaded = self.loaded(proxy)
        old_fp = Pki.fingerprint(old)
        mark = proxy.mark()

        # (a) The new certificate with the key of another certificate.
        mismatched = {"tls.crt": chain_bytes(new, self.pki.ca), "tls.key": read_bytes(other.key)}
        volume.update(mismatched)
        warning = self.wait_line(proxy, log_tls_keeping(r"tls\.(crt|key)"), mark,
                                 what="a certificate with the key of another")
        self.assertEqual(warning.group("hash"), loaded.group("hash"),
                         "the warning must name the material still in force\n" + warning.string)
        self.assertEqual(self.served_fingerprint(proxy), old_fp)
        self.assert_relays(proxy, self.pki.trusted, "with a mismatched pair on disk")

        # The same bad content published again: no second warning (once per content).
        again = proxy.mark()
        volume.update(mismatched)
        self.assert_no_line(proxy, LOG_TLS_KEEPING, again, 1.2, "same bad content again")
        self.assertEqual(self.served_fingerprint(proxy), old_fp)

        # (b) A truncated certificate (cut in the middle of the leaf's PEM): another problem,
        # another warning, still the old certificate.
        leaf = read_bytes(new.cert)
        truncated = {"tls.crt": leaf[:len(leaf) // 2], "tls.key": read_bytes(new.key)}
        again = proxy.mark()
        volume.update(truncated)
        warning = self.wait_line(proxy, log_tls_keeping(r"tls\.crt"), again,
                                 what="a truncated certificate")
        self.assertEqual(warning.group("hash"), loaded.group("hash"), warning.string)
        self.assertEqual(self.served_fingerprint(proxy), old_fp)

        # Fixed: the matching pair reloads.
        fixed = proxy.mark()
        volume.update(self.server_files(new))
        self.wait_line(proxy, log_tls_reloaded("change"), fixed, what="the fixed pair")
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(new))
        self.assert_relays(proxy, self.pki.trusted, "after the fix")
        warnings = self.count_lines(proxy, LOG_TLS_KEEPING, mark)
        self.assertEqual(len(warnings), 2, "one warning per distinct bad content:\n"
                         + "\n".join(warnings))
        self.assertEqual(len(self.count_lines(proxy, LOG_TLS_ANY_RELOAD, mark)), 1,
                         proxy.dump())
        self.assertTrue(proxy.alive())

    # -- 3. client CA swap -------------------------------------------------------------------
    def test_client_ca_swap_changes_verification_not_trust(self):
        ca2 = make_ca(self.certs_dir(), "ca2", "/CN=" + CA2_CN)
        client2 = issue_client(self.certs_dir(), "client2", "ca2.client.example", ca2)
        entries = [(Pki.fingerprint(self.pki.trusted), TRUSTED_ID),
                   (Pki.fingerprint(client2), CA2_IDENTITY)]
        # The default config: client_ca = ca.crt next to the config and the table.
        proxy = self.start_tls_proxy(entries=entries)
        ca_path = os.path.join(proxy.dir, "ca.crt")
        self.assertEqual(proxy.config["tls"]["client_ca"], "ca.crt")
        self.loaded(proxy)

        def check(cert, word: str, verified: bool, issuer: str, when: str):
            received, lines = self.deliver(proxy, cert)
            self.assertEqual(self.established(lines), word, f"{cert} {when}\n" + "\n".join(lines))
            self.assertEqual(received.certificate["verified"], verified, f"{cert} {when}: "
                             + received.raw.decode())
            self.assertEqual(received.certificate["issuer"], issuer)
            # Relaying is the table's decision either way.
            self.assertIsNotNone(received.fingerprint, received.raw.decode())
            self.assertIsNotNone(received.fingerprint["identity"], received.raw.decode())

        test_ca = "certrelay integration test CA"
        check(self.pki.trusted, "Trusted", True, test_ca, "under CA 1")
        check(client2, "Untrusted", False, CA2_CN, "under CA 1")
        hints = s_client(proxy.port).ca_names
        self.assertTrue(any(test_ca in n and CA2_CN not in n for n in hints), hints)

        # A session past STARTTLS before the swap keeps its verification result.
        before = self.smtplib_session(proxy, self.pki.trusted)
        rcpt = f"before-ca-swap@{REMOTE_DOMAIN}"
        self.assertEqual(before.mail(SENDER)[0], 250)
        self.assertEqual(before.rcpt(rcpt)[0], 250)

        mark = proxy.mark()
        replace_atomically(ca_path, read_bytes(ca2.cert))
        self.wait_line(proxy, log_tls_reloaded("change"), mark, what="the client CA swap")

        message_id, content = self.message_for(rcpt, "before the CA swap")
        self.assertEqual(before.data(content)[0], 250)
        before.quit()
        received, _ = harness.split_received(self.backend_message(message_id))
        self.assertTrue(received.certificate["verified"], received.raw.decode())

        check(client2, "Trusted", True, CA2_CN, "under CA 2")
        check(self.pki.trusted, "Untrusted", False, test_ca, "under CA 2")
        hints = s_client(proxy.port).ca_names
        self.assertTrue(any(CA2_CN in n for n in hints), hints)
        # The table did not change: no policy reload.
        self.assertFalse(self.count_lines(proxy, re.compile(r"policy: reloaded"), mark),
                         proxy.dump())

    # -- 4. SIGHUP ---------------------------------------------------------------------------
    def test_sighup_reloads_an_in_place_rewrite_nobody_watches(self):
        # The config names symlinks in one directory; the files are in another one that
        # nothing watches, and the poll is an hour away: only SIGHUP can see the rewrite.
        old = self.pki.server
        new = self.new_server("server-v2")
        target_dir = harness.make_tmpdir("unwatched-tls")
        self.addCleanup(shutil.rmtree, target_dir, True)
        link_dir = harness.make_tmpdir("linkdir-tls")
        self.addCleanup(shutil.rmtree, link_dir, True)
        for name, data in self.server_files(old).items():
            with open(os.path.join(target_dir, name), "wb") as f:
                f.write(data)
            os.symlink(os.path.join(target_dir, name), os.path.join(link_dir, name))
        proxy = self.start_tls_proxy(tls={"cert": os.path.join(link_dir, "tls.crt"),
                                          "key": os.path.join(link_dir, "tls.key")})
        loaded = self.loaded(proxy)
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(old))

        mark = proxy.mark()
        for name, data in self.server_files(new).items():
            write_in_place(os.path.join(target_dir, name), data)
        self.assert_no_line(proxy, LOG_TLS_ANY_RELOAD, mark, 1.0, "reload without a trigger")
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(old))

        self.sighup(proxy)
        reloaded = self.wait_line(proxy, log_tls_reloaded("SIGHUP"), mark, what="SIGHUP")
        self.assertNotEqual(reloaded.group("hash"), loaded.group("hash"))
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(new))

        again = proxy.mark()
        self.sighup(proxy)
        unchanged = self.wait_line(proxy, LOG_TLS_UNCHANGED, again, what="second SIGHUP")
        self.assertEqual(unchanged.group("hash"), reloaded.group("hash"), unchanged.string)
        self.assertFalse(self.count_lines(proxy, LOG_TLS_ANY_RELOAD, again), proxy.dump())
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(new))

    # -- 5. unrelated writes -----------------------------------------------------------------
    def test_unrelated_writes_next_to_the_certificate_reload_nothing(self):
        # The default layout: certificate, key, client CA, table and config in one directory.
        proxy = self.start_tls_proxy()
        self.loaded(proxy)
        cert_path = os.path.join(proxy.dir, proxy.config["tls"]["cert"])
        key_path = os.path.join(proxy.dir, proxy.config["tls"]["key"])
        mark = proxy.mark()
        log_path = os.path.join(proxy.dir, "certrelay.log")
        for i in range(200):
            with open(log_path, "a") as f:
                f.write(f"line {i} of an unrelated log file\n")
            if i % 20 == 0:
                replace_atomically(os.path.join(proxy.dir, "unrelated.state"), f"{i}\n".encode())
        self.assert_no_line(proxy, LOG_ANY_RELOAD, mark, 1.2, "unrelated writes")

        # A real change: the certificate renewed with the same key (one atomic rename).
        renewed = self.new_server("server-renewed", reuse_key=key_path)
        replace_atomically(cert_path, chain_bytes(renewed, self.pki.ca))
        self.wait_line(proxy, log_tls_reloaded("change"), mark, what="the renewed certificate")
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(renewed))
        # SIGHUP: both watchers report their content unchanged; whatever was pending from
        # the writes above has had its chance by then.
        hup = proxy.mark()
        self.sighup(proxy)
        self.wait_line(proxy, LOG_TLS_UNCHANGED, hup)
        self.wait_line(proxy, LOG_POLICY_UNCHANGED, hup)
        reloads = self.count_lines(proxy, LOG_ANY_RELOAD, mark)
        self.assertEqual(len(reloads), 1, "only the renewal may reload:\n" + "\n".join(reloads))
        self.assertRegex(reloads[0], log_tls_reloaded("change"))
        self.assertFalse(self.count_lines(proxy, LOG_TLS_KEEPING, mark), proxy.dump())

    # -- 6. expiry ---------------------------------------------------------------------------
    def test_certificate_expiring_in_three_days_is_warned_at_start(self):
        short = self.new_server("server-3days", days=3)
        proxy = self.start_tls_proxy(tls={"cert": short.cert, "key": short.key})
        ready = self.line_index(proxy, harness.Expect.LOG_READY, 0)
        warning = self.wait_line(proxy, LOG_TLS_EXPIRES, 0, what="expiry warning")
        self.assertLess(self.line_index(proxy, LOG_TLS_EXPIRES, 0), ready,
                        "the expiry warning belongs to the start-up\n" + proxy.dump())
        self.assertIn("server-3days.crt", warning.group("file"), warning.string)
        self.assertIn(int(warning.group("days")), (2, 3), warning.string)
        # It still serves the certificate.
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(short))

    # -- 7. two pairs ------------------------------------------------------------------------
    def test_ecdsa_and_rsa_pairs_each_client_gets_the_one_it_can_use(self):
        ecdsa = self.pki.server
        rsa = self.new_server("server-rsa", key_type="rsa", cn="mx-rsa.test.example")
        rsa_chain = os.path.join(self.certs_dir(), "server-rsa-chain.crt")
        with open(rsa_chain, "wb") as f:
            f.write(chain_bytes(rsa, self.pki.ca))
        proxy = self.start_tls_proxy(tls={"cert": [os.path.basename(self.pki.server_chain),
                                                   rsa_chain],
                                          "key": [os.path.basename(ecdsa.key), rsa.key]})
        loaded = self.loaded(proxy)
        self.assertIn("2 certificates", loaded.string)
        self.assertEqual(self.served_fingerprint(proxy), Pki.fingerprint(ecdsa))
        # TLS 1.3, RSA-PSS signatures only / TLS 1.2, ECDHE-RSA only: the RSA certificate.
        self.assertEqual(self.served_fingerprint(proxy, extra=["-sigalgs", "rsa_pss_rsae_sha256"]),
                         Pki.fingerprint(rsa))
        self.assertEqual(self.served_fingerprint(
            proxy, extra=["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]),
            Pki.fingerprint(rsa))
        self.assertEqual(self.served_fingerprint(
            proxy, extra=["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
            Pki.fingerprint(ecdsa))
        self.assert_relays(proxy, self.pki.trusted, "with two certificate pairs")
        reply, c = self.attempt(proxy, self.pki.untrusted, f"carol@{LOCAL_DOMAIN}")
        self.assertEqual(reply.code, 250, c.dump())


if __name__ == "__main__":
    harness.main()
