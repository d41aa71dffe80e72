#!/usr/bin/env python3
"""Gentle, bounded load for the demo: it drives the guestbook frontend and bookinfo's
productpage, asks now and then for a product that does not exist (404), and probes a
/health endpoint every few seconds like a kubelet would.

    loadgen.py [--rate 2] [--seconds 3600] [--prober-only]

Stops after --seconds or on SIGTERM/SIGINT. Targets are Service names resolved through
the pod's DNS (frontend.guestbook, productpage.bookinfo, reviews.bookinfo).
"""
import argparse
import http.client
import json
import random
import signal
import socket
import sys
import time

running = True


def stop(*_):
    global running
    running = False


def request(host, port, method, path, body=None):
    try:
        addrs = [a[4][0] for a in socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)]
        conn = http.client.HTTPConnection(random.choice(addrs), port, timeout=3)
        headers = {"Host": host, "User-Agent": "sidetap-demo-loadgen/1.0"}
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status
    except OSError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=2.0, help="user requests per second")
    p.add_argument("--seconds", type=float, default=3600, help="stop after this long")
    p.add_argument("--probe-every", type=float, default=3.0)
    p.add_argument("--prober-only", action="store_true")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + args.seconds
    next_probe = 0.0
    n = 0
    words = ["hello", "sidetap", "kubernetes", "wireshark", "guestbook", "redis", "tap"]
    while running and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_probe:
            request("reviews.bookinfo.svc.cluster.local", 9080, "GET", "/health")
            request("frontend.guestbook.svc.cluster.local", 80, "GET", "/health")
            next_probe = now + args.probe_every
        if not args.prober_only:
            n += 1
            step = n % 6
            if step == 0:
                request("frontend.guestbook.svc.cluster.local", 80, "POST", "/api/entries",
                        {"text": f"{random.choice(words)} #{n}"})
            elif step in (1, 3):
                request("frontend.guestbook.svc.cluster.local", 80, "GET", "/api/entries")
            elif step == 5 and n % 4 == 1:
                request("productpage.bookinfo.svc.cluster.local", 9080, "GET",
                        f"/api/v1/products/{random.choice([7, 42])}")  # not found: 404
            else:
                request("productpage.bookinfo.svc.cluster.local", 9080, "GET",
                        random.choice(["/productpage", "/api/v1/products/0", "/api/v1/products/1"]))
        time.sleep(1.0 / args.rate if not args.prober_only else args.probe_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
