#!/usr/bin/env python3
"""sink.py - a stand-in collector for tests: records what sidetap-proxy ships.

    sink.py --listen HOST:PORT --out FILE [--token T] [--mode ok|503|down-after N]
            [--retry-after S] [--ready FILE]

POST /api/v1/entries    body {"entries":[...]}: each entry is appended to FILE as one
                        JSON line; answers 200 {"accepted": N}.
POST /api/v1/register   body {"pod":{...}}: appends {"register": {...}} as one line.
GET  /stats             {"entries": N, "registers": N, "requests": N, "rejected": N}.

--token T        requests without "Authorization: Bearer T" get 401 (and are counted
                 in "rejected", not recorded).
--mode ok        accept everything (default).
--mode 503       answer every POST with 503 and "Retry-After: S" (--retry-after, default 1).
--mode down-after N
                 accept the first N entry batches, then answer 503 like --mode 503.
--mode 400       answer entry batches with 400 (registrations still succeed).
--delay-ms MS    answer each entry batch MS milliseconds late (a slow collector); /stats
                 then shows "inflightMax", the most entry batches in flight at once.
--ready FILE     touched once the port is listening (tests wait for it).

Stdlib only; one thread per request; lines are written and flushed under a lock, so
FILE can be read while the sink runs. Stops on SIGTERM/SIGINT.
"""
import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"entries": 0, "registers": 0, "requests": 0, "rejected": 0, "batches": 0,
         "inflight": 0, "inflightMax": 0}


def make_handler(args, out):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: tests read FILE, not the log
            pass

        def reply(self, code, obj, extra=None):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/stats":
                with LOCK:
                    self.reply(200, dict(STATS))
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            with LOCK:
                STATS["requests"] += 1
            if args.token is not None and self.headers.get("Authorization") != "Bearer " + args.token:
                with LOCK:
                    STATS["rejected"] += 1
                return self.reply(401, {"error": "bad token"})
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                return self.reply(415, {"error": "content type must be application/json"})
            try:
                doc = json.loads(data)
            except ValueError as e:
                return self.reply(400, {"error": "bad json: %s" % e})
            if self.path == "/api/v1/register":
                if args.mode == "503":
                    return self.reply(503, {"error": "down"}, {"Retry-After": str(args.retry_after)})
                with LOCK:
                    STATS["registers"] += 1
                    out.write(json.dumps({"register": doc.get("pod")}) + "\n")
                    out.flush()
                return self.reply(200, {"ok": True})
            if self.path == "/api/v1/entries":
                with LOCK:
                    down = args.mode == "503" or (args.mode == "down-after" and STATS["batches"] >= args.n)
                if down:
                    return self.reply(503, {"error": "down"}, {"Retry-After": str(args.retry_after)})
                if args.mode == "400":
                    return self.reply(400, {"error": "rejected"})
                entries = doc.get("entries")
                if not isinstance(entries, list):
                    return self.reply(400, {"error": "entries must be a list"})
                if args.delay_ms:
                    with LOCK:
                        STATS["inflight"] += 1
                        STATS["inflightMax"] = max(STATS["inflightMax"], STATS["inflight"])
                    __import__("time").sleep(args.delay_ms / 1000.0)
                    with LOCK:
                        STATS["inflight"] -= 1
                with LOCK:
                    STATS["batches"] += 1
                    STATS["entries"] += len(entries)
                    for e in entries:
                        out.write(json.dumps(e) + "\n")
                    out.flush()
                return self.reply(200, {"accepted": len(entries)})
            return self.reply(404, {"error": "not found"})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--out", required=True)
    p.add_argument("--token")
    p.add_argument("--mode", default="ok", choices=["ok", "503", "down-after", "400"])
    p.add_argument("n", nargs="?", type=int, default=0, help="batches accepted with --mode down-after")
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--ready")
    args = p.parse_args()
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]")
    out = open(args.out, "a")
    ThreadingHTTPServer.address_family = __import__("socket").AF_INET6 if ":" in host else __import__("socket").AF_INET
    srv = ThreadingHTTPServer((host, int(port)), make_handler(args, out))
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
    if args.ready:
        with open(args.ready, "w"):
            pass
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    srv.server_close()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
