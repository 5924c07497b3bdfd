#!/bin/sh
# Builds the libFuzzer targets (tests/fuzz) with clang in build-fuzz/ and runs each one for a
# while, starting from a scratch copy of its seed corpus (the committed corpus is never written).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGETs from the list below (default: all, one after the
# other). Prints per target the executions, the wall and CPU seconds. Exits 1 when any target
# found something (crash, oracle failure, sanitizer report, leak, timeout, out of memory); the
# input that triggered it is kept under build-fuzz/artifacts/ and its path printed, the full log
# under build-fuzz/logs/. Reproduce with: build-fuzz/tests/fuzz/<target>_fuzz <crash file>.
# Environment: CXX_FUZZ (default clang++), BUILD_FUZZ (default <repo>/build-fuzz).
set -eu

ALL_TARGETS="line_reader_command reply_parser data_canonicalizer address_policy relay_table dialogue proxy_header"

usage() {
  echo "usage: $0 [seconds] [target...]" >&2
  echo "targets: $ALL_TARGETS" >&2
  exit 2
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_FUZZ:-$ROOT/build-fuzz}
CXX_FUZZ=${CXX_FUZZ:-clang++}

seconds=60
if [ $# -gt 0 ]; then
  seconds=$1
  shift
fi
case $seconds in
  '' | *[!0-9]*) usage ;;
esac
[ "$seconds" -gt 0 ] || usage

targets=$ALL_TARGETS
if [ $# -gt 0 ]; then
  targets="$*"
fi
for t in $targets; do
  case " $ALL_TARGETS " in
    *" $t "*) ;;
    *) echo "unknown target: $t" >&2 && usage ;;
  esac
done

if ! command -v "$CXX_FUZZ" >/dev/null 2>&1; then
  echo "$CXX_FUZZ not found (scripts/install-deps.sh installs clang and libfuzzer-14-dev)" >&2
  exit 2
fi

mkdir -p "$BUILD/logs" "$BUILD/artifacts"
generator=""
if command -v ninja >/dev/null 2>&1; then
  generator="-GNinja"
fi
echo "configuring $BUILD with $CXX_FUZZ"
# A build directory configured with another generator cannot be reused: start it afresh.
if [ -n "$generator" ] && [ -f "$BUILD/CMakeCache.txt" ] &&
  ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD/CMakeCache.txt"; then
  rm -f "$BUILD/CMakeCache.txt"
fi
# shellcheck disable=SC2086 # $generator is empty or one word
if ! cmake -S "$ROOT" -B "$BUILD" $generator -DCMAKE_CXX_COMPILER="$CXX_FUZZ" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTRELAY_FUZZ=ON -DCERTRELAY_TESTS=OFF \
  >"$BUILD/logs/configure.log" 2>&1; then
  cat "$BUILD/logs/configure.log" >&2
  exit 2
fi
build_targets=""
for t in $targets; do
  build_targets="$build_targets ${t}_fuzz"
done
echo "building:$build_targets"
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
# shellcheck disable=SC2086 # one word per target
if ! cmake --build "$BUILD" --parallel "$jobs" --target $build_targets \
  >"$BUILD/logs/build.log" 2>&1; then
  tail -n 40 "$BUILD/logs/build.log" >&2
  exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/certrelay-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT INT TERM

# Sets cpu_now to the CPU seconds used so far by this shell's finished children (the POSIX
# `times` builtin, second line: "<user> <system>" as e.g. "1m2.5s 0m0.25s"). Call it directly,
# never in $(...): a subshell would report its own children instead.
cpu_now=0
children_cpu() {
  times >"$scratch/times"
  cpu_now=$(awk 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) {
      n = split($i, part, "m")
      s = part[n]
      sub("s", "", s)
      t += (n > 1 ? part[1] * 60 : 0) + s
    }
    printf "%.1f", t
  }' "$scratch/times")
}

echo "running each target for $seconds s"
printf '%-20s %12s %8s %8s %s\n' target execs wall_s cpu_s result
failed=0
for t in $targets; do
  corpus="$scratch/$t"
  mkdir -p "$corpus"
  cp "$ROOT/tests/fuzz/corpus/$t/"* "$corpus/"
  log="$BUILD/logs/$t.log"
  dict="$ROOT/tests/fuzz/$t.dict"
  set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BUILD/artifacts/$t-"
  if [ -f "$dict" ]; then
    set -- "$@" -dict="$dict"
  fi

  children_cpu
  cpu_before=$cpu_now
  rc=0
  "$BUILD/tests/fuzz/${t}_fuzz" "$@" "$corpus" >"$log" 2>&1 || rc=$?
  children_cpu
  cpu_after=$cpu_now

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  wall=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  cpu=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" -eq 0 ]; then
    result="ok (corpus $(find "$corpus" -type f | wc -l | tr -d ' ') files)"
  else
    result="FINDING (exit $rc), log $log"
    failed=1
  fi
  printf '%-20s %12s %8s %8s %s\n' "$t" "${execs:-?}" "${wall:-?}" "$cpu" "$result"
  if [ "$rc" -ne 0 ]; then
    # The oracle or sanitizer line, then where libFuzzer saved the input.
    grep -E 'invariant broken|ERROR: |SUMMARY: |runtime error:' "$log" | head -n 5 | sed 's/^/    /'
    sed -n 's/.*Test unit written to \(.*\)$/    crash file: \1/p' "$log"
  fi
done
exit "$failed"
