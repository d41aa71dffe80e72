#!/usr/bin/env python3
"""servers.py - the upstream servers the proxy tests relay to (stdlib only).

    servers.py --ready FILE KIND:PORT...      (bound to 0.0.0.0; http6 to [::])

http     GET /blob?size=N   N deterministic bytes (blob(N)); header X-Peer-Port = the
                            client's port as this server saw it
         GET /slow?ms=M     waits M ms, then answers "slow done"
         POST /echo         answers the request body
eofecho  reads until the client's FIN, then answers "got N sha256\n" + blob(1 MiB) and
         closes: works only if half-close is passed on
slowsink reads slowly (small receive buffer, 4 KiB reads, pauses) until the client's FIN,
         then answers "got N sha256\n": the proxy's writes to it are partial
banner   server-first: sends "220 sidetap-test ready\r\n" at once, then echoes lines
reset    reads one chunk, then closes with a reset (SO_LINGER 0)
"""
import functools
import hashlib
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@functools.lru_cache(maxsize=4)
def blob(n):
    """Deterministic, incompressible-looking bytes."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"sidetap%d" % i).digest()
        i += 1
    return bytes(out[:n])


class Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_body(self, code, body, ctype="application/octet-stream"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Peer-Port", str(self.client_address[1]))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path == "/blob":
            self.send_body(200, blob(int(q.get("size", ["0"])[0])))
        elif u.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000)
            self.send_body(200, b"slow done", "text/plain")
        else:
            self.send_body(404, b"not found", "text/plain")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.send_body(200, self.rfile.read(n))


class Stream(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class EofEcho(socketserver.BaseRequestHandler):
    def handle(self):
        h = hashlib.sha256()
        n = 0
        while True:
            d = self.request.recv(65536)
            if not d:
                break
            n += len(d)
            h.update(d)
        self.request.sendall(b"got %d %s\n" % (n, h.hexdigest().encode()) + blob(1 << 20))


class SlowSink(socketserver.BaseRequestHandler):
    def handle(self):
        h = hashlib.sha256()
        n = 0
        while True:
            d = self.request.recv(4096)
            if not d:
                break
            n += len(d)
            h.update(d)
            if n % (64 << 10) < 4096:
                time.sleep(0.002)
        self.request.sendall(b"got %d %s\n" % (n, h.hexdigest().encode()))


class SmallBufServer(Stream):
    def server_bind(self):
        # inherited by accepted sockets: the kernel window stays small
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        super().server_bind()


class Banner(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"220 sidetap-test ready\r\n")
        f = self.request.makefile("rb")
        for line in f:
            self.request.sendall(line)


class Reset(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(65536)
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.request.close()


def main():
    args = sys.argv[1:]
    ready = None
    if args[:1] == ["--ready"]:
        ready, args = args[1], args[2:]
    servers = []
    for spec in args:
        kind, port = spec.split(":")
        port = int(port)
        if kind in ("http", "http6"):
            cls = type("Server", (ThreadingHTTPServer,), {"allow_reuse_address": True, "daemon_threads": True,
                                                          "address_family": socket.AF_INET6 if kind == "http6" else socket.AF_INET})
            srv = cls(("::" if kind == "http6" else "0.0.0.0", port), Http)
        elif kind == "slowsink":
            srv = SmallBufServer(("0.0.0.0", port), SlowSink)
        else:
            srv = Stream(("0.0.0.0", port), {"eofecho": EofEcho, "banner": Banner, "reset": Reset}[kind])
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    if ready:
        open(ready, "w").close()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
