"""bench/compare: certrelay side by side with nginx mail, stunnel and Postfix smtpd, on one
machine, loopback only. See `bench/compare --help` and bench/RESULTS.md."""

from __future__ import annotations

import argparse
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
from .loadgen import WARMUP, LoadGen, workloads
from .measure import measure
from .pki import Pki
from .smoke import check_target
from .system import BenchError, Launcher, output_of, probe_cgroups
from .targets import Context, Sink, make_targets, peer_binaries_missing

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = os.path.dirname(BENCH)
PYTHON = "/usr/bin/python3"
PEER_PACKAGES = ["nginx", "libnginx-mod-mail", "stunnel4", "gnuplot-nox"]
ALL_TARGETS = ["certrelay", "nginx", "stunnel", "postfix", "backend"]
EXEC_ORDER = ["W4", "L1", "W1", "W2", "W3"]   # W4 first: its "before" is a fresh target
MAX_RETRIES_PER_RUN = 2
MAX_RETRIES_TOTAL = 30


def log(msg: str = ""):
    print(msg, flush=True)


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
    p.add_argument("--workloads", default="L1,W1,W2,W3,W4", help="comma-separated L1,W1,W2,W3,W4")
    p.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
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
    p.add_argument("--max-minutes", type=float, default=40,
                   help="stop starting new runs after this long (default 40)")
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


def bench_phase(ctx, args, names, wls, reps, gen, deadline) -> tuple[list, list, list]:
    sink = Sink(ctx, "sink")
    sink.start()
    targets = make_targets(ctx, names, sink)
    records, notes = [], []
    budget = {"quiet_left": 180.0, "retries_left": MAX_RETRIES_TOTAL}
    try:
        for rep in range(1, reps + 1):
            for t in targets:
                todo = [w for w in EXEC_ORDER if w in wls and w in t.applicable]
                if not todo:
                    continue
                if time.monotonic() > deadline:
                    notes.append(f"time budget (--max-minutes {args.max_minutes:g}) reached: "
                                 f"repetition {rep} of {t.label} and later ones not run")
                    log("  ! " + notes[-1])
                    return targets, records, notes
                log(f"== repetition {rep}/{reps}: {t.label}")
                t.start(sink.port)
                try:
                    gen.run(t.port, WARMUP, t.tls)     # not measured
                    for w in todo:
                        restart = None
                        if wls[w].idle:
                            # a retried W4 needs a fresh target again: Postfix would reuse the
                            # idle smtpd processes of the attempt before
                            def restart(t=t):
                                t.stop()
                                t.start(sink.port)
                                gen.run(t.port, WARMUP, t.tls)
                        rec = run_with_retries(t, sink, gen, wls[w], budget, notes, rep,
                                               restart)
                        records.append(rec)
                        log("  " + summary(rec))
                finally:
                    t.stop()
    finally:
        sink.stop()
    return targets, records, notes


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
    j = r.get("json") or {}
    parts = [f"{r['workload']}: {j.get('sessions', 0)} sessions, {j.get('messages', 0)} msgs "
             f"in {r.get('wall_s', 0):.1f}s, target CPU {r.get('cpu_s', 0) * 1e3:.0f} ms"]
    if "cpu_session_ms" in r and r["workload"] != "W3":
        parts.append(f"{r['cpu_session_ms']:.3f} ms/session")
    if "cpu_message_us" in r and r["workload"] == "W3":
        parts.append(f"{r['cpu_message_us']:.0f} µs/msg")
    if "rss_conn_kib" in r:
        parts.append(f"{r['rss_conn_kib']:.1f} KiB RSS / {r['pss_conn_kib']:.1f} KiB PSS per "
                     f"idle conn (n={r['mem']['n']})")
    lat = (j.get("latency_ms") or {}).get("session") or {}
    if lat and r["workload"] != "W4":
        parts.append(f"session p50/p99 {lat.get('p50')}/{lat.get('p99')} ms")
    if r["workload"] == "W2":
        parts.append(f"resumed {j.get('handshakes_resumed')}/"
                     f"{(j.get('handshakes_full') or 0) + (j.get('handshakes_resumed') or 0)}")
    parts.append(disturbance(r))
    if r.get("error"):
        parts.append("ERROR " + r["error"][:200])
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------
def write_outputs(args, out_dir, targets, records, notes, smoke_lines, mach, gen_cmds, wls,
                  cmd, started, reps):
    report.derive(records)
    stats = report.aggregate(records)
    names = [t.name for t in targets]
    present = [w for w in report.WORKLOAD_ORDER if w in wls]
    table = report.results_table(stats, targets, present)
    goal_rows = report.goals(stats, records) if "certrelay" in names else []
    goal_md = report.goals_table(goal_rows) if goal_rows else ""
    errors = [f"{r['target']} {r['workload']} rep {r.get('rep')}: {r['error']}"
              for r in records if r.get("error")]
    date = started.strftime("%Y-%m-%d")
    title = f"certrelay vs peers, {date}, {mach['cpu_model']}, {mach['cpus']} vCPU"
    os.makedirs(out_dir, exist_ok=True)
    png = None
    try:
        png = report.chart(stats, targets, out_dir, title)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        notes.append(f"chart not drawn: {e}")
    body = render_md(title, mach, cmd, table, goal_md, notes, errors, smoke_lines, targets,
                     gen_cmds, wls, reps, png, out_dir, started)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(body)
    raw = {"started": started.isoformat(), "command": cmd, "machine": mach,
           "repetitions": reps, "quick": args.quick,
           "workloads": {w: vars(wls[w]) for w in present},
           "generator_commands": gen_cmds,
           "targets": {t.name: {"label": t.label, "config": t.config_note} for t in targets},
           "records": records,
           "stats": [{"target": k[0], "workload": k[1], "metric": k[2], **v}
                     for k, v in sorted(stats.items())],
           "goals": goal_rows, "notes": notes, "errors": errors, "smoke": smoke_lines}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(raw, f, indent=1, default=str)
    log("\n" + table + "\n")
    if goal_md:
        log(goal_md + "\n")
    for n in notes:
        log("note: " + n)
    for e in errors:
        log("error: " + e)
    log(f"\nwritten: {out_dir}/results.md, results.json" + (", chart.png" if png else ""))
    full = not args.quick and set(names) == set(ALL_TARGETS) and set(present) == \
        set(report.WORKLOAD_ORDER)
    if full or args.write_results_md:
        rel = os.path.relpath(out_dir, BENCH)
        results_md = body.replace("](chart.png)", f"]({rel}/chart.png)")
        results_md = results_md.replace("# bench/compare results",
                                        "# bench/compare: latest results", 1)
        results_md += (f"\nRaw data: [{rel}/results.json]({rel}/results.json); this file is "
                       f"a copy of [{rel}/results.md]({rel}/results.md).\n")
        with open(os.path.join(BENCH, "RESULTS.md"), "w") as f:
            f.write(results_md)
        log("written: bench/RESULTS.md")


def method_text(reps: int) -> str:
    cells = (f"Each cell: median of {reps} repetitions (min–max). The repetitions are "
             "interleaved across targets: each repetition starts every target afresh"
             if reps > 1 else
             "Each cell: a single repetition (--quick or --reps 1), so no min–max. Each "
             "target is started afresh")
    return (
        "Everything on 127.0.0.1. Each target is pinned to core 0 (`taskset -c 0`); the load "
        "generator, the backend (`smtp-sink`) and nginx's auth_http endpoint are pinned to "
        "core 1. The primary figure is the **target's CPU time** (user + system of all its "
        "processes, exited children included: cgroup `cpu.stat` usage_usec, read after the "
        "target went idle) divided by the sessions or messages the generator completed. "
        f"{cells}, warmed up with 20 sessions (not measured), and runs W4 first (so that its "
        "'before' is a fresh process), then L1, W1, W2, W3. Wall rates and latencies come "
        "from the generator's JSON line and depend on the shared core 1. W2's CPU per "
        "resumed session is estimated as (CPU − full handshakes × the same repetition's W1 "
        "CPU per session) / resumed handshakes. W4: (sum of RSS, or PSS, of the target's "
        "processes with N idle TLS sessions open − the same sum before) / N. A run is "
        "repeated (at most twice) when another tenant used more than 10 % of core 0 (or "
        "25 % of core 1) during it, or the hypervisor's steal time exceeded 3 % of it; the "
        "attempt with the least foreign activity is kept. The host itself is shared too and "
        "its speed drifts (two full runs half an hour apart can differ by 20 % or more on "
        "one figure): compare targets within one run. The generator's own CPU per session "
        "is a canary for that drift: read it along a column (the same target across "
        "repetitions; across targets it also differs with their reply patterns), a "
        "repetition where it is high ran on a slower host.")


def render_md(title, mach, cmd, table, goal_md, notes, errors, smoke_lines, targets, gen_cmds,
              wls, reps, png, out_dir, started) -> str:
    v = mach["versions"]
    lines = [
        "# bench/compare results", "",
        f"{title}.", "",
        f"Command: `{cmd}` (from the repository root, as root), started "
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}.", "",
        "## Machine", "",
        f"- CPU: {mach['cpu_model']}, {mach['cpus']} vCPU ({mach['hypervisor']} guest), "
        f"memory {mach['memory']}",
        f"- OS: {mach['os']}, kernel {mach['kernel']}",
        f"- {mach['openssl']}",
        "- " + ", ".join(f"{t.label}: {v.get(t.name, '?')}" for t in targets),
        f"- load generator: {mach['load_generator']}",
        f"- CPU accounting: {mach['cgroups']}",
        "",
        "## Method", "",
        method_text(reps), "",
        "| workload | generator command |", "|---|---|",
    ]
    for w, c in gen_cmds.items():
        title_w = wls[w].title if w in wls else "backend alone"
        lines.append(f"| {w} ({title_w}) | `{c}` |")
    lines += ["", "## Results", "", "Bold rows are the primary figures. “–”: not applicable "
              "or not measured.", "", table, ""]
    if goal_md:
        lines += ["## certrelay against its targets", "", goal_md, ""]
        limits = os.path.join(BENCH, "LIMITS.md")
        if os.path.exists(limits):
            # Hand-written (profiles, not this run's counters): what each missed target is
            # limited by, and what each optimisation bought. Kept beside the generated tables.
            with open(limits) as f:
                text = f.read().strip()
            lines += [text, ""]
    if png:
        lines += ["## Chart", "", "![CPU per session/message and memory per connection]"
                  "(chart.png)", ""]
    lines += ["## How each target was configured", ""]
    for t in targets:
        lines.append(f"- **{t.label}**: {t.config_note}.")
    lines += ["", "## Single-session checks (before measuring)", "", "```"]
    lines += smoke_lines or ["(not run)"]
    lines += ["```", ""]
    if notes or errors:
        lines += ["## Notes", ""]
        lines += [f"- {n}" for n in notes]
        lines += [f"- error: {e}" for e in errors]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.rerender:
        return rerender(args)
    cmd = "bench/compare" + ("" if len(sys.argv) < 2 else " " + shlex.join(sys.argv[1:]))
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    wl_names = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    for n in names:
        if n not in ALL_TARGETS:
            raise BenchError(f"unknown target {n!r}; known: {', '.join(ALL_TARGETS)}")
    all_wls = workloads(args.quick)
    for w in wl_names:
        if w not in all_wls:
            raise BenchError(f"unknown workload {w!r}; known: {', '.join(all_wls)}")
    wls = {w: all_wls[w] for w in wl_names}
    reps = args.reps or (1 if args.quick else 3)
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
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
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
        targets, records, notes = bench_phase(ctx, args, names, wls, reps, gen, deadline)
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
                      cmd,
                      started, reps)
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
    notes = [n for n in raw.get("notes", []) if not n.startswith("chart not drawn")]
    write_outputs(args, os.path.abspath(args.rerender), targets, raw["records"], notes,
                  raw.get("smoke", []), raw["machine"], raw["generator_commands"], wls,
                  raw["command"], datetime.datetime.fromisoformat(raw["started"]),
                  raw["repetitions"])
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
