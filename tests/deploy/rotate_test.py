#!/usr/bin/python3
"""deploy/components/ticket-keys/rotate.sh against a stand-in kubectl (fake-kubectl/):
init fills an empty Secret, a second init changes nothing, rotate shifts the keys
(previous <- current <- next <- new), a broken key is replaced, and a patch on a stale
resourceVersion is refused. Run by scripts/check-deploy.sh; exit 1 on any failure."""
import base64, json, os, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
script = os.path.join(here, "..", "..", "deploy", "components", "ticket-keys", "rotate.sh")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


with tempfile.TemporaryDirectory() as tmp:
    state = os.path.join(tmp, "secret.json")
    env = dict(os.environ, PATH=os.path.join(here, "fake-kubectl") + ":" + os.environ["PATH"],
               FAKE_SECRET=state, SECRET="certrelay-ticket-keys", TMPDIR=tmp)

    def write(data, version="7"):
        with open(state, "w") as f:
            json.dump({"metadata": {"name": "certrelay-ticket-keys", "resourceVersion": version},
                       **({"data": data} if data is not None else {})}, f)

    def read():
        with open(state) as f:
            return json.load(f)

    def run(mode):
        return subprocess.run(["/bin/sh", script, mode], env=env, capture_output=True, text=True)

    def keys_ok(data):
        return all(len(base64.b64decode(data.get(k, ""))) == 80 for k in ("current.key", "next.key", "previous.key"))

    write(None)
    r = run("init")
    first = read().get("data", {})
    check(r.returncode == 0 and keys_ok(first), "init fills a Secret without data: " + r.stdout.strip())
    check(len(set(first.values())) == 3, "init makes three different keys")
    r = run("init")
    check(r.returncode == 0 and read()["data"] == first and read()["metadata"]["resourceVersion"] == "8",
          "a second init changes nothing")
    r = run("rotate")
    second = read()["data"]
    check(r.returncode == 0 and keys_ok(second), "rotate leaves three 80-byte keys")
    check(second["previous.key"] == first["current.key"] and second["current.key"] == first["next.key"],
          "rotate shifts previous <- current <- next")
    check(second["next.key"] not in first.values(), "rotate makes a new next key")
    write({**second, "next.key": base64.b64encode(b"short").decode()})
    r = run("rotate")
    third = read()["data"]
    check(r.returncode == 0 and keys_ok(third) and third["current.key"] not in second.values(),
          "a malformed next key is replaced, not promoted")
    check(third["previous.key"] == second["current.key"], "... and current still becomes previous")
    # A writer between the read and the patch: the fake bumps the version on the read.
    write(third, version="20")
    env_race = dict(env)
    orig_get = os.path.join(here, "fake-kubectl", "kubectl")
    racer = os.path.join(tmp, "bin")
    os.makedirs(racer)
    with open(os.path.join(racer, "kubectl"), "w") as f:
        f.write("#!/bin/sh\n\"%s\" \"$@\"; rc=$?\n"
                "if [ \"$1\" = get ]; then /usr/bin/python3 -c 'import json,sys; p=sys.argv[1]; s=json.load(open(p)); "
                "s[\"metadata\"][\"resourceVersion\"]=\"21\"; json.dump(s,open(p,\"w\"))' \"$FAKE_SECRET\"; fi\n"
                "exit $rc\n" % orig_get)
    os.chmod(os.path.join(racer, "kubectl"), 0o755)
    env_race["PATH"] = racer + ":" + env["PATH"]
    r = subprocess.run(["/bin/sh", script, "rotate"], env=env_race, capture_output=True, text=True)
    check(r.returncode != 0 and read()["data"] == third, "a rotation on a stale resourceVersion is refused")
    check(run("sideways").returncode == 2, "an unknown mode is a usage error")

sys.exit(1 if failures else 0)
