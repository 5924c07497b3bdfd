"""Quick TLS load against a running certrelay: full STARTTLS sessions with a client certificate.

Each session: EHLO, STARTTLS (client certificate), EHLO, MAIL, RCPT, DATA (1 KiB), QUIT.
Reports sessions/s and, given the proxy's pid, the proxy's CPU time per session read from
/proc (user+system, the stable figure on a shared machine). Bounded by --sessions and
--seconds; loopback only. The C++ load generator of bench/ (issue 5) supersedes this.

usage: quick_tls_load.py --port P --cert C --key K [--pid PID] [--sessions N] [--threads T]
"""
import argparse
import os
import smtplib
import ssl
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--pid", type=int)
parser.add_argument("--sessions", type=int, default=2000)
parser.add_argument("--threads", type=int, default=8)
parser.add_argument("--seconds", type=float, default=60)
parser.add_argument("--rcpt", default="user@remote.example")
args = parser.parse_args()

context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
context.load_cert_chain(args.cert, args.key)
body = b"Subject: load\r\n\r\n" + b"x" * 1000 + b"\r\n"
lock = threading.Lock()
done = 0
errors = {}
latencies = []
deadline = time.monotonic() + args.seconds


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker():
    global done
    while time.monotonic() < deadline:
        with lock:
            if done + sum(errors.values()) >= args.sessions:
                return
        start = time.monotonic()
        try:
            with smtplib.SMTP(args.host, args.port, timeout=10) as smtp:
                smtp.ehlo("load.example")
                smtp.starttls(context=context)
                smtp.ehlo("load.example")
                smtp.sendmail("load@client.example", [args.rcpt], body)
            with lock:
                done += 1
                latencies.append(time.monotonic() - start)
        except Exception as e:  # counted by kind, the run goes on
            with lock:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1


cpu0 = cpu_seconds(args.pid) if args.pid else None
t0 = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(args.threads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.monotonic() - t0
time.sleep(0.2)  # let the proxy finish closing the last sessions before reading its CPU
latencies.sort()
print(f"sessions={done} errors={errors} wall={wall:.2f}s rate={done / wall:.0f} sessions/s")
if latencies:
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(f"session latency p50={p(0.5):.1f}ms p90={p(0.9):.1f}ms p99={p(0.99):.1f}ms")
if cpu0 is not None and done:
    cpu = cpu_seconds(args.pid) - cpu0
    print(f"proxy cpu={cpu:.2f}s per_session={cpu / done * 1000:.3f}ms")
