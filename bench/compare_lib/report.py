"""Aggregation (median of the repetitions, min-max), the Markdown table, the targets of
docs/performance.md, the gnuplot chart and bench/RESULTS.md."""

from __future__ import annotations

import os
import statistics
import subprocess

from .system import output_of

# (key, row label, workloads, format, primary?). The primary figures are the counts
# (counts_report.py); these CPU times and latencies drift with the host and are secondary.
W3S = ("W3", "W3g", "W3d")
W4S = ("W4", "W4p", "W4x")
METRICS = [
    ("cpu_session_ms", "target CPU per session, ms", ("L1", "W1", "W2"), "{:.3f}", True),
    ("cpu_resumed_ms", "est. target CPU per resumed session, ms", ("W2",), "{:.3f}", True),
    ("resumed_pct", "sessions resumed, %", ("W2",), "{:.0f}", False),
    ("cpu_message_us", "target CPU per message, µs", W3S, "{:.0f}", True),
    ("rss_conn_kib", "RSS per idle TLS connection, KiB", W4S, "{:.1f}", True),
    ("pss_conn_kib", "PSS per idle TLS connection, KiB", W4S, "{:.1f}", False),
    ("rss_held_mib", "RSS with the idle sessions held, MiB", ("W4x",), "{:.1f}", True),
    ("probe_session_ms", "a fresh session while they are held, ms", ("W4x",), "{:.1f}", True),
    ("cpu_idle_session_ms", "target CPU per idle session set-up, ms", W4S, "{:.3f}", False),
    ("sessions_per_s", "sessions/s (wall)", ("L1", "W1", "W2"), "{:.0f}", False),
    ("messages_per_s", "messages/s (wall)", W3S, "{:.0f}", False),
    ("session_p50", "session latency p50, ms", ("L1", "W1", "W2"), "{:.2f}", False),
    ("session_p90", "session latency p90, ms", ("L1", "W1", "W2"), "{:.2f}", False),
    ("session_p99", "session latency p99, ms", ("L1", "W1", "W2"), "{:.2f}", False),
    ("handshake_p50", "handshake latency p50, ms", ("L1", "W1", "W2"), "{:.2f}", False),
    ("handshake_p99", "handshake latency p99, ms", ("W1", "W2"), "{:.2f}", False),
    ("message_p50", "message latency p50, ms", ("L1", *W3S), "{:.2f}", False),
    ("message_p99", "message latency p99, ms", ("L1", *W3S), "{:.2f}", False),
    ("load_cpu_session_ms", "generator CPU per session, ms (machine-speed canary)",
     ("W1", "W2"), "{:.3f}", False),
    ("auth_cpu_session_ms", "auth_http endpoint CPU per session, ms (not counted)",
     ("W1",), "{:.3f}", False),
    ("steal_pct", "hypervisor steal during the run, % of wall", ("L1", "W1", "W2", *W3S,
                                                                 *W4S), "{:.1f}", False),
]

WORKLOAD_ORDER = ["L1", "W1", "W2", *W3S, *W4S]


def derive(records: list[dict]):
    """Fills in the per-record figures taken from the generator's JSON, and W2's estimate of
    the CPU per resumed session: (CPU - full handshakes x the same repetition's W1 CPU per
    session) / resumed handshakes."""
    w1 = {(r["target"], r["rep"]): r.get("cpu_session_ms") for r in records
          if r["workload"] == "W1" and r.get("cpu_session_ms")}
    w1_all: dict[str, list] = {}
    for (t, _), v in w1.items():
        w1_all.setdefault(t, []).append(v)
    for r in records:
        j = r.get("json") or {}
        lat = j.get("latency_ms") or {}
        for kind in ("session", "handshake", "message"):
            for q in ("p50", "p90", "p99"):
                v = (lat.get(kind) or {}).get(q)
                if v is not None and (kind != "handshake" or r["target"] != "backend"):
                    r[f"{kind}_{q}"] = v
        if r["workload"] in ("L1", "W1", "W2") and j.get("sessions_per_s") is not None:
            r["sessions_per_s"] = j["sessions_per_s"]
        f = r.get("foreign") or {}
        if f.get("wall_s"):
            r["steal_pct"] = 100.0 * f.get("steal_s", 0) / f["wall_s"]
        if r["workload"].startswith("W3") and j.get("messages_per_s") is not None:
            r["messages_per_s"] = j["messages_per_s"]
        if r["workload"] == "W1" and "auth_cpu_s" in r and j.get("sessions"):
            r["auth_cpu_session_ms"] = r["auth_cpu_s"] / j["sessions"] * 1e3
        if r["workload"] == "W2":
            full, res = j.get("handshakes_full", 0), j.get("handshakes_resumed", 0)
            if full + res:
                r["resumed_pct"] = 100.0 * res / (full + res)
            ref = w1.get((r["target"], r["rep"]))
            if ref is None and w1_all.get(r["target"]):
                ref = statistics.median(w1_all[r["target"]])
            if ref is not None and res:
                r["cpu_resumed_ms"] = (r["cpu_s"] * 1e3 - full * ref) / res


def aggregate(records: list[dict]) -> dict:
    """{(target, workload, metric): {"median", "min", "max", "n"}}"""
    values: dict[tuple, list] = {}
    for r in records:
        for key, _, wls, _, _ in METRICS:
            if r["workload"] in wls and r.get(key) is not None:
                values.setdefault((r["target"], r["workload"], key), []).append(r[key])
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v),
                "values": v} for k, v in values.items()}


def cell(stats: dict, key: tuple, fmt: str) -> str:
    s = stats.get(key)
    if s is None:
        return "–"
    if s["n"] == 1:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def results_table(stats: dict, targets: list, workloads: list[str]) -> str:
    head = "| workload | metric | " + " | ".join(t.label for t in targets) + " |"
    lines = [head, "|---|---|" + "---:|" * len(targets)]
    for wl in [w for w in WORKLOAD_ORDER if w in workloads]:
        for key, label, wls, fmt, primary in METRICS:
            if wl not in wls:
                continue
            cells = [cell(stats, (t.name, wl, key), fmt) for t in targets]
            if all(c == "–" for c in cells):
                continue
            if primary:
                cells = [f"**{c}**" if c != "–" else c for c in cells]
                label = f"**{label}**"
            lines.append(f"| {wl} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# issue 14's targets
# ---------------------------------------------------------------------------------------------
GOALS = [
    # (text, workload, metric, reference target or None, factor (≤) or absolute limit (≤),
    #  unit, primary?)  "CG": the callgrind runs; counts come from counts_report.count_stats
    ("W3 lock-step: ≤ 25 system calls per message", "W3", "syscalls_total", None, 25, "", True),
    ("W3 lock-step: ≤ 8.2 context switches per message", "W3", "ctxsw", None, 8.2, "", True),
    ("W3 grouped: ≤ 4.2 context switches per message", "W3g", "ctxsw", None, 4.2, "", True),
    ("W3 behind the dot: ≤ 2.2 context switches per message", "W3d", "ctxsw", None, 2.2, "",
     True),
    ("W3 behind the dot: CPU per message ≤ 0.8 × stunnel", "W3d", "cpu_message_us", "stunnel",
     0.8, "µs", False),
    ("full handshake: server instructions ≤ 0.7 × stock OpenSSL (bench/micro reference)", "CG",
     "ir_full_handshake_engine", "openssl-reference", 0.7, "", True),
    ("W4 after a burst: RSS per idle TLS connection ≤ 0.5 × nginx", "W4", "rss_conn_kib",
     "nginx", 0.5, "KiB", False),
    ("W4 paced: RSS per idle TLS connection ≤ 0.8 × nginx", "W4p", "rss_conn_kib", "nginx", 0.8,
     "KiB", False),
    ("W4x: 10,000 idle TLS sessions in ≤ 256 MiB RSS", "W4x", "rss_held_mib", None, 256, "MiB",
     False),
    ("W4x: a fresh session < 1 s while they are held", "W4x", "probe_session_ms", None, 1000,
     "ms", False),
    ("W1 CPU per session ≤ 0.6 × nginx (secondary)", "W1", "cpu_session_ms", "nginx", 0.6, "ms",
     False),
    ("W2 CPU per session ≤ 0.8 × nginx (secondary)", "W2", "cpu_session_ms", "nginx", 0.8, "ms",
     False),
]
W4X_SESSIONS = 10000


def paired_ratios(records: list[dict], wl: str, metric: str, ref: str) -> list[float]:
    """certrelay / ref within each repetition. The host's speed drifts between repetitions
    more than between two targets of one repetition, so these show how stable a ratio is."""
    by_rep: dict[tuple, float] = {(r["target"], r["rep"]): r[metric] for r in records
                                  if r["workload"] == wl and r.get(metric) is not None}
    return [by_rep[("certrelay", rep)] / by_rep[(ref, rep)]
            for (t, rep) in sorted(by_rep) if t == "certrelay" and (ref, rep) in by_rep
            and by_rep[(ref, rep)]]


def _relative(mine: float, other: float, ref: str, factor: float) -> tuple[bool, str]:
    ratio = mine / other
    if ratio <= factor:
        return True, (f"{ratio:.2f}× {ref} (limit {factor}×): "
                      f"{100 * (1 - ratio / factor):.0f} % below the limit")
    return False, (f"{ratio:.2f}× {ref} (limit {factor}×): {100 * (ratio / factor - 1):.0f} % "
                   f"over the limit, needs {100 * (1 - factor / ratio):.0f} % less")


def _absolute(mine: float, limit: float, unit: str) -> tuple[bool, str]:
    u = f" {unit}" if unit else ""
    met = mine <= limit
    return met, (f"{mine:.4g}{u} vs ≤ {limit:g}{u}: " +
                 (f"{100 * (1 - mine / limit):.1f} % below" if met else
                  f"{100 * (mine / limit - 1):.1f} % over"))


def _w4x_short(records: list[dict]) -> int | None:
    """The idle sessions W4x held, if fewer than the target's 10,000 (else None)."""
    held = [r["mem"]["n"] for r in records if r["workload"] == "W4x" and r.get("mem")]
    return max(held) if held and max(held) < W4X_SESSIONS else None


def goal_row(stats: dict, records: list[dict], goal: tuple) -> dict:
    text, wl, metric, ref, factor, unit, primary = goal
    mine = stats.get(("certrelay", wl, metric))
    row = {"goal": text, "primary": primary, "certrelay": mine["median"] if mine else None}
    if mine is None:
        return {**row, "status": "not measured", "detail": ""}
    if ref is None:
        row["limit"] = factor
        met, detail = _absolute(mine["median"], factor, unit)
        short = _w4x_short(records) if wl == "W4x" else None
        if short is not None:
            return {**row, "status": "not measured",
                    "detail": f"{short:,} sessions held, not {W4X_SESSIONS:,} (see the "
                              "notes); "
                              + detail}
        return {**row, "status": "met" if met else "NOT met", "detail": detail}
    other = stats.get((ref, wl, metric))
    if other is None or not other["median"]:
        what = ("`openssl_reference_instructions` (bench/micro) not found" if
                ref == "openssl-reference" else f"no {ref} figure")
        return {**row, "status": "not measured", "detail": what}
    row.update(reference=other["median"], ratio=mine["median"] / other["median"],
               limit=factor * other["median"])
    met, detail = _relative(mine["median"], other["median"], ref, factor)
    paired = paired_ratios(records or [], wl, metric, ref)
    if len(paired) > 1:
        row["paired"] = paired
        detail += "; per repetition " + ", ".join(f"{p:.2f}×" for p in paired)
    return {**row, "status": "met" if met else "NOT met", "detail": detail}


def goals(stats: dict, records: list[dict] | None = None) -> list[dict]:
    return [goal_row(stats, records or [], g) for g in GOALS]


def _num(v: float) -> str:
    return f"{v / 1e6:.2f}M" if abs(v) >= 1e5 else f"{v:.4g}"


def goals_table(rows: list[dict]) -> str:
    lines = ["| target (issue 14) | certrelay | reference or limit | status | by how much |",
             "|---|---:|---:|---|---|"]
    for r in rows:
        mine = "–" if r["certrelay"] is None else _num(r["certrelay"])
        ref = _num(r["reference"]) if r.get("reference") is not None else (
            f"{r['limit']:g}" if r.get("limit") is not None else "–")
        status = f"**{r['status']}**" if r["status"] in ("met", "NOT met") else r["status"]
        goal = f"**{r['goal']}**" if r.get("primary") else r["goal"]
        lines.append(f"| {goal} | {mine} | {ref} | {status} | {r['detail']} |")
    return "\n".join(lines)


def ratios_table(records: list[dict], targets: list, workloads: list[str]) -> str:
    """certrelay / peer within each repetition, for the CPU and memory figures."""
    keys = [(k, label, wls) for k, label, wls, _, primary in METRICS if primary]
    peers = [t for t in targets if t.name != "certrelay"]
    lines = ["| workload | figure | " + " | ".join(f"certrelay / {t.label}" for t in peers)
             + " |", "|---|---|" + "---|" * len(peers)]
    for wl in [w for w in WORKLOAD_ORDER if w in workloads]:
        for key, label, wls in keys:
            if wl not in wls:
                continue
            cells = [", ".join(f"{x:.2f}" for x in paired_ratios(records, wl, key, t.name))
                     or "–" for t in peers]
            if any(c != "–" for c in cells):
                lines.append(f"| {wl} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


# ---------------------------------------------------------------------------------------------
# chart
# ---------------------------------------------------------------------------------------------
PANELS = [
    # (workload, metric, second metric drawn beside it or None, title, log scale). Counts first:
    # they do not drift with the host (issue 14); memory as the fourth.
    ("W3", "syscalls_total", None,
     "W3 (lock-step, 100 × 10 KiB per session): system calls per message", False),
    ("W3d", "ctxsw", None,
     "W3d (next envelope behind the dot): context switches per message", False),
    ("CG", "ir_full_session", "ir_resumed_session",
     "server instructions per session (callgrind; solid full handshake, hatched resumed)", False),
    ("W4", "rss_conn_kib", "pss_conn_kib",
     "W4: memory per idle TLS connection, KiB (log scale; solid RSS, hatched PSS)", True),
]
COLOURS = {"certrelay": "#1b7837", "nginx": "#2166ac", "stunnel": "#b2182b",
           "postfix": "#e08214", "backend": "#777777"}
LABEL = "(column(2) >= 100 ? sprintf('%.0f', column(2)) : sprintf('%.3g', column(2)))"


def chart(stats: dict, targets: list, out_dir: str, title: str) -> str | None:
    """Writes chart.png (gnuplot, pngcairo); returns its path or None without gnuplot.
    Bars and labels: medians; whiskers: min–max of the repetitions (label above them)."""
    if not output_of(["which", "gnuplot"]):
        return None
    panels = []
    for wl, key, key2, ptitle, log in PANELS:
        files = []
        for k in (key, key2):
            if k is None:
                continue
            rows = [(i, t, stats.get((t.name, wl, k)))
                    for i, t in enumerate(x for x in targets if x.name != "backend")]
            rows = [r for r in rows if r[2] is not None]
            if not rows:
                continue
            dat = os.path.join(out_dir, f"chart-{wl}-{k}.dat")
            with open(dat, "w") as f:
                f.write("# index median min max colour label\n")
                for i, t, s in rows:
                    f.write(f"{i} {s['median']:.6g} {s['min']:.6g} {s['max']:.6g} "
                            f"0x{COLOURS.get(t.name, '#444444')[1:]} \"{t.label}\"\n")
            files.append(dat)
        if files:
            panels.append((files, ptitle, log))
    if not panels:
        return None
    png = os.path.join(out_dir, "chart.png")
    script = [
        "set terminal pngcairo size 1400,950 font 'sans,10'",
        f"set output '{png}'",
        f"set multiplot layout 2,2 title \"{title}\" font 'sans,12'",
        "set grid ytics", "set tics nomirror", "unset key", "set offsets 0, 0, graph 0.1, 0",
        f"set xrange [-0.6:{len([t for t in targets if t.name != 'backend']) - 0.4}]",
    ]
    for files, ptitle, log in panels:
        script += [f"set title \"{ptitle}\""]
        script += ["set logscale y", "set yrange [1:*]"] if log else \
            ["unset logscale y", "set yrange [0:*]"]
        width = 0.6 if len(files) == 1 else 0.36
        plots = []
        for n, dat in enumerate(files):
            dx = 0.0 if len(files) == 1 else (-0.19 if n == 0 else 0.19)
            fill = "fs solid 0.8 border -1" if n == 0 else "fs pattern 4 border -1"
            xt = ":xtic(6)" if n == 0 else ""
            plots += [f"'{dat}' using ($1{dx:+}):2:({width}):5{xt} with boxes {fill} "
                      "lc rgb variable",
                      f"'{dat}' using ($1{dx:+}):2:3:4 with yerrorbars lc rgb 'black' pt -1",
                      f"'{dat}' using ($1{dx:+}):4:{LABEL} with labels offset 0,0.8"]
        script.append("plot " + ", ".join(plots))
    script.append("unset multiplot")
    gp = os.path.join(out_dir, "chart.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    p = subprocess.run(["gnuplot", gp], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"gnuplot failed: {p.stderr}")
    return png
