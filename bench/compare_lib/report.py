"""Aggregation (median of the repetitions, min-max), the Markdown table, the targets of
docs/performance.md, the gnuplot chart and bench/RESULTS.md."""

from __future__ import annotations

import os
import statistics
import subprocess

from .system import output_of

# (key, row label, workloads, format, primary?)
METRICS = [
    ("cpu_session_ms", "target CPU per session, ms", ("L1", "W1", "W2"), "{:.3f}", True),
    ("cpu_resumed_ms", "est. target CPU per resumed session, ms", ("W2",), "{:.3f}", True),
    ("resumed_pct", "sessions resumed, %", ("W2",), "{:.0f}", False),
    ("cpu_message_us", "target CPU per message, µs", ("W3",), "{:.0f}", True),
    ("rss_conn_kib", "RSS per idle TLS connection, KiB", ("W4",), "{:.1f}", True),
    ("pss_conn_kib", "PSS per idle TLS connection, KiB", ("W4",), "{:.1f}", False),
    ("cpu_idle_session_ms", "target CPU per idle session set-up, ms", ("W4",), "{:.3f}", False),
    ("sessions_per_s", "sessions/s (wall)", ("L1", "W1", "W2"), "{:.0f}", False),
    ("messages_per_s", "messages/s (wall)", ("W3",), "{:.0f}", False),
    ("session_p50", "session latency p50, ms", ("L1", "W1", "W2"), "{:.2f}", False),
    ("session_p90", "session latency p90, ms", ("L1", "W1", "W2"), "{:.2f}", False),
    ("session_p99", "session latency p99, ms", ("L1", "W1", "W2"), "{:.2f}", False),
    ("handshake_p50", "handshake latency p50, ms", ("L1", "W1", "W2"), "{:.2f}", False),
    ("handshake_p99", "handshake latency p99, ms", ("W1", "W2"), "{:.2f}", False),
    ("message_p50", "message latency p50, ms", ("L1", "W3"), "{:.2f}", False),
    ("message_p99", "message latency p99, ms", ("L1", "W3"), "{:.2f}", False),
    ("load_cpu_session_ms", "generator CPU per session, ms (machine-speed canary)",
     ("W1", "W2"), "{:.3f}", False),
    ("auth_cpu_session_ms", "auth_http endpoint CPU per session, ms (not counted)",
     ("W1",), "{:.3f}", False),
]

WORKLOAD_ORDER = ["L1", "W1", "W2", "W3", "W4"]


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
        if r["workload"] == "W3" and j.get("messages_per_s") is not None:
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
# the targets of docs/performance.md
# ---------------------------------------------------------------------------------------------
GOALS = [
    # (id, text, workload, metric, reference target or None, factor or absolute limit)
    ("W1 CPU", "W1 CPU per session ≤ 0.65 × nginx", "W1", "cpu_session_ms", "nginx", 0.65),
    ("W2 CPU", "W2 CPU per resumed session ≤ 0.6 × nginx", "W2", "cpu_resumed_ms", "nginx", 0.6),
    ("W3 CPU", "W3 CPU per message ≤ 0.5 × stunnel", "W3", "cpu_message_us", "stunnel", 0.5),
    ("W3 rate", "W3 messages/s within a session ≥ 3,000", "W3", "messages_per_s", None, -3000),
    ("W4 mem", "W4 RSS per idle TLS connection ≤ 0.6 × nginx", "W4", "rss_conn_kib", "nginx",
     0.6),
    ("L1 session", "L1 session latency p50 ≤ 3 ms", "L1", "session_p50", None, 3.0),
    ("L1 message", "L1 message latency p50 ≤ 0.5 ms", "L1", "message_p50", None, 0.5),
    ("W1 p99", "W1 session latency p99 ≤ 0.5 × nginx", "W1", "session_p99", "nginx", 0.5),
]


def paired_ratios(records: list[dict], wl: str, metric: str, ref: str) -> list[float]:
    """certrelay / ref within each repetition. The host's speed drifts between repetitions
    more than between two targets of one repetition, so these show how stable a ratio is."""
    by_rep: dict[tuple, float] = {(r["target"], r["rep"]): r[metric] for r in records
                                  if r["workload"] == wl and r.get(metric) is not None}
    return [by_rep[("certrelay", rep)] / by_rep[(ref, rep)]
            for (t, rep) in sorted(by_rep) if t == "certrelay" and (ref, rep) in by_rep
            and by_rep[(ref, rep)]]


def goals(stats: dict, records: list[dict] | None = None) -> list[dict]:
    out = []
    for gid, text, wl, metric, ref, factor in GOALS:
        mine = stats.get(("certrelay", wl, metric))
        row = {"id": gid, "goal": text, "certrelay": mine["median"] if mine else None}
        if mine is None:
            row.update(status="not measured", detail="")
            out.append(row)
            continue
        if ref is not None:
            other = stats.get((ref, wl, metric))
            if other is None or not other["median"]:
                row.update(status="not measured", detail=f"no {ref} figure")
                out.append(row)
                continue
            ratio = mine["median"] / other["median"]
            limit = factor * other["median"]
            row.update(reference=other["median"], ratio=ratio, limit=limit)
            met = ratio <= factor
            if met:
                detail = (f"{ratio:.2f}× {ref} (limit {factor}×): {100 * (1 - ratio / factor):.0f}"
                          " % below the limit")
            else:
                detail = (f"{ratio:.2f}× {ref} (limit {factor}×): "
                          f"{100 * (ratio / factor - 1):.0f} % over the limit, "
                          f"needs {100 * (1 - factor / ratio):.0f} % less")
            paired = paired_ratios(records or [], wl, metric, ref)
            if len(paired) > 1:
                row["paired"] = paired
                detail += ("; per repetition " + ", ".join(f"{p:.2f}×" for p in paired))
        elif factor < 0:                       # at least
            limit = -factor
            met = mine["median"] >= limit
            row.update(limit=limit)
            detail = (f"{mine['median']:.0f} vs ≥ {limit:.0f}: "
                      + (f"{100 * (mine['median'] / limit - 1):.0f} % above" if met else
                         f"{100 * (1 - mine['median'] / limit):.0f} % short"))
        else:
            limit = factor
            met = mine["median"] <= limit
            row.update(limit=limit)
            detail = (f"{mine['median']:.3g} ms vs ≤ {limit:g} ms: "
                      + (f"{100 * (1 - mine['median'] / limit):.0f} % below" if met else
                         f"{100 * (mine['median'] / limit - 1):.0f} % over"))
        row.update(status="met" if met else "NOT met", detail=detail)
        out.append(row)
    return out


def goals_table(rows: list[dict]) -> str:
    lines = ["| target (docs/performance.md) | certrelay | reference | status | by how much |",
             "|---|---:|---:|---|---|"]
    for r in rows:
        mine = "–" if r["certrelay"] is None else f"{r['certrelay']:.4g}"
        ref = f"{r['reference']:.4g}" if r.get("reference") is not None else (
            f"{r['limit']:g}" if r.get("limit") is not None else "–")
        status = f"**{r['status']}**" if r["status"] in ("met", "NOT met") else r["status"]
        lines.append(f"| {r['goal']} | {mine} | {ref} | {status} | {r['detail']} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# chart
# ---------------------------------------------------------------------------------------------
PANELS = [
    # (workload, metric, second metric drawn beside it or None, title, log scale)
    ("W1", "cpu_session_ms", None,
     "W1: target CPU per session, ms (full handshake + 1 × 1 KiB)", False),
    ("W2", "cpu_resumed_ms", None, "W2: est. target CPU per resumed session, ms", False),
    ("W3", "cpu_message_us", None,
     "W3: target CPU per message, µs (100 × 10 KiB per session)", False),
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
