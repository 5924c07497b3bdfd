"""Server-side instruction counts (callgrind), part of the counting pass.

Each target runs single-process under `valgrind --tool=callgrind` (certrelay `workers = 1`,
nginx `master_process off`, stunnel in the foreground; Postfix is not measured: a process per
session) four times, each started afresh, warmed up with one session and stopped:
  base: nothing more;  full: + N full-handshake sessions;  resumed: + N sessions with --resume
  on one connection (the first is a full handshake);  msgs: + 1 session of N x 10 KiB.
Difference method against the idle baseline:
  per full session    = (full - base) / N
  per resumed session = (resumed - base - full handshakes x per full session) / resumed ones
  per 10 KiB message  = (msgs - base - per full session) / N
The sessions have no message (--messages 0): greeting, EHLO, STARTTLS, handshake, EHLO, QUIT,
the backend session included. For certrelay the full run also gives the instructions inside
its TLS engine (`certrelay::tls::Engine::*`, inclusive, entered from outside it) per handshake:
the figure compared with the stock OpenSSL reference (bench/micro).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil

from .loadgen import Workload
from .system import BenchError

N = 30
ENGINE = re.compile(r"certrelay::tls::Engine::")
PHASES = {
    "base": None,
    "full": Workload("cg-full", "full handshakes", connections=1, sessions=N, messages=0,
                     duration=240),
    "resumed": Workload("cg-resumed", "resumed", connections=1, sessions=N, messages=0,
                        resume=True, duration=240),
    "msgs": Workload("cg-msgs", "10 KiB messages", connections=1, sessions=1, messages=N,
                     body=10240, duration=240),
}
WARM = Workload("cg-warm", "warm-up", connections=1, sessions=1, duration=120)


def totals(files: list[str]) -> int:
    """Sum of the `totals:` (or `summary:`) lines of callgrind output files."""
    total = 0
    for path in files:
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    total += int(line.split()[1])
                    break
    return total


def _cost(line: str) -> int:
    tok = line.split()
    return int(tok[1]) if len(tok) > 1 and tok[1].isdigit() else 0


def inclusive_entered(files: list[str], pattern=ENGINE) -> int:
    """Inclusive cost of the functions matching `pattern`, counted where they are called from
    a function that does not match (a callback from OpenSSL back into the engine, inside an
    engine call, is counted twice: small)."""
    total = 0
    for path in files:
        names: dict[str, str] = {}
        fn = cfn = ""
        pending_call = False

        def name(ref: str) -> str:
            m = re.match(r"\((\d+)\)(?: (.*))?$", ref.strip())
            if not m:
                return ref.strip()
            if m.group(2):
                names[m.group(1)] = m.group(2)
            return names.get(m.group(1), "")
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("fn="):
                    fn = name(line[3:])
                elif line.startswith("cfn="):
                    cfn = name(line[4:])
                elif line.startswith("calls="):
                    pending_call = True
                elif pending_call and line[:1] in "0123456789+-*":
                    pending_call = False
                    if pattern.search(cfn) and not pattern.search(fn):
                        total += _cost(line)
    return total


def run_phase(t, sink, gen, phase: str, outdir: str) -> dict:
    prefix = os.path.join(outdir, f"cg-{t.name}-{phase}")
    t.wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p",
              "--dump-instr=no", "--log-file=" + prefix + ".vglog"]
    t.ready_timeout = 180.0
    got = {}
    try:
        t.start(sink.port)
        try:
            gen.run(t.port, WARM, t.tls)
            wl = PHASES[phase]
            if wl is not None:
                got = gen.run(t.port, wl, t.tls)["json"]
        finally:
            t.stop()
    finally:
        t.wrap, t.ready_timeout = [], 20.0
    files = [p for p in glob.glob(prefix + ".*") if not p.endswith(".vglog")]
    if not files:
        raise BenchError(f"callgrind wrote no output for {t.name} {phase}")
    rec = {"ir": totals(files), "json": {k: got.get(k) for k in
                                         ("sessions", "messages", "handshakes_full",
                                          "handshakes_resumed", "errors")}}
    if t.name == "certrelay" and phase in ("base", "full"):
        rec["ir_engine"] = inclusive_entered(files)
    for p in files:
        os.unlink(p)
    return rec


def derive(runs: dict) -> dict:
    b = runs["base"]["ir"]
    out = {}
    full = runs["full"]["json"]
    if full.get("sessions"):
        out["ir_full_session"] = (runs["full"]["ir"] - b) / full["sessions"]
        if "ir_engine" in runs["full"]:
            out["ir_full_handshake_engine"] = ((runs["full"]["ir_engine"] -
                                                runs["base"]["ir_engine"]) / full["sessions"])
    res = runs["resumed"]["json"]
    if res.get("handshakes_resumed") and "ir_full_session" in out:
        out["ir_resumed_session"] = ((runs["resumed"]["ir"] - b - (res.get("handshakes_full")
                                      or 0) * out["ir_full_session"]) /
                                     res["handshakes_resumed"])
    msgs = runs["msgs"]["json"]
    if msgs.get("messages") and "ir_full_session" in out:
        out["ir_message_10k"] = ((runs["msgs"]["ir"] - b - out["ir_full_session"]) /
                                 msgs["messages"])
    return out


def callgrind_phase(targets, sink, gen, workdir: str, log, notes: list) -> list[dict]:
    if not shutil.which("valgrind"):
        notes.append("instructions not measured: valgrind is not installed")
        return []
    out = []
    for t in targets:
        if not getattr(t, "callgrind_ok", False):
            if t.name != "backend":
                notes.append(f"instructions not measured for {t.label} (not single-process)")
            continue
        log(f"== callgrind: {t.label} (base, {N} full, {N} resumed, {N} x 10 KiB)")
        runs = {}
        try:
            for phase in PHASES:
                runs[phase] = run_phase(t, sink, gen, phase, workdir)
                log(f"  {phase}: {runs[phase]['ir'] / 1e6:.1f}M instructions "
                    f"{runs[phase]['json']}")
        except BenchError as e:
            notes.append(f"callgrind {t.label}: {str(e)[:300]}")
            out.append({"target": t.name, "error": str(e)[:500], "runs": runs})
            continue
        rec = {"target": t.name, "runs": runs, **derive(runs)}
        out.append(rec)
        log("  " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in rec.items()
                             if k.startswith("ir_")))
    return out


def openssl_reference(path: str | None) -> dict:
    """{"openssl_reference_instructions": n or None, "source": ...} from the JSON file bench/micro
    writes (another program; absent: not measured)."""
    if not path or not os.path.exists(path):
        return {"openssl_reference_instructions": None, "source": path}
    try:
        with open(path) as f:
            data = json.load(f)
        v = data.get("openssl_reference_instructions")
        if isinstance(v, dict):
            # handshake_floor.sh's figures per ticket setting: certrelay's default (one
            # stateful ticket) is the one the target compares.
            v = v.get("full_stateful_1")
        return {"openssl_reference_instructions": float(v) if v is not None else None,
                "source": path, "floor": data}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        return {"openssl_reference_instructions": None, "source": path, "error": str(e)}

