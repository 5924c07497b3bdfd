"""bench/compare: certrelay side by side with nginx mail, stunnel and Postfix smtpd, on one
machine, loopback only. See `bench/compare --help` and bench/RESULTS.md."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import report
from .callgrind import callgrind_phase, openssl_reference
from .canary import run_canary
from .counts import counting_phase
from .loadgen import WARMUP, LoadGen, applies, workloads
from .measure import measure
from .output import log, write_outputs
from .pki import Pki
from .smoke import check_target
from .system import BenchError, Launcher, output_of, probe_cgroups
from .targets import Context, Sink, make_targets, peer_binaries_missing

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = os.path.dirname(BENCH)
PYTHON = "/usr/bin/python3"
PEER_PACKAGES = ["nginx", "libnginx-mod-mail", "stunnel4", "gnuplot-nox", "tcpdump", "strace",
                 "valgrind"]
ALL_TARGETS = ["certrelay", "nginx", "stunnel", "postfix", "backend"]
# the idle workloads first, each on a fresh target (their "before" is a fresh process)
EXEC_ORDER = ["W4", "W4p", "W4x", "L1", "W1", "W2", "W3", "W3g", "W3d"]
ALL_WORKLOADS = "L1,W1,W2,W3,W3g,W3d,W4,W4p,W4x"
W4X_MAX_CONNECTIONS = 12000
MAX_RETRIES_PER_RUN = 2
MAX_RETRIES_TOTAL = 30


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/compare",
        description="certrelay vs nginx mail, stunnel and Postfix smtpd on loopback: target "
                    "CPU per session/message, latency, memory per idle connection.")
    p.add_argument("--quick", action="store_true",
                   help="1 repetition, smaller counts (development); results go to "
                        "bench/results/<date>-quick/ and bench/RESULTS.md is not touched")
    p.add_argument("--targets", default=",".join(ALL_TARGETS),
                   help="comma-separated, from: " + ",".join(ALL_TARGETS) +
                        " (backend = the sink alone, plain SMTP)")
    p.add_argument("--workloads", default=ALL_WORKLOADS,
                   help="comma-separated, from " + ALL_WORKLOADS + " (default: all)")
    p.add_argument("--reps", type=int, help="repetitions of the timed part (default 5, "
                                            "--quick 1)")
    p.add_argument("--callgrind", action=argparse.BooleanOptionalAction, default=True,
                   help="server instructions under callgrind (default on; about a minute "
                        "per target)")
    p.add_argument("--counts", action=argparse.BooleanOptionalAction, default=True,
                   help="the counting pass: system calls, context switches, TCP segments "
                        "(default on)")
    p.add_argument("--timed", action=argparse.BooleanOptionalAction, default=True,
                   help="the timed repetitions: CPU time, latency, memory (default on)")
    p.add_argument("--canary", action=argparse.BooleanOptionalAction, default=True,
                   help="the sink-alone canary, same core and different cores (default on)")
    p.add_argument("--openssl-reference", metavar="JSON",
                   help="an earlier bench/micro/handshake_floor.sh --json FILE (default: "
                        "run it now into <build-dir>/bench/micro/openssl_reference.json)")
    p.add_argument("--load", help="load generator binary (default: "
                                  "build-bench/bench/load/certrelay-load)")
    p.add_argument("--build-dir", default=os.path.join(TOP, "build-bench"))
    p.add_argument("--no-install", action="store_true", help="do not install packages")
    p.add_argument("--no-build", action="store_true", help="use the existing build")
    p.add_argument("--smoke-only", action="store_true",
                   help="only the single-session checks through every target")
    p.add_argument("--out", help="results directory (default bench/results/<date>[-quick])")
    p.add_argument("--write-results-md", action="store_true",
                   help="update bench/RESULTS.md even with --quick or a subset")
    p.add_argument("--max-minutes", type=float, default=90,
                   help="stop starting new runs after this long (default 90)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    p.add_argument("--rerender", metavar="DIR",
                   help="measure nothing: rewrite DIR/results.md, chart.png (and bench/"
                        "RESULTS.md for a full run) from DIR/results.json")
    p.add_argument("--no-cgroups", action="store_true",
                   help="account CPU from /proc (process trees) even if cgroups are usable")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# set-up: packages and build
# ---------------------------------------------------------------------------------------------
def install(args):
    if args.no_install:
        return
    if os.geteuid() != 0:
        raise BenchError("bench/compare runs as root (cgroups, Postfix, nginx master)")
    log("== packages: scripts/install-deps.sh, then the peers")
    subprocess.run([os.path.join(TOP, "scripts", "install-deps.sh")], check=True, timeout=1800)
    missing = [pkg for pkg in PEER_PACKAGES if "install ok installed" not in output_of(
        ["dpkg-query", "-W", "-f=${Status}", pkg])]
    if not missing:
        return
    log(f"installing: {' '.join(missing)}")
    # Keep Debian from starting the packages' system services (nginx on port 80, stunnel)
    # while installing: a policy-rc.d that denies, only for this apt-get, only if none exists.
    policy = "/usr/sbin/policy-rc.d"
    made = False
    if not os.path.exists(policy):
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# temporary, bench/compare: no service starts\nexit 101\n")
        os.chmod(policy, 0o755)
        made = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=900)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env, timeout=1800)
    finally:
        if made:
            os.unlink(policy)


def build(args) -> tuple[str, str]:
    bdir = args.build_dir
    certrelay = os.path.join(bdir, "certrelay")
    load = args.load or os.path.join(bdir, "bench", "load", "certrelay-load")
    if not args.no_build:
        log(f"== build (Release) in {bdir}")
        subprocess.run(["cmake", "-S", TOP, "-B", bdir, "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DCERTRELAY_TESTS=OFF"],
                       check=True, timeout=600, stdout=subprocess.DEVNULL)
        targets = ["certrelay"]
        if not args.load:
            targets.append("certrelay-load")
        if args.callgrind and not args.openssl_reference:
            # bench/micro/handshake_floor.sh: certrelay's engine beside stock OpenSSL.
            targets += ["certrelay-micro", "openssl-reference-bench"]
        subprocess.run(["cmake", "--build", bdir, "--target", *targets], check=True,
                       timeout=3600)
    if not os.access(certrelay, os.X_OK):
        raise BenchError(f"{certrelay} not built")
    if not os.path.exists(load):
        raise BenchError(f"load generator {load} not found (bench/load not built?); "
                         "--load PATH chooses another")
    return os.path.abspath(certrelay), os.path.abspath(load)


# ---------------------------------------------------------------------------------------------
# machine description
# ---------------------------------------------------------------------------------------------
def machine(targets, certrelay_bin: str, load_bin: str, cgroot: str | None, why: str) -> dict:
    lscpu = output_of(["lscpu"])
    field = lambda name: (re.search(rf"^{name}:\s*(.+)$", lscpu, re.M) or [None, "?"])[1]  # noqa
    versions = {}
    for t in targets:
        versions[t.name] = t.version()
    if load_bin.endswith(".py"):
        load_version = "development stub (compare_lib/stub_load.py)"
    else:
        try:
            p = subprocess.run([load_bin, "--version"], capture_output=True, text=True,
                               timeout=10)
            load_version = p.stdout.strip() if p.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            load_version = ""
        where = os.path.relpath(load_bin, TOP) if load_bin.startswith(TOP + "/") else load_bin
        load_version = (load_version or "certrelay-load") + f" ({where})"
    return {
        "cpu_model": field("Model name"), "cpus": field("CPU\\(s\\)"),
        "hypervisor": field("Hypervisor vendor"),
        "kernel": platform.release(), "os": output_of(["sh", "-c", ". /etc/os-release; "
                                                       "echo $PRETTY_NAME"]),
        "memory": output_of(["sh", "-c", "free -h | awk '/^Mem:/{print $2}'"]),
        "openssl": output_of(["openssl", "version"]),
        "versions": versions, "load_generator": load_version.splitlines()[0]
        if load_version else "?",
        "cgroups": f"cgroup v2 at {cgroot}" if cgroot else f"/proc fallback ({why})",
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def smoke_phase(ctx, names, workdir) -> list[str]:
    """One real session through every target into a capturing sink."""
    log("== single-session checks (client certificate, into a capturing smtp-sink)")
    sink = Sink(ctx, "sink-capture", dump_dir=os.path.join(workdir, "sink-capture"))
    sink.start()
    lines = []
    try:
        for t in make_targets(ctx, names, sink):
            t.start(sink.port)
            try:
                got = check_target(t, ctx.pki, sink.dump_dir,
                                   policy=t.name in ("certrelay", "postfix"))
            finally:
                t.stop()
            for ln in got:
                log("  " + ln)
            lines += got
    finally:
        sink.stop()
    return lines


def prepare_workloads(gen, wls: dict, notes: list) -> dict:
    """Drops (or runs without the missing flags, with a note) the workloads whose flags the
    generator does not know yet."""
    out = {}
    for w, wl in wls.items():
        got, note = gen.prepare(wl)
        if note:
            notes.append(note)
            log("  ! " + note)
        if got is not None:
            out[w] = got
    return out


def count_pass(ctx, args, names, wls, gen, deadline, notes) -> tuple[list, list]:
    """The counting pass (counts.py) and the callgrind runs (callgrind.py), on a sink of
    their own."""
    if not (args.counts or args.callgrind):
        return [], []
    sink = Sink(ctx, "sink")
    sink.start()
    try:
        targets = make_targets(ctx, names, sink)
        recs = counting_phase(ctx, targets, sink, gen, wls, args.quick, log, deadline,
                              notes) if args.counts else []
        cg = callgrind_phase(targets, sink, gen, ctx.workdir, log, notes) \
            if args.callgrind else []
        return recs, cg
    finally:
        sink.stop()


def descriptor_fit() -> int:
    """limits.max_connections certrelay accepts under this process's hard RLIMIT_NOFILE
    (inherited; it raises its soft limit to it). Its start-up check asks for about 2.125
    descriptors per connection (a client and a backend one, and a reserve) plus 57 ("9970
    needs about 21243 file descriptors")."""
    return int((resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 64) / 2.125)


def fit_w4x(wls: dict, notes: list) -> dict:
    """W4x holds at most what the hard RLIMIT_NOFILE allows (a container may cap it)."""
    wl = wls.get("W4x")
    fit = descriptor_fit()
    if wl is None or wl.connections + 1 <= fit:
        return wls
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    n = fit - 1
    notes.append(f"W4x held {n:,} sessions, not {wl.connections:,}: the hard RLIMIT_NOFILE "
                 f"is {hard:,} here and cannot be raised (no CAP_SYS_RESOURCE), and certrelay "
                 "counts about 2.1 descriptors per connection (limits.max_connections "
                 f"{min(W4X_MAX_CONNECTIONS, fit):,} instead of {W4X_MAX_CONNECTIONS:,})")
    log("  ! " + notes[-1])
    return {**wls, "W4x": dataclasses.replace(wl, connections=n)}


def fresh_start(t, sink, gen, wl):
    """(Re)starts the target for `wl` and warms it up; W4x: with limits.max_connections
    raised (certrelay only)."""
    t.stop()
    if t.name == "certrelay":
        t.max_connections = (min(W4X_MAX_CONNECTIONS, descriptor_fit())
                             if wl is not None and wl.name == "W4x" else None)
    t.start(sink.port)
    gen.run(t.port, WARMUP, t.tls)         # not measured


def bench_phase(ctx, args, names, wls, reps, gen, deadline) -> tuple[list, list, list]:
    sink = Sink(ctx, "sink")
    sink.start()
    targets = make_targets(ctx, names, sink)
    records, notes = [], []
    budget = {"quiet_left": 180.0, "retries_left": MAX_RETRIES_TOTAL}
    try:
        for rep in range(1, reps + 1):
            for t in targets:
                # W4x (10,000 sessions) once, in the first repetition
                todo = [w for w in EXEC_ORDER if w in wls and applies(wls[w], t)
                        and (w != "W4x" or rep == 1)]
                if not todo:
                    continue
                if time.monotonic() > deadline:
                    notes.append(f"time budget (--max-minutes {args.max_minutes:g}) reached: "
                                 f"repetition {rep} of {t.label} and later ones not run")
                    log("  ! " + notes[-1])
                    return targets, records, notes
                log(f"== repetition {rep}/{reps}: {t.label}")
                try:
                    run_target(t, sink, gen, [wls[w] for w in todo], budget, notes, rep,
                               records)
                finally:
                    t.stop()
    finally:
        sink.stop()
    return targets, records, notes


def run_target(t, sink, gen, todo, budget, notes, rep, records):
    """The workloads of one repetition on one target: every idle one on a fresh target (its
    'before' is a fresh process; a retried one too: Postfix would reuse the idle smtpd
    processes of the attempt before), the others on one more fresh start after them."""
    started = False
    for wl in todo:
        restart = None
        try:
            if wl.idle or not started:
                fresh_start(t, sink, gen, wl if wl.idle else None)
        except BenchError as e:
            records.append({"target": t.name, "workload": wl.name, "rep": rep,
                            "error": f"start: {str(e)[:500]}", "foreign": {}})
            log(f"  {wl.name}: {records[-1]['error']}")
            started = False
            continue
        if wl.idle:

            def restart(t=t, wl=wl):
                fresh_start(t, sink, gen, wl)
            started = False
        else:
            started = True
        try:
            rec = run_with_retries(t, sink, gen, wl, budget, notes, rep, restart)
        except BenchError as e:
            rec = {"target": t.name, "workload": wl.name, "rep": rep, "error": str(e)[:500],
                   "foreign": {}}
            started = False                  # the next workload on a fresh start
        records.append(rec)
        log("  " + summary(rec))


def run_with_retries(t, sink, gen, wl, budget, notes, rep, restart=None) -> dict:
    attempts = []
    for attempt in range(MAX_RETRIES_PER_RUN + 1):
        if attempt and restart is not None:
            restart()
        rec = measure(t, sink, gen, wl, budget)
        rec["attempt"] = attempt + 1
        rec["rep"] = rep
        attempts.append(rec)
        if not rec["foreign_high"]:
            break
        if attempt == MAX_RETRIES_PER_RUN or budget["retries_left"] <= 0:
            break
        budget["retries_left"] -= 1
        log(f"  foreign activity during {t.name} {wl.name}: {disturbance(rec)}; repeating")
    best = min(attempts, key=lambda r: (r["foreign"]["core0_share"] + r["foreign"]["steal_s"] /
                                        r["foreign"]["wall_s"], r["foreign"]["core1_share"]))
    best["discarded_attempts"] = [
        {"foreign": r["foreign"], "cpu_s": r["cpu_s"]} for r in attempts if r is not best]
    if best["discarded_attempts"]:
        notes.append(f"{t.label} {wl.name} repetition {rep}: {len(attempts)} attempts because "
                     f"of foreign activity; kept the one with {disturbance(best)}"
                     + (" (still above the thresholds)" if best["foreign_high"] else ""))
    return best


def disturbance(rec: dict) -> str:
    f = rec["foreign"]
    return (f"core 0 {f['core0_share']:.0%} / core 1 {f['core1_share']:.0%} foreign, "
            f"steal {f['steal_s'] / f['wall_s']:.0%}")


def summary(r: dict) -> str:
    if not r.get("foreign"):
        return f"{r['workload']}: ERROR {str(r.get('error'))[:300]}"
    j = r.get("json") or {}
    parts = [f"{r['workload']}: {j.get('sessions', 0)} sessions, {j.get('messages', 0)} msgs "
             f"in {r.get('wall_s', 0):.1f}s, target CPU {r.get('cpu_s', 0) * 1e3:.0f} ms"]
    w3 = r["workload"].startswith("W3")
    if "cpu_session_ms" in r and not w3:
        parts.append(f"{r['cpu_session_ms']:.3f} ms/session")
    if "cpu_message_us" in r and w3:
        parts.append(f"{r['cpu_message_us']:.0f} µs/msg")
    if "rss_conn_kib" in r:
        parts.append(f"{r['rss_conn_kib']:.1f} KiB RSS / {r['pss_conn_kib']:.1f} KiB PSS per "
                     f"idle conn (n={r['mem']['n']})")
    lat = (j.get("latency_ms") or {}).get("session") or {}
    if r.get("rss_held_mib") is not None:
        parts.append(f"RSS held {r['rss_held_mib']:.1f} MiB")
    if "probe" in r:
        parts.append(f"fresh session while held: {r['probe']}")
    if lat and not r["workload"].startswith("W4"):
        parts.append(f"session p50/p99 {lat.get('p50')}/{lat.get('p99')} ms")
    if r["workload"] == "W2":
        parts.append(f"resumed {j.get('handshakes_resumed')}/"
                     f"{(j.get('handshakes_full') or 0) + (j.get('handshakes_resumed') or 0)}")
    parts.append(disturbance(r))
    if r.get("error"):
        parts.append("ERROR " + r["error"][:200])
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
def selection(args) -> tuple[list[str], dict]:
    """The targets and workloads asked for (workload names in any case)."""
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    wl_names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for n in names:
        if n not in ALL_TARGETS:
            raise BenchError(f"unknown target {n!r}; known: {', '.join(ALL_TARGETS)}")
    all_wls = workloads(args.quick)
    by_upper = {w.upper(): w for w in all_wls}
    for i, w in enumerate(wl_names):
        if w.upper() not in by_upper:
            raise BenchError(f"unknown workload {w!r}; known: {', '.join(all_wls)}")
        wl_names[i] = by_upper[w.upper()]
    return names, {w: all_wls[w] for w in wl_names}


def raise_nofile(want: int = 65536):
    """RLIMIT_NOFILE for this script and what it starts (W4, W4x), as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def handshake_floor(args, notes: list[str]) -> str | None:
    """Runs bench/micro/handshake_floor.sh (certrelay's TLS engine and stock OpenSSL's server,
    both under callgrind, in memory) into <build-dir>/bench/micro/openssl_reference.json, so
    the reference comes from this run; returns the file, or None when not measured."""
    micro = os.path.join(args.build_dir, "bench", "micro")
    path = os.path.join(micro, "openssl_reference.json")
    binaries = [os.path.join(micro, b) for b in ("certrelay-micro", "openssl-reference-bench")]
    if not args.callgrind or not all(os.access(b, os.X_OK) for b in binaries):
        notes.append("stock OpenSSL reference not measured (--no-callgrind, or bench/micro "
                     "not built)")
        return None
    log("== handshake floor: bench/micro/handshake_floor.sh (callgrind, about 10 min)")
    if os.path.exists(path):
        os.unlink(path)  # never report an earlier run's figure as this one's
    result = subprocess.run([os.path.join(BENCH, "micro", "handshake_floor.sh"), args.build_dir,
                             "--json", path], timeout=3600, capture_output=True, text=True)
    log(result.stdout.rstrip())
    if result.returncode != 0:
        notes.append(f"handshake_floor.sh failed (exit {result.returncode}): "
                     f"{result.stderr.strip()[-300:]}")
        return None
    return path


def measure_all(ctx, args, names, wls, reps, gen, deadline) -> tuple:
    """Canary, counting pass, callgrind, timed repetitions, canary again:
    (targets, records, notes, extra, wls)."""
    notes: list[str] = []
    wls = fit_w4x(prepare_workloads(gen, wls, notes), notes)
    extra = {"openssl_reference": openssl_reference(
        args.openssl_reference or handshake_floor(args, notes))}
    extra["canary"] = run_canary(ctx, gen, args.quick, "before") if args.canary else []
    extra["counts"], extra["callgrind"] = count_pass(ctx, args, names, wls, gen, deadline,
                                                     notes)
    targets, records = make_targets(ctx, names, None), []
    if args.timed:
        targets, records, more = bench_phase(ctx, args, names, wls, reps, gen, deadline)
        notes += more
    if args.canary and args.timed:
        extra["canary"] += run_canary(ctx, gen, args.quick, "after")
    return targets, records, notes, extra, wls


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.rerender:
        return rerender(args)
    cmd = "bench/compare" + ("" if len(sys.argv) < 2 else " " + shlex.join(sys.argv[1:]))
    names, wls = selection(args)
    reps = args.reps or (1 if args.quick else 5)
    if os.geteuid() != 0:
        raise BenchError("bench/compare runs as root (cgroups, Postfix, nginx's master)")
    if (os.cpu_count() or 1) < 2:
        raise BenchError("needs two cores (target on core 0, generator on core 1)")
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.monotonic()
    install(args)
    certrelay_bin, load_bin = build(args)
    missing = peer_binaries_missing(names)
    if missing:
        raise BenchError(f"missing: {', '.join(missing)} (run without --no-install)")
    # this script (and what it starts unpinned) stays off the target's core
    os.sched_setaffinity(0, {1})
    raise_nofile()
    cgroot, why = (None, "--no-cgroups") if args.no_cgroups else probe_cgroups()
    log(f"== CPU accounting: {'cgroup v2 at ' + cgroot if cgroot else '/proc (' + why + ')'}")
    workdir = tempfile.mkdtemp(prefix="certrelay-bench.")
    os.chmod(workdir, 0o755)
    launcher = Launcher(cgroot, bounded_seconds=int(args.max_minutes * 60 + 1800))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    try:
        pki = Pki(os.path.join(workdir, "pki"))
        log(f"== PKI: EC P-256 CA, server and client certificates; client fingerprint "
            f"{pki.client_fingerprint}")
        ctx = Context(workdir, pki, launcher, certrelay_bin, PYTHON)
        smoke_lines = smoke_phase(ctx, [n for n in names if n != "backend"], workdir)
        if args.smoke_only:
            return 0
        gen = LoadGen(load_bin, launcher, pki, workdir, PYTHON)
        deadline = t_start + args.max_minutes * 60
        targets, records, notes, extra, wls = measure_all(ctx, args, names, wls, reps, gen,
                                                          deadline)
        if load_bin.endswith(".py"):
            notes.insert(0, "measured with the DEVELOPMENT STUB generator (stub_load.py): "
                            "rates and latencies are the stub's, not certrelay-load's")
        mach = machine(targets, certrelay_bin, load_bin, cgroot, why)
        out_dir = args.out or os.path.join(BENCH, "results",
                                           started.strftime("%Y-%m-%d") +
                                           ("-quick" if args.quick else ""))
        gen_cmds = {w: gen.display_argv(wls[w], True) for w in report.WORKLOAD_ORDER
                    if w in wls}
        if "backend" in names:
            gen_cmds["backend"] = "(L1, W1, W3 as above with --no-starttls, no --cert/--key)"
        write_outputs(args, out_dir, targets, records, notes, smoke_lines, mach, gen_cmds, wls,
                      cmd, started, reps, extra)
        log(f"total time {(time.monotonic() - t_start) / 60:.1f} min")
        return 0
    finally:
        launcher.stop_all()
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def rerender(args) -> int:
    """Rewrites the outputs of an earlier run from its results.json (no measurement)."""
    from types import SimpleNamespace
    from .loadgen import Workload
    path = os.path.join(args.rerender, "results.json")
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise BenchError(f"cannot read {path}: {e}")
    targets = [SimpleNamespace(name=n, label=t["label"], config_note=t["config"])
               for n, t in raw["targets"].items()]
    wls = {w: Workload(**d) for w, d in raw["workloads"].items()}
    args.quick = raw.get("quick", False)
    extra = {k: raw.get(k) or [] for k in ("counts", "callgrind", "canary")}
    extra["openssl_reference"] = raw.get("openssl_reference") or {}
    notes = [n for n in raw.get("notes", []) if not n.startswith("chart not drawn")]
    write_outputs(args, os.path.abspath(args.rerender), targets, raw["records"], notes,
                  raw.get("smoke", []), raw["machine"], raw["generator_commands"], wls,
                  raw["command"], datetime.datetime.fromisoformat(raw["started"]),
                  raw["repetitions"], extra)
    return 0


def entry() -> int:
    try:
        return main()
    except BenchError as e:
        print(f"bench/compare: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"bench/compare: interrupted ({e})", file=sys.stderr)
        return 130
