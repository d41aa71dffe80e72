#!/usr/bin/env python3
"""Servers for protocols sidetap does not parse (test_opaque.py, test_faults.py).

  binary PORT  - reads until the client half-closes, then answers the SHA-256 of what it
                 got (32 bytes) followed by the bytes reversed, and closes.
  banner PORT  - server-first, SMTP-like: "220 opaque.test ESMTP ready\\r\\n" at once, then
                 "250 <line>\\r\\n" per line, "221 bye\\r\\n" and close on QUIT.
  reset PORT   - reads one chunk, then closes with a reset (SO_LINGER 0).
  stall PORT   - accepts and never reads or writes (the client disconnects).
"""
import hashlib
import socket
import socketserver
import struct
import sys
import threading


class Binary(socketserver.BaseRequestHandler):
    def handle(self):
        data = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                break
            data += chunk
        self.request.sendall(hashlib.sha256(data).digest() + data[::-1])


class Banner(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 opaque.test ESMTP ready\r\n")
        for line in self.rfile:
            line = line.rstrip(b"\r\n")
            if line.upper() == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            self.wfile.write(b"250 " + line + b"\r\n")


class Reset(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(65536)
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.request.close()


class Stall(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            while self.request.recv(65536):
                pass
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


def main():
    kinds = {"binary": Binary, "banner": Banner, "reset": Reset, "stall": Stall}
    servers = []
    for spec in sys.argv[1:]:
        kind, port = spec.split(":")
        srv = Server(("0.0.0.0", int(port)), kinds[kind])
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
