#!/bin/sh
# The demo: install what is missing, build (Release), then on loopback only: make a throwaway
# CA, a server certificate and two client certificates (one listed, one not), start a backend
# (Postfix's smtp-sink), start certrelay in front of it, and run real client sessions.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
scripts/install-deps.sh >&2
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DCERTRELAY_TESTS=OFF >/dev/null
cmake --build build-release >/dev/null

work=$(mktemp -d /tmp/certrelay-demo.XXXXXX)
sink_pid=""
proxy_pid=""
cleanup() {
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; fi
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
chmod 755 "$work"
cd "$work"

# --- throwaway PKI (EC P-256) ---
quiet() { "$@" >/dev/null 2>&1; }
quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -keyout ca.key -out ca.crt -subj "/CN=certrelay demo CA"
make_cert() {  # name CN extension
  quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
  printf '%s\n' "$3" > "$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile "$1.ext" -out "$1.crt"
}
make_cert server mx.demo.example "subjectAltName=DNS:mx.demo.example,IP:127.0.0.1"
make_cert listed listed.client.example "extendedKeyUsage=clientAuth"
make_cert unlisted unlisted.client.example "extendedKeyUsage=clientAuth"
fp=$(openssl x509 -in listed.crt -noout -fingerprint -sha256 | cut -d= -f2)
printf '# relay_clientcerts: fingerprint, then the identity\n%s demo-relay-client\n' "$fp" \
  > relay_clientcerts

# --- backend: smtp-sink (from the postfix package), saving each message ---
sink_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p spool && chmod 777 spool
user_flag=""
[ "$(id -u)" -eq 0 ] && user_flag="-u nobody"
# shellcheck disable=SC2086
/usr/sbin/smtp-sink $user_flag -d "$work/spool/%M." "127.0.0.1:$sink_port" 64 &
sink_pid=$!

cat > certrelay.toml <<TOML
hostname = "mx.demo.example"
workers = 1
[[listener]]
name = "mx"
address = "127.0.0.1:0"
[backend]
address = "127.0.0.1:$sink_port"
[tls]
cert = "server.crt"
key = "server.key"
client_ca = "ca.crt"
[policy]
fingerprints = "relay_clientcerts"
local_domains = ["local.example"]
TOML

"$top/build-release/certrelay" --config certrelay.toml > certrelay.log 2>&1 &
proxy_pid=$!
port=$(/usr/bin/python3 "$top/scripts/wait_ready.py" certrelay.log 15)

/usr/bin/python3 "$top/scripts/demo_client.py" 127.0.0.1 "$port" "$work"

echo
echo "== certrelay log (selected lines)"
grep -E "TLS connection established|relay identity|not listed|NOQUEUE|accepted by backend" \
  certrelay.log | sed 's/^[^ ]* certrelay\[[0-9]*\]: /  /'
echo
echo "== what the backend received for the relayed message (smtp-sink capture)"
# smtp-sink writes its own X- lines and Received header first; certrelay's Received header,
# with the certificate's fingerprint and identity, comes next.
relayed=$(grep -l "X-Rcpt-Args: <bob@remote.example>" spool/* 2>/dev/null | head -n 1)
[ -n "$relayed" ] && sed -n '1,/^$/p' "$relayed" | sed 's/^/  /'
