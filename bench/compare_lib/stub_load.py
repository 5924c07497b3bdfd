"""DEVELOPMENT STUB of certrelay-load (same CLI contract and JSON line), in Python threads.

Only for developing bench/compare while the real generator (bench/load/, C++) is not built;
far too slow to measure anything: `bench/compare --load bench/compare_lib/stub_load.py`.
"""
import argparse
import json
import socket
import ssl
import sys
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, required=True)
p.add_argument("--connections", type=int, default=1)
p.add_argument("--sessions", type=int, default=0)
p.add_argument("--duration", type=float, default=60)
p.add_argument("--messages", type=int, default=1)
p.add_argument("--body-size", type=int, default=1024)
p.add_argument("--rcpt", default="user@remote.example")
p.add_argument("--from", dest="sender", default="load@client.example")
p.add_argument("--no-starttls", action="store_true")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--cafile")
p.add_argument("--resume", action="store_true")
p.add_argument("--pipelining", action="store_true")
p.add_argument("--bdat", action="store_true")
p.add_argument("--idle", action="store_true")
p.add_argument("--hold", type=float, default=5)
p.add_argument("--json", action="store_true")
a = p.parse_args()

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if a.cert:
    ctx.load_cert_chain(a.cert, a.key)
body = (b"Subject: load\r\n\r\n" + b"x" * 76 + b"\r\n") * max(1, a.body_size // 78)
lock = threading.Lock()
st = {"sessions": 0, "messages": 0, "full": 0, "resumed": 0, "started": 0}
errors = {}
lat = {"session": [], "handshake": [], "message": []}
deadline = time.monotonic() + a.duration
idle_up = threading.Semaphore(0)
release = threading.Event()


class Conn:
    def __init__(self, sock):
        self.s, self.buf = sock, b""

    def reply(self):
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise ConnectionError("closed")
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3])

    def cmd(self, c, want):
        self.s.sendall(c)
        code = self.reply()
        if code != want:
            raise RuntimeError(f"{c.split()[0].decode()} {code}")


def session(slot):
    t0 = time.monotonic()
    s = socket.create_connection((a.host, a.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = Conn(s)
    if c.reply() != 220:
        raise RuntimeError("greeting")
    c.cmd(b"EHLO client.example\r\n", 250)
    if not a.no_starttls:
        c.cmd(b"STARTTLS\r\n", 220)
        h0 = time.monotonic()
        t = ctx.wrap_socket(s, session=slot.get("sess") if a.resume else None)
        lat["handshake"].append(time.monotonic() - h0)
        c = Conn(t)
        c.cmd(b"EHLO client.example\r\n", 250)
        with lock:
            st["resumed" if t.session_reused else "full"] += 1
        slot["sess"] = t.session
    if a.idle:
        idle_up.release()
        release.wait(a.hold + 60)
    else:
        for _ in range(a.messages):
            m0 = time.monotonic()
            c.cmd(f"MAIL FROM:<{a.sender}>\r\n".encode(), 250)
            c.cmd(f"RCPT TO:<{a.rcpt}>\r\n".encode(), 250)
            c.cmd(b"DATA\r\n", 354)
            c.cmd(body + b".\r\n", 250)
            lat["message"].append(time.monotonic() - m0)
            with lock:
                st["messages"] += 1
    c.s.sendall(b"QUIT\r\n")
    try:
        c.reply()
    except Exception:  # noqa: BLE001
        pass
    c.s.close()
    lat["session"].append(time.monotonic() - t0)


def worker():
    slot = {}
    while time.monotonic() < deadline:
        with lock:
            if a.sessions and st["started"] >= a.sessions:
                return
            st["started"] += 1
        try:
            session(slot)
            with lock:
                st["sessions"] += 1
        except Exception as e:  # noqa: BLE001
            with lock:
                k = type(e).__name__
                errors[k] = errors.get(k, 0) + 1
        if a.idle:
            return


def pct(v):
    v = sorted(v)
    if not v:
        return {"p50": 0, "p90": 0, "p99": 0}
    return {f"p{q}": round(v[min(len(v) - 1, int(len(v) * q / 100))] * 1000, 3)
            for q in (50, 90, 99)}


start = time.monotonic()
if a.idle:
    a.sessions = a.connections
threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.connections)]
for t in threads:
    t.start()
if a.idle:
    for _ in range(a.connections):
        if not idle_up.acquire(timeout=max(1, deadline - time.monotonic())):
            break
    print(f"idle: {a.connections} sessions open", flush=True)
    time.sleep(a.hold)
    release.set()
for t in threads:
    t.join(max(0.1, deadline - time.monotonic() + 5))
secs = time.monotonic() - start
hs = st["full"] + st["resumed"]
print(f"sessions {st['sessions']} messages {st['messages']} errors {errors}")
print(json.dumps({"sessions": st["sessions"], "messages": st["messages"], "errors": errors,
                  "seconds": round(secs, 3), "sessions_per_s": st["sessions"] / secs,
                  "messages_per_s": st["messages"] / secs, "handshakes_full": st["full"],
                  "handshakes_resumed": st["resumed"], "handshakes_per_s": hs / secs,
                  "latency_ms": {k: pct(v) for k, v in lat.items()}}))
sys.exit(1 if errors else 0)
