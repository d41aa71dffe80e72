#!/usr/bin/env bash
# Re-records tests/captures/tls/*.cap: openssl s_client and curl against openssl s_server
# (self-signed certificate made here, for api.example.test and grpc.internal) on loopback,
# through record.py. TLS 1.3 and 1.2, with SNI and ALPN, plus a version mismatch that the
# server refuses with a protocol_version alert.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "$0")/../lib.sh"

port=$((20000 + RANDOM % 20000)) relay=$((port + 1))
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=api.example.test \
  -addext subjectAltName=DNS:api.example.test,DNS:grpc.internal 2>/dev/null

server() { # extra s_server args...: one server for one connection
  openssl s_server -accept "127.0.0.1:$port" -cert "$work/cert.pem" -key "$work/key.pem" \
    -alpn h2,http/1.1 -www -naccept 1 "$@" >"$work/server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    [[ -n $(ss -Hltn "sport = :$port") ]] && return 0
    sleep 0.05
  done
  echo "s_server did not start" >&2
  exit 1
}

record() { # name, client command...
  local name=$1; shift
  relay_start "$relay" "$port" 443 --out "$here/$name.cap" --single --count 1 --seconds 20
  "$@" || true
  wait "$recpid"
}

s_client() { # extra s_client args...
  printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:$relay -quiet -ign_eof \
    -CAfile "$work/cert.pem" "$@" >/dev/null 2>&1
}

server
record tls13-openssl s_client -tls1_3 -servername api.example.test -alpn h2,http/1.1
server
record tls12-openssl s_client -tls1_2 -servername grpc.internal -alpn h2,http/1.1
server
record tls13-curl curl -sS -o /dev/null --http1.1 --cacert "$work/cert.pem" \
  --resolve api.example.test:$relay:127.0.0.1 https://api.example.test:$relay/
server
record tls12-curl curl -sS -o /dev/null --http1.1 --tlsv1.2 --tls-max 1.2 --cacert "$work/cert.pem" \
  --resolve api.example.test:$relay:127.0.0.1 https://api.example.test:$relay/
server -tls1_3
record alert-version s_client -tls1_2 -servername api.example.test

python3 "$here/../../fuzz/cap2seed.py" "$here/../../fuzz/corpus/tls" "$here"/*.cap
ls -l "$here"/*.cap
