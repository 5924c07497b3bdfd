"""The systems under test. Each is started pinned to core 0 in its own cgroup, configured with
the benchmark's one PKI, in front of the benchmark's smtp-sink; `procs()` are the process
families whose CPU time and memory count as the target's."""

from __future__ import annotations

import os
import re
import shutil
import socket
import string

from .pki import SERVER_NAME
from .system import BenchError, Launcher, Proc, free_port, output_of, port_accepts, run, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
TARGET_CORE = 0
LOAD_CORE = 1
SMTP_SINK = "/usr/sbin/smtp-sink"


def render(template: str, dest: str, **values) -> str:
    with open(os.path.join(TEMPLATES, template)) as f:
        text = string.Template(f.read()).substitute(**values)
    with open(dest, "w") as f:
        f.write(text)
    os.chmod(dest, 0o644)
    return dest


class Context:
    """What every target needs: where to put files, the PKI, the launcher, the build."""

    def __init__(self, workdir: str, pki, launcher: Launcher, certrelay_bin: str,
                 python: str = "/usr/bin/python3"):
        self.workdir, self.pki, self.launcher = workdir, pki, launcher
        self.certrelay_bin, self.python = certrelay_bin, python


class Sink:
    """Postfix's smtp-sink, the backend of every target and the 'backend alone' ceiling.
    Runs on the load generator's core. With `dump_dir` it writes every message there (used
    only by the single-session checks, never while measuring)."""

    def __init__(self, ctx: Context, name: str, dump_dir: str | None = None,
                 core: int = LOAD_CORE):
        self.ctx, self.name, self.dump_dir, self.core = ctx, name, dump_dir, core
        self.port = free_port()
        self.proc: Proc | None = None

    def argv(self) -> list[str]:
        argv = [SMTP_SINK]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        if self.dump_dir:
            os.makedirs(self.dump_dir, exist_ok=True)
            os.chmod(self.dump_dir, 0o777)
            argv += ["-d", os.path.join(self.dump_dir, "%M.")]
        # -m: connection limit (default 256 would queue the idle sessions' backends; W4x holds
        # 10,000)
        return argv + ["-m", "16384", f"127.0.0.1:{self.port}", "4096"]

    def start(self):
        log = os.path.join(self.ctx.workdir, f"{self.name}.log")
        for _ in range(3):
            self.proc = self.ctx.launcher.start(self.name, self.argv(), self.core, log)
            try:
                wait_until(lambda: port_accepts(self.port) or not self.proc.alive(), 10,
                           what="smtp-sink to listen")
            except BenchError:
                pass
            if self.proc.alive() and port_accepts(self.port):
                return
            self.ctx.launcher.stop(self.proc)
            self.port = free_port()
        raise BenchError(f"smtp-sink did not start:\n{self.proc.log_tail()}")

    def stop(self):
        if self.proc:
            self.ctx.launcher.stop(self.proc)
            self.proc = None


class Target:
    name = "?"
    label = "?"
    callgrind_ok = False
    tls = True                  # STARTTLS with the client certificate
    applicable = ("L1", "W1", "W2", "W3", "W4")
    config_note = ""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.dir = os.path.join(ctx.workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = 0
        self.main: Proc | None = None
        self.helpers: list[Proc] = []       # started with the target, not counted (auth_http)
        # argv prefix of the server (the counting pass: valgrind --tool=callgrind ...); a
        # target that cannot run under it single-process leaves `callgrind_ok` False
        self.wrap: list[str] = []
        self.ready_timeout = 20.0

    # the process families whose CPU and memory are the target's
    def procs(self) -> list[Proc]:
        return [self.main] if self.main else []

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.procs())

    def memory_kib(self) -> dict:
        total = {"rss": 0, "pss": 0, "processes": 0, "threads": 0}
        for p in self.procs():
            for k, v in p.memory_kib().items():
                total[k] += v
        return total

    def pids(self) -> list[int]:
        return [pid for p in self.procs() for pid in p.pids()]

    def version(self) -> str:
        return ""

    def configure(self, sink_port: int):
        raise NotImplementedError

    def launch(self):
        raise NotImplementedError

    def start(self, sink_port: int):
        """Configures for `sink_port` and starts; retries on another port if the chosen one
        was taken meanwhile."""
        last = ""
        for _ in range(3):
            self.port = free_port()
            self.configure(sink_port)
            try:
                self.launch()
                return
            except BenchError as e:
                last = str(e)
                self.stop()
        raise BenchError(f"{self.label} did not start: {last}")

    def wait_listening(self, timeout: float = 15):
        timeout = max(timeout, self.ready_timeout)
        wait_until(lambda: port_accepts(self.port) or not self.main.alive(), timeout,
                   what=f"{self.label} to listen on {self.port}")
        if not self.main.alive():
            raise BenchError(f"{self.label} exited ({self.main.popen.returncode}):\n"
                             f"{self.main.log_tail()}")

    def stop(self):
        for p in [*self.helpers, self.main]:
            if p is not None:
                self.ctx.launcher.stop(p)
        self.helpers, self.main = [], None

    def logs(self) -> str:
        return "\n".join(p.log_tail() for p in self.procs() + self.helpers)


class Backend(Target):
    """The sink alone, plain SMTP (--no-starttls): the ceiling."""
    name = "backend"
    label = "backend alone (smtp-sink, plain)"
    tls = False
    applicable = ("L1", "W1", "W3")
    config_note = ("`smtp-sink -u nobody -m 8192 127.0.0.1:<port> 4096` on core 1 (the "
                   "generator's core), no TLS; its CPU is the sink's")

    def __init__(self, ctx: Context, sink: Sink):
        super().__init__(ctx)
        self.sink = sink

    def procs(self):
        return [self.sink.proc] if self.sink.proc else []

    def start(self, sink_port: int):
        self.port = self.sink.port

    def stop(self):
        pass

    def version(self) -> str:
        return "smtp-sink (Postfix " + output_of(["postconf", "-d", "-h", "mail_version"]) + ")"


class Certrelay(Target):
    name = "certrelay"
    label = "certrelay"
    callgrind_ok = True
    max_connections = None              # limits.max_connections (W4x: 12000)
    config_note = ("`workers = 1`, README defaults (identity auto = XCLIENT to the sink, "
                   "received_header on, session cache on, 1 TLS 1.3 ticket, no stateless "
                   "tickets), fingerprint table with the client's SHA-256 fingerprint, "
                   "no `client_ca` (certificate requested and pinned, not chain-verified)")

    def configure(self, sink_port):
        pki = self.ctx.pki
        self.config = render("certrelay.toml", os.path.join(self.dir, "certrelay.toml"),
                             server_name=SERVER_NAME, port=self.port, sink_port=sink_port,
                             server_chain=pki.server_chain, server_key=pki.server_key,
                             relay_clientcerts=pki.relay_clientcerts)
        if self.max_connections:
            with open(self.config, "a") as f:
                f.write(f"\n[limits]\nmax_connections = {self.max_connections}\n")
        run([self.ctx.certrelay_bin, "--check-config", "--config", self.config])

    def launch(self):
        log = os.path.join(self.dir, "certrelay.log")
        with open(log, "w"):
            pass
        self.main = self.ctx.launcher.start(
            "certrelay", [*self.wrap, self.ctx.certrelay_bin, "--config", self.config],
            TARGET_CORE, log)

        def ready():
            if not self.main.alive():
                return True
            with open(log, errors="replace") as f:
                return "ready: workers=" in f.read()
        wait_until(ready, self.ready_timeout, what="certrelay 'ready:'")
        self.wait_listening()

    def version(self):
        return output_of([self.ctx.certrelay_bin, "--version"])


class Nginx(Target):
    name = "nginx"
    label = "nginx mail"
    callgrind_ok = True
    config_note = ("`load_module ngx_mail_module.so`, `worker_processes 1` (master started as "
                   "root + 1 worker, both counted), `mail { auth_http; proxy on; xclient on; "
                   "smtp_auth none; starttls on; ssl_verify_client optional_no_ca; "
                   "ssl_session_cache shared:MAIL:10m; }` (session tickets: nginx default, on); "
                   "auth_http answered by a tiny Python (asyncio) endpoint on core 1 with "
                   "`Auth-Status: OK`, `Auth-Server: 127.0.0.1`, `Auth-Port: <sink>`, "
                   "its CPU not counted (reported separately)")

    def configure(self, sink_port):
        pki = self.ctx.pki
        self.auth_port = free_port()
        self.sink_port = sink_port
        self.config = render("nginx.conf", os.path.join(self.dir, "nginx.conf"),
                             dir=self.dir, server_name=SERVER_NAME, port=self.port,
                             auth_port=self.auth_port, server_chain=pki.server_chain,
                             server_key=pki.server_key)
        if self.wrap:
            # under callgrind: one process (the worker's work done by the master itself)
            with open(self.config) as f:
                text = f.read().replace("master_process on;", "master_process off;")
            with open(self.config, "w") as f:
                f.write(text)
        run(["nginx", "-t", "-q", "-p", self.dir + "/", "-c", self.config,
             "-e", os.path.join(self.dir, "nginx-error.log")])

    def launch(self):
        auth = self.ctx.launcher.start(
            "nginx-auth", [self.ctx.python, os.path.join(HERE, "auth_http.py"),
                           str(self.auth_port), str(self.sink_port)],
            LOAD_CORE, os.path.join(self.dir, "auth_http.log"))
        self.helpers.append(auth)
        wait_until(lambda: port_accepts(self.auth_port) or not auth.alive(), 10,
                   what="auth_http endpoint")
        if not auth.alive():
            raise BenchError(f"auth_http endpoint exited:\n{auth.log_tail()}")
        log = os.path.join(self.dir, "nginx-error.log")
        self.main = self.ctx.launcher.start(
            "nginx", [*self.wrap, "/usr/sbin/nginx", "-p", self.dir + "/", "-c", self.config, "-e", log],
            TARGET_CORE, os.path.join(self.dir, "nginx-stderr.log"))
        self.main.log_path = log
        self.wait_listening()
        # master and its worker
        if not self.wrap:
            wait_until(lambda: len(self.main.pids()) >= 2, 10, what="nginx worker")

    def auth_requests_served(self) -> int:
        with socket.create_connection(("127.0.0.1", self.auth_port), timeout=5) as s:
            s.sendall(b"GET /served HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        m = re.search(rb"Served: (\d+)", data)
        return int(m.group(1)) if m else -1

    def auth_cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.helpers)

    def version(self):
        return output_of(["nginx", "-v"]).replace("nginx version: ", "")


class Stunnel(Target):
    name = "stunnel"
    label = "stunnel"
    callgrind_ok = True
    config_note = ("`protocol = smtp`, `accept`/`connect` (the sink), `cert`/`key`, "
                   "`verify = 0` (client certificate requested, not required, not verified: "
                   "`verifyChain = no`/`verifyPeer = no` alone send no CertificateRequest), "
                   "foreground, session cache defaults")

    def configure(self, sink_port):
        pki = self.ctx.pki
        self.config = render("stunnel.conf", os.path.join(self.dir, "stunnel.conf"),
                             dir=self.dir, port=self.port, sink_port=sink_port,
                             server_chain=pki.server_chain, server_key=pki.server_key)

    def launch(self):
        log = os.path.join(self.dir, "stunnel.log")
        self.main = self.ctx.launcher.start("stunnel", [*self.wrap, "/usr/bin/stunnel4",
                                                        self.config],
                                            TARGET_CORE, os.path.join(self.dir, "stderr.log"))
        self.main.log_path = log
        self.wait_listening()

    def version(self):
        out = output_of(["/usr/bin/stunnel4", "-version"])
        m = re.search(r"stunnel (\S+)", out)
        return m.group(1) if m else out.splitlines()[0] if out else ""


class Postfix(Target):
    name = "postfix"
    label = "Postfix smtpd"
    PROCESS_LIMIT = 1500
    config_note = ("private instance (own config/queue/data dirs, master in the foreground, "
                   "chroot off), `smtpd_tls_security_level = may`, `smtpd_tls_ask_ccert = yes`, "
                   "`smtpd_tls_fingerprint_digest = sha256`, `relay_clientcerts` = the client's "
                   "fingerprint, `smtpd_relay_restrictions = permit_tls_clientcerts, "
                   "defer_unauth_destination`, `smtpd_proxy_filter = 127.0.0.1:<sink>` "
                   "(before-queue, XFORWARD), TLS session cache (tlsmgr) + tickets, "
                   "`smtpd_peername_lookup = no`, smtpd process limit 1500; every process of "
                   "the instance counted (master, smtpd, tlsmgr, anvil, proxymap, postlogd, ...)")

    def configure(self, sink_port):
        pki = self.ctx.pki
        for d in ("etc", "spool"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        os.chmod(os.path.join(self.dir, "spool"), 0o755)
        self.config_dir = os.path.join(self.dir, "etc")
        values = dict(dir=self.dir, server_name=SERVER_NAME, port=self.port,
                      sink_port=sink_port, server_chain=pki.server_chain,
                      server_key=pki.server_key, relay_clientcerts=pki.relay_clientcerts,
                      process_limit=self.PROCESS_LIMIT)
        render("postfix-main.cf", os.path.join(self.config_dir, "main.cf"), **values)
        render("postfix-master.cf", os.path.join(self.config_dir, "master.cf"), **values)
        # `postfix check` creates the queue and data directories with their owners
        # (post-install create-missing) and checks the configuration.
        run(["/usr/sbin/postfix", "-c", self.config_dir, "check"], timeout=60)

    def launch(self):
        daemon_dir = run(["postconf", "-d", "-h", "daemon_directory"]).stdout.strip()
        # master in the foreground as our child (not `postfix start`, which daemonises it);
        # -e: master exits by itself after an hour in any case.
        self.main = self.ctx.launcher.start(
            "postfix", [os.path.join(daemon_dir, "master"), "-c", self.config_dir, "-e", "3600"],
            TARGET_CORE, os.path.join(self.dir, "master.log"))
        self.main.log_path = os.path.join(self.dir, "maillog")
        self.wait_listening(20)

    def version(self):
        return output_of(["postconf", "-d", "-h", "mail_version"])


def make_targets(ctx: Context, names: list[str], sink: Sink) -> list[Target]:
    classes = {"certrelay": Certrelay, "nginx": Nginx, "stunnel": Stunnel, "postfix": Postfix}
    out = []
    for n in names:
        if n == "backend":
            out.append(Backend(ctx, sink))
        elif n in classes:
            out.append(classes[n](ctx))
        else:
            raise BenchError(f"unknown target {n!r} (known: {', '.join([*classes, 'backend'])})")
    return out


def peer_binaries_missing(names: list[str]) -> list[str]:
    need = {"nginx": ["/usr/sbin/nginx", "/usr/lib/nginx/modules/ngx_mail_module.so"],
            "stunnel": ["/usr/bin/stunnel4"],
            "postfix": ["/usr/sbin/postfix"],
            "backend": [SMTP_SINK], "certrelay": [SMTP_SINK]}
    missing = []
    for n in names:
        missing += [p for p in need.get(n, []) if not os.path.exists(p)]
    if not shutil.which("taskset"):
        missing.append("taskset")
    return missing


