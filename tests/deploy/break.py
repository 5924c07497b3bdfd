#!/usr/bin/python3
"""Deliberately broken copies of deploy/ for scripts/check-deploy.sh's negative test.

  break.py --list          one line per case: NAME<TAB>PATTERN (what the check must print)
  break.py NAME ROOT       apply case NAME to the copy under ROOT (ROOT/deploy, ROOT/tests/deploy)

Every case must make the check fail, and fail where PATTERN says (the layer meant to catch
it), so a validator that silently stops working is noticed. A case whose text is not found
is an error of this file (exit 3), never a pass.
"""
import sys

MON = "deploy/components/monitoring/prometheusrule.yaml"
EDGE = "deploy/edge/deployment.yaml"
SIDE = "deploy/sidecar/statefulset.yaml"

# name, file, old text, new text, occurrences to replace (0 = all), pattern expected in the log
CASES = [
    ("typo-readOnlyRootFileSystem", EDGE, "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", 1,
     "FAIL [types]"),
    ("restartPolicy-Sometimes", SIDE, "          restartPolicy: Always", "          restartPolicy: Sometimes", 1,
     "restartPolicy Sometimes"),
    ("containerPort-99999", EDGE, "containerPort: 2525", "containerPort: 99999", 1,
     "containerPort 99999 outside"),
    ("replicas-not-a-number", SIDE, "replicas: 2", "replicas: two", 1, "FAIL [models]"),
    ("subPath", SIDE, "mountPath: /etc/certrelay/tls\n", "mountPath: /etc/certrelay/tls\n              subPath: tls.crt\n", 1,
     "uses subPath"),
    ("nested-mount", SIDE, "mountPath: /etc/certrelay/tickets", "mountPath: /etc/certrelay/config/tickets", 1,
     "is nested in mount"),
    ("grace-too-short", EDGE, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", 1,
     "must exceed shutdown.delay + shutdown.timeout"),
    ("certrelay-as-root", EDGE, "runAsUser: 65532", "runAsUser: 0", 0, "runAsUser 0"),
    ("sidecar-startup-on-readyz", SIDE, "path: /livez", "path: /readyz", 1, "startupProbe path /readyz"),
    ("probe-off-admin-port", EDGE, "path: /readyz\n              port: admin", "path: /readyz\n              port: smtp", 1,
     "readinessProbe is not on the admin port"),
    ("edge-preStop-drain", EDGE, "          resources:\n",
     "          lifecycle:\n            preStop:\n              exec:\n"
     "                command: [\"/usr/local/bin/certrelay\", \"ctl\", \"drain\"]\n          resources:\n", 1,
     "no preStop for a plain container"),
    ("image-not-set", "deploy/edge/kustomization.yaml", "images:\n  - name: certrelay\n",
     "images:\n  - name: certrelay-typo\n", 1, "is not REGISTRY/NAME:TAG"),
    ("service-cluster-traffic-policy", "deploy/edge/service.yaml", "externalTrafficPolicy: Local",
     "externalTrafficPolicy: Cluster", 1, "needs externalTrafficPolicy: Local"),
    ("certificate-typo", "deploy/components/cert-manager/certificate.yaml", "  secretName: certrelay-tls",
     "  secretname: certrelay-tls", 1, "missing spec.secretName"),
    ("alert-expr-syntax", MON, "expr: certrelay_backend_up == 0", "expr: certrelay_backend_up == (0", 1,
     "promtool check rules: FAILED"),
    ("alert-unknown-metric", MON, "expr: certrelay_backend_up == 0", "expr: certrelay_backend_upp == 0", 1,
     "unknown metric certrelay_backend_upp"),
    ("alert-semantics", MON, "for: 2m", "for: 20m", 1, "promtool test rules: FAILED"),
    ("config-rejected", "deploy/edge/certrelay.toml", 'identity = "auto"', 'identity = "sometimes"', 1,
     "FAIL [config]"),
    ("yaml-trailing-space", "deploy/edge/pdb.yaml", "maxUnavailable: 1\n", "maxUnavailable: 1   \n", 1,
     "yamllint: FAILED"),
]


def main():
    if sys.argv[1:] == ["--list"]:
        for name, *_rest, pattern in CASES:
            print(f"{name}\t{pattern}")
        return 0
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, root = sys.argv[1], sys.argv[2]
    for case_name, path, old, new, count, _pattern in CASES:
        if case_name != name:
            continue
        full = f"{root}/{path}"
        with open(full, encoding="utf-8") as f:
            text = f.read()
        if old not in text:
            print(f"break.py: case {name}: {old!r} not in {path}", file=sys.stderr)
            return 3
        text = text.replace(old, new) if count == 0 else text.replace(old, new, count)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
        return 0
    print(f"break.py: no case {name}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
