#!/usr/bin/env python3
"""Record connections between a real client and a real server as .cap files.

A small relay: it listens on --listen, connects each accepted client to --upstream, relays
bytes unchanged both ways, and writes every chunk it read, in order, with its direction
and time. One file per connection: OUT-1.cap, OUT-2.cap, ... (or exactly --out with
--single). With --udp it relays datagrams instead and writes one file for the whole run.

Format (tests/captures/README.md): a header line "STCAP1 port=<server port>
transport=tcp|udp\\n", then records of u8 direction (0 client->server, 1 server->client),
u32 big-endian length, u64 big-endian time in µs since the epoch, and the bytes.

Loopback only: upstream must be 127.0.0.0/8 or ::1, or an address in a test netns.
Stops after --count connections or --seconds, whichever comes first.
"""
import argparse
import os
import selectors
import socket
import struct
import sys
import time


def now_us():
    return time.time_ns() // 1000


def split_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


class CapWriter:
    def __init__(self, path, port, transport):
        self.f = open(path, "wb")
        self.f.write(f"STCAP1 port={port} transport={transport}\n".encode())

    def chunk(self, direction, data):
        self.f.write(struct.pack(">BIQ", direction, len(data), now_us()) + data)

    def close(self):
        self.f.close()


def relay_tcp(args):
    lhost, lport = split_hostport(args.listen)
    uhost, uport = split_hostport(args.upstream)
    ls = socket.socket(socket.AF_INET6 if ":" in lhost else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((lhost, lport))
    ls.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, ("listen", None))
    deadline = time.monotonic() + args.seconds
    accepted = finished = 0
    conns = {}
    if args.ready:
        open(args.ready, "w").close()
    while time.monotonic() < deadline and (finished < args.count):
        for key, _ in sel.select(timeout=0.2):
            kind, conn = key.data
            if kind == "listen":
                cs, _ = ls.accept()
                us = socket.create_connection((uhost, uport))
                accepted += 1
                path = args.out if args.single else f"{args.out}-{accepted}.cap"
                conn = {"c": cs, "u": us, "w": CapWriter(path, args.port or uport, "tcp"), "eof": set()}
                conns[accepted] = conn
                sel.register(cs, selectors.EVENT_READ, ("c", conn))
                sel.register(us, selectors.EVENT_READ, ("u", conn))
                continue
            src = conn[kind]
            dst = conn["u" if kind == "c" else "c"]
            try:
                data = src.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                conn["w"].chunk(0 if kind == "c" else 1, data)
                dst.sendall(data)
            else:
                sel.unregister(src)
                conn["eof"].add(kind)
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                if len(conn["eof"]) == 2:
                    conn["w"].close()
                    conn["c"].close()
                    conn["u"].close()
                    finished += 1
    for conn in conns.values():
        if len(conn["eof"]) < 2:
            conn["w"].close()
    return 0 if finished else 1


def relay_udp(args):
    lhost, lport = split_hostport(args.listen)
    uhost, uport = split_hostport(args.upstream)
    fam = socket.AF_INET6 if ":" in lhost else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_DGRAM)
    ls.bind((lhost, lport))
    us = socket.socket(fam, socket.SOCK_DGRAM)
    us.connect((uhost, uport))
    w = CapWriter(args.out if args.single else f"{args.out}-1.cap", args.port or uport, "udp")
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, "c")
    sel.register(us, selectors.EVENT_READ, "u")
    client = None
    answers = 0
    deadline = time.monotonic() + args.seconds
    if args.ready:
        open(args.ready, "w").close()
    while time.monotonic() < deadline and answers < args.count:
        for key, _ in sel.select(timeout=0.2):
            if key.data == "c":
                data, client = ls.recvfrom(65536)
                w.chunk(0, data)
                us.send(data)
            else:
                data = us.recv(65536)
                w.chunk(1, data)
                answers += 1
                if client:
                    ls.sendto(data, client)
    w.close()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="host:port to accept clients on")
    p.add_argument("--upstream", required=True, help="host:port of the real server")
    p.add_argument("--out", required=True, help="output path prefix (or path with --single)")
    p.add_argument("--single", action="store_true", help="write exactly --out (one connection)")
    p.add_argument("--udp", action="store_true", help="relay datagrams")
    p.add_argument("--count", type=int, default=1, help="connections (UDP: answers) to record")
    p.add_argument("--seconds", type=float, default=30, help="give up after this long")
    p.add_argument("--ready", help="touch this file once listening")
    p.add_argument("--port", type=int, help="server port to write in the header (default: upstream's)")
    args = p.parse_args()
    return relay_udp(args) if args.udp else relay_tcp(args)


if __name__ == "__main__":
    sys.exit(main())
