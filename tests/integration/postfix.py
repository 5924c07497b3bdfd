"""A private, real Postfix started by the tests (root only)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import unittest

from util import LOCAL_DOMAIN, LogFile, stop_process, POSTCONF, POSTFIX, free_port, is_root, port_accepts, run, wait_until


class PostfixInstance(LogFile):
    """A real Postfix (Debian's 3.7.11) with its own config, queue and data directories under
    `tmpdir`, listening only on 127.0.0.1:<port>, logging to <tmpdir>/maillog, and never
    delivering anywhere: every transport is `discard`, so relayed mail is received, queued,
    logged and dropped. With `relay_to`, mail for remote domains goes instead by the smtp
    client to an smtp-sink on loopback, where the test reads the delivered message; with
    `modes`, one instance runs an smtpd service per identity mode (XCLIENT authorised, only
    XFORWARD authorised, neither), each on its own port.

    Needs root (master and postdrop ownership). Notes on what had to be done:
      * /etc/postfix has no main.cf here; `postfix -c <dir>` as root accepts a private config
        directory without listing it in alternate_config_directories.
      * master.cf uses chroot = n everywhere: no chroot jail has to be populated.
      * maillog_file needs a `postlog` unix-dgram service in master.cf, and its path must
        start with one of maillog_file_prefixes (default "/var, /dev/stdout"): we set the
        prefix to our tmpdir.
      * `postfix check` runs post-install create-missing, which creates the queue
        subdirectories and data_directory with the right owners. master is then started by
        us in the foreground (not `postfix start`, which daemonises it), so that it cannot
        outlive the test process.
      * The tmpdir must be traversable by the postfix user (mode 0755).
      * XCLIENT LOGIN= is ignored by permit_sasl_authenticated on 3.7.11 unless
        smtpd_sasl_auth_enable = yes (fixed in 3.7.12; protocol.md 1.8). With Cyrus SASL
        (libsasl2-modules installed) and a private smtpd.conf listing PLAIN/LOGIN over sasldb,
        smtpd starts, advertises AUTH, and honours the XCLIENT login.
    """

    MASTER_EXIT_TIME = 600   # master -e: a backstop far beyond any test file's run time

    # How the proxy's smtpd service trusts it (README "Postfix as the backend ..."), as
    # master.cf -o overrides, one smtpd service per mode (see `modes`):
    #   xclient   XCLIENT authorised; relaying by permit_sasl_authenticated (XCLIENT LOGIN, with
    #             the 3.7.11 SASL workaround)
    #   xforward  only XFORWARD authorised; relaying because the proxy is in mynetworks
    #   none      neither; relaying because the proxy is in mynetworks
    MODE_SETTINGS = {
        "xclient": {
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "smtpd_authorized_xforward_hosts": "",
            "smtpd_relay_restrictions": "permit_sasl_authenticated,defer_unauth_destination",
            "smtpd_sasl_auth_enable": "yes",
        },
        "xforward": {
            "smtpd_authorized_xclient_hosts": "",
            "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks,reject",
            "smtpd_sasl_auth_enable": "no",
        },
        "none": {
            "smtpd_authorized_xclient_hosts": "",
            "smtpd_authorized_xforward_hosts": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks,reject",
            "smtpd_sasl_auth_enable": "no",
        },
    }

    def __init__(self, tmpdir: str, port: int | None = None, *, extra_main: dict | None = None,
                 start: bool = True, modes=None, relay_to: int | None = None,
                 services: dict | None = None):
        """modes: None (default) = one smtpd service on `port` configured by main.cf (XCLIENT,
        as before); or a sequence of MODE_SETTINGS names, one smtpd service each on its own
        port (`ports[mode]`; `port` is the first one's), logging as postfix/<mode>/smtpd.
        relay_to: deliver mail for non-local domains with the smtp client to
        [127.0.0.1]:<relay_to> (an SmtpSink capturing it) instead of discarding it.
        services: more smtpd services beside those, {name: {parameter: value}} as master.cf
        -o overrides (e.g. {"smtps": {"smtpd_tls_wrappermode": "yes"}}), each on its own port
        (`ports[name]`), logging as postfix/<name>/smtpd."""
        self.modes = tuple(modes) if modes else None
        self.services = dict(services or {})
        for mode in self.modes or ():
            if mode not in self.MODE_SETTINGS:
                raise ValueError(f"unknown Postfix mode {mode!r}")
        self.ports: dict[str, int] = {}
        self.relay_to = relay_to
        self.dir = tmpdir
        self.config_dir = os.path.join(tmpdir, "etc")
        self.queue_dir = os.path.join(tmpdir, "spool")
        self.data_dir = os.path.join(tmpdir, "data")
        self.maillog = os.path.join(tmpdir, "maillog")
        self.log_path = self.maillog
        self.log_name = "Postfix maillog"
        self.sasl_dir = os.path.join(self.config_dir, "sasl")
        for d in (self.config_dir, self.queue_dir, self.sasl_dir):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.queue_dir, 0o755)
        self.port = port
        self.extra_main = extra_main or {}
        self.master = None
        self._watchdog = None
        self.started = False
        if start:
            self.start()

    def _main_cf(self) -> dict:
        settings = {
            "compatibility_level": "3.6",
            "myhostname": "backend.test.example",
            "mydomain": "test.example",
            "myorigin": "$myhostname",
            "mydestination": LOCAL_DOMAIN,
            "mynetworks": "127.0.0.1/32",
            "relay_domains": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",     # accept any local part at local.example
            "biff": "no",
            "smtputf8_enable": "no",
            # Nothing ever leaves the machine: every delivery is discarded (and logged).
            "default_transport": "discard",
            "local_transport": "discard",
            "relay_transport": "discard",
            "virtual_transport": "discard",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_sasl_authenticated, defer_unauth_destination",
            "smtpd_recipient_restrictions": "",
            # Workaround for the 3.7.11 XCLIENT LOGIN bug (see the class comment).
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "cyrus",
            "smtpd_sasl_path": "smtpd",
            "cyrus_sasl_config_path": self.sasl_dir,
            "smtpd_sasl_security_options": "noanonymous",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "smtpd_banner": "$myhostname ESMTP Postfix",
            "smtpd_client_connection_rate_limit": "0",
            "anvil_rate_time_unit": "60s",
            "delay_warning_time": "0",
            "maximal_queue_lifetime": "1h",
            "bounce_queue_lifetime": "1h",
        }
        if self.relay_to is not None:
            # Relayed mail really leaves, to the sink on loopback; no DNS anywhere.
            settings.update({
                "default_transport": "smtp",
                "relayhost": f"[127.0.0.1]:{self.relay_to}",
                "smtp_dns_support_level": "disabled",
                "smtp_host_lookup": "native",
                "smtp_tls_security_level": "none",
            })
        settings.update(self.extra_main)
        return settings

    def _smtpd_lines(self) -> list[str]:
        lines = []
        if not self.modes:
            lines.append(f"127.0.0.1:{self.port} inet n - n - - smtpd")
        for mode in self.modes or ():
            lines.append(f"127.0.0.1:{self.ports[mode]} inet n - n - - smtpd")
            lines.append(f"  -o syslog_name=postfix/{mode}")
            lines += [f"  -o {k}={v}" for k, v in self.MODE_SETTINGS[mode].items()]
        for name, settings in self.services.items():
            lines.append(f"127.0.0.1:{self.ports[name]} inet n - n - - smtpd")
            lines.append(f"  -o syslog_name=postfix/{name}")
            lines += [f"  -o {k}={v}" for k, v in settings.items()]
        return lines

    def smtpd_log(self, mode: str) -> str:
        """Regex for the smtpd of one mode's service in the maillog ("postfix/xforward/smtpd[N]")."""
        return rf"postfix/{re.escape(mode)}/smtpd\[\d+\]"

    def _master_cf(self) -> str:
        # chroot column "n" everywhere; only the services this test needs.
        return "\n".join(self._smtpd_lines() + [
            "pickup    unix  n       -       n       60      1       pickup",
            "cleanup   unix  n       -       n       -       0       cleanup",
            "qmgr      unix  n       -       n       300     1       qmgr",
            "tlsmgr    unix  -       -       n       1000?   1       tlsmgr",
            "rewrite   unix  -       -       n       -       -       trivial-rewrite",
            "bounce    unix  -       -       n       -       0       bounce",
            "defer     unix  -       -       n       -       0       bounce",
            "trace     unix  -       -       n       -       0       bounce",
            "verify    unix  -       -       n       -       1       verify",
            "flush     unix  n       -       n       1000?   0       flush",
            "proxymap  unix  -       -       n       -       -       proxymap",
            "proxywrite unix -       -       n       -       1       proxymap",
            "smtp      unix  -       -       n       -       -       smtp",
            "relay     unix  -       -       n       -       -       smtp",
            "showq     unix  n       -       n       -       -       showq",
            "error     unix  -       -       n       -       -       error",
            "retry     unix  -       -       n       -       -       error",
            "discard   unix  -       -       n       -       -       discard",
            "local     unix  -       n       n       -       -       local",
            "anvil     unix  -       -       n       -       1       anvil",
            "scache    unix  -       -       n       -       1       scache",
            "postlog   unix-dgram n  -       n       -       1       postlogd",
        ]) + "\n"

    def _write_config(self):
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            for key, value in self._main_cf().items():
                f.write(f"{key} = {value}\n")
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self._master_cf())
        # Cyrus SASL application config for smtpd: needs at least one mechanism or smtpd
        # dies with "no SASL authentication mechanisms". Nobody authenticates with it.
        with open(os.path.join(self.sasl_dir, "smtpd.conf"), "w") as f:
            f.write("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                    f"sasldb_path: {os.path.join(self.config_dir, 'sasldb2')}\n"
                    "mech_list: PLAIN LOGIN\n")

    def postfix(self, *args, timeout=30, check=True):
        return run([POSTFIX, "-c", self.config_dir, *args], timeout=timeout, check=check)

    def start(self):
        if not is_root():
            raise unittest.SkipTest("a private Postfix needs root")
        if not os.path.exists(POSTFIX):
            raise unittest.SkipTest("Postfix is not installed")
        last_error = None
        for _attempt in range(5):
            names = list(self.modes or ()) + list(self.services)
            if names and (not self.ports or last_error is not None):
                self.ports = {name: free_port() for name in names}
                if len(set(self.ports.values())) != len(names):
                    last_error = RuntimeError("free_port() gave one port twice")
                    continue
            if self.modes:
                self.port = self.ports[self.modes[0]]
            elif self.port is None or last_error is not None:
                self.port = free_port()
            self._write_config()
            # `postfix check` does what `postfix start` does before starting master: it
            # creates the queue and data directories (post-install create-missing) and
            # checks the config. We then run master ourselves, in the foreground, as our
            # child, so that it cannot outlive the test even when the test process is killed
            # (ctest timeout): a watchdog shell blocks reading a pipe from us and sends
            # SIGTERM to master when the pipe closes. (PR_SET_PDEATHSIG does not work here:
            # master changes its effective ids, which clears it.) `-e` ends master after
            # MASTER_EXIT_TIME seconds in any case.
            self.postfix("check")
            self.master = subprocess.Popen(
                [self._daemon_directory() + "/master", "-c", self.config_dir,
                 "-e", str(self.MASTER_EXIT_TIME)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._watchdog = subprocess.Popen(
                ["/bin/sh", "-c", f"read _; kill -TERM {self.master.pid} 2>/dev/null"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.started = True
            try:
                ports = list(self.ports.values()) + ([] if self.modes else [self.port])
                wait_until(lambda: all(port_accepts(p) for p in ports)
                           or self.master.poll() is not None,
                           10.0, what="Postfix smtpd port(s) to accept")
            except TimeoutError as e:
                last_error = e
            else:
                if self.master.poll() is None:
                    return
                last_error = RuntimeError(f"master exited with {self.master.returncode}")
            # A bind failure (port taken meanwhile) ends master; retry on another port.
            self.stop()
        raise RuntimeError(f"Postfix did not start: {last_error}\n{self.log_text()}")

    @staticmethod
    def _daemon_directory() -> str:
        return run([POSTCONF, "-d", "-h", "daemon_directory"]).stdout.decode().strip()

    def _our_processes(self) -> list[int]:
        """Processes of this instance: master and its children (they carry MAIL_CONFIG=<dir>)."""
        marker = f"MAIL_CONFIG={self.config_dir}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                continue
        return [p for p in pids if p != os.getpid()]

    def stop(self):
        """SIGTERM to master (it stops its children), then SIGKILL whatever of this instance
        is left."""
        master = self.master
        stop_process(master, grace=10)
        try:
            wait_until(lambda: not self._our_processes(), 10.0, interval=0.05,
                       what="Postfix processes to exit")
        except TimeoutError:
            for pid in self._our_processes():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self._watchdog is not None:
            self._watchdog.stdin.close()     # EOF: the shell's kill finds master gone
            try:
                self._watchdog.wait(5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait(5)
            self._watchdog = None
        self.started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
