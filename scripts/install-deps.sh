#!/bin/sh
# Installs what certrelay needs to build, test and run its demo, from Debian 12 packages only
# (clang-format, clang-tidy and shellcheck: the checks in .ci/run; prometheus: promtool and a
# private server for the metrics tests; dnsmasq-base: the private resolver of the reverse-DNS
# test).
# Does nothing (and needs no network) when everything is already there.
set -eu

PACKAGES="g++ cmake ninja-build pkg-config make libuv1-dev libssl-dev libmimalloc-dev
libtomlplusplus-dev doctest-dev libbenchmark-dev openssl python3 python3-cryptography postfix swaks procps
clang libfuzzer-14-dev clang-format clang-tidy shellcheck prometheus-cpp-dev libhttp-parser-dev
nlohmann-json3-dev prometheus libsasl2-modules libidn12 libc-ares-dev dnsmasq-base"

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing:$missing"
# Postfix is needed for smtp-sink and for the tests' private instances; "No configuration"
# keeps the package from setting up (or starting) a system MTA.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
