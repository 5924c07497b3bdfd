#!/bin/sh
# CI (stage "deploy" of .ci/run), also by hand: validate deploy/ offline.
#   scripts/check-deploy.sh                  everything, negative test included
#   scripts/check-deploy.sh --no-negative    skip the broken copies (quicker while editing)
#
# 1. tools: installs yamllint and promtool (Debian "prometheus") with apt-get when missing
#    (root or sudo), the pinned npm packages of tests/deploy/package-lock.json with `npm ci`;
#    kubectl must be there (the machine image ships it; Debian 12 packages none).
# 2. the tree: yamllint over deploy/ and tests/deploy/; `kubectl kustomize` of each overlay;
#    tests/deploy/validate.mjs over the rendered objects (kubernetes-models validators,
#    tsc excess-property check against kubernetes-types, our checks of the CRDs and of what
#    the schemas miss, and each certrelay config through `certrelay --check-config` when a
#    binary is there: $CERTRELAY_BIN or build/certrelay); the PrometheusRule's groups through
#    `promtool check rules` and `promtool test rules` (tests/deploy/alerts_test.yml);
#    the ticket-key rotation script against a stand-in kubectl (tests/deploy/rotate_test.py).
# 3. negative: the same steps over copies of the tree broken on purpose
#    (tests/deploy/break.py); each must fail, in the layer meant to catch it.
# Prints each step's time; exit 1 when anything failed.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
negative=true
if [ "${1:-}" = "--no-negative" ]; then
  negative=false
fi

now_ms() { date +%s%3N; }
since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f s", (b - a) / 1000 }'; }
started=$(now_ms)
tmp=$(mktemp -d /tmp/check-deploy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- 1. tools ---
t=$(now_ms)
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "check-deploy: needs root (or sudo) to run: $*" >&2
    exit 1
  fi
}
packages=""
command -v yamllint >/dev/null 2>&1 || packages="$packages yamllint"
command -v promtool >/dev/null 2>&1 || packages="$packages prometheus"
command -v node >/dev/null 2>&1 || packages="$packages nodejs"
command -v npm >/dev/null 2>&1 || packages="$packages npm"
if [ -n "$packages" ]; then
  echo "check-deploy: installing$packages"
  as_root apt-get update -qq
  # shellcheck disable=SC2086 # word splitting of the package list is meant
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "check-deploy: FAILED: kubectl not found; the CI machine image ships it (kubectl kustomize" \
    "renders the overlays offline) and Debian 12 has no package for it" >&2
  exit 1
fi
modules=tests/deploy/node_modules
if [ ! -f "$modules/.package-lock.json" ] ||
  [ -n "$(find tests/deploy/package-lock.json -newer "$modules/.package-lock.json")" ]; then
  (cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error)
fi
certrelay=${CERTRELAY_BIN:-build/certrelay}
if [ ! -x "$certrelay" ]; then
  echo "check-deploy: no certrelay binary at $certrelay: the config layer is skipped" \
    "(scripts/test.sh builds it; CERTRELAY_BIN=PATH names another)"
  certrelay=""
fi
echo "check-deploy: tools: yamllint $(yamllint --version | cut -d' ' -f2)," \
  "promtool $(promtool --version 2>&1 | head -n 1 | cut -d' ' -f3), node $(node --version)," \
  "kubectl $(kubectl version --client 2>/dev/null | head -n 1 | cut -d' ' -f3) ($(since "$t"))"

# --- 2. one tree: ROOT holds deploy/ and tests/deploy/alerts_test.yml; OUT is scratch ---
# lint_render ROOT OUT NAME: yamllint, then each overlay rendered to OUT/<overlay>.yaml and
# listed as NAME<overlay>=FILE in OUT/inputs; the PrometheusRule through promtool when
# CHECK_RULES is true. Prints "check-deploy: <step>: ok|FAILED (<time>)"; returns 1 on failure.
lint_render() {
  root=$1
  out=$2
  name=$3
  status=0
  mkdir -p "$out"
  : >"$out/inputs"

  st=$(now_ms)
  if yamllint --strict -c "$repo/tests/deploy/yamllint.yml" "$root/deploy" "$root/tests/deploy/alerts_test.yml"; then
    echo "check-deploy: yamllint: ok ($(since "$st"))"
  else
    echo "check-deploy: yamllint: FAILED ($(since "$st"))"
    status=1
  fi

  st=$(now_ms)
  for overlay in sidecar edge; do
    if kubectl kustomize "$root/deploy/$overlay" >"$out/$overlay.yaml"; then
      echo "$name$overlay=$out/$overlay.yaml" >>"$out/inputs"
    else
      echo "check-deploy: render $overlay: FAILED"
      status=1
    fi
  done
  echo "check-deploy: kubectl kustomize: $(wc -l <"$out/inputs") overlay(s) rendered ($(since "$st"))"

  if ! $check_rules; then
    return "$status"
  fi
  st=$(now_ms)
  if node "$repo/tests/deploy/rules.mjs" "$out/sidecar.yaml" "$out/rules.yml" &&
    promtool check rules "$out/rules.yml"; then
    echo "check-deploy: promtool check rules: ok ($(since "$st"))"
    st=$(now_ms)
    cp "$root/tests/deploy/alerts_test.yml" "$out/alerts_test.yml"
    if (cd "$out" && promtool test rules alerts_test.yml); then
      echo "check-deploy: promtool test rules: ok ($(since "$st"))"
    else
      echo "check-deploy: promtool test rules: FAILED ($(since "$st"))"
      status=1
    fi
  else
    echo "check-deploy: promtool check rules: FAILED ($(since "$st"))"
    status=1
  fi
  return "$status"
}

# validate OUT INPUTS-FILE: tests/deploy/validate.mjs over every NAME=FILE listed.
validate() {
  st=$(now_ms)
  # shellcheck disable=SC2046 # one NAME=FILE word per line, no blanks in them
  if node "$repo/tests/deploy/validate.mjs" ${certrelay:+--certrelay "$certrelay"} \
    --metrics "$repo/proxy/metrics.cpp" --work "$1/validate" $(cat "$2"); then
    echo "check-deploy: validate.mjs: ok ($(since "$st"))"
  else
    echo "check-deploy: validate.mjs: FAILED ($(since "$st"))"
    return 1
  fi
}

failed=""
check_rules=true
if ! lint_render "$repo" "$tmp/out" ""; then
  failed="$failed deploy/"
fi
if ! validate "$tmp/out" "$tmp/out/inputs"; then
  failed="$failed deploy/"
fi
st=$(now_ms)
if /usr/bin/python3 tests/deploy/rotate_test.py >"$tmp/rotate.log" 2>&1; then
  echo "check-deploy: rotate.sh with a stand-in kubectl: ok ($(since "$st"))"
else
  echo "check-deploy: rotate.sh with a stand-in kubectl: FAILED ($(since "$st"))"
  cat "$tmp/rotate.log"
  failed="$failed rotate.sh"
fi

# --- 3. negative: every broken copy must fail, and where it should ---
# Each copy is linted and rendered on its own (promtool only when the rule or its tests
# changed); validate.mjs then checks all of them in one run, its findings named CASE/overlay.
if $negative; then
  started_negative=$(now_ms)
  /usr/bin/python3 tests/deploy/break.py --list >"$tmp/cases"
  : >"$tmp/broken-inputs"
  tab=$(printf '\t')
  while IFS=$tab read -r name pattern; do
    copy="$tmp/broken/$name"
    mkdir -p "$copy/tests/deploy"
    cp -R deploy "$copy/deploy"
    cp tests/deploy/alerts_test.yml "$copy/tests/deploy/"
    if ! /usr/bin/python3 tests/deploy/break.py "$name" "$copy"; then
      echo "check-deploy: broken copy $name: FAILED (the case does not apply to deploy/ any more)"
      failed="$failed negative:$name"
      continue
    fi
    check_rules=false
    if ! diff -r deploy/components/monitoring "$copy/deploy/components/monitoring" >/dev/null ||
      ! cmp -s tests/deploy/alerts_test.yml "$copy/tests/deploy/alerts_test.yml"; then
      check_rules=true
    fi
    lint_render "$copy" "$copy.out" "$name/" >"$copy.log" 2>&1 || true
    cat "$copy.out/inputs" >>"$tmp/broken-inputs"
  done <"$tmp/cases"
  validate "$tmp/broken-validate" "$tmp/broken-inputs" >"$tmp/broken-validate.log" 2>&1 || true
  cases=0
  while IFS=$tab read -r name pattern; do
    cases=$((cases + 1))
    log="$tmp/broken/$name.log"
    [ -f "$log" ] || continue
    grep -F "] $name/" "$tmp/broken-validate.log" >>"$log" || true
    if [ -z "$certrelay" ] && [ "$pattern" = "FAIL [config]" ]; then
      echo "check-deploy: broken copy $name: skipped (no certrelay binary for the config layer)"
    elif ! grep -qE 'FAILED|^FAIL \[' "$log"; then
      echo "check-deploy: broken copy $name: FAILED (it passed the check)"
      failed="$failed negative:$name"
    elif ! grep -qF -- "$pattern" "$log"; then
      echo "check-deploy: broken copy $name: FAILED (rejected, but not with \"$pattern\"):"
      sed 's/^/    /' "$log"
      failed="$failed negative:$name"
    else
      echo "check-deploy: broken copy $name: rejected: $(grep -F -m 1 -- "$pattern" "$log" | cut -c1-160)"
    fi
  done <"$tmp/cases"
  echo "check-deploy: negative: $cases broken copies ($(since "$started_negative"))"
fi

if [ -n "$failed" ]; then
  echo "check-deploy: FAILED:$failed ($(since "$started"))" >&2
  exit 1
fi
echo "check-deploy: OK ($(since "$started"))"
