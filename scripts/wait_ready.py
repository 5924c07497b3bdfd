"""Waits for certrelay's `ready:` log line and prints the first listener's port.

usage: wait_ready.py LOGFILE TIMEOUT_SECONDS
"""
import re
import sys
import time

path, limit = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except FileNotFoundError:
        text = ""
    if "ready:" in text:
        match = re.search(r"listening: name=\S+ address=\S+:(\d+)", text)
        print(match.group(1))
        sys.exit(0)
    if "error:" in text:
        break
    time.sleep(0.05)
sys.stderr.write("certrelay did not become ready:\n" + text)
sys.exit(1)
