"""Tables of the counting pass (system calls, context switches, TCP segments, instructions):
certrelay beside each peer with the ratio certrelay / peer; and the same figures as `stats`
entries for the targets table (report.goals)."""

from __future__ import annotations

from .counts import COUNT_WORKLOADS, TOP_CALLS

LEGS = [("c2t", "client → target"), ("t2c", "target → client"),
        ("t2b", "target → backend"), ("b2t", "backend → target")]
CG_ROWS = [
    ("ir_full_session", "per full-handshake session (no message), M"),
    ("ir_resumed_session", "per resumed session (no message), M"),
    ("ir_message_10k", "per 10 KiB message, M"),
    ("ir_full_handshake_engine", "per full handshake inside certrelay's TLS engine, M"),
]


def _fmt(v, fmt="{:.1f}") -> str:
    return "–" if v is None else fmt.format(v)


def _row(label: str, values: dict, targets: list, fmt: str) -> str:
    mine = values.get("certrelay")
    cells = []
    for t in targets:
        v = values.get(t.name)
        c = _fmt(v, fmt)
        if t.name != "certrelay" and v and mine is not None:
            c += f" ({mine / v:.2f}×)"
        cells.append(c)
    return f"| {label} | " + " | ".join(cells) + " |"


def _head(first: str, targets: list) -> list[str]:
    cols = [t.label + (" (certrelay / it)" if t.name != "certrelay" else "") for t in targets]
    return [f"| {first} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(targets)]


def _by(records: list[dict]) -> dict:
    return {(r["target"], r["workload"]): r for r in records if not r.get("error")}


def counts_table(records: list[dict], targets: list) -> str:
    """One table: per workload, system calls, context switches and segments each way."""
    if not records:
        return ""
    by = _by(records)
    present = [t for t in targets if any(r["target"] == t.name for r in records)]
    lines = _head("workload: figure", present)
    for w in COUNT_WORKLOADS:
        if not any(k[1] == w for k in by):
            continue
        unit = "message" if w.startswith("W3") else "session"
        get = lambda key, t, w=w: (by.get((t.name, w)) or {}).get(key)  # noqa: E731
        lines.append(_row(f"**{w}: system calls per {unit}**",
                          {t.name: get("syscalls_total", t) for t in present}, present,
                          "{:.1f}"))
        lines.append(_row(f"**{w}: context switches per {unit}**",
                          {t.name: get("ctxsw", t) for t in present}, present, "{:.2f}"))
        for leg, text in LEGS:
            vals = {t.name: (get("segments", t) or {}).get(leg) for t in present}
            if all(v is None for v in vals.values()):
                continue
            lines.append(_row(f"{w}: TCP segments {text} per {unit}", vals, present, "{:.1f}"))
        data = [get("data_segments", t) for t in present]
        if any(data):
            lines.append(f"| {w}: of which carrying data, the four legs above | " + " | ".join(
                " / ".join(f"{d[leg]:.1f}" for leg, _ in LEGS) if d else "–" for d in data)
                + " |")
    return "\n".join(lines)


def syscall_tables(records: list[dict], targets: list) -> str:
    """Per workload: the top system calls (of any target) and the total."""
    by = _by(records)
    present = [t for t in targets if any(r["target"] == t.name for r in records)]
    out = []
    for w in COUNT_WORKLOADS:
        recs = {t.name: by.get((t.name, w)) for t in present}
        if not any(recs.values()):
            continue
        unit = "message" if w.startswith("W3") else "session"
        score: dict[str, float] = {}
        for r in recs.values():
            for name, v in ((r or {}).get("syscalls") or {}).items():
                score[name] = max(score.get(name, 0), v)
        top = sorted(score, key=lambda n: -score[n])[:TOP_CALLS]
        lines = [f"{w}, per {unit}:", ""] + _head("system call", present)
        for name in top:
            lines.append(_row(name, {t: ((r or {}).get("syscalls") or {}).get(name, 0)
                                     for t, r in recs.items() if r}, present, "{:.2f}"))
        lines.append(_row("**all**", {t: r.get("syscalls_total") for t, r in recs.items()
                                      if r}, present, "{:.1f}"))
        out.append("\n".join(lines))
    return "\n\n".join(out)


def callgrind_table(cg: list[dict], targets: list, ref: dict) -> str:
    if not cg:
        return ""
    by = {r["target"]: r for r in cg if not r.get("error")}
    present = [t for t in targets if t.name in by]
    if not present:
        return ""
    lines = _head("server instructions", present)
    for key, label in CG_ROWS:
        vals = {t.name: (by[t.name].get(key) / 1e6 if by[t.name].get(key) is not None else None)
                for t in present}
        if all(v is None for v in vals.values()):
            continue
        lines.append(_row(label, vals, present, "{:.2f}"))
    v = ref.get("openssl_reference_instructions")
    lines.append("")
    lines.append("Stock OpenSSL reference, server side of one full handshake "
                 f"(`openssl_reference_instructions`, {ref.get('source') or 'no file'}): "
                 + (f"{v / 1e6:.2f}M" if v else "not measured") + ".")
    return "\n".join(lines)


def count_stats(records: list[dict], cg: list[dict], ref: dict) -> dict:
    """Count figures as report.aggregate()-like entries {(target, workload, metric): {...}}."""
    out = {}

    def put(t, w, k, v):
        if v is not None:
            out[(t, w, k)] = {"median": v, "min": v, "max": v, "n": 1, "values": [v]}
    for r in records:
        if r.get("error"):
            continue
        put(r["target"], r["workload"], "syscalls_total", r.get("syscalls_total"))
        put(r["target"], r["workload"], "ctxsw", r.get("ctxsw"))
    for r in cg:
        for key, _ in CG_ROWS:
            put(r["target"], "CG", key, r.get(key))
    put("openssl-reference", "CG", "ir_full_handshake_engine",
        ref.get("openssl_reference_instructions"))
    return out
