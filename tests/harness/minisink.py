#!/usr/bin/env python3
"""A minimal collector stand-in, used by the harness when tests/lib/sink.py (the full
test sink) is absent; same command line subset. Appends to one JSON-lines file:

  POST /api/v1/entries   {"entries": [...]}  -> 200 {"accepted": N}; each entry one line
  POST /api/v1/register  {"pod": {...}}      -> 200; the line {"register": {...}}
  --mode 503: every POST gets 503 with Retry-After: 1.
With --token, requests without "Authorization: Bearer <token>" get 401.

usage: minisink.py --listen HOST:PORT --out FILE [--token T] [--mode ok|503]
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 << 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--token")
    ap.add_argument("--mode", default="ok", choices=["ok", "503"])
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def reply(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/healthz":
                self.reply(200, {"status": "ok"})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.reply(413, {"error": "too large"})
                return
            body = self.rfile.read(length)
            if args.token and self.headers.get("Authorization") != "Bearer " + args.token:
                self.reply(401, {"error": "bad token"})
                return
            try:
                doc = json.loads(body)
            except ValueError as e:
                self.reply(400, {"error": "bad JSON: %s" % e})
                return
            if args.mode == "503":
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/api/v1/entries":
                entries = doc.get("entries") if isinstance(doc, dict) else None
                if not isinstance(entries, list):
                    self.reply(400, {"error": "expected {\"entries\": [...]}"})
                    return
                with lock, open(args.out, "a") as f:
                    for e in entries:
                        f.write(json.dumps(e, sort_keys=True) + "\n")
                self.reply(200, {"accepted": len(entries)})
            elif self.path == "/api/v1/register":
                with lock, open(args.out, "a") as f:
                    f.write(json.dumps({"register": doc.get("pod")}, sort_keys=True) + "\n")
                self.reply(200, {})
            else:
                self.reply(404, {"error": "not found"})

        def log_message(self, fmt, *a):
            sys.stderr.write("sink: " + (fmt % a) + "\n")

    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    print("sink listening on %s" % args.listen, file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
