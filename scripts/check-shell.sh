#!/bin/sh
# CI: shellcheck over every shell script of the tree: scripts/*.sh, .ci/run, and any other file
# (build*/ excluded) whose first line is a sh/bash/dash shebang. Any finding fails.
set -eu
cd "$(dirname "$0")/.."

list=$(mktemp)
trap 'rm -f "$list"' EXIT
{
  for f in scripts/*.sh .ci/run; do
    [ -f "$f" ] && echo "$f"
  done
  find . \( -path './build*' -o -path ./.git -o -path ./.cache \) -prune -o -type f -print |
    sed 's|^\./||' |
    while IFS= read -r f; do
      if head -n 1 "$f" 2>/dev/null | grep -Eq '^#! *(/usr)?/bin/(env +)?(sh|bash|dash)( |$)'; then
        echo "$f"
      fi
    done
} | sort -u >"$list"

echo "check-shell: $(wc -l <"$list") script(s): $(tr '\n' ' ' <"$list")"
# One file name per line; none of ours contains a newline.
tr '\n' '\0' <"$list" | xargs -0 shellcheck --external-sources --severity=style
