"""results.md, results.json, stdout and bench/RESULTS.md of a bench/compare run (also used by
--rerender). The counts are the primary figures; CPU time and latency are secondary."""

from __future__ import annotations

import json
import os
import subprocess

from . import counts_report, report
from .canary import canary_table

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_TARGETS = ["certrelay", "nginx", "stunnel", "postfix", "backend"]


def log(msg: str = ""):
    print(msg, flush=True)


def count_sections(extra: dict, targets: list) -> dict:
    """The Markdown of the counting pass: {"counts", "syscalls", "callgrind", "canary"}."""
    return {
        "counts": counts_report.counts_table(extra.get("counts") or [], targets),
        "syscalls": counts_report.syscall_tables(extra.get("counts") or [], targets),
        "callgrind": counts_report.callgrind_table(extra.get("callgrind") or [], targets,
                                                   extra.get("openssl_reference") or {}),
        "canary": canary_table(extra.get("canary") or []),
    }


def write_outputs(args, out_dir, targets, records, notes, smoke_lines, mach, gen_cmds, wls,
                  cmd, started, reps, extra: dict):
    report.derive(records)
    stats = report.aggregate(records)
    names = [t.name for t in targets]
    present = [w for w in report.WORKLOAD_ORDER if w in wls]
    md = count_sections(extra, targets)
    md["table"] = report.results_table(stats, targets, present) if records else ""
    md["ratios"] = report.ratios_table(records, targets, present) if reps > 1 else ""
    all_stats = {**stats, **counts_report.count_stats(
        extra.get("counts") or [], extra.get("callgrind") or [],
        extra.get("openssl_reference") or {})}
    goal_rows = report.goals(all_stats, records) if "certrelay" in names else []
    md["goals"] = report.goals_table(goal_rows) if goal_rows else ""
    errors = [f"{r['target']} {r['workload']} rep {r.get('rep')}: {r['error']}"
              for r in records + (extra.get("counts") or []) if r.get("error")]
    title = (f"certrelay vs peers, {started.strftime('%Y-%m-%d')}, {mach['cpu_model']}, "
             f"{mach['cpus']} vCPU")
    os.makedirs(out_dir, exist_ok=True)
    png = None
    try:
        png = report.chart(all_stats, targets, out_dir, title)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        notes.append(f"chart not drawn: {e}")
    body = render_md(title, mach, cmd, md, notes, errors, smoke_lines, targets, gen_cmds, wls,
                     reps, png, started)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(body)
    raw = {"started": started.isoformat(), "command": cmd, "machine": mach,
           "repetitions": reps, "quick": args.quick,
           "workloads": {w: vars(wls[w]) for w in present},
           "generator_commands": gen_cmds,
           "targets": {t.name: {"label": t.label, "config": t.config_note} for t in targets},
           "records": records, **extra,
           "stats": [{"target": k[0], "workload": k[1], "metric": k[2], **v}
                     for k, v in sorted(stats.items())],
           "goals": goal_rows, "notes": notes, "errors": errors, "smoke": smoke_lines}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(raw, f, indent=1, default=str)
    print_summary(md, notes, errors)
    log(f"\nwritten: {out_dir}/results.md, results.json" + (", chart.png" if png else ""))
    full = not args.quick and set(names) == set(ALL_TARGETS) and set(present) == \
        set(report.WORKLOAD_ORDER)
    if full or args.write_results_md:
        write_results_md(body, out_dir)


def print_summary(md: dict, notes: list, errors: list):
    for key, head in (("counts", "counts (primary)"), ("syscalls", "system calls by type"),
                      ("callgrind", "server instructions (callgrind)"),
                      ("goals", "issue 14's targets"),
                      ("canary", "canary: the sink alone"), ("table", "CPU time, latency, "
                                                                       "memory (secondary)"),
                      ("ratios", "certrelay / peer per repetition")):
        if md.get(key):
            log(f"\n== {head}\n\n{md[key]}")
    for n in notes:
        log("note: " + n)
    for e in errors:
        log("error: " + e)


def write_results_md(body: str, out_dir: str):
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
    return "\n\n".join([
        "Everything on 127.0.0.1. Each target is pinned to core 0 (`taskset -c 0`); the load "
        "generator, the backend (`smtp-sink`) and nginx's auth_http endpoint are pinned to "
        "core 1.",
        "**Primary figures: counts** (issue 14), which do not drift with the shared host's "
        "speed the way CPU time and wall-clock ratios do (several-fold from day to day). They "
        "come from a counting pass of their own, before the timed runs, for certrelay and each "
        "peer in the same run, each target started afresh and warmed up: per session (L1 30 or "
        "100 sessions; W1, W2 32 connections, 100 or 300 sessions) or per message (W3, W3g, "
        "W3d: 1 session of 100 × 10 KiB, so the session's set-up is spread over its 100 "
        "messages). Segment counts follow the timing a little (delayed ACKs, coalesced "
        "writes); the system calls and instructions hardly. (a) Untraced: **context switches** of the target's processes (`perf stat -e "
        "context-switches -p <every target pid>`, whose counters are inherited by the threads "
        "and processes created during the run: stunnel's thread per connection, Postfix's "
        "smtpd; the sum of voluntary + nonvoluntary switches over /proc/<pid>/task/*/status, "
        "after − before, which misses those once they are gone, is kept in results.json as "
        "`ctxsw_proc` and used when perf is unusable) and **TCP segments** each "
        "way on both legs (`tcpdump -i lo` with a port filter, counted by direction with "
        "`tcpdump -r`; pure ACKs included). (b) A second, identical run with `strace -c -f` "
        "attached to every process of the target: **system calls** by type. (c) **Server "
        "instructions** (callgrind, with --callgrind): each target single-process under "
        "`valgrind --tool=callgrind` (certrelay `workers = 1`, nginx `master_process off`, "
        "stunnel in the foreground; not Postfix), started four times: an idle baseline (start, "
        "1 warm-up session, stop), + 30 full-handshake sessions without a message, + 30 "
        "sessions with --resume on one connection, + 1 session of 30 × 10 KiB; per full "
        "session = (full − baseline) / 30, per resumed session = (resumed − baseline − its "
        "full handshakes × per full session) / resumed ones, per message = (messages − "
        "baseline − per full session) / 30. certrelay's handshake figure for the OpenSSL "
        "target is the inclusive cost of `certrelay::tls::Engine::*` per handshake "
        "(from the same full run, less the baseline's), the same scope as the stock OpenSSL "
        "reference of bench/micro (`openssl_reference_instructions`).",
        "**Secondary figures: CPU time and latency.** The target's CPU time (user + system of "
        "all its processes, exited children included: cgroup `cpu.stat` usage_usec, read "
        "after the target went idle) divided by the sessions or messages the generator "
        f"completed. {cells}, warmed up with 20 sessions (not measured). Each idle workload "
        "(W4 burst, W4p paced, W4x) runs first on a fresh target, then L1, W1, W2, W3, W3g, "
        "W3d on one more fresh start; W4x (certrelay only, `limits.max_connections = 12000`, "
        "RLIMIT_NOFILE raised to 65536 for the generator and certrelay where the hard limit "
        "allows it, else as many sessions as the hard limit allows, with a note) runs in the "
        "first repetition only, with a second generator making one fresh session "
        "(`--sessions 1`) while the idle ones are held. Wall rates and latencies come from the generator's JSON line and depend on "
        "the shared core 1. W2's CPU per resumed session is estimated as (CPU − full "
        "handshakes × the same repetition's W1 CPU per session) / resumed handshakes. W4: "
        "(sum of RSS, or PSS, of the target's processes with N idle TLS sessions open − the "
        "same sum before) / N. A run is repeated (at most twice) when another tenant used "
        "more than 10 % of core 0 (or 25 % of core 1) during it, or the hypervisor's steal "
        "time exceeded 3 % of it; the attempt with the least foreign activity is kept, and "
        "its steal time is reported. The ratios certrelay / peer are also given per "
        "repetition (both measured minutes apart on the same host).",
        "**Canary:** the sink alone (`smtp-sink`, plain SMTP, the generator with "
        "--no-starttls, 1 connection, sessions of 1 × 1 KiB), once with the generator and "
        "the sink on the same core, once on different cores, before and after the timed "
        "runs: the host's wake-up cost that day, beside which the secondary figures are "
        "read."])


def render_md(title, mach, cmd, md, notes, errors, smoke_lines, targets, gen_cmds, wls, reps,
              png, started) -> str:
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
    lines += result_sections(md, png)
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


def result_sections(md: dict, png) -> list[str]:
    lines = ["", "## Counts (primary figures)", ""]
    if md.get("counts"):
        lines += ["Per session (L1, W1, W2) or per message (W3, W3g, W3d); in each peer's "
                  "column, in brackets: certrelay / that peer.", "", md["counts"], ""]
    else:
        lines += ["Not measured in this run (--no-counts).", ""]
    if md.get("syscalls"):
        lines += ["### System calls by type", "", md["syscalls"], ""]
    if md.get("callgrind"):
        lines += ["### Server instructions (callgrind)", "", md["callgrind"], ""]
    if md.get("goals"):
        lines += ["## certrelay against issue 14's targets", "", "Bold: targets on counts "
                  "(primary); the others rest on CPU time or memory, measured in the same "
                  "run.", "", md["goals"], ""]
        limits = os.path.join(BENCH, "LIMITS.md")
        if os.path.exists(limits):
            # Hand-written (profiles, not this run's counters): what each missed target is
            # limited by. Kept beside the generated tables.
            with open(limits) as f:
                lines += [f.read().strip(), ""]
    if md.get("canary"):
        lines += ["## Canary: the sink alone, today's wake-up cost", "", md["canary"], ""]
    lines += ["## CPU time, latency, memory (secondary)", "",
              "Bold rows were the primary figures before issue 14. “–”: not applicable or not "
              "measured.", "", md.get("table") or "(no timed runs: --no-timed)", ""]
    if md.get("ratios"):
        lines += ["### certrelay / peer in each repetition", "", md["ratios"], ""]
    if png:
        lines += ["## Chart", "", "![system calls, context switches, server instructions, "
                  "memory per connection](chart.png)", ""]
    return lines
