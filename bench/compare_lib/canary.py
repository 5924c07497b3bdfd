"""The canary: the sink alone (smtp-sink, plain SMTP, --no-starttls) driven by the generator,
once with both on the generator's core and once on different cores. Neither is a target: the
pair shows the host's wake-up cost on the day (a lock-step round trip across cores pays two
cross-core wake-ups), beside which the other figures are read."""

from __future__ import annotations

from .loadgen import Workload
from .system import BenchError
from .targets import LOAD_CORE, TARGET_CORE, Sink

LAYOUTS = [("same core", LOAD_CORE), ("different cores", TARGET_CORE)]


def canary_workload(quick: bool) -> Workload:
    return Workload("canary", "sink alone, 1 connection, plain, 1 x 1 KiB per session",
                    connections=1, sessions=300 if quick else 2000, duration=30)


def run_canary(ctx, gen, quick: bool, when: str) -> list[dict]:
    wl = canary_workload(quick)
    out = []
    for layout, core in LAYOUTS:
        sink = Sink(ctx, "sink-canary", core=core)
        rec = {"when": when, "layout": layout, "sink_core": core, "generator_core": LOAD_CORE}
        try:
            sink.start()
            c0 = sink.proc.cpu_seconds()
            got = gen.run(sink.port, wl, False)
            j = got["json"]
            n = j.get("sessions") or 0
            lat = j.get("latency_ms") or {}
            rec.update({
                "sessions": n, "sessions_per_s": j.get("sessions_per_s"),
                "session_p50_ms": (lat.get("session") or {}).get("p50"),
                "message_p50_ms": (lat.get("message") or {}).get("p50"),
                "sink_cpu_session_us": (sink.proc.cpu_seconds() - c0) / n * 1e6 if n else None,
                "load_cpu_session_us": (got["load_cpu"] or 0) / n * 1e6 if n else None})
        except BenchError as e:
            rec["error"] = str(e)[:300]
        finally:
            sink.stop()
        out.append(rec)
    return out


def canary_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = ["| when | sink and generator | sessions/s | session p50, ms | message p50, ms | "
             "sink CPU/session, µs | generator CPU/session, µs |", "|---|---|---:|---:|---:|"
             "---:|---:|"]
    f = lambda v, fmt: "–" if v is None else fmt.format(v)  # noqa: E731
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['when']} | {r['layout']} | error: {r['error'][:80]} | | | | |")
            continue
        lines.append(f"| {r['when']} | {r['layout']} | {f(r['sessions_per_s'], '{:.0f}')} | "
                     f"{f(r['session_p50_ms'], '{:.3f}')} | {f(r['message_p50_ms'], '{:.3f}')}"
                     f" | {f(r['sink_cpu_session_us'], '{:.0f}')} | "
                     f"{f(r['load_cpu_session_us'], '{:.0f}')} |")
    return "\n".join(lines)
