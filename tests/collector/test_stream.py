#!/usr/bin/env python3
"""The live stream (SSE): a fast client gets exactly the matching entries in order; a
client that stops reading loses entries (counted) instead of holding up ingest, is told
so with a notice when it reads again, and one that never reads again is closed.
usage: test_stream.py path/to/sidetap-collector"""
import json
import sys
import time
import urllib.parse

from collector_lib import SSE, Collector, check, check_eq, done, fixture_entries

binary = sys.argv[1]


def big_redis(i):
    return {"timestamp": 1764064800000 + i, "elapsedTime": 0.2, "protocol": {"name": "redis"},
            "src": {"ip": "10.1.1.20", "port": 45000, "namespace": "guestbook"},
            "dst": {"ip": "10.1.1.21", "port": 6379}, "outgoing": True, "seq": i,
            "request": {"method": "SET", "path": f"k{i}", "bytes": 1100},
            "redis": {"command": "SET", "key": f"k{i}", "args": [f"k{i}", "v" * 1000]},
            "summary": f"SET k{i}"}


c = Collector(binary, "--stream-buffer", "64Ki", "--stream-stall", "15s", "--stream-lag", "500")
try:
    st, doc = c.get_json("/api/v1/stream?q=" + urllib.parse.quote("request.path =="))
    check_eq(st, 400, "bad query")
    fast = SSE(c.port, "redis")
    check_eq(fast.status, 200, "stream status")
    check("Content-Type: text/event-stream" in fast.headers, "content type")
    slow = SSE(c.port, "", rcvbuf=4096)
    stuck = SSE(c.port, "", rcvbuf=4096)
    time.sleep(0.3)
    st, doc = c.post_entries(fixture_entries())
    check_eq(doc["accepted"], 24, "fixtures")
    check(fast.pump(lambda s: len(s.ids()) >= 4), "fast client got the redis fixtures")
    check_eq(fast.ids(), [15, 16, 17, 18], "exactly the redis entries, in order")
    e = json.loads(fast.of("entry")[0]["data"])
    check_eq((e["id"], e["summary"]), ("15", "SET guestbook:1"), "entry event data")

    # flood: 12 batches of 200 ~1.3 KiB entries while `slow` and `stuck` do not read
    n = 0
    for b in range(12):
        st, doc = c.post_entries([big_redis(1000 + b * 200 + i) for i in range(200)])
        check_eq((st, doc and doc["accepted"]), (200, 200), f"batch {b} accepted while streams are stuck")
        n += 200
        fast.pump(lambda s: len(s.ids()) >= 4 + n, timeout=30)
    check_eq(len(fast.ids()), 4 + n, "the fast client got every entry")
    check_eq(fast.ids(), sorted(fast.ids()), "in id order")
    check_eq(fast.of("notice"), [], "the fast client lost nothing")
    st, s = c.get_json("/api/v1/stats")
    check_eq(s["entries"], 24 + n, "all stored")

    # the slow client reads again: a notice says how many it lost; received + dropped = all
    total = 24 + n
    def caught_up(s):
        st = s.of("stats")
        return any(json.loads(x["data"])["matched"] == total for x in st) and \
            (s.ids() and s.ids()[-1] == total or s.of("notice"))
    slow.pump(lambda s: len(s.of("notice")) >= 1 and len(s.of("stats")) >= 2, timeout=30)
    notices = [json.loads(x["data"]) for x in slow.of("notice")]
    dropped = sum(x["dropped"] for x in notices)
    check(dropped > 0, f"slow client was told it lost entries: {notices}")
    check(notices and notices[0]["message"] == f"slow consumer: {notices[0]['dropped']} entries dropped",
          f"notice text {notices[:1]}")
    last_stats = json.loads(slow.of("stats")[-1]["data"])
    check_eq(last_stats["dropped"], dropped, "stats.dropped matches the notices")
    check_eq(len(slow.ids()) + dropped, total, "received + dropped = every matching entry")
    check_eq(last_stats["matched"], total, "stats.matched")
    check_eq(last_stats["total"], total, "stats.total")

    # the stuck client never reads: after --stream-stall it is closed
    deadline = time.time() + 40
    while time.time() < deadline:
        st, text = c.get_text("/metrics")
        if "sidetap_collector_streams_closed_slow_total 0\n" not in text:
            break
        time.sleep(0.5)
    check("sidetap_collector_streams_closed_slow_total 1\n" in text, "stuck stream closed")
    check("sidetap_collector_streams 2\n" in text, "two streams left")
    got_eof = stuck.pump(lambda s: s.eof, timeout=20)
    check(got_eof, "stuck client sees the end of the stream")
    fast.s.close()
    slow.s.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        st, text = c.get_text("/metrics")
        if "sidetap_collector_streams 0\n" in text:
            break
        time.sleep(0.1)
    check("sidetap_collector_streams 0\n" in text, "closed clients are forgotten")
finally:
    c.stop()
    c.close()
done()
