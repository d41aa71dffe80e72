#!/usr/bin/env python3
"""Test stand-in servers for test_init_traffic.py.

probe.py proxy OUT IN DNS ADMIN  - listens where sidetap-proxy would; each TCP client gets
    "<listener> <original destination>\\n" (SO_ORIGINAL_DST) and each UDP datagram gets
    "dns <sender>\\n".
probe.py direct NAME PORT...      - on each TCP port (and UDP for port 53) answers
    "direct NAME <port>\\n".
"""
import selectors
import socket
import struct
import sys

SO_ORIGINAL_DST = 80


def orig_dst(conn):
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, = struct.unpack("!H", raw[2:4])
    return "%s:%d" % (socket.inet_ntoa(raw[4:8]), port)


def main():
    mode = sys.argv[1]
    sel = selectors.DefaultSelector()
    if mode == "proxy":
        names = ["outbound", "inbound", "dns", "admin"]
        ports = [int(p) for p in sys.argv[2:6]]
    else:
        names = None
        ports = [int(p) for p in sys.argv[3:]]
    for i, port in enumerate(ports):
        t = socket.socket()
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(("0.0.0.0", port))
        t.listen(64)
        sel.register(t, selectors.EVENT_READ, ("tcp", names[i] if names else port))
        if (names and names[i] == "dns") or (not names and port == 53):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("0.0.0.0", port))
            sel.register(u, selectors.EVENT_READ, ("udp", names[i] if names else port))
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            kind, what = key.data
            s = key.fileobj
            if kind == "udp":
                _, peer = s.recvfrom(2048)
                msg = "dns %s" % peer[0] if names else "direct %s %d" % (sys.argv[2], what)
                s.sendto((msg + "\n").encode(), peer)
                continue
            conn, _ = s.accept()
            if names:
                msg = "admin" if what == "admin" else "%s %s" % (what, orig_dst(conn))
            else:
                msg = "direct %s %d" % (sys.argv[2], what)
            try:
                conn.sendall((msg + "\n").encode())
            except OSError:
                pass
            conn.close()


if __name__ == "__main__":
    main()
