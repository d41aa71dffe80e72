#!/usr/bin/env python3
"""Guestbook frontend, as the seed walkthrough deploys it: a page and a small JSON API
that keeps entries in Redis. Writes go to redis-leader, reads go to redis-follower (real
replicas of the leader), both reached by their Service names.

    guestbook.py [--port 80] [--leader redis-leader] [--follower redis-follower]

GET /                      the page
GET /api/entries           LRANGE guestbook 0 -1 on a follower
POST /api/entries  {"text": "..."}   RPUSH on the leader (and INCR a counter)
GET /health
"""
import argparse
import json
import socket
import sys

sys.dont_write_bytecode = True
from appserver import JSONHandler, pick_address, serve  # noqa: E402

PAGE = b"""<!doctype html><title>Guestbook</title>
<h1>Guestbook</h1><form method=post action=/api/entries><input name=text><button>Submit</button></form>
<ul id=entries></ul><script>fetch('/api/entries').then(r=>r.json()).then(es=>{for(const e of es.entries){
const li=document.createElement('li');li.textContent=e;entries.appendChild(li)}})</script>
"""


class RedisError(Exception):
    pass


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_reply(f):
    line = f.readline()
    if not line:
        raise RedisError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise RedisError(f"bad reply {line!r}")


def redis(host, *commands):
    """Runs commands (pipelined) on host:6379 and returns the replies."""
    with socket.create_connection((pick_address(host, 6379), 6379), timeout=2) as s:
        s.sendall(b"".join(resp_command(*c) for c in commands))
        f = s.makefile("rb")
        return [read_reply(f) for _ in commands]


class Handler(JSONHandler):
    server_version = "guestbook"

    def do_GET(self):
        if self.path == "/health":
            return self.send(200, {"status": "ok"})
        if self.path == "/":
            return self.send(200, PAGE, "text/html; charset=utf-8")
        if self.path == "/api/entries":
            try:
                entries, = redis(self.server.follower, ["LRANGE", "guestbook", 0, 19])
                return self.send(200, {"entries": entries or []})
            except (OSError, RedisError) as e:
                return self.send(503, {"error": f"redis-follower: {e}"})
        self.send(404, {"error": f"no route for {self.path}"})

    def do_POST(self):
        if self.path != "/api/entries":
            return self.send(404, {"error": f"no route for {self.path}"})
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            text = json.loads(raw)["text"] if raw.startswith(b"{") else raw.decode().split("=", 1)[-1]
        except (ValueError, KeyError):
            return self.send(400, {"error": "body must be {\"text\": \"...\"}"})
        try:
            length, total, _ = redis(self.server.leader, ["RPUSH", "guestbook", text],
                                     ["INCR", "guestbook:count"], ["LTRIM", "guestbook", -100, -1])
            return self.send(201, {"length": length, "total": total})
        except (OSError, RedisError) as e:
            return self.send(503, {"error": f"redis-leader: {e}"})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--leader", default="redis-leader")
    p.add_argument("--follower", default="redis-follower")
    args = p.parse_args()
    return serve(args.port, Handler, f"guestbook frontend on :{args.port}",
                 leader=args.leader, follower=args.follower)


if __name__ == "__main__":
    sys.exit(main())
