#!/bin/bash
# Server-side instructions per TLS 1.3 handshake: certrelay's engine (tls_bench.cpp, in
# certrelay-micro) against stock OpenSSL (openssl-reference-bench), both counted with callgrind.
# Builds nothing.
#
#   bench/micro/handshake_floor.sh BUILD_DIR [--handshakes N] [--json FILE]
#                                  [--certrelay-toggle PATTERN]
#
# BUILD_DIR holds bench/micro/certrelay-micro and bench/micro/openssl-reference-bench
# (cmake --build BUILD_DIR --target certrelay-micro openssl-reference-bench). N defaults to 41.
#
# How a figure is made: every case runs twice under callgrind, once with N handshakes and once
# with 1, in the same process set-up; the figure is (count(N) - count(1)) / (N - 1), the cost of
# one handshake once the process is warm, the first handshake excluded on both sides.
# - certrelay: tls_bench's BM_TlsHandshakeSeries/resumed:{0,1}/handshakes:{N,1}, one iteration
#   each (--benchmark_min_time=1e-9): N full handshakes on one Context (1 stateful ticket, no
#   client_ca, as certrelay's defaults), or one full and N resumed ones. Counted with
#   --toggle-collect='*certrelayServerSide*', the one function of tls_bench.cpp inside which
#   every timed server-side call runs (Engine construction, feed/pump/take, shutdown,
#   destruction). Not 'certrelay::tls::Engine::*' (bench/LIMITS.md's): Engine's methods call
#   each other and callgrind flips collection at every matching entry, so with
#   Engine::handshake() out of line (RelWithDebInfo) SSL_do_handshake is not counted at all
#   (about 0.09M per handshake). --certrelay-toggle PATTERN picks another one anyway.
#   tls_bench has no stateless-ticket variant: those two keys are absent from its JSON. N is
#   11 or 41 (the series tls_bench registers).
# - reference: openssl-reference-bench, --toggle-collect='referenceServer*', one SSL_CTX per
#   run, the same series.
#
# Prints a table; --json FILE writes the same figures (keys read by bench/compare: keep them).
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too

usage() {
  echo "usage: $0 BUILD_DIR [--handshakes N] [--json FILE] [--certrelay-toggle PATTERN]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
build=$1
shift
handshakes=41
json=""
certrelay_toggle='*certrelayServerSide*'
while [ $# -gt 0 ]; do
  case $1 in
    --handshakes)
      [ $# -ge 2 ] || usage
      handshakes=$2
      shift 2
      ;;
    --json)
      [ $# -ge 2 ] || usage
      json=$2
      shift 2
      ;;
    --certrelay-toggle)
      [ $# -ge 2 ] || usage
      certrelay_toggle=$2
      shift 2
      ;;
    *) usage ;;
  esac
done
case $handshakes in
  11 | 41) ;;
  *)
    echo "$0: --handshakes is 11 or 41 (tls_bench's BM_TlsHandshakeSeries)" >&2
    exit 2
    ;;
esac

micro=$build/bench/micro/certrelay-micro
reference=$build/bench/micro/openssl-reference-bench
for bin in "$micro" "$reference"; do
  if [ ! -x "$bin" ]; then
    echo "$0: $bin not built (cmake --build $build --target certrelay-micro" \
      "openssl-reference-bench)" >&2
    exit 1
  fi
done
command -v valgrind >/dev/null || {
  echo "$0: valgrind not found" >&2
  exit 1
}

tmp=$(mktemp -d /tmp/handshake-floor.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Instructions collected by one callgrind run: callgrind ARGS... -- the `totals:` line.
collected() {
  local out=$tmp/callgrind.out
  rm -f "$out"
  if ! valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$tmp/stdout" 2>"$tmp/stderr"; then
    echo "$0: failed: $*" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
  awk '/^totals:/ { print $2 }' "$out"
}

# certrelay: one BM_TlsHandshakeSeries case (resumed 0/1, handshakes), one iteration; checks
# that it ran once and did not fail.
certrelay_run() {
  local filter="^BM_TlsHandshakeSeries/resumed:$1/handshakes:$2/" total
  total=$(collected --toggle-collect="$certrelay_toggle" "$micro" \
    --benchmark_filter="$filter" --benchmark_min_time=1e-9 \
    --benchmark_out="$tmp/bench.json" --benchmark_out_format=json)
  if [ "$(grep -c '"iterations": 1,' "$tmp/bench.json" || true)" -ne 1 ] ||
    grep -q '"error_occurred": true' "$tmp/bench.json"; then
    echo "$0: tls_bench '$filter' did not run once cleanly" >&2
    cat "$tmp/bench.json" >&2
    exit 1
  fi
  echo "$total"
}

# One handshake's figure from the N and the 1 runs.
per_handshake() {
  echo $((($1 - $2) / (handshakes - 1)))
}

certrelay_case() {
  echo "certrelay: resumed:$1 ..." >&2
  local many one
  many=$(certrelay_run "$1" "$handshakes")
  one=$(certrelay_run "$1" 1)
  per_handshake "$many" "$one"
}

reference_case() {
  echo "reference: $* ..." >&2
  local many one
  many=$(collected --toggle-collect='referenceServer*' "$reference" "$@" \
    --handshakes "$handshakes")
  one=$(collected --toggle-collect='referenceServer*' "$reference" "$@" --handshakes 1)
  per_handshake "$many" "$one"
}

ref_stateful=$(reference_case --tickets stateful1)
ref_stateless=$(reference_case --tickets stateless1)
ref_default=$(reference_case --tickets default)
ref_resumed=$(reference_case --tickets stateful1 --resumed)

cr_full=$(certrelay_case 0)
cr_resumed=$(certrelay_case 1)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
millions() { awk -v a="$1" 'BEGIN { printf "%.2fM", a / 1e6 }'; }
ratio_full=$(ratio "$cr_full" "$ref_stateful")
ratio_resumed=$(ratio "$cr_resumed" "$ref_resumed")

echo
echo "Server-side instructions per handshake (callgrind, ($handshakes - 1) warm handshakes)"
printf '%-40s %12s %12s %7s\n' "" certrelay reference ratio
printf '%-40s %12s %12s %7s\n' "full, 1 stateful ticket" "$(millions "$cr_full")" \
  "$(millions "$ref_stateful")" "$ratio_full"
printf '%-40s %12s %12s %7s\n' "full, 1 stateless ticket" "-" "$(millions "$ref_stateless")" "-"
printf '%-40s %12s %12s %7s\n' "full, 2 stateless (OpenSSL default)" "-" \
  "$(millions "$ref_default")" "-"
printf '%-40s %12s %12s %7s\n' "resumed, 1 stateful ticket" "$(millions "$cr_resumed")" \
  "$(millions "$ref_resumed")" "$ratio_resumed"
echo "certrelay: tls_bench has no stateless-ticket case (its tickets are stateful)."

if [ -n "$json" ]; then
  cat >"$json" <<EOF
{
  "handshakes": $handshakes,
  "method": "callgrind Ir per server-side handshake, (count(N) - count(1)) / (N - 1)",
  "certrelay_toggle": "$certrelay_toggle",
  "openssl_reference_instructions": {
    "full_stateful_1": $ref_stateful,
    "full_stateless_1": $ref_stateless,
    "full_default": $ref_default,
    "resumed": $ref_resumed
  },
  "certrelay_instructions": {
    "full_stateful_1": $cr_full,
    "resumed": $cr_resumed
  },
  "ratio_full": $ratio_full,
  "ratio_resumed": $ratio_resumed
}
EOF
  echo "wrote $json"
fi
