#!/bin/sh
# CI: every C++ file of the tree (build*/ directories excluded) must match the committed
# .clang-format. Prints the offending places and exits non-zero when one does not.
#   scripts/check-format.sh          check
#   scripts/check-format.sh --fix    reformat the offending files in place
set -eu
cd "$(dirname "$0")/.."

mode="--dry-run --Werror"
if [ "${1:-}" = "--fix" ]; then
  mode="-i"
fi

# -print0/-0: no file name is split, whatever it contains.
# shellcheck disable=SC2086
if ! find . \( -path './build*' -o -path ./.git -o -path ./.cache \) -prune -o -type f \
  \( -name '*.cpp' -o -name '*.cc' -o -name '*.h' -o -name '*.hpp' \) -print0 |
  xargs -0 -r clang-format --style=file $mode; then
  echo "check-format: the files above differ from .clang-format (scripts/check-format.sh --fix)" >&2
  exit 1
fi
