#!/bin/bash
# Container test (the `container` stage of .ci/run): builds the image from the Dockerfile and
# runs it as Kubernetes' "restricted" profile would.
#
#   1. deploy/systemd/verify.sh (systemd-analyze verify of the unit; quick)
#   2. installs podman, buildah, debootstrap, runc, ... when missing (apt; CI runs as root)
#   3. builds a Debian 12 base image, localhost/debian:bookworm, with debootstrap from the
#      mirror apt already uses (kept: skipped when it exists)
#   4. builds the Dockerfile with buildah (--isolation chroot, cached layers)
#   5. checks the image: size (at most CERTRELAY_IMAGE_MAX_MB, 40 by default), a non-root
#      user, the OCI labels; and shows that the user check rejects a root-running variant of
#      the same image (retagged with `buildah config --user 0`, no second build)
#   6. runs it --read-only --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges
#      --network host, config, certificates and the fingerprint table mounted read-only as
#      sibling directories, in front of a Python backend on loopback (drain_test.py): relays one
#      message from a trusted client (STARTTLS + client certificate), then SIGTERM while a
#      second message is in DATA: the client must get 250 and the container must exit 0.
#
# Usage:
#   tests/container/run.sh                       everything above
#   tests/container/run.sh --check-user IMAGE    only the user check on IMAGE (exit 1: root)
# Environment:
#   CERTRELAY_IMAGE=REF      test this image instead of building one (steps 3-4 skipped)
#   CERTRELAY_CONTEXT=worktree  build the working tree instead of the committed HEAD
#   CERTRELAY_IMAGE_MAX_MB   size bound (default 40: the scratch-style image is about 12 MB;
#                            a Debian base layer, ~75 MB and more, must never slip in)
#
# Exit 0 with "SKIP: ..." only when this machine cannot run a container at all (no namespaces,
# cannot create them, no cgroups); every other failure, a failed build or a podman that does
# not work included, exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
here=$top/tests/container

export CONTAINERS_CONF=$here/containers.conf
BASE_IMAGE=localhost/debian:bookworm
IMAGE=${CERTRELAY_IMAGE:-localhost/certrelay:test}
ROOT_VARIANT=localhost/certrelay:test-root-variant
MAX_MB=${CERTRELAY_IMAGE_MAX_MB:-40}
PYTHON=/usr/bin/python3
PACKAGES="podman buildah debootstrap runc catatonit skopeo fuse-overlayfs uidmap slirp4netns
containernetworking-plugins"

# --- helpers -------------------------------------------------------------------------------
now() { echo "${EPOCHREALTIME/[.,]/}"; }  # microseconds

current=""
current_start=0
step() {
  current=$1
  shift
  echo "--- $current"
  current_start=$(now)
  "$@"
  report_step
  current=""
}

report_step() {
  local us=$(($(now) - current_start))
  printf 'step %s: %d.%01d s\n' "$current" $((us / 1000000)) $((us % 1000000 / 100000))
}

skip() {
  echo "SKIP: $*"
  exit 0
}

# The image's configured user (Config.User: "uid[:gid]" or a name; empty means root).
image_user() {
  podman image inspect --format '{{.Config.User}}' "$1"
}

# IMAGE: fails unless the image runs as a numeric, non-zero uid. A name is refused too, as
# Kubernetes' runAsNonRoot refuses it: nothing outside the image can tell which uid it maps to.
check_user() {
  local user uid
  user=$(image_user "$1") || return 1
  uid=${user%%:*}
  case "$uid" in
    "" | *[!0-9]*) uid=0 ;;
  esac
  if [ "$((10#$uid))" -eq 0 ]; then
    echo "image $1 would run as root or an unverifiable user (User=\"$user\"): refused" >&2
    return 1
  fi
  echo "image $1: User=$user"
}

if [ "${1:-}" = "--check-user" ]; then
  [ $# -eq 2 ] || { echo "usage: $0 --check-user IMAGE" >&2; exit 2; }
  check_user "$2"
  exit
fi

work=$(mktemp -d /tmp/certrelay-container.XXXXXX)
container=certrelay-test-$$
ctr=""       # the buildah working container of root_variant_rejected
variants=()  # the images it committed
cleanup() {
  local status=$?
  if [ -n "$current" ]; then
    report_step
    [ "$status" -ne 0 ] && echo "step $current FAILED (exit $status)" >&2
  fi
  podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
  [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
  [ "${#variants[@]}" -eq 0 ] || podman rmi "${variants[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- steps ---------------------------------------------------------------------------------
install_packages() {
  local missing="" p
  for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing="$missing $p"
    fi
  done
  if [ -z "$missing" ]; then
    echo "all present"
    return 0
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "installing:$missing"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $missing >/dev/null
}

preflight() {
  # The only reason to skip: this kernel (or the sandbox CI runs in) cannot give a container
  # its namespaces or cgroups. Everything else that stops podman is a failure.
  local ns out
  for ns in mnt pid uts ipc net; do
    [ -e "/proc/self/ns/$ns" ] || skip "the kernel has no $ns namespaces"
  done
  if [ "$(id -u)" -eq 0 ] && ! out=$(unshare --mount --pid --uts --ipc --net --fork true 2>&1); then
    skip "cannot create the namespaces a container needs (unshare: $out)"
  fi
  if [ -z "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]; then
    skip "no cgroup filesystem at /sys/fs/cgroup"
  fi
  out=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}')
  echo "namespaces and cgroups available; runtime and storage: $out"
}

mirror() {  # the first URIs: of the Debian sources apt uses
  local uri
  uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null |
    grep -v security | head -n 1)
  echo "${uri:-http://deb.debian.org/debian}"
}

base_image() {
  if podman image exists "$BASE_IMAGE"; then
    echo "$BASE_IMAGE exists (cached)"
    return 0
  fi
  local rootfs=$work/rootfs m
  m=$(mirror)
  echo "debootstrap bookworm from $m"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$m" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; return 1; }
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" --numeric-owner -c . | podman import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  podman image inspect --format '{{.Id}} {{.Size}}' "$BASE_IMAGE"
}

smoke() {  # IMAGE ARGS...: one container, before anything depends on it
  podman run --rm --network host "$@" >/dev/null
  echo "podman runs containers"
}

build_image() {
  # The build context: the committed tree (git archive HEAD), so the image is what the revision
  # label says, whatever else is half-edited in the working tree; CERTRELAY_CONTEXT=worktree
  # builds the working tree as it is (.dockerignore applies either way).
  local revision context=$work/context from="HEAD (git archive)" started
  started=$(date +%s)
  if [ "${CERTRELAY_CONTEXT:-head}" = worktree ] || ! git rev-parse -q --verify HEAD >/dev/null 2>&1; then
    context=$top
    from="the working tree"
    revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD 2>/dev/null || revision="$revision-dirty"
  else
    mkdir -p "$context"
    git archive HEAD | tar -x -C "$context"
    revision=$(git rev-parse --short=12 HEAD)
  fi
  buildah bud --isolation chroot --layers --force-rm \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg REVISION="$revision" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$IMAGE" -f "$context/Dockerfile" "$context" >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    return 1
  }
  echo "built $IMAGE from $from (revision $revision)"
  # Earlier builds' images, untagged now (a runner keeps its storage): older than this build,
  # so the layers it made stay as the next build's cache. Nothing else is touched.
  # A prune removes leaves only; their parents are leaves next round.
  local title _
  for _ in 1 2 3 4 5 6 7 8; do
    local removed=""
    for title in certrelay certrelay-build; do
      removed+=$(podman image prune -f --filter "label=org.opencontainers.image.title=$title" \
        --filter "until=$started")
    done
    [ -n "$removed" ] || break
  done
  echo "stale images of earlier builds pruned"
}

inspect_image() {
  local bytes mb
  bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  mb=$(((bytes + 1048575) / 1048576))
  echo "image size: $bytes bytes ($mb MB; bound $MAX_MB MB)"
  if [ "$mb" -gt "$MAX_MB" ]; then
    echo "image $IMAGE is $mb MB, over the $MAX_MB MB bound" >&2
    return 1
  fi
  check_user "$IMAGE"
  local label
  for label in title description version revision created source licenses; do
    if [ -z "$(podman image inspect --format "{{index .Labels \"org.opencontainers.image.$label\"}}" "$IMAGE")" ]; then
      echo "image $IMAGE has no org.opencontainers.image.$label label" >&2
      return 1
    fi
  done
  podman image inspect --format 'entrypoint={{.Config.Entrypoint}} cmd={{.Config.Cmd}} ports={{.Config.ExposedPorts}}' "$IMAGE"
  # No shell in the image.
  if podman run --rm --network host --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; then
    echo "image $IMAGE has a shell" >&2
    return 1
  fi
  podman run --rm --network host --read-only --cap-drop ALL "$IMAGE" --version
}

root_variant_rejected() {
  # The same image with its user changed (a metadata-only commit, no rebuild): the check above
  # must refuse each of these, or it would let a root-running image through.
  local user i=0 tag
  ctr=$(buildah from -q "$IMAGE")
  for user in 0 root 0:65532 nonroot ""; do
    i=$((i + 1))
    tag=$ROOT_VARIANT-$i
    buildah config --user "$user" "$ctr"
    buildah commit -q "$ctr" "$tag" >/dev/null
    variants+=("$tag")
    if check_user "$tag" 2>/dev/null; then
      echo "the user check accepted an image with User=\"$user\"" >&2
      return 1
    fi
    echo "User=\"$user\": rejected, as it must be"
  done
}

quiet() { "$@" >/dev/null 2>&1; }

issue() {  # DIR NAME CN EXTENSION: an EC P-256 key and a certificate signed by the test CA
  quiet openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1/$2.key" -out "$work/$2.csr" -subj "/CN=$3"
  printf 'basicConstraints=CA:FALSE\n%s\n' "$4" >"$work/$2.ext"
  quiet openssl x509 -req -in "$work/$2.csr" -CA "$work/tls/ca.crt" -CAkey "$work/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 1 -extfile "$work/$2.ext" -out "$1/$2.crt"
}

make_pki() {
  local d=$work/tls p=$work/policy
  mkdir -p "$d" "$p" "$work/config" "$work/client"
  quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$work/ca.key" -out "$d/ca.crt" -subj "/CN=certrelay container test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  issue "$d" server mx.container.example "subjectAltName=DNS:mx.container.example,IP:127.0.0.1"
  issue "$work/client" trusted trusted.client.example "extendedKeyUsage=clientAuth"
  local fp
  fp=$(openssl x509 -in "$work/client/trusted.crt" -noout -fingerprint -sha256 | cut -d= -f2)
  printf '# relay_clientcerts: fingerprint, then the identity\n%s container-client\n' "$fp" \
    >"$p/relay_clientcerts"
  # The container runs as 65532: the mounted files must be readable by it (a throwaway key).
  chmod 0755 "$work" "$d" "$p" "$work/config"
  chmod 0644 "$d"/* "$p"/*
  echo "CA, server and trusted client certificates; fingerprint table with 1 entry"
}

run_container() {
  "$PYTHON" "$here/drain_test.py" --image "$IMAGE" --name "$container" --work "$work" \
    --deadline 90
}

# --- main ----------------------------------------------------------------------------------
total=$(now)
step systemd-unit "$top/deploy/systemd/verify.sh"
step packages install_packages
step preflight preflight
if [ -z "${CERTRELAY_IMAGE:-}" ]; then
  step base-image base_image
  step smoke smoke "$BASE_IMAGE" /bin/true
  step build build_image
else
  step smoke smoke "$IMAGE" --version
fi
step inspect inspect_image
step root-variant root_variant_rejected
step pki make_pki
step run run_container
echo "container test passed: $((($(now) - total) / 1000000)) s"
