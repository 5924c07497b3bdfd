#!/usr/bin/python3
"""The fingerprint table where it comes from in production (issue 3): a Kubernetes
ConfigMap/Secret volume updated exactly as kubelet does it (the `..data` symlink swap, which a
watch on the file itself would miss), tables in Postfix's older digests (sha1, md5),
relay_networks (relay without a certificate, no XCLIENT LOGIN), and `--check-config` on
malformed tables.

The reload mechanics themselves (added, removed, malformed, SIGHUP, poll, large tables) are in
test_policy_reload.py."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Expect, Pki, Proxy, REMOTE_DOMAIN  # noqa: E402
from policy_support import (NO_POLL, SENDER, TRUSTED_ID, UNTRUSTED_ID, KubeletVolume,  # noqa: E402
                            LOG_NOT_LISTED, PolicyTest, log_identity, log_loaded,
                            log_reloaded, log_watching, md5_fingerprint, read_bytes,
                            sha1_fingerprint, table_bytes)


class KubernetesVolumeTest(PolicyTest):

    def test_kubelet_symlink_swap_is_picked_up_by_the_watch(self):
        volume_dir = os.path.join(self.tmpdir, "volume")
        first = table_bytes([(Pki.fingerprint(self.pki.trusted), TRUSTED_ID)], "version 1")
        volume = KubeletVolume(volume_dir, first)
        proxy = self.start([], fingerprints=volume.path, reload_poll_interval=NO_POLL)
        self.wait_line(proxy, log_loaded(volume.path, 1, first), 0)
        # The directory of the volume is watched, not the file (a symlink to a symlink).
        self.wait_line(proxy, log_watching(volume_dir, KubeletVolume.NAME, 3600000), 0)
        self.assert_relays(proxy, self.pki.trusted, "from version 1")
        self.assert_denied(proxy, self.pki.untrusted, "from version 1")

        # Version 2: the trusted client is revoked, the other one admitted. The poll is an hour
        # away, so only the watch can see this.
        second = table_bytes([(Pki.fingerprint(self.pki.untrusted), UNTRUSTED_ID)], "version 2")
        mark = proxy.mark()
        volume.update(second)
        self.wait_line(proxy, log_reloaded(volume.path, 1, second, "change"), mark)
        self.assertFalse(os.path.exists(os.path.join(volume_dir, "..2026_11_20_00_00_00.1")))
        self.assert_denied(proxy, self.pki.trusted, "after the update to version 2")
        mark = proxy.mark()
        self.assert_relays(proxy, self.pki.untrusted, "after the update to version 2")
        self.wait_line(proxy, log_identity(UNTRUSTED_ID), mark)

        # Version 3: the watch still works after the first swap (the directory stayed).
        third = table_bytes([(Pki.fingerprint(self.pki.trusted), TRUSTED_ID),
                             (Pki.fingerprint(self.pki.untrusted), UNTRUSTED_ID)], "version 3")
        mark = proxy.mark()
        volume.update(third)
        self.wait_line(proxy, log_reloaded(volume.path, 2, third, "change"), mark)
        self.assert_relays(proxy, self.pki.trusted, "after the update to version 3")
        self.assert_relays(proxy, self.pki.untrusted, "after the update to version 3")
        # Exactly one reload per update: the removal of the old directory is no new content.
        reloads = [l for l in proxy.lines() if "policy: reloaded" in l]
        self.assertEqual(len(reloads), 2, "\n".join(reloads))


class DigestTest(PolicyTest):

    def check_digest(self, digest: str, fingerprint):
        entry = (fingerprint(self.pki.trusted), TRUSTED_ID)
        proxy = self.start([entry], digest=digest)
        self.wait_line(proxy, log_loaded(proxy.fingerprints_path, 1,
                                         read_bytes(proxy.fingerprints_path)), 0)
        mark = proxy.mark()
        rcpt = self.assert_relays(proxy, self.pki.trusted, f"from a {digest} table")
        # The logs speak the table's digest: the listed fingerprint appears as it is.
        line = self.wait_line(proxy, log_identity(TRUSTED_ID), mark)
        self.assertIn(f"cert fingerprint={entry[0]},", line.string)
        self.assertEqual(self.backend_login_for(rcpt), TRUSTED_ID)
        mark = proxy.mark()
        self.assert_denied(proxy, self.pki.untrusted, f"with a {digest} table")
        self.wait_line(proxy, LOG_NOT_LISTED, mark)

    def test_sha1_table(self):
        self.check_digest("sha1", sha1_fingerprint)

    def test_md5_table(self):
        self.check_digest("md5", md5_fingerprint)

    def test_sha256_fingerprint_in_sha1_table_fails_check_config(self):
        proxy = Proxy(self._subdir("proxy"), self.pki, self.backend.port, start=False,
                      fingerprints=[(sha1_fingerprint(self.pki.trusted), TRUSTED_ID),
                                    (Pki.fingerprint(self.pki.untrusted), UNTRUSTED_ID)],
                      policy={"digest": "sha1"})
        # Line 1 is the harness's comment; the sha256 entry is line 3.
        result = check_config(proxy)
        self.assertEqual(result.returncode, 1, result)
        self.assertRegex(output(result), r"relay_clientcerts:3: \S", result)
        # The same table is fine when it holds only sha1 fingerprints.
        harness.write_fingerprints(proxy.fingerprints_path,
                                   [(sha1_fingerprint(self.pki.trusted), TRUSTED_ID)])
        result = check_config(proxy)
        self.assertEqual(result.returncode, 0, result)


class RelayNetworksTest(PolicyTest):

    def plaintext_relay(self, proxy):
        rcpt = f"bob-{os.urandom(3).hex()}@{REMOTE_DOMAIN}"
        c = self.session(proxy, None, tls=False)
        self.assertReply(c.command(f"MAIL FROM:<{SENDER}>"), 250, c)
        reply = c.command(f"RCPT TO:<{rcpt}>")
        if reply.code == 250:
            self.assertReply(c.command("DATA"), 354, c)
            self.assertReply(c.command("Subject: from a relay network\r\n\r\nbody\r\n."), 250, c)
        c.quit()
        return rcpt, reply, c

    def test_relay_network_relays_without_certificate_and_without_login(self):
        proxy = self.start(relay_networks=["127.0.0.0/8"])
        rcpt, reply, c = self.plaintext_relay(proxy)
        self.assertReply(reply, 250, c)
        conn = self.backend.wait_for(
            lambda b: next((x for x in b.sessions() if x.messages), None),
            what="the message at the backend")
        self.assertIn(f"RCPT TO:<{rcpt}>", conn.commands)
        xclients = conn.find("XCLIENT ")
        self.assertTrue(xclients, conn.commands)
        for line in xclients:
            self.assertNotIn("LOGIN=", line.upper(), f"address-trusted client got a LOGIN: {line}")
        self.assertEqual(dict(harness.xclient_attributes(xclients[-1])).get("ADDR"), "127.0.0.1")
        # A listed certificate still wins inside the network: its identity goes to the backend.
        rcpt = self.assert_relays(proxy, self.pki.trusted, "from inside the relay network")
        self.assertEqual(self.backend_login_for(rcpt), TRUSTED_ID)

    def test_without_relay_networks_the_same_client_is_refused(self):
        proxy = self.start()
        rcpt, reply, c = self.plaintext_relay(proxy)
        self.assertEqual(reply.last, Expect.relay_denied(rcpt), c.dump())

    def test_relay_network_not_containing_the_client_is_refused(self):
        proxy = self.start(relay_networks=["192.0.2.0/24", "::/0"])
        rcpt, reply, c = self.plaintext_relay(proxy)
        self.assertEqual(reply.last, Expect.relay_denied(rcpt), c.dump())


class CheckConfigTableTest(PolicyTest):

    def test_malformed_table_names_file_and_line(self):
        fp = Pki.fingerprint(self.pki.trusted)
        cases = [
            ("not hex", ["ZZ:" + fp[3:] + " someone"]),
            ("too short", [fp[:-3] + " someone"]),
            ("sha1 length in a sha256 table", [sha1_fingerprint(self.pki.trusted) + " x"]),
            ("mixed colons", [fp.replace(":", "", 5) + " someone"]),
        ]
        for what, bad in cases:
            with self.subTest(what):
                proxy = Proxy(self._subdir("proxy"), self.pki, self.backend.port, start=False,
                              fingerprints=[(fp, TRUSTED_ID)])
                with open(proxy.fingerprints_path, "ab") as f:
                    f.write(b"\n# a comment and a blank line before it\n")
                    f.write(("\n".join(bad) + "\n").encode())
                # Lines: 1 harness comment, 2 entry, 3 blank, 4 comment, 5 the bad one.
                result = check_config(proxy)
                self.assertEqual(result.returncode, 1, result)
                self.assertRegex(output(result),
                                 re.escape(proxy.fingerprints_path) + r":5: \S", result)

    def test_valid_table_variants_pass(self):
        fp = Pki.fingerprint(self.pki.trusted)
        proxy = Proxy(self._subdir("proxy"), self.pki, self.backend.port, start=False,
                      fingerprints=[(fp, TRUSTED_ID),
                                    (fp.replace(":", "").lower(), "duplicate, lower case")])
        with open(proxy.fingerprints_path, "ab") as f:
            f.write(b"\n   # indented comment\n\t" + Pki.pkey_fingerprint(self.pki.untrusted)
                    .encode() + b"   \n")
        result = check_config(proxy)
        self.assertEqual(result.returncode, 0, result)


def check_config(proxy: Proxy):
    return harness.run([harness.CERTRELAY_BIN, "--check-config", "-c", proxy.config_path],
                       timeout=10, check=False)


def output(result) -> str:
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


if __name__ == "__main__":
    harness.main()
