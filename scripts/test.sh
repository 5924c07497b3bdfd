#!/bin/sh
# The test command: install what is missing, build, run every test through ctest.
#   scripts/test.sh              RelWithDebInfo build in build/
#   scripts/test.sh --sanitize   ASan+UBSan build in build-asan/
#   scripts/test.sh --tsan       ThreadSanitizer build in build-tsan/: the unit tests and the
#                                integration tests labelled "tsan" (several workers, the policy
#                                reload thread, the backend probe and idle timers), each daemon
#                                with two workers; any race report fails the run
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/install-deps.sh

build="build"
flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
tsan=false
case "${1:-}" in
  "") ;;
  --sanitize)
    build="build-asan"
    flags="-DCMAKE_BUILD_TYPE=Debug -DCERTRELAY_SANITIZE=ON"
    # Leaks are reported at exit by the unit tests; the daemon under test exits normally.
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    ;;
  --tsan)
    build="build-tsan"
    flags="-DCMAKE_BUILD_TYPE=Debug -DCERTRELAY_TSAN=ON"
    tsan=true
    ;;
  *)
    echo "usage: $0 [--sanitize | --tsan]" >&2
    exit 2
    ;;
esac
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCERTRELAY_WERROR=ON $flags
cmake --build "$build"
cd "$build"

if ! $tsan; then
  ctest --output-on-failure --timeout 180 -j "$(nproc)"
  exit 0
fi

# Every process (unit test, daemon under test) writes its reports to reports/tsan.<pid>: a race
# in a daemon that the test around it does not notice (e.g. at exit) still fails the run.
reports="$root/$build/tsan-reports"
rm -rf "$reports"
mkdir -p "$reports"
export TSAN_OPTIONS="log_path=$reports/tsan second_deadlock_stack=1 suppressions=$root/tests/tsan.supp"
# The harness's default config gets two workers (tests/integration/harness.py).
export CERTRELAY_TEST_WORKERS=2
status=0
ctest --output-on-failure --timeout 300 -j "$(nproc)" -LE integration || status=1
ctest --output-on-failure --timeout 300 -j "$(nproc)" -L tsan || status=1
for report in "$reports"/tsan.*; do
  [ -f "$report" ] || continue
  echo "=== ThreadSanitizer: $report"
  cat "$report"
  status=1
done
exit $status
