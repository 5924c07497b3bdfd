#!/bin/sh
# Session-ticket key rotation for certrelay, run by the CronJob (rotate) and the init Job (init)
# of deploy/components/ticket-keys. Needs sh, kubectl, head, base64, tr, wc.
#   rotate.sh rotate   previous <- current <- next <- 80 new random bytes
#   rotate.sh init     fill only the keys that are missing or not 80 bytes; else change nothing
# SECRET names the Secret (keys current.key, next.key, previous.key) in the pod's namespace.
# The update is one merge patch carrying the resourceVersion that was read, so the API server
# refuses it (409) if anything changed the Secret in between: no rotation is ever half applied
# or lost. The keys travel in a file on the pod's memory-backed /tmp, never on a command line.
set -eu

mode=${1:-rotate}
secret=${SECRET:?SECRET must name the ticket-key Secret}
case $mode in
  rotate | init) ;;
  *)
    echo "usage: $0 rotate|init" >&2
    exit 2
    ;;
esac

new_key() {
  head -c 80 /dev/urandom | base64 | tr -d '\n'
}

valid() {
  [ -n "$1" ] && [ "$(printf '%s' "$1" | base64 -d 2>/dev/null | wc -c)" -eq 80 ]
}

# One read: the resourceVersion and the three keys of the same generation ('|' is not base64).
snapshot=$(kubectl get secret "$secret" \
  -o 'jsonpath={.metadata.resourceVersion}|{.data.current\.key}|{.data.next\.key}|{.data.previous\.key}')
IFS='|' read -r version current next previous <<SNAPSHOT
$snapshot
SNAPSHOT

if [ "$mode" = init ]; then
  if valid "$current" && valid "$next" && valid "$previous"; then
    echo "ticket keys: $secret already holds three 80-byte keys; nothing to do"
    exit 0
  fi
  valid "$current" || current=$(new_key)
  valid "$next" || next=$(new_key)
  valid "$previous" || previous=$(new_key)
else
  # A key that is missing or malformed is replaced by a new one rather than carried along.
  valid "$current" || current=$(new_key)
  valid "$next" || next=$(new_key)
  previous=$current
  current=$next
  next=$(new_key)
fi

patch=${TMPDIR:-/tmp}/ticket-keys-patch.json
umask 077
trap 'rm -f "$patch"' EXIT
printf '{"metadata":{"resourceVersion":"%s"},"data":{"current.key":"%s","next.key":"%s","previous.key":"%s"}}\n' \
  "$version" "$current" "$next" "$previous" >"$patch"
kubectl patch secret "$secret" --type=merge --patch-file="$patch"
echo "ticket keys: $secret: $mode done (resourceVersion was $version)"
