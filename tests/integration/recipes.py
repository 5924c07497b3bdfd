"""The backend recipes of docs/backends.md, run for real: the configuration blocks read from the
document, Debian 12's Exim and OpenSMTPD unpacked from their .debs into a private root (they
conflict with the installed Postfix, so they cannot be installed), and one class per MTA that
runs it on a loopback port with a recipe's configuration (root only)."""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import tomllib
import unittest

from postfix import PostfixInstance
from util import LogFile, free_port, stop_process, is_root, port_accepts, run, wait_until

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "backends.md")
DOC_PORT = "10025"          # the backend port the document's blocks use
DEB_CACHE = os.environ.get("CERTRELAY_RECIPE_DEBS", "/var/tmp/certrelay-recipe-debs")

_MARKER = re.compile(r"^<!-- recipe: (?P<name>[\w.-]+) -->\n```[\w-]*\n(?P<body>.*?)^```$",
                     re.M | re.S)


def doc_blocks(path: str = DOC) -> dict[str, str]:
    """{marker name: block text} for every `<!-- recipe: NAME -->` + fenced block."""
    with open(path) as f:
        text = f.read()
    blocks = {}
    for m in _MARKER.finditer(text):
        if m.group("name") in blocks:
            raise AssertionError(f"{path}: recipe block {m.group('name')!r} appears twice")
        blocks[m.group("name")] = m.group("body")
    return blocks


def recipe(name: str, port: int, replacements: dict | None = None) -> str:
    """One block of docs/backends.md with the backend port (and the given strings) substituted."""
    blocks = doc_blocks()
    if name not in blocks:
        raise AssertionError(f"docs/backends.md has no `<!-- recipe: {name} -->` block "
                             f"(has: {', '.join(sorted(blocks))})")
    text = blocks[name]
    if DOC_PORT not in text and name.endswith("certrelay"):
        raise AssertionError(f"recipe {name} does not name the backend port {DOC_PORT}")
    text = text.replace(DOC_PORT, str(port))
    for old, new in (replacements or {}).items():
        if old not in text:
            raise AssertionError(f"recipe {name} no longer contains {old!r}")
        text = text.replace(old, new)
    return text


def certrelay_settings(name: str, port: int) -> dict:
    """The recipe's certrelay TOML block as start_proxy() keyword overrides."""
    return tomllib.loads(recipe(name, port))


# ---------------------------------------------------------------------------------------------
# Debian packages unpacked into a private root
# ---------------------------------------------------------------------------------------------
def _candidate(package: str) -> str | None:
    out = run(["apt-cache", "policy", package], check=False).stdout.decode()
    m = re.search(r"Candidate: (\S+)", out)
    return m.group(1) if m and m.group(1) != "(none)" else None


def unpacked(package: str) -> str:
    """Root directory with `package`'s candidate version unpacked (dpkg -x), fetched with
    `apt-get download` once per version into DEB_CACHE and reused after that."""
    version = _candidate(package)
    if version is None:
        run(["apt-get", "update", "-qq"], timeout=300)
        version = _candidate(package)
    if version is None:
        raise RuntimeError(f"apt knows no candidate for {package} (apt-get update failed?)")
    os.makedirs(DEB_CACHE, exist_ok=True)
    target = os.path.join(DEB_CACHE, f"{package}_{version.replace(':', '%3a')}")
    with open(os.path.join(DEB_CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(os.path.join(target, "root")):
            return os.path.join(target, "root")
        work = tempfile.mkdtemp(dir=DEB_CACHE, prefix=".fetch-")
        try:
            os.chmod(work, 0o755)      # apt-get download as root: _apt may write there
            got = run(["apt-get", "download", "-q", f"{package}={version}"], cwd=work,
                      timeout=300, check=False)
            if got.returncode != 0:
                # Stale package lists (the mirror moved on to a newer version): once more.
                run(["apt-get", "update", "-qq"], timeout=300)
                version = _candidate(package) or version
                run(["apt-get", "download", "-q", f"{package}={version}"], cwd=work, timeout=300)
            debs = [n for n in os.listdir(work) if n.endswith(".deb")]
            if len(debs) != 1:
                raise RuntimeError(f"apt-get download {package}: got {debs}")
            run(["dpkg", "-x", os.path.join(work, debs[0]), os.path.join(work, "root")])
            target = os.path.join(DEB_CACHE, f"{package}_{version.replace(':', '%3a')}")
            if not os.path.isdir(os.path.join(target, "root")):
                shutil.rmtree(target, ignore_errors=True)
                os.replace(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return os.path.join(target, "root")


def missing_libraries(binary: str) -> list[str]:
    out = run(["ldd", binary], check=False).stdout.decode()
    return [line.split()[0] for line in out.splitlines() if "not found" in line]


def ensure_system_user(name: str):
    """A system user (and group of the same name) that a compiled-in name requires; created
    only when missing (the tests run as root)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", name], check=False)
        pwd.getpwnam(name)     # raises if useradd failed (e.g. a concurrent creation lost)


def _require_root(what: str):
    if not is_root():
        raise unittest.SkipTest(f"{what} needs root")


class _Daemon(LogFile):
    """A foreground MTA process with a watchdog that sends it SIGTERM when the test process
    goes away without stopping it (ctest timeout), as PostfixInstance does."""

    proc: subprocess.Popen | None = None
    _watchdog: subprocess.Popen | None = None

    def _spawn(self, args, log_path, env=None):
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", f"read _; kill -TERM {self.proc.pid} 2>/dev/null"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_port(self, what: str):
        wait_until(lambda: port_accepts(self.port) or self.proc.poll() is not None, 15.0,
                   what=f"{what} to accept on port {self.port}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {self.proc.returncode}:\n{self.dump()}")

    def stop(self):
        stop_process(self.proc, grace=10)
        if self._watchdog is not None:
            self._watchdog.stdin.close()
            try:
                self._watchdog.wait(5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait(5)
            self._watchdog = None
        self._after_stop()

    def _after_stop(self):
        pass


# ---------------------------------------------------------------------------------------------
# Exim
# ---------------------------------------------------------------------------------------------
class EximInstance(_Daemon):
    """Debian 12's Exim (exim4-daemon-light) from its .deb, running `exim -C <config> -bdf` as
    root: the config is docs/backends.md's exim-config block, preceded by a private spool/log
    and followed by a router that delivers every address to [127.0.0.1]:<relay_to>."""

    PACKAGE = "exim4-daemon-light"

    def __init__(self, tmpdir: str, relay_to: int):
        _require_root("a private Exim")
        self.dir = tmpdir
        os.makedirs(tmpdir, exist_ok=True)
        os.chmod(tmpdir, 0o755)
        self.relay_to = relay_to
        root = unpacked(self.PACKAGE)
        self.binary = os.path.join(root, "usr/sbin/exim4")
        missing = missing_libraries(self.binary)
        if missing:
            # The daemon re-executes itself with changed ids, so LD_LIBRARY_PATH would not
            # reach that exec: the libraries must be installed.
            raise RuntimeError(f"{self.binary} needs {missing}: run scripts/install-deps.sh")
        ensure_system_user("Debian-exim")   # compiled-in exim user, resolved at start-up
        self.spool = os.path.join(tmpdir, "spool")
        os.makedirs(os.path.join(self.spool, "log"), exist_ok=True)
        for d in (self.spool, os.path.join(self.spool, "log")):
            shutil.chown(d, "Debian-exim", "Debian-exim")
        self.log_path = os.path.join(self.spool, "log", "mainlog")
        self.config_path = os.path.join(tmpdir, "exim.conf")
        self.stderr_path = os.path.join(tmpdir, "exim.stderr")
        for _attempt in range(5):
            self.port = free_port()
            self._write_config()
            self._spawn([self.binary, "-C", self.config_path, "-bdf"], self.stderr_path)
            try:
                # The daemon logs this once it listens (no connection of ours in its log).
                wait_until(lambda: self.proc.poll() is not None or re.search(
                    r"daemon started: pid=\d+", self.log_text()), 15.0, interval=0.05,
                    what="Exim's 'daemon started' line")
                if self.proc.poll() is not None:
                    raise RuntimeError(f"Exim exited with {self.proc.returncode}")
                return
            except RuntimeError:
                self.stop()       # most likely the port was taken meanwhile; another one
        raise RuntimeError(f"Exim did not start:\n{self.dump()}")

    def _write_config(self):
        prelude = "\n".join([
            "# test only: private spool and logs, the unpacked binary for re-executions",
            f"exim_path = {self.binary}",
            f"spool_directory = {self.spool}",
            f"log_file_path = {self.spool}/log/%slog",
            "log_selector = +smtp_connection +received_recipients",
            "keep_environment =",
            "primary_hostname = backend.test.example",
            "host_lookup =",
            "tls_advertise_hosts =",
            "",
            "# docs/backends.md, recipe exim-config",
        ])
        routing = "\n".join([
            "",
            "# test only: everything to the smtp-sink",
            "begin routers",
            "sink:",
            "  driver = manualroute",
            "  route_list = * 127.0.0.1 byname",
            "  self = send",
            "  transport = sink_smtp",
            "",
            "begin transports",
            "sink_smtp:",
            "  driver = smtp",
            f"  port = {self.relay_to}",
            "  hosts_avoid_tls = *",
            "",
        ])
        with open(self.config_path, "w") as f:
            f.write(prelude + "\n" + recipe("exim-config", self.port) + routing)

    def dump(self) -> str:
        try:
            with open(self.stderr_path, errors="replace") as f:
                stderr = f.read()
        except OSError:
            stderr = ""
        return super().dump() + f"\n--- Exim stderr ---\n{stderr}"


# ---------------------------------------------------------------------------------------------
# OpenSMTPD
# ---------------------------------------------------------------------------------------------
class OpenSmtpdInstance(_Daemon):
    """Debian 12's OpenSMTPD from its .deb, `smtpd -d -f <config>` as root in a private mount
    namespace (its spool, chroot and control socket paths are compiled in: private directories
    are mounted over /var and /run there). The config: `action "outbound" relay host
    smtp://127.0.0.1:<relay_to>`, then docs/backends.md's opensmtpd-smtpd.conf block."""

    PACKAGE = "opensmtpd"

    def __init__(self, tmpdir: str, relay_to: int):
        _require_root("a private OpenSMTPD")
        if not shutil.which("unshare"):
            raise unittest.SkipTest("unshare(1) is missing: OpenSMTPD needs a private /var")
        self.dir = tmpdir
        os.makedirs(tmpdir, exist_ok=True)
        os.chmod(tmpdir, 0o755)
        self.relay_to = relay_to
        self.package_root = unpacked(self.PACKAGE)
        self.pkg_dir = os.path.join(tmpdir, "pkg")
        os.makedirs(self.pkg_dir, exist_ok=True)
        # The path smtpd runs from, inside its mount namespace.
        self.binary = os.path.join(self.pkg_dir, "usr/sbin/smtpd")
        missing = missing_libraries(os.path.join(self.package_root, "usr/sbin/smtpd"))
        if missing:
            raise RuntimeError(f"{self.binary} needs {missing}: run scripts/install-deps.sh")
        probe = run(["unshare", "-m", "--propagation", "private", "true"], check=False)
        if probe.returncode != 0:
            raise unittest.SkipTest("no mount namespaces here (unshare -m failed: "
                                    f"{probe.stderr.decode().strip()}); OpenSMTPD's compiled-in "
                                    "/var and /run paths cannot be made private")
        for user in ("opensmtpd", "opensmtpq"):   # Debian's build: SMTPD_USER, SMTPD_QUEUE_USER
            ensure_system_user(user)
        self.var = os.path.join(tmpdir, "var")
        self.run_dir = os.path.join(tmpdir, "run")
        for d in (os.path.join(self.var, "spool"), os.path.join(self.var, "lib/opensmtpd/empty"),
                  self.run_dir):
            os.makedirs(d, exist_ok=True)
        os.symlink("/run", os.path.join(self.var, "run"))
        self.log_path = os.path.join(tmpdir, "smtpd.log")
        self.config_path = os.path.join(tmpdir, "smtpd.conf")
        for _attempt in range(5):
            self.port = free_port()
            with open(self.config_path, "w") as f:
                f.write(f'# test only: outbound mail goes to the smtp-sink\n'
                        f'action "outbound" relay host smtp://127.0.0.1:{self.relay_to}\n'
                        f'# docs/backends.md, recipe opensmtpd-smtpd.conf\n'
                        + recipe("opensmtpd-smtpd.conf", self.port))
            check = run([os.path.join(self.package_root, "usr/sbin/smtpd"), "-n", "-f",
                         self.config_path], check=False)
            if check.returncode != 0:
                raise RuntimeError("smtpd -n rejects the recipe:\n"
                                   + (check.stdout + check.stderr).decode(errors="replace"))
            # The unpacked package (under DEB_CACHE, maybe in /var) is mounted into our
            # directory first, so that /var can then be replaced.
            script = (f"mount --bind {self.package_root} {self.pkg_dir} && "
                      f"mount --bind {self.run_dir} /run && mount --bind {self.var} /var && "
                      f"exec {self.binary} -d -f {self.config_path}")
            self._spawn(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script],
                        self.log_path)
            try:
                self._wait_port("OpenSMTPD")
                return
            except RuntimeError:
                self.stop()
        raise RuntimeError(f"OpenSMTPD did not start:\n{self.dump()}")

    def _after_stop(self):
        # smtpd's parent stops its privilege-separated children at SIGTERM; make sure.
        def ours():
            pids = []
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if cmd.startswith(self.binary.encode()) and self.config_path.encode() in cmd:
                    pids.append(int(entry))
            return pids
        try:
            wait_until(lambda: not ours(), 10.0, interval=0.05, what="OpenSMTPD processes to exit")
        except TimeoutError:
            for pid in ours():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# ---------------------------------------------------------------------------------------------
# Postfix
# ---------------------------------------------------------------------------------------------
class RecipePostfix(PostfixInstance):
    """PostfixInstance with docs/backends.md's Postfix recipe: its master.cf service (port
    substituted) as the only smtpd, its main.cf lines and its sasl/smtpd.conf (/etc/postfix/sasl
    replaced by the instance's SASL directory); the base main.cf settings that the recipe is
    about are removed first, so that Postfix's defaults apply wherever the recipe is silent."""

    DOC_SASL_DIR = "/etc/postfix/sasl"
    # Set by PostfixInstance's base main.cf, and what the recipe must provide itself.
    RECIPE_KEYS = ("smtpd_authorized_xclient_hosts", "smtpd_relay_restrictions",
                   "smtpd_sasl_auth_enable", "smtpd_sasl_type", "smtpd_sasl_path",
                   "cyrus_sasl_config_path", "smtpd_sasl_security_options",
                   "smtpd_tls_security_level")

    def _recipe(self, name: str) -> str:
        return recipe(name, self.port, {self.DOC_SASL_DIR: self.sasl_dir}
                      if name != "postfix-master.cf" else None)

    def _main_cf(self) -> dict:
        settings = super()._main_cf()
        for key in self.RECIPE_KEYS:
            settings.pop(key, None)
        for line in self._recipe("postfix-main.cf").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                settings[key.strip()] = value.strip()
        return settings

    def _smtpd_lines(self) -> list[str]:
        return [line for line in self._recipe("postfix-master.cf").splitlines() if line.strip()]

    def _write_config(self):
        super()._write_config()
        with open(os.path.join(self.sasl_dir, "smtpd.conf"), "w") as f:
            f.write(self._recipe("postfix-sasl-smtpd.conf"))
