#!/usr/bin/env python3
"""The collector over HTTP: ingest (auth, good, malformed, schema, oversized), the six
KFL queries on the fixture set with exact ids, lists, cursors, entry lookup, errors,
stats, metrics, health, service map, HAR shape and the UI fallback.
usage: test_api.py path/to/sidetap-collector"""
import gzip
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

from collector_lib import HERE, Collector, check, check_eq, done, fixture_entries

binary = sys.argv[1]

# bad flags exit 2 with a message
for args, needle in [(["--memory", "lots"], "--memory"), (["--bogus"], "unknown option --bogus"),
                     (["--listen", "nowhere"], "--listen"), (["--retention-age", "5x"], "--retention-age"),
                     (["--max-batch", "0"], "--max-batch"), (["--max-backlog", "2x"], "--max-backlog"),
                     ([], "no ingest token")]:
    env = {"PATH": "/usr/bin:/bin"}
    p = subprocess.run([binary, "--no-k8s"] + args, capture_output=True, text=True, env=env, timeout=30)
    check_eq(p.returncode, 2, f"exit code for {args}")
    check(needle in p.stderr, f"message for {args} names {needle!r}: {p.stderr!r}")

c = Collector(binary, "--max-body", "1Mi")
try:
    entries = fixture_entries()
    # auth
    st, doc = c.post_entries(entries[:1], token=False)
    check_eq(st, 401, "no token")
    check("token" in doc["error"], "401 message")
    st, doc = c.post_entries(entries[:1], headers={"Authorization": "Bearer wrong"})
    check_eq(st, 401, "wrong token")
    st, _, _ = c.request("POST", "/api/v1/register", {"pod": {"name": "x", "ip": "1.2.3.4"}}, token=False)
    check_eq(st, 401, "register without token")

    # the fixture batch
    st, doc = c.post_entries(entries)
    check_eq(st, 200, "post fixtures")
    check_eq(doc, {"accepted": 24, "rejected": []}, "post fixtures answer")

    six = [
        ("!dns and !error", [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 15, 16, 18, 19, 21, 22, 23, 24]),
        ('!dns and !error and request.path != "/health" and request.path != "/healthz"',
         [1, 2, 3, 4, 9, 10, 11, 15, 16, 18, 19, 21, 22, 23, 24]),
        ('!dns and !error and src.namespace == "bookinfo"', [1, 2, 3, 4, 8, 9, 10, 11, 21, 22, 23]),
        ('redis and src.namespace == "guestbook"', [15, 16, 17]),
        ('!dns and request.path != "/health" and request.path != "/healthz" and response.status == 404',
         [4, 23, 24]),
        ('node.name == "i-028d42e8587e84db7" and dst.ip == "127.0.0.1" and dst.port == "8080"', [9]),
    ]
    for q, want in six:
        check_eq(c.query_ids(q), sorted(want, reverse=True), f"query {q}")
    check_eq(c.query_ids('request.headers["User-Agent"] == "kube-probe/1.28"'), [6, 5], "header query")
    check_eq(c.query_ids('grpc.method == "Range"'), [19], "grpc section")

    # list shape: newest first, body data omitted, sizes kept; total
    st, doc = c.get_json("/api/v1/entries?limit=5")
    check_eq(st, 200, "list")
    check_eq([e["id"] for e in doc["entries"]], ["24", "23", "22", "21", "20"], "newest first")
    check_eq(doc["next"], "20", "next cursor")
    check_eq(doc["total"], 24, "total")
    st, doc = c.get_json("/api/v1/entries?limit=5&before=20")
    check_eq([e["id"] for e in doc["entries"]], ["19", "18", "17", "16", "15"], "before=20")
    st, doc = c.get_json("/api/v1/entries?limit=3&after=5")
    check_eq([e["id"] for e in doc["entries"]], ["8", "7", "6"], "after=5 gives the next newer page")
    check_eq(doc["next"], "8", "after cursor")
    st, doc = c.get_json("/api/v1/entries?limit=100&after=20")
    check_eq([e["id"] for e in doc["entries"]], ["24", "23", "22", "21"], "after=20")
    check_eq(doc["next"], None, "no more after")
    st, doc = c.get_json("/api/v1/entries?" + urllib.parse.urlencode({"q": "http", "limit": 2}))
    check_eq(doc["total"], 13, "total of matches")
    check_eq([e["id"] for e in doc["entries"]], ["24", "23"], "http limit 2")
    e9 = [e for e in c.get_json("/api/v1/entries?limit=100")[1]["entries"] if e["id"] == "9"][0]
    check("data" not in e9["request"]["body"], "list omits request body data")
    check_eq(e9["request"]["body"]["size"], 12, "list keeps body size")
    st, full = c.get_json("/api/v1/entries/9")
    check_eq(st, 200, "get 9")
    check_eq(full["request"]["body"]["data"], '{"name":"x"}', "full entry has body data")
    want = dict(entries[8])
    want["id"] = "9"
    check_eq(full, want, "entry 9 is what was sent, with its id")
    st, doc = c.get_json("/api/v1/entries/999")
    check_eq((st, doc), (404, {"error": "no entry 999"}), "missing entry")
    st, doc = c.get_json("/api/v1/entries?limit=0")
    check_eq(st, 400, "limit 0")
    st, doc = c.get_json("/api/v1/entries?before=abc")
    check_eq(st, 400, "bad cursor")

    # KFL syntax error
    q = 'request.path == and http'
    st, doc = c.get_json("/api/v1/entries?" + urllib.parse.urlencode({"q": q}))
    check_eq(st, 400, "syntax error status")
    check_eq(doc.get("position"), 16, "syntax error position")
    check_eq(doc.get("length"), 3, "syntax error length")
    check_eq(doc.get("query"), q, "syntax error query")
    check(doc.get("error", "").startswith("expected a value after '==', found 'and' at position 16"),
          f"syntax error message {doc}")
    st, doc = c.get_json("/api/v1/stream?" + urllib.parse.urlencode({"q": "(http"}))
    check_eq(st, 400, "stream with a bad query is not a stream")
    check("missing ')'" in doc["error"], "stream error message")

    # malformed JSON, wrong shapes, partial rejection
    st, h, b = c.request("POST", "/api/v1/entries", b'{"entries": [ {"timestamp": 1,, ]}')
    doc = json.loads(b)
    check_eq(st, 400, "malformed JSON")
    check(doc["error"].startswith("malformed JSON at line 1, column "), f"malformed message {doc}")
    st, h, b = c.request("POST", "/api/v1/entries", b'[1,2]')
    check_eq((st, json.loads(b)), (400, {"error": 'body: expected an object {"entries": [...]}'}), "array body")
    bad = [dict(entries[0]), dict(entries[1]), {"timestamp": 5}, "nope", dict(entries[2])]
    bad[1] = json.loads(json.dumps(bad[1]))
    bad[1]["protocol"]["name"] = 7
    bad[4] = json.loads(json.dumps(bad[4]))
    bad[4]["dst"]["port"] = 70000
    st, doc = c.post_entries(bad)
    check_eq(st, 200, "partial batch")
    check_eq(doc, {"accepted": 1, "rejected": [
        {"index": 1, "error": "entries[1].protocol.name: expected a string, found an integer"},
        {"index": 2, "error": "entries[2].protocol: missing (required)"},
        {"index": 3, "error": "entries[3]: expected an entry object, found a string"},
        {"index": 4, "error": "entries[4].dst.port: expected a port number (0-65535), found an out-of-range number"},
    ]}, "rejections by index")
    check_eq(c.query_ids("id > 24"), [25], "the good entry of the partial batch was kept")
    tiny = {"timestamp": 1, "protocol": {"name": "tcp"}}
    st, doc = c.post_entries([tiny] * 5001)
    check_eq((st, doc), (413, {"error": "batch of 5001 entries exceeds the limit of 5000 (--max-batch)"}), "batch too big")
    big = b'{"entries":[' + b'{"timestamp":1,"protocol":{"name":"tcp"},"summary":"' + b'x' * (1536 * 1024) + b'"}]}'
    st, h, b = c.request("POST", "/api/v1/entries", big)
    check_eq(st, 413, "body too big")
    check("exceeds the limit of 1048576 bytes" in json.loads(b)["error"], "413 message")
    # far beyond --max-body, libevent refuses from the Content-Length alone
    with socket.create_connection(("127.0.0.1", c.port), timeout=30) as s:
        s.sendall(b"POST /api/v1/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + c.token.encode()
                  + b"\r\nContent-Length: 100000000\r\n\r\n{")
        check(s.recv(100).startswith(b"HTTP/1.1 413"), "body far too big (Content-Length)")

    # registration
    st, h, b = c.request("POST", "/api/v1/register", {"pod": {"name": "p", "namespace": "n", "ip": "10.9.9.9"}})
    check_eq((st, json.loads(b)), (200, {"ok": True}), "register")
    st, h, b = c.request("POST", "/api/v1/register", {"pod": {"name": "p", "labels": {"a": 1}, "ip": "1.1.1.1"}})
    check_eq((st, json.loads(b)), (400, {"error": 'pod.labels["a"]: expected a string, found an integer'}), "bad register")

    # stats, metrics, health
    st, s = c.get_json("/api/v1/stats")
    check_eq(st, 200, "stats")
    check_eq(s["entries"], 25, "stats entries")
    check_eq(s["rejected"], 4, "stats rejected")
    check_eq(s["protocols"]["http"], 13, "stats http (12 + entry 25)")
    check_eq(s["protocols"]["redis"], 4, "stats redis")
    check_eq(s["namespaces"], ["bookinfo", "default", "guestbook", "infra", "kube-system"], "stats namespaces")
    check(isinstance(s["uptime"], int) and isinstance(s["rate"], (int, float)), "stats uptime/rate")
    st, text = c.get_text("/metrics")
    check("sidetap_collector_entries_stored 25\n" in text, "metrics stored")
    check("sidetap_collector_ingest_unauthorized_total 3\n" in text, "metrics 401s")
    check_eq(c.get_text("/healthz"), (200, "ok\n"), "healthz")
    check_eq(c.get_text("/readyz"), (200, "ok\n"), "readyz")
    st, doc = c.get_json("/api/v1/nope")
    check_eq(st, 404, "unknown API path")

    # service map over the fixtures (timestamps are in 2025: window=all)
    st, m = c.get_json("/api/v1/servicemap?window=all")
    check_eq(st, 200, "servicemap")
    edges = {e["id"]: e for e in m["edges"]}
    e = edges.get("bookinfo/productpage-v1->bookinfo/details-v1:http")
    check(e is not None, f"productpage->details edge in {sorted(edges)}")
    if e:
        check_eq((e["requests"], e["errors"], e["bytes"]), (4, 0, 4 * (120 + 111)), "edge counts (1, 4, 8, 25)")
        check_eq(e["top"], [{"name": "GET /details/0", "count": 2}, {"name": "GET /details/99", "count": 1},
                            {"name": "GET /health", "count": 1}], "edge top")
        check_eq((e["p50"], e["p99"]), (2.0, 2.0), "edge latency")
    e = edges.get("guestbook/frontend->guestbook/redis-leader:redis")
    check(e is not None and e["requests"] == 3 and e["errors"] == 1 and e["top"][0] == {"name": "SET guestbook:1", "count": 1}
          or e["top"][0]["count"] == 1, f"redis edge {e}")
    nodes = {n["id"]: n for n in m["nodes"]}
    check_eq(nodes.get("bookinfo/details-v1", {}).get("kind"), "workload", "workload node")
    check_eq(nodes.get("93.184.216.34", {}).get("kind"), None, "external named host")
    check_eq(nodes.get("example.com", {}).get("kind"), "external", "external host node")
    check_eq(nodes.get("10.1.0.1", {}).get("kind"), "external", "external ip node")
    st, m2 = c.get_json("/api/v1/servicemap?" + urllib.parse.urlencode({"window": "all", "q": "redis"}))
    check_eq(sorted(e["id"] for e in m2["edges"]), ["default/cache->guestbook/redis-leader:redis",
                                                    "guestbook/frontend->guestbook/redis-leader:redis"], "servicemap q")
    st, m3 = c.get_json("/api/v1/servicemap?window=15m")
    check_eq((st, m3["edges"], m3["window"]), (200, [], "15m"), "servicemap window excludes 2025")
    st, doc = c.get_json("/api/v1/servicemap?window=forever")
    check_eq(st, 400, "bad window")

    # HAR
    st, h, b = c.request("GET", "/api/v1/export.har?" + urllib.parse.urlencode({"q": "http or grpc"}), token=False)
    check_eq(st, 200, "har")
    check("attachment" in h.get("Content-Disposition", ""), "har attachment")
    har = json.loads(b)
    check_eq(har["log"]["version"], "1.2", "har version")
    check_eq(len(har["log"]["entries"]), 16, "har entries (14 http + 2 grpc)")
    # the HAR 1.2 schema, by har-validator (tests/collector/har, npm ci in scripts/test)
    har_dir = os.path.join(HERE, "har")
    check(os.path.isdir(os.path.join(har_dir, "node_modules", "har-validator")),
          "har-validator installed (cd tests/collector/har && npm ci)")
    with tempfile.TemporaryDirectory() as td:
        good, bad = os.path.join(td, "good.har"), os.path.join(td, "bad.har")
        with open(good, "wb") as f:
            f.write(b)
        broken = json.loads(b)
        del broken["log"]["entries"][0]["request"]["method"]
        with open(bad, "w") as f:
            json.dump(broken, f)
        p = subprocess.run(["node", os.path.join(har_dir, "validate.js"), good], capture_output=True, text=True)
        check(p.returncode == 0 and "valid HAR: 16 entries" in p.stdout, f"har-validator accepts it: {p.stdout}{p.stderr}")
        p = subprocess.run(["node", os.path.join(har_dir, "validate.js"), bad], capture_output=True, text=True)
        check(p.returncode == 1 and "method" in p.stderr, f"har-validator refuses a broken copy: {p.stderr}")
    first = har["log"]["entries"][0]
    check_eq(first["request"]["url"], "http://details:9080/details/0", "har url")
    check_eq(first["startedDateTime"], "2025-11-25T10:00:01.000Z", "har time")

    # UI: the embedded bundle (caching headers, 304, gzip) or the placeholder; SPA fallback
    st, h, body = c.request("GET", "/", token=False)
    check_eq(st, 200, "ui root")
    check(h.get("Content-Type", "").startswith("text/html"), "ui root is html")
    if "ETag" in h:
        check_eq(h.get("Cache-Control"), "no-cache", "index.html revalidated")
        st2, h2, b2 = c.request("GET", "/", headers={"If-None-Match": h["ETag"]}, token=False)
        check_eq((st2, b2), (304, b""), "If-None-Match answers 304")
        st3, h3, gz = c.request("GET", "/", headers={"Accept-Encoding": "gzip, deflate"}, token=False)
        if h3.get("Content-Encoding") == "gzip":
            check_eq(gzip.decompress(gz), body, "gzip body is the same page")
        m = re.search(rb'["\'](/assets/[^"\']+)["\']', body)
        check(m is not None, "index.html references hashed assets")
        if m:
            st4, h4, b4 = c.request("GET", m.group(1).decode(), token=False)
            check_eq((st4, h4.get("Cache-Control")), (200, "public, max-age=31536000, immutable"),
                     "hashed asset cached for good")
        st5, h5, b5 = c.request("GET", "/assets/no-such-file.js", token=False)
        check_eq(st5, 404, "missing asset is 404, not index.html")
    else:
        check(b"UI was not built" in body, "placeholder page says the UI was not built")
    st2, h2, b2 = c.request("GET", "/some/spa/route", token=False)
    check_eq((st2, b2), (200, body), "SPA routes fall back to index.html")
finally:
    c.stop()
    c.close()
# saturation: --max-rate answers 503 + Retry-After before parsing, and recovers
c = Collector(binary, "--max-rate", "100")
try:
    tiny = {"timestamp": 1, "protocol": {"name": "tcp"}}
    st, doc = c.post_entries([tiny] * 80)
    check_eq((st, doc["accepted"]), (200, 80), "under the rate")
    st, h, b = c.request("POST", "/api/v1/entries", {"entries": [tiny] * 50})
    check_eq(st, 503, "over the rate")
    check_eq(h.get("Retry-After"), "1", "Retry-After")
    check("saturated" in json.loads(b)["error"], "503 message")
    time.sleep(1.3)
    st, doc = c.post_entries([tiny] * 50)
    check_eq(st, 200, "accepted again the next second")
    st, text = c.get_text("/metrics")
    check("sidetap_collector_ingest_saturated_total 1\n" in text, "saturated metric")

    # garbage never crashes it: mutated batches, odd queries
    rnd = random.Random(1234)
    base = json.dumps({"entries": fixture_entries()[:6]}).encode()
    for i in range(300):
        b = bytearray(base)
        for _ in range(rnd.randint(1, 8)):
            op = rnd.random()
            pos = rnd.randrange(len(b))
            if op < 0.4:
                b[pos] = rnd.randrange(256)
            elif op < 0.7:
                del b[pos:pos + rnd.randint(1, 20)]
            else:
                b[pos:pos] = rnd.choice([b'"', b'{', b']', b'null', b'-1', b'1e999', b'\\u0000', b'\xff'])
        st, h, body = c.request("POST", "/api/v1/entries", bytes(b))
        if st in (503,):
            time.sleep(1.1)
            continue
        check(st in (200, 400), f"mutated batch {i}: status {st}")
        check("error" in json.loads(body) or "accepted" in json.loads(body), f"mutated batch {i}: answer")
    for q in ["(" * 100, "a" * 5000, "\x01", "request.headers[\"\xff\"] == 1", "x.startsWith(\"", "1 == 1 ==",
              "timestamp >= now() - 99999999999999d", "dns.questions[999999999].name == 1"]:
        st, doc = c.get_json("/api/v1/entries?" + urllib.parse.urlencode({"q": q}))
        check(st in (200, 400), f"query {q[:20]!r}: {st}")
    check_eq(c.get_text("/healthz"), (200, "ok\n"), "alive after the garbage")
finally:
    c.stop()
    c.close()
done()
