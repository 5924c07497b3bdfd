"""The workloads and how certrelay-load is run for them (pinned to core 1, in its own cgroup,
always bounded by --duration and a hard deadline)."""

from __future__ import annotations

import json
import os
import re
import resource
import select
import time
from dataclasses import dataclass, field

from .smoke import FROM, RCPT
from .system import BenchError
from .targets import LOAD_CORE


@dataclass
class Workload:
    name: str
    title: str
    connections: int
    sessions: int = 0
    messages: int = 1
    body: int = 1024
    resume: bool = False
    idle: bool = False
    hold: float = 0
    duration: float = 120          # the generator's own bound (--duration)
    extra: list = field(default_factory=list)
    # generator flags this workload needs (a generator without them: the workload is skipped,
    # or, for `optional`, run without them and a note says so)
    needs: list = field(default_factory=list)
    optional: bool = False
    only: list = field(default_factory=list)      # targets it applies to (empty: all)

    @property
    def base(self) -> str:
        """The workload whose applicability this one shares (W3g -> W3, W4x -> W4)."""
        return self.name[:2]


def workloads(quick: bool) -> dict[str, Workload]:
    """Counts of the full run, and of --quick (development)."""
    q = quick
    return {
        "L1": Workload("L1", "1 connection, full handshake + 1 x 1 KiB per session",
                       connections=1, sessions=30 if q else 200, duration=90),
        "W1": Workload("W1", "256 connections, full handshake + 1 x 1 KiB per session",
                       connections=256, sessions=600 if q else 3000, duration=120),
        "W2": Workload("W2", "as W1, sessions resumed (--resume)",
                       connections=256, sessions=600 if q else 3000, resume=True, duration=120),
        "W3": Workload("W3", "1 connection, sessions of 100 x 10 KiB, lock-step (one command, "
                       "one reply)", connections=1, sessions=1 if q else 5, messages=100,
                       body=10240, duration=120),
        "W3g": Workload("W3g", "as W3, grouped (MAIL+RCPT+DATA in one write: "
                        "--behaviour grouped)", connections=1, sessions=1 if q else 5,
                        messages=100, body=10240, duration=120,
                        extra=["--behaviour", "grouped"], needs=["--behaviour"]),
        "W3d": Workload("W3d", "as W3, next MAIL sent behind the dot (--behaviour behind-dot)",
                        connections=1, sessions=1 if q else 5, messages=100, body=10240,
                        duration=120, extra=["--behaviour", "behind-dot"],
                        needs=["--behaviour"]),
        "W4": Workload("W4", "idle TLS sessions held open, connected in a burst "
                       "(--connect-batch 0)", connections=200 if q else 1000, idle=True,
                       hold=8, duration=90, extra=["--connect-batch", "0"],
                       needs=["--connect-batch"], optional=True),
        "W4p": Workload("W4p", "as W4, paced (--connect-batch 64)",
                        connections=200 if q else 1000, idle=True, hold=8, duration=90,
                        extra=["--connect-batch", "64"], needs=["--connect-batch"]),
        "W4x": Workload("W4x", "10,000 idle TLS sessions (2,000 with --quick) from 40 source "
                        "addresses, certrelay only; + 1 fresh session while they are held",
                        connections=2000 if q else 10000, idle=True, hold=10, duration=240,
                        extra=["--connect-batch", "64", "--source-addresses",
                               "127.0.0.1-127.0.0.40"],
                        needs=["--connect-batch", "--source-addresses"], optional=True,
                        only=["certrelay"]),
    }


# after each start, not measured: lazy initialisation, caches, a first backend probe
WARMUP = Workload("warm", "warm-up", connections=4, sessions=20, duration=30)


# the fresh session made while W4x's sessions are held
PROBE = Workload("probe", "1 fresh session while the idle ones are held", connections=1,
                 sessions=1, duration=30)


def applies(wl: Workload, target) -> bool:
    return wl.base in target.applicable and (not wl.only or target.name in wl.only)


class LoadGen:
    def __init__(self, binary: str, launcher, pki, workdir: str, python: str):
        self.binary, self.launcher, self.pki, self.workdir = binary, launcher, pki, workdir
        self.python = python
        self.count = 0
        try:
            with open(binary, "rb") as f:
                self._image = f.read()
        except OSError:
            self._image = b""

    def supports(self, flag: str) -> bool:
        """Whether the generator knows `flag` (its option names are literals in the binary;
        an unknown option and a usage error both exit 2, so asking it is no test)."""
        return flag.encode() in self._image

    def prepare(self, wl: Workload) -> tuple[Workload | None, str | None]:
        """(the workload to run or None to skip it, a note or None) for this generator."""
        missing = [f for f in wl.needs if not self.supports(f)]
        if not missing:
            return wl, None
        if not wl.optional:
            return None, (f"{wl.name} not run: the generator has no {', '.join(missing)}")
        extra, i = [], 0
        while i < len(wl.extra):
            if wl.extra[i] in missing:
                i += 2
                continue
            extra.append(wl.extra[i])
            i += 1
        import dataclasses
        return (dataclasses.replace(wl, extra=extra, needs=[]),
                f"{wl.name} run without {', '.join(missing)} (the generator has none)")

    def argv(self, port: int, wl: Workload, tls: bool) -> list[str]:
        argv = [self.python, self.binary] if self.binary.endswith(".py") else [self.binary]
        argv += ["--host", "127.0.0.1", "--port", str(port),
                 "--connections", str(wl.connections), "--duration", f"{wl.duration:g}",
                 "--rcpt", RCPT, "--from", FROM, "--json"]
        if wl.idle:
            argv += ["--idle", "--hold", f"{wl.hold:g}"]
        else:
            argv += ["--sessions", str(wl.sessions), "--messages", str(wl.messages),
                     "--body-size", str(wl.body)]
        if tls:
            argv += ["--cert", self.pki.client_crt, "--key", self.pki.client_key,
                     "--cafile", self.pki.ca_crt]
        else:
            argv += ["--no-starttls"]
        if wl.resume:
            argv += ["--resume"]
        return argv + list(wl.extra)

    def display_argv(self, wl: Workload, tls: bool) -> str:
        """The generator's command line for the report (binary and paths shortened)."""
        argv = self.argv(0, wl, tls)
        argv = argv[2:] if self.binary.endswith(".py") else argv[1:]
        text = " ".join(["certrelay-load", *argv]).replace("--port 0", "--port <target>")
        return text.replace(self.pki.dir + "/", "")

    def run(self, port: int, wl: Workload, tls: bool, on_idle=None, name: str = "load",
            core: int = LOAD_CORE) -> dict:
        """Runs once; returns {"json": ..., "rc", "wall", "load_cpu", "idle_sample", "stdout"}.
        on_idle(n): called once the generator says its n idle sessions are up (W4)."""
        self.count += 1
        log = os.path.join(self.workdir, f"load-{self.count:04d}-{wl.name}.stderr")
        proc = self.launcher.start(name, self.argv(port, wl, tls), core, log,
                                   pipe_stdout=True)
        hard = time.monotonic() + wl.duration + wl.hold + 60
        lines: list[str] = []
        idle_result = None
        partial = ""
        t0 = time.monotonic()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            fd = proc.popen.stdout.fileno()
            os.set_blocking(fd, False)
            while True:
                left = hard - time.monotonic()
                if left <= 0:
                    raise BenchError(f"certrelay-load ran past its deadline ({wl.name})")
                r, _, _ = select.select([fd], [], [], min(left, 1.0))
                if not r:
                    if proc.popen.poll() is not None:
                        # drained below; the process is gone
                        pass
                    else:
                        continue
                try:
                    chunk = os.read(fd, 65536).decode(errors="replace")
                except BlockingIOError:
                    chunk = None
                if chunk == "":
                    break
                if chunk:
                    partial += chunk
                    *complete, partial = partial.split("\n")
                    for line in complete:
                        lines.append(line)
                        m = re.match(r"idle: (\d+) sessions open", line)
                        if m and on_idle and idle_result is None:
                            idle_result = on_idle(int(m.group(1)))
                elif proc.popen.poll() is not None:
                    break
            if partial:
                lines.append(partial)
            rc = proc.popen.wait(max(1, hard - time.monotonic()))
        finally:
            wall = time.monotonic() - t0
            load_cpu = proc.cpu_seconds() if proc.group is not None else None
            self.launcher.stop(proc)
            if load_cpu is None:
                # without cgroups: the generator is our child, reaped by stop()
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                load_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        parsed = None
        for line in reversed(lines):
            line = line.strip()
            if line.startswith("{"):
                try:
                    parsed = json.loads(line)
                    break
                except json.JSONDecodeError:
                    continue
        if parsed is None:
            stderr = ""
            try:
                with open(log, errors="replace") as f:
                    stderr = f.read()[-2000:]
            except OSError:
                pass
            raise BenchError(f"certrelay-load printed no JSON line (rc {rc}, {wl.name}):\n"
                             + "\n".join(lines[-20:]) + "\n" + stderr)
        return {"json": parsed, "rc": rc, "wall": wall, "load_cpu": load_cpu,
                "idle_sample": idle_result, "stdout_tail": lines[-15:]}
