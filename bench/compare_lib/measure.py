"""One measured run of one workload against one target: CPU of the target's processes (read
after it went idle), the generator's figures, foreign CPU activity on both cores, and for W4
the memory of the target's processes with the idle sessions open."""

from __future__ import annotations

import os
import time

from .system import CpuTimes
from .targets import LOAD_CORE, TARGET_CORE

# A run is repeated when, during it, CPU time on core 0 not used by the target exceeds
# FOREIGN_CORE0 of the run's wall time (or on core 1, not used by the generator, the sink or
# this script, exceeds FOREIGN_CORE1), and the foreign time is at least FOREIGN_MIN_S
# (/proc/stat counts in 10 ms ticks).
FOREIGN_CORE0 = 0.10
FOREIGN_CORE1 = 0.25
FOREIGN_MIN_S = 0.05
# ... or when the hypervisor took more than STEAL_SHARE of the wall time from the two cores
# (steal time: a busy host slows everything, the target's CPU time per session included).
STEAL_SHARE = 0.03


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def wait_idle(target, max_wait: float = 15.0, window: float = 0.3, eps: float = 0.003) -> float:
    """Waits until the target's CPU time grows by less than eps in `window`; returns the wait."""
    t0 = time.monotonic()
    prev = target.cpu_seconds()
    while time.monotonic() - t0 < max_wait:
        time.sleep(window)
        cur = target.cpu_seconds()
        if cur - prev < eps:
            break
        prev = cur
    return time.monotonic() - t0


class Ours:
    """CPU of everything the benchmark itself runs besides the target (sink, auth_http, this
    script; the generator is measured per run)."""

    def __init__(self, sink, target):
        self.sink, self.target = sink, target

    def core1_seconds(self) -> float:
        total = self_cpu()
        if self.sink.proc and self.target.name != "backend":
            total += self.sink.proc.cpu_seconds()
        for h in self.target.helpers:
            total += h.cpu_seconds()
        return total


def quiet_wait(target, sink, budget: dict, max_wait: float = 15.0) -> float:
    """Before a run: waits (bounded; and within a global budget) while another tenant keeps a
    core busy. Returns the seconds waited."""
    waited = 0.0
    ours = Ours(sink, target)
    while True:
        a, ta, oa = CpuTimes(), target.cpu_seconds(), ours.core1_seconds()
        time.sleep(0.4)
        b, tb, ob = CpuTimes(), target.cpu_seconds(), ours.core1_seconds()
        wall = b.t - a.t
        f0 = (b.busy(a, TARGET_CORE)["busy"] - (tb - ta)) / wall
        f1 = (b.busy(a, LOAD_CORE)["busy"] - (ob - oa)) / wall
        if (f0 < 0.2 and f1 < 0.4) or waited >= max_wait or budget["quiet_left"] <= 0:
            return waited
        time.sleep(1.0)
        waited += 1.4
        budget["quiet_left"] -= 1.4


def held_probe(target, gen) -> dict:
    """W4x: one fresh full session (second generator) while the idle sessions are held."""
    from .loadgen import PROBE
    try:
        out = gen.run(target.port, PROBE, target.tls, name="load-probe")
    except Exception as e:  # noqa: BLE001 - reported, the held run goes on
        return {"error": str(e)[:300]}
    j = out["json"]
    lat = (j.get("latency_ms") or {}).get("session") or {}
    return {"session_ms": lat.get("p50"), "wall_s": round(out["wall"], 3),
            "sessions": j.get("sessions"), "errors": j.get("errors")}


def measure(target, sink, gen, wl, budget: dict) -> dict:
    """One attempt. Returns the record (see report.py for the fields used)."""
    rec = {"target": target.name, "workload": wl.name}
    rec["quiet_wait_s"] = round(quiet_wait(target, sink, budget), 2)
    wait_idle(target)
    ours = Ours(sink, target)
    mem_before = target.memory_kib() if wl.idle else None
    c0, t0, o0 = CpuTimes(), target.cpu_seconds(), ours.core1_seconds()
    auth0 = target.auth_cpu_seconds() if hasattr(target, "auth_cpu_seconds") else None

    def on_idle(n):
        time.sleep(0.5)                  # let the last handshakes' replies settle
        s0 = time.monotonic()
        mem = target.memory_kib()
        got = {"n": n, "mem": mem, "sample_s": round(time.monotonic() - s0, 2)}
        if wl.name == "W4x":
            got["probe"] = held_probe(target, gen)
        return got

    out = gen.run(target.port, wl, target.tls, on_idle=on_idle if wl.idle else None)
    rec["idle_wait_s"] = round(wait_idle(target), 2)
    c1, t1, o1 = CpuTimes(), target.cpu_seconds(), ours.core1_seconds()
    j = out["json"]
    rec.update({"rc": out["rc"], "json": j, "wall_s": round(out["wall"], 3)})
    cpu = t1 - t0
    rec["cpu_s"] = round(cpu, 6)
    sessions, messages = j.get("sessions", 0), j.get("messages", 0)
    rec["errors"] = sum((j.get("errors") or {}).values())
    if auth0 is not None:
        rec["auth_cpu_s"] = round(target.auth_cpu_seconds() - auth0, 6)
    # foreign activity
    wall = c1.t - c0.t
    core0, core1 = c1.busy(c0, TARGET_CORE), c1.busy(c0, LOAD_CORE)
    own0 = cpu if target.name != "backend" else 0.0
    own1 = (o1 - o0) + (out["load_cpu"] or 0.0) + (cpu if target.name == "backend" else 0.0)
    f0 = max(0.0, core0["busy"] - own0)
    f1 = max(0.0, core1["busy"] - own1)
    rec["foreign"] = {"wall_s": round(wall, 3), "core0_s": round(f0, 3),
                      "core0_share": round(f0 / wall, 3), "core1_s": round(f1, 3),
                      "core1_share": round(f1 / wall, 3),
                      "core0_irq_s": round(core0["irq"], 3),
                      "steal_s": round(core0["steal"] + core1["steal"], 3),
                      "load_cpu_s": round(out["load_cpu"] or 0.0, 3)}
    steal = core0["steal"] + core1["steal"]
    rec["foreign_high"] = ((f0 / wall > FOREIGN_CORE0 and f0 > FOREIGN_MIN_S)
                           or (f1 / wall > FOREIGN_CORE1 and f1 > FOREIGN_MIN_S)
                           or (steal / wall > STEAL_SHARE and steal > FOREIGN_MIN_S))
    if wl.idle:
        s = out["idle_sample"]
        if s is None:
            rec["error"] = "the generator never reported its idle sessions"
        else:
            n = s["n"]
            rec["mem"] = {"n": n, "before": mem_before, "with": s["mem"],
                          "sample_s": s["sample_s"]}
            rec["rss_conn_kib"] = (s["mem"]["rss"] - mem_before["rss"]) / n
            rec["pss_conn_kib"] = (s["mem"]["pss"] - mem_before["pss"]) / n
            rec["cpu_idle_session_ms"] = cpu / n * 1e3
            rec["rss_held_mib"] = s["mem"]["rss"] / 1024
            if "probe" in s:
                rec["probe"] = s["probe"]
                if s["probe"].get("session_ms") is not None and not s["probe"].get("errors"):
                    rec["probe_session_ms"] = s["probe"]["session_ms"]
    else:
        if sessions:
            rec["cpu_session_ms"] = cpu / sessions * 1e3
        if messages:
            rec["cpu_message_us"] = cpu / messages * 1e6
    if sessions and out["load_cpu"]:
        rec["load_cpu_session_ms"] = out["load_cpu"] / sessions * 1e3
    if rec["errors"] or out["rc"] != 0:
        rec["error"] = (f"generator exit {out['rc']}, errors {j.get('errors')}; "
                        + " | ".join(out["stdout_tail"][-3:-1]))
    return rec
