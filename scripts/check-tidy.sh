#!/bin/sh
# CI: clang-tidy (the committed .clang-tidy, every warning an error) over every C++ source of the
# tree, in parallel. Exits non-zero on any finding and prints each one once at the end.
#
#   scripts/check-tidy.sh [BUILD_DIR]
#
# BUILD_DIR (default build-tidy/) is only configured, never built: clang-tidy needs its
# compile_commands.json. The libFuzzer sources (tests/fuzz) compile only in the clang
# CERTRELAY_FUZZ configuration, so that one is configured as well, in BUILD_DIR-fuzz/.
# Every .cpp file outside build*/ must be in one of the two databases: a source that is not is
# an error here, not silently skipped. Headers are checked through the sources that include them.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-build-tidy}
jobs=$(nproc)
log=$(mktemp)
trap 'rm -f "$log" "$log.files" "$log.db"' EXIT

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null
fuzz=""
if [ -f tests/fuzz/CMakeLists.txt ]; then
  fuzz="$build-fuzz"
  CXX=clang++ cmake -S . -B "$fuzz" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCERTRELAY_FUZZ=ON -DCERTRELAY_TESTS=OFF >/dev/null
fi

# Every source in some database (paths there are absolute).
find . \( -path './build*' -o -path ./.git -o -path ./.cache \) -prune -o -type f \
  \( -name '*.cpp' -o -name '*.cc' \) -print | sed "s|^\.|$root|" | sort >"$log.files"
for db in "$build" ${fuzz:+"$fuzz"}; do
  /usr/bin/python3 -c 'import json,sys; print("\n".join(e["file"] for e in json.load(open(sys.argv[1]))))' \
    "$db/compile_commands.json"
done | sort -u >"$log.db"
missing=$(comm -23 "$log.files" "$log.db")
if [ -n "$missing" ]; then
  echo "check-tidy: not in any compile_commands.json (add them to a CMake target):" >&2
  echo "$missing" >&2
  exit 1
fi

# Headers of the project: every top-level directory but build*/ and hidden ones.
dirs=$(find . -mindepth 1 -maxdepth 1 -type d ! -name 'build*' ! -name '.*' -printf '%f|' |
  sed 's/|$//')
filter="^$root/($dirs)/"

status=0
run-clang-tidy -quiet -j "$jobs" -p "$build" -header-filter "$filter" >"$log" 2>&1 || status=1
if [ -n "$fuzz" ]; then
  # Only the fuzz targets: the libraries were checked with the first database.
  run-clang-tidy -quiet -j "$jobs" -p "$fuzz" -header-filter "$filter" \
    "^$root/tests/fuzz/" >>"$log" 2>&1 || status=1
fi

# One line per finding (a header's finding is reported once per source including it).
findings=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^/[^ ]+:[0-9]+:[0-9]+: (warning|error):' |
  sort -u || true)
if [ -n "$findings" ]; then
  echo "$findings"
  echo "check-tidy: $(echo "$findings" | wc -l) finding(s)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  # clang-tidy failed without a finding in the usual form (e.g. a crash): show everything.
  cat "$log"
  echo "check-tidy: clang-tidy failed" >&2
  exit 1
fi
echo "check-tidy: clean"
