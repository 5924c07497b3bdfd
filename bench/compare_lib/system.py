"""Processes, cgroups and /proc accounting for bench/compare.

Every process the benchmark starts goes through `Launcher.start()`: it is put into its own
cgroup v2 group (`certrelay-bench-<name>` under the cgroup2 mount) when that is writable, pinned
to a core with `taskset`, and watched by a tiny shell watchdog that SIGTERMs it if this script
dies without cleaning up. CPU time is read from the group's `cpu.stat` (usage_usec, which
includes children that already exited); without cgroups it falls back to /proc: the sum of
utime+stime+cutime+cstime over the process tree (exited, reaped children are in their parent's
cutime/cstime, live ones in their own utime/stime, so nothing is counted twice).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class BenchError(RuntimeError):
    """A failure that ends the benchmark with a message (no traceback needed)."""


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """n distinct ports that were free a moment ago (held open together while choosing)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def run(cmd, timeout: float = 60, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise BenchError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                         f"{proc.stdout}{proc.stderr}")
    return proc


def output_of(cmd, timeout: float = 30) -> str:
    """stdout+stderr of a command, '' if it cannot run (used for version strings)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ---------------------------------------------------------------------------------------------
# cgroups
# ---------------------------------------------------------------------------------------------
def cgroup2_root() -> str | None:
    """The cgroup2 mount point (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a
    hybrid one), or None."""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    return parts[1]
    except OSError:
        pass
    return None


class CGroup:
    """One cgroup v2 group per benchmark process family; None-like when cgroups are unusable."""

    PREFIX = "certrelay-bench-"

    def __init__(self, root: str, name: str):
        self.path = os.path.join(root, self.PREFIX + name)
        if os.path.isdir(self.path):
            left = self.pids()
            if left:
                raise BenchError(f"{self.path} still holds processes {left} (from an earlier "
                                 "run?); stop them first")
        else:
            os.mkdir(self.path)
        # the group must really accept a process and count its CPU time
        with open(os.path.join(self.path, "cpu.stat")):
            pass

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def usage_usec(self) -> int:
        with open(os.path.join(self.path, "cpu.stat")) as f:
            for line in f:
                k, v = line.split()
                if k == "usage_usec":
                    return int(v)
        raise BenchError(f"no usage_usec in {self.path}/cpu.stat")

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def probe_cgroups() -> tuple[str | None, str]:
    """(cgroup2 root or None, reason). Creates and removes a probe group, moves a short-lived
    child into it and checks that its CPU time shows."""
    root = cgroup2_root()
    if root is None:
        return None, "no cgroup2 mount"
    if os.geteuid() != 0:
        return None, "not root"
    probe = os.path.join(root, CGroup.PREFIX + f"probe-{os.getpid()}")
    try:
        os.mkdir(probe)
    except OSError as e:
        return None, f"{root} not writable ({e.strerror})"
    try:
        p = subprocess.run(["/bin/sh", "-c", f'echo $$ > "{probe}/cgroup.procs" && '
                            'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            return None, f"cannot move a process into {probe}: {p.stderr.strip()}"
        with open(os.path.join(probe, "cpu.stat")) as f:
            usage = int(f.readline().split()[1])
        if usage <= 0:
            return None, "cpu.stat does not count"
        return root, "ok"
    finally:
        try:
            os.rmdir(probe)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# /proc accounting
# ---------------------------------------------------------------------------------------------
def proc_stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()


def proc_cpu_seconds(pid: int, children: bool = True) -> float:
    """CPU of a process: its threads' run time (schedstat, ns) or, if larger, utime+stime from
    /proc/<pid>/stat (which also holds threads that ended, but is in whole clock ticks: summed
    over hundreds of short-lived smtpd processes the truncation loses ~half), plus its reaped
    children's cutime+cstime."""
    f = proc_stat_fields(pid)
    if f is None:
        return 0.0
    own = (int(f[11]) + int(f[12])) / CLK_TCK
    ns = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as sf:
                ns += int(sf.read().split()[0])
    except (OSError, ValueError, IndexError):
        ns = 0
    total = max(own, ns / 1e9)
    if children:
        total += (int(f[13]) + int(f[14])) / CLK_TCK
    return total


def proc_start_time(pid: int) -> int | None:
    f = proc_stat_fields(pid)
    if f is None or f[0] == "Z":
        return None
    return int(f[19])


def descendants(root_pid: int) -> list[int]:
    """root_pid and every live descendant (by ppid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = proc_stat_fields(int(entry))
            if f is not None:
                children.setdefault(int(f[1]), []).append(int(entry))
    out, todo = [], [root_pid]
    while todo:
        p = todo.pop()
        if proc_stat_fields(p) is None:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def thread_count(pid: int) -> int:
    f = proc_stat_fields(pid)
    return int(f[17]) if f else 0


class CpuTimes:
    """Per-core jiffies from /proc/stat (user, nice, system, idle, iowait, irq, softirq, steal)."""

    def __init__(self):
        self.t = time.monotonic()
        self.cores: dict[int, list[int]] = {}
        with open("/proc/stat") as f:
            for line in f:
                m = re.match(r"cpu(\d+) (.*)", line)
                if m:
                    self.cores[int(m.group(1))] = [int(x) for x in m.group(2).split()[:8]]

    def busy(self, since: "CpuTimes", core: int) -> dict:
        """Seconds of user+nice+system ('busy'), irq+softirq, steal and idle on `core`."""
        a, b = since.cores.get(core), self.cores.get(core)
        if a is None or b is None:
            return {"busy": 0.0, "irq": 0.0, "steal": 0.0, "idle": 0.0}
        d = [(y - x) / CLK_TCK for x, y in zip(a, b)]
        return {"busy": d[0] + d[1] + d[2], "irq": d[5] + d[6], "steal": d[7],
                "idle": d[3] + d[4]}


# ---------------------------------------------------------------------------------------------
# launching
# ---------------------------------------------------------------------------------------------
class Proc:
    """A process started by the Launcher: its Popen, its group (or None) and its watchdog."""

    def __init__(self, name: str, popen: subprocess.Popen, group: CGroup | None,
                 watchdog: subprocess.Popen, log_path: str | None):
        self.name, self.popen, self.group, self.watchdog = name, popen, group, watchdog
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def pids(self) -> list[int]:
        """Every live process of this family."""
        if self.group is not None:
            return self.group.pids()
        return descendants(self.pid) if self.alive() else []

    def cpu_seconds(self) -> float:
        """CPU (user+system) used so far by the family, exited children included."""
        if self.group is not None:
            return self.group.usage_usec() / 1e6
        return sum(proc_cpu_seconds(p) for p in self.pids())

    def memory_kib(self) -> dict:
        pids = self.pids()
        return {"rss": sum(rss_kib(p) for p in pids), "pss": sum(pss_kib(p) for p in pids),
                "processes": len(pids), "threads": sum(thread_count(p) for p in pids)}

    def log_tail(self, n: int = 30) -> str:
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0):
        """Signal the main process, wait, then SIGKILL, one by one, whatever of the family is
        left (they are all processes this benchmark started)."""
        # the family as it is now, with start times, so that without a cgroup the children
        # of a main process that is gone can still be found (and never a recycled pid)
        family = {p: proc_start_time(p) for p in self.pids() if p != os.getpid()}
        if self.alive():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        def left() -> list[int]:
            pids = set(self.pids()) if self.group is not None else set()
            pids |= {p for p, st in family.items() if st is not None and proc_start_time(p) == st}
            pids.discard(os.getpid())
            return sorted(pids)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and left():
            time.sleep(0.1)
        for p in left():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.watchdog is not None:
            try:
                self.watchdog.stdin.close()
                self.watchdog.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.watchdog.kill()
            self.watchdog = None
        if self.group is not None:
            self.group.remove()


class Launcher:
    """Starts processes in their own cgroup (when usable), pinned to a core."""

    def __init__(self, cgroot: str | None, bounded_seconds: int):
        self.cgroot = cgroot
        self.bounded_seconds = bounded_seconds
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], core: int, log_path: str | None = None,
              cwd: str | None = None, env: dict | None = None,
              pipe_stdout: bool = False) -> Proc:
        """Starts argv in group `name`, pinned to `core`. Output goes to log_path (appended);
        with pipe_stdout, stdout is a pipe (popen.stdout) and only stderr goes to log_path."""
        group = CGroup(self.cgroot, name) if self.cgroot else None
        # sh writes its own pid into the group, then execs taskset, which execs the program:
        # the program keeps the pid, and every child it forks stays in the group.
        enter = f'echo $$ > "{group.path}/cgroup.procs" && ' if group else ""
        wrapper = ["/bin/sh", "-c", enter + 'exec "$@"', "sh",
                   "taskset", "-c", str(core), *argv]
        log = open(log_path, "ab") if log_path else None
        try:
            popen = subprocess.Popen(
                wrapper, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else (log or subprocess.DEVNULL),
                stderr=log or subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True,
                text=pipe_stdout or None)
        finally:
            if log:
                log.close()
        # The watchdog blocks reading a pipe from us: when this script dies the pipe closes and
        # the process is told to stop; `read -t` bounds its life in any case.
        watchdog = subprocess.Popen(
            ["/bin/bash", "-c", f"read -r -t {self.bounded_seconds} _; "
             f"kill -TERM {popen.pid} 2>/dev/null"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        proc = Proc(name, popen, group, watchdog, log_path)
        self.procs.append(proc)
        # wait until the wrapper has exec'd into the program (its group is set by then)
        wait_until(lambda: self._execd(popen.pid) or popen.poll() is not None,
                   10, 0.005, f"{name} to start")
        return proc

    @staticmethod
    def _execd(pid: int) -> bool:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return False
        return os.path.basename(exe) not in ("sh", "dash", "bash", "taskset")

    def stop(self, proc: Proc, sig: int = signal.SIGTERM):
        proc.stop(sig)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
