"""The counting pass (issue 14): figures that do not drift with the shared host's speed.

For each target and workload, separately from the timed runs (tracing slows the target):
- run A, untraced: context switches of the target's processes (`perf stat -e
  context-switches -p`, inherited by threads and processes created meanwhile; and voluntary +
  nonvoluntary from /proc/<pid>/task/*/status before and after, which loses the threads that
  ended) and the TCP segments on both legs (tcpdump on lo with a port filter, counted by
  direction afterwards);
- run B: system calls by type, `strace -c -f` attached to every target process for the run.
Everything is divided by the sessions (L1, W1, W2) or messages (W3, W3g, W3d) completed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time

from .measure import wait_idle
from .system import BenchError, wait_until
from .targets import LOAD_CORE

COUNT_WORKLOADS = ["L1", "W1", "W2", "W3", "W3g", "W3d"]
TOP_CALLS = 8


def count_sizes(wls: dict, quick: bool) -> dict:
    """The counting pass's own, smaller counts (the figures are per session or message)."""
    out = {}
    for name, wl in wls.items():
        if name not in COUNT_WORKLOADS:
            continue
        if name == "L1":
            wl = dataclasses.replace(wl, sessions=30 if quick else 100)
        elif name in ("W1", "W2"):
            wl = dataclasses.replace(wl, connections=32, sessions=100 if quick else 300)
        else:
            wl = dataclasses.replace(wl, sessions=1)
        out[name] = dataclasses.replace(wl, duration=min(wl.duration, 90))
    return out


def per_message(wl_name: str) -> bool:
    return wl_name.startswith("W3")


# ---------------------------------------------------------------------------------------------
# context switches
# ---------------------------------------------------------------------------------------------
def ctxsw(pids: list[int]) -> dict[int, int]:
    """{tid: voluntary + nonvoluntary context switches} over every thread of `pids`."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    text = f.read()
            except OSError:
                continue
            n = sum(int(v) for v in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)",
                                               text, re.M))
            out[int(tid)] = n
    return out


def ctxsw_delta(before: dict[int, int], after: dict[int, int]) -> int:
    """Switches of the threads alive at the end (threads new since `before` count from 0;
    threads that ended during the run are lost: see the notes for Postfix)."""
    return sum(n - before.get(tid, 0) for tid, n in after.items())


class PerfSwitches:
    """`perf stat -e context-switches -p <pids>`: unlike /proc, it also counts the threads and
    processes created during the run and gone before its end (stunnel's thread per
    connection, Postfix's smtpd), whose counters are inherited from the attached ones."""

    def __init__(self, launcher, workdir: str, tag: str, pids: list[int]):
        self.launcher, self.pids = launcher, pids
        self.file = os.path.join(workdir, f"perf-{tag}.csv")
        self.proc = None

    def start(self):
        self.proc = self.launcher.start(
            "perf", ["perf", "stat", "-x", ",", "-e", "context-switches", "-o", self.file,
                     "-p", ",".join(map(str, self.pids))], LOAD_CORE, self.file + ".log")
        time.sleep(0.5)                      # attaching: no message to wait for
        if not self.proc.alive():
            raise BenchError(f"perf stat exited:\n{self.proc.log_tail()}")

    def stop(self) -> int | None:
        self.launcher.stop(self.proc, signal.SIGINT)
        try:
            with open(self.file) as f:
                for line in f:
                    tok = line.strip().split(",")
                    if len(tok) > 2 and tok[2] == "context-switches" and tok[0].isdigit():
                        return int(tok[0])
        except OSError:
            pass
        return None


# ---------------------------------------------------------------------------------------------
# tcpdump
# ---------------------------------------------------------------------------------------------
class Capture:
    """tcpdump -i lo on the target's and the backend's port, pinned to the generator's core."""

    def __init__(self, launcher, workdir: str, tag: str, ports: list[int]):
        self.launcher, self.ports = launcher, sorted(set(ports))
        self.file = os.path.join(workdir, f"cap-{tag}.pcap")
        self.log = os.path.join(workdir, f"cap-{tag}.log")
        self.proc = None

    def start(self):
        filt = "tcp and (" + " or ".join(f"port {p}" for p in self.ports) + ")"
        self.proc = self.launcher.start(
            # --immediate-mode: without it, packets wait in a ring block until it fills or a
            # timeout passes, and those of the last block are lost at SIGINT (up to a fifth
            # of a W3 run was missing, "dropped by kernel" still 0)
            "tcpdump", ["tcpdump", "-i", "lo", "-nn", "-s", "96", "-B", "16384", "-U",
                        "--immediate-mode", "-w", self.file, filt], LOAD_CORE, self.log)

        def listening():
            if not self.proc.alive():
                raise BenchError(f"tcpdump exited:\n{self.proc.log_tail()}")
            with open(self.log, errors="replace") as f:
                return "listening on" in f.read()
        wait_until(listening, 10, what="tcpdump to listen")

    def stop(self) -> dict:
        time.sleep(1.0)
        self.launcher.stop(self.proc, signal.SIGINT)
        with open(self.log, errors="replace") as f:
            text = f.read()
        got = {}
        for key, pattern in (("captured", r"(\d+) packets? captured"),
                             ("received", r"(\d+) packets? received by filter"),
                             ("dropped", r"(\d+) packets? dropped by kernel")):
            m = re.search(pattern, text)
            got[key] = int(m.group(1)) if m else None
        return got


def segments(pcap: str, target_port: int, backend_port: int) -> dict:
    """Segments (and those carrying data) by direction: c2t, t2c (client leg), t2b, b2t."""
    p = subprocess.run(["tcpdump", "-r", pcap, "-nn", "-q"], capture_output=True, text=True,
                       timeout=120)
    out = {k: 0 for k in ("c2t", "t2c", "t2b", "b2t")}
    data = dict(out)
    for line in p.stdout.splitlines():
        m = re.search(r" IP \S+?\.(\d+) > \S+?\.(\d+): tcp (\d+)", line)
        if not m:
            continue
        src, dst, length = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if dst == target_port:
            k = "c2t"
        elif src == target_port:
            k = "t2c"
        elif dst == backend_port:
            k = "t2b"
        elif src == backend_port:
            k = "b2t"
        else:
            continue
        out[k] += 1
        data[k] += length > 0
    return {"segments": out, "data_segments": data}


# ---------------------------------------------------------------------------------------------
# strace
# ---------------------------------------------------------------------------------------------
def traced(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"^TracerPid:\s+(\d+)", f.read(), re.M)
        return bool(m and int(m.group(1)))
    except OSError:
        return True                        # gone: nothing to wait for


class Strace:
    def __init__(self, launcher, workdir: str, tag: str, pids: list[int]):
        self.launcher, self.pids = launcher, pids
        self.file = os.path.join(workdir, f"strace-{tag}.txt")
        self.log = os.path.join(workdir, f"strace-{tag}.log")
        self.proc = None

    def start(self):
        argv = ["strace", "-c", "-f", "-o", self.file]
        for p in self.pids:
            argv += ["-p", str(p)]
        self.proc = self.launcher.start("strace", argv, LOAD_CORE, self.log)
        wait_until(lambda: all(traced(p) for p in self.pids) or not self.proc.alive(), 15,
                   what="strace to attach")
        if not self.proc.alive():
            raise BenchError(f"strace exited:\n{self.proc.log_tail()}")

    def stop(self) -> dict:
        self.launcher.stop(self.proc, signal.SIGINT)
        wait_until(lambda: not any(traced(p) for p in self.pids), 10,
                   what="strace to detach")
        with open(self.file, errors="replace") as f:
            return parse_strace(f.read())


def parse_strace(text: str) -> dict:
    """{syscall: calls} from `strace -c` (the total is their sum)."""
    calls = {}
    for line in text.splitlines():
        tok = line.split()
        if len(tok) < 5 or not re.match(r"^\d+\.\d+$", tok[0]) or tok[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors], syscall
        calls[tok[-1]] = calls.get(tok[-1], 0) + int(tok[3])
    return calls


# ---------------------------------------------------------------------------------------------
# the pass
# ---------------------------------------------------------------------------------------------
def units_of(wl_name: str, j: dict) -> int:
    return j.get("messages", 0) if per_message(wl_name) else j.get("sessions", 0)


def count_untraced(t, sink, gen, wl, workdir: str, tag: str, use_tcpdump: bool) -> dict:
    """Run A: context switches (perf stat, and /proc) and TCP segments (tcpdump)."""
    rec = {}
    wait_idle(t)
    cap = Capture(t.ctx.launcher, workdir, tag, [t.port, sink.port]) if use_tcpdump else None
    if cap:
        cap.start()
    pids = t.pids()
    perf = PerfSwitches(t.ctx.launcher, workdir, tag, pids) if shutil.which("perf") else None
    if perf:
        perf.start()
    before = ctxsw(pids)
    out = gen.run(t.port, wl, t.tls)
    wait_idle(t)
    after = ctxsw(t.pids())
    switches = perf.stop() if perf else None
    units = units_of(wl.name, out["json"])
    rec["units_a"] = units
    rec["errors_a"] = out["json"].get("errors") or {}
    if cap:
        rec["capture"] = c = cap.stop()
        # on lo the filter sees every packet twice (out and in) and tcpdump keeps one
        if c.get("received") and c.get("captured") is not None and \
                c["captured"] * 2 < c["received"]:
            c["incomplete"] = True
        seg = segments(cap.file, t.port, sink.port)
        if units:
            rec["segments"] = {k: v / units for k, v in seg["segments"].items()}
            rec["data_segments"] = {k: v / units for k, v in seg["data_segments"].items()}
        os.unlink(cap.file)
    if units:
        rec["ctxsw_proc"] = ctxsw_delta(before, after) / units
        rec["ctxsw_source"] = "perf" if switches is not None else "proc"
        rec["ctxsw"] = switches / units if switches is not None else rec["ctxsw_proc"]
    return rec


def count_traced(t, gen, wl, workdir: str, tag: str) -> dict:
    """Run B: system calls, strace attached to every process of the target."""
    rec = {}
    wait_idle(t)
    st = Strace(t.ctx.launcher, workdir, tag, t.pids())
    st.start()
    try:
        out = gen.run(t.port, wl, t.tls)
        wait_idle(t)
    finally:
        calls = st.stop()
    units = units_of(wl.name, out["json"])
    rec["units_b"] = units
    rec["errors_b"] = out["json"].get("errors") or {}
    if units:
        rec["syscalls"] = {k: v / units for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}
        rec["syscalls_total"] = sum(calls.values()) / units
    return rec


def count_run(t, sink, gen, wl, workdir: str, use_tcpdump: bool) -> dict:
    tag = f"{t.name}-{wl.name}"
    rec = {"target": t.name, "workload": wl.name,
           "unit": "message" if per_message(wl.name) else "session"}
    rec.update(count_untraced(t, sink, gen, wl, workdir, tag, use_tcpdump))
    rec.update(count_traced(t, gen, wl, workdir, tag))
    return rec


def counting_phase(ctx, names_targets, sink, gen, wls: dict, quick: bool, log, deadline,
                   notes: list) -> list[dict]:
    """Runs the counting pass; returns one record per target and workload."""
    from .loadgen import WARMUP, applies
    use_tcpdump = bool(shutil.which("tcpdump"))
    if not use_tcpdump:
        notes.append("TCP segments not measured: tcpdump is not installed")
    if not shutil.which("strace"):
        notes.append("system calls not measured: strace is not installed")
        return []
    todo = count_sizes(wls, quick)
    records = []
    for t in names_targets:
        mine = [w for w in COUNT_WORKLOADS if w in todo and applies(todo[w], t)]
        if not mine:
            continue
        if time.monotonic() > deadline:
            notes.append(f"counting pass: time budget reached before {t.label}")
            break
        log(f"== counting pass: {t.label} ({', '.join(mine)})")
        t.start(sink.port)
        try:
            gen.run(t.port, WARMUP, t.tls)
            for w in mine:
                try:
                    rec = count_run(t, sink, gen, todo[w], ctx.workdir, use_tcpdump)
                except BenchError as e:
                    rec = {"target": t.name, "workload": w, "error": str(e)[:500]}
                records.append(rec)
                log("  " + count_summary(rec))
        finally:
            t.stop()
    short = [f"{r['target']} {r['workload']}" for r in records
             if (r.get("capture") or {}).get("incomplete")]
    if short:
        notes.append("TCP segments undercounted (tcpdump kept fewer packets than its filter "
                     "saw) for: " + ", ".join(short))
    if any(r.get("ctxsw_source") == "proc" for r in records):
        notes.append("context switches from /proc (perf stat unusable): only threads alive "
                     "at the end of the run, so stunnel's per-connection threads and "
                     "Postfix's exited smtpd processes are missing")
    return records


def count_summary(r: dict) -> str:
    if r.get("error"):
        return f"{r['workload']}: ERROR {r['error'][:200]}"
    seg = r.get("segments")
    segs = ("segments c→t/t→c/t→b/b→t " + "/".join(f"{seg[k]:.1f}" for k in
                                                    ("c2t", "t2c", "t2b", "b2t"))) if seg \
        else "segments not measured"
    return (f"{r['workload']}: per {r['unit']}: {r.get('syscalls_total', 0):.1f} system calls, "
            f"{r.get('ctxsw', 0):.2f} context switches, {segs}")
