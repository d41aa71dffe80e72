#!/usr/bin/env python3
"""Port forwarder from the host's loopback into a pod (like kubectl port-forward).

Listens on HOST:PORT in the host namespace (PORT 0 = any free port, printed on stdout as
the first line) and, for each client, opens a TCP connection from inside the pod's
network namespace (setns on a helper thread) to TARGET:TPORT, then copies bytes both
ways. The host gets no interface, route or iptables rule.

usage: forward.py NETNS_PATH TARGET TPORT HOST PORT
"""
import os
import socket
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import netns  # noqa: E402

MAX_CLIENTS = 256


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, ns_path, target, tport, slots):
    try:
        try:
            upstream = netns.connect(ns_path, target, tport, timeout=10)
        except OSError as e:
            print("forward: connect %s:%d: %s" % (target, tport, e), file=sys.stderr, flush=True)
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)
        t = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        t.start()
        pipe(client, upstream)
        t.join()
        upstream.close()
        client.close()
    finally:
        slots.release()


def main():
    ns_path, target, tport, host, port = sys.argv[1:6]
    tport, port = int(tport), int(port)
    lst = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((host, port))
    lst.listen(128)
    print(lst.getsockname()[1], flush=True)
    slots = threading.BoundedSemaphore(MAX_CLIENTS)
    while True:
        client, _ = lst.accept()
        if not slots.acquire(blocking=False):
            client.close()
            continue
        threading.Thread(target=serve, args=(client, ns_path, target, tport, slots),
                         daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
