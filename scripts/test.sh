#!/bin/sh
# The test command: install what is missing, build, run every test through ctest.
#   scripts/test.sh              RelWithDebInfo build in build/
#   scripts/test.sh --sanitize   ASan+UBSan build in build-asan/
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh

build=build
flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  flags="-DCMAKE_BUILD_TYPE=Debug -DCERTRELAY_SANITIZE=ON"
  # Leaks are reported at exit by the unit tests; the daemon under test exits normally.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCERTRELAY_WERROR=ON $flags
cmake --build "$build"
cd "$build"
ctest --output-on-failure --timeout 180 -j "$(nproc)"
