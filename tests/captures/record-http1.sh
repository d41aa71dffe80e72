#!/usr/bin/env bash
# Re-records tests/captures/http1/*.cap: real HTTP/1 traffic between curl, wrk and small
# raw-socket python clients and nginx (Debian nginx-light) or a tiny python backend, all on
# loopback, each connection relayed and recorded by record.py.
#
#   tests/captures/record-http1.sh [OUTDIR]     (default: tests/captures/http1)
#
# nginx runs in the foreground as this user with its own temp prefix and config; the
# backend (python, stdlib) does what nginx cannot: echo bodies, chunk by hand, HTTP/1.0
# read-until-close, WebSocket and the h2c upgrade (101 + a minimal HTTP/2 answer).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
out=${1:-$here/http1}
mkdir -p "$out"

nginx_port=$(freeport)
backend_port=$(freeport)
relay_port=$(freeport)

# --- the backend ---
cat >"$work/backend.py" <<'PY'
import base64, hashlib, socket, sys, threading

def read_headers(f):
    line = f.readline()
    if not line:
        return None
    method, target, version = line.decode().split()
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return method, target, version, headers

def read_body(f, headers):
    if "content-length" in headers:
        return f.read(int(headers["content-length"]))
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += f.read(size)
            f.readline()
    return body

def ws_frame(payload, opcode):
    return bytes([0x80 | opcode, len(payload)]) + payload

def ws_read(f):
    b0, b1 = f.read(2)
    n = b1 & 0x7f
    mask = f.read(4) if b1 & 0x80 else b"\0\0\0\0"
    data = f.read(n)
    return b0 & 0x0f, bytes(c ^ mask[i % 4] for i, c in enumerate(data))

def frame(ftype, flags, sid, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload

def handle(c):
    f = c.makefile("rb")
    try:
        while True:
            req = read_headers(f)
            if req is None:
                return
            method, target, version, headers = req
            body = read_body(f, headers)
            if target.startswith("/api/echo"):
                ct = headers.get("content-type", "application/octet-stream")
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + ct.encode() +
                          b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            elif target.startswith("/api/upload"):
                msg = b'{"received":%d}' % len(body)
                c.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(msg) + msg)
            elif target.startswith("/api/chunked"):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
                for part in (b"first chunk\n", b"second, longer chunk\n", b"third\n"):
                    c.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
                c.sendall(b"0\r\n\r\n")
            elif target.startswith("/api/old"):
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                c.sendall(b"an HTTP/1.0 body ")
                c.sendall(b"that ends when the connection closes\n")
                return
            elif target.startswith("/ws") and headers.get("upgrade", "").lower() == "websocket":
                key = headers["sec-websocket-key"].encode()
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                while True:
                    op, data = ws_read(f)
                    if op == 8:
                        c.sendall(ws_frame(data[:2], 8))
                        return
                    c.sendall(ws_frame(b"echo: " + data, op))
            elif target.startswith("/h2c") and headers.get("upgrade", "").lower() == "h2c":
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                c.sendall(frame(4, 0, 0, b""))               # server SETTINGS
                assert f.read(24) == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                while True:                                   # until the client's SETTINGS
                    h = f.read(9)
                    payload = f.read(int.from_bytes(h[:3], "big"))
                    if h[3] == 4 and not h[4] & 1:
                        break
                c.sendall(frame(4, 1, 0, b""))                # SETTINGS ACK
                c.sendall(frame(1, 4, 1, b"\x88") +           # HEADERS :status 200
                          frame(0, 1, 1, b"hello over h2c\n"))  # DATA, END_STREAM
                while f.read(1):
                    pass
                return
            else:
                msg = b"not here\n"
                c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(msg) + msg)
            if version == "HTTP/1.0" or headers.get("connection", "").lower() == "close":
                return
    except (ConnectionError, ValueError, AssertionError):
        pass
    finally:
        c.close()

ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(16)
while True:
    conn, _ = ls.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
PY
python3 "$work/backend.py" "$backend_port" &
pids+=($!)

# --- nginx ---
mkdir -p "$work/nginx/html" "$work/nginx/logs" "$work/nginx/tmp"
printf '<!doctype html>\n<title>sidetap</title>\n<p>Hello from nginx.</p>\n' >"$work/nginx/html/index.html"
python3 -c 'import sys; sys.stdout.write("".join("line %05d: the quick brown fox jumps over the lazy dog\n" % i for i in range(400)))' \
  >"$work/nginx/html/fox.txt"
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  types { text/html html; text/plain txt; }
  gzip on;
  gzip_types text/plain;
  gzip_min_length 1;
  client_max_body_size 1m;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/nginx/html;
    location = /login { add_header Set-Cookie "sid=s3cr3t-session; HttpOnly"; return 200 "welcome\n"; }
    location /api/ {
      proxy_pass http://127.0.0.1:$backend_port;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location /ws {
      proxy_pass http://127.0.0.1:$backend_port;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
    }
  }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" &
pids+=($!)
waitport "$nginx_port"
waitport "$backend_port"

# record NAME UPSTREAM_PORT HEADER_PORT -- client command...: one connection into NAME.cap
# (RECORD_NTH=N: the client opens N connections and the Nth is kept; wrk opens an empty
# one first.)
record() {
  local name=$1 upstream=$2 header_port=$3 nth=${RECORD_NTH:-1}; shift 4
  rm -f "$work/$name"-*.cap
  relay_start "$relay_port" "$upstream" "$header_port" --count "$nth" --out "$work/$name" --seconds 20
  "$@" >"$work/$name.out" 2>&1 || { echo "record-http1: client of $name failed:" >&2; cat "$work/$name.out" >&2; }
  wait "$recpid"
  mv "$work/$name-$nth.cap" "$out/$name.cap"
  echo "$name.cap: $(stat -c %s "$out/$name.cap") bytes"
}
url=http://127.0.0.1:$relay_port

# Keep-alive: several requests on one connection, secrets to redact, a 404, a query.
record curl-keepalive "$nginx_port" 80 -- curl -sS --http1.1 -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
  -H 'Authorization: Bearer s3cr3t-token' -H 'Cookie: session=abc123' \
  "$url/" "$url/index.html?lang=en&q=a%20b+c" "$url/missing" "$url/login"

# HEAD, then a conditional GET answered 304.
etag=$(curl -sI "http://127.0.0.1:$nginx_port/index.html" | tr -d '\r' | sed -n 's/^ETag: //Ip')
record head-304 "$nginx_port" 80 -- curl -sS --http1.1 -I "$url/index.html" --next -sS -o /dev/null \
  -H "If-None-Match: $etag" "$url/index.html"

# gzip: nginx compresses on the fly and chunks the result.
record gzip-chunked "$nginx_port" 80 -- curl -sS --http1.1 -o /dev/null -H 'Accept-Encoding: gzip' "$url/fox.txt"

# A backend's chunked response, re-chunked by nginx; then a POST echo with 100-continue.
python3 -c 'print("{\"name\":\"sidetap\",\"tags\":[\"http\",\"test\"]}", end="")' >"$work/small.json"
record chunked-post "$nginx_port" 80 -- curl -sS --http1.1 -o /dev/null "$url/api/chunked" --next -sS -o /dev/null \
  -H 'Content-Type: application/json' -H 'Expect: 100-continue' --data-binary "@$work/small.json" "$url/api/echo"

# An upload larger than the default 64 KiB body cap.
python3 -c 'import sys; sys.stdout.write("".join("upload line %05d ........................................\n" % i for i in range(1400)))' \
  >"$work/upload.txt"
record post-upload "$nginx_port" 80 -- curl -sS --http1.1 -o /dev/null -H 'Expect:' -H 'Content-Type: text/plain' \
  --data-binary "@$work/upload.txt" "$url/api/upload?name=upload.txt"

# Three pipelined requests in one write, the last with Connection: close.
cat >"$work/pipeline.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
          b"HEAD /fox.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
          b"GET /missing?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
while s.recv(65536):
    pass
s.close()
PY
record pipelined "$nginx_port" 80 -- python3 "$work/pipeline.py" "$relay_port"

# wrk with pipelining (its pipeline.lua pattern), stopped after 12 responses.
cat >"$work/wrk.lua" <<'LUA'
local n = 0
init = function(args)
  req = wrk.format(nil, "/index.html") .. wrk.format(nil, "/missing") .. wrk.format(nil, "/login")
end
request = function() return req end
response = function(status, headers, body)
  n = n + 1
  if n >= 12 then wrk.thread:stop() end
end
LUA
RECORD_NTH=2 record wrk-pipeline "$nginx_port" 80 -- wrk -t1 -c1 -d1s -s "$work/wrk.lua" "$url/"

# HTTP/1.0 with a body that ends at close (straight to the backend).
cat >"$work/http10.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /api/old HTTP/1.0\r\nHost: localhost\r\nUser-Agent: raw/1.0\r\n\r\n")
while s.recv(65536):
    pass
s.close()
PY
record http10-eof "$backend_port" 8080 -- python3 "$work/http10.py" "$relay_port"

# WebSocket through nginx: handshake, one text message each way, close.
cat >"$work/ws.py" <<'PY'
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /ws/chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
def send(op, payload):
    mask = b"\x11\x22\x33\x44"
    s.sendall(bytes([0x80 | op, 0x80 | len(payload)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
def recv_frame():
    data = b""
    while len(data) < 2:
        data += s.recv(2 - len(data))
    n = data[1] & 0x7f
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body))
    return body
send(1, b"hello sidetap")
print(recv_frame())
send(8, b"\x03\xe8")
recv_frame()
s.close()
PY
record websocket "$nginx_port" 80 -- python3 "$work/ws.py" "$relay_port"

# h2c: curl asks for the upgrade; the backend accepts and answers over HTTP/2. nginx
# ignores the upgrade and answers over HTTP/1.1 (the declined case).
record h2c-upgrade "$backend_port" 8080 -- curl -sS --http2 -o /dev/null "$url/h2c?via=upgrade"
record h2c-declined "$nginx_port" 80 -- curl -sS --http2 -o /dev/null "$url/index.html" --next -sS --http1.1 -o /dev/null "$url/login"

ls -l "$out"
