#!/usr/bin/env bash
# Re-records tests/captures/http2/*.cap: nghttp (nghttp2-client) against nghttpd
# --no-tls (nghttp2-server), prior-knowledge h2c on loopback, through record.py. The
# header says port 80 whatever port the run used.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "$0")/../lib.sh"

mkdir -p "$work/htdocs"
printf '<!doctype html>\n<link rel="stylesheet" href="/style.css">\n<h1>sidetap</h1>\n' >"$work/htdocs/index.html"
printf 'h1 { color: teal; }\n' >"$work/htdocs/style.css"
python3 -c 'import sys; sys.stdout.write("".join("line %05d of the upload\n" % i for i in range(700)))' >"$work/upload.txt"
token=$(python3 -c 'print("t" * 1500)')

# server ARGS...: starts nghttpd on a fresh port ($srv)
server() {
  srv=$(freeport)
  nghttpd --no-tls -d "$work/htdocs" "$@" "$srv" >"$work/nghttpd-$srv.log" 2>&1 &
  pids+=($!)
  waitport "$srv"
}
# record NAME: a relay on a fresh port ($lp) for one connection to $srv
record() {
  lp=$(freeport)
  relay_start "$lp" "$srv" 80 --out "$here/$1.cap" --single --count 1 --seconds 20
}

# 1. Many concurrent streams with a large header that the HPACK dynamic table carries
#    (tables of 64 KiB announced both ways), a 404, and query strings.
server -c 65536 --encoder-header-table-size 65536
record concurrent
nghttp -n -m 12 -c 65536 --encoder-header-table-size 65536 -H "x-request-token: $token" \
  -H 'user-agent: sidetap-test' "http://127.0.0.1:$lp/index.html?lang=en&q=a+b" \
  "http://127.0.0.1:$lp/missing" >/dev/null || true
wait "$recpid"

# 2. An upload echoed back, with padding on both sides, CONTINUATION frames from the
#    client, and trailers from the server.
server -b 16 --echo-upload --trailer 'x-checksum: 8d3f' --trailer 'x-served-by: nghttpd'
record upload-trailers
nghttp -n -b 7 --continuation -d "$work/upload.txt" -H 'content-type: text/plain' \
  "http://127.0.0.1:$lp/echo" >/dev/null
wait "$recpid"

# 3. Server push: the page and a pushed stylesheet.
server -p "/index.html=/style.css"
record push
nghttp -n "http://127.0.0.1:$lp/index.html" >/dev/null
wait "$recpid"

ls -l "$here"/*.cap
