#!/usr/bin/env python3
"""Identity and deduplication: registrations fill in the peer; a call reported by both
proxies is stored once with both identities, whichever report comes first; a report
whose counterpart never comes is stored alone after the hold; the live stream shows
each call once.
usage: test_dedup.py path/to/sidetap-collector"""
import json
import sys
import time

from collector_lib import SSE, Collector, check, check_eq, done

binary = sys.argv[1]

CLIENT = {"name": "frontend-abc", "namespace": "shop", "node": "node-a", "ip": "10.2.0.1",
          "ips": ["10.2.0.1", "fd00::1"], "workload": "frontend", "serviceAccount": "frontend",
          "labels": {"app": "frontend"}}
SERVER = {"name": "cart-xyz", "namespace": "shop", "node": "node-b", "ip": "10.2.0.2",
          "workload": "cart", "labels": {"app": "cart"}}
OTHER = {"name": "db-0", "namespace": "data", "node": "node-c", "ip": "10.2.0.4", "workload": "db"}


def side(pod, port):
    return {"ip": pod["ip"], "port": port, "name": pod["name"], "namespace": pod["namespace"],
            "node": pod["node"], "workload": pod["workload"], "labels": pod["labels"]} if "labels" in pod else \
        {"ip": pod["ip"], "port": port, "name": pod["name"], "namespace": pod["namespace"],
         "node": pod["node"], "workload": pod["workload"]}


def report(outgoing, cport, seq, path, ts=1764064800000):
    """One call from CLIENT:cport to SERVER:8080 as one proxy reports it."""
    if outgoing:  # the client's proxy knows the client
        src, dst, node = side(CLIENT, cport), {"ip": SERVER["ip"], "port": 8080}, CLIENT["node"]
    else:  # the server's proxy knows the server
        src, dst, node = {"ip": CLIENT["ip"], "port": cport}, side(SERVER, 8080), SERVER["node"]
    return {"timestamp": ts + seq, "elapsedTime": 3.0 if outgoing else 1.0,
            "protocol": {"name": "http", "version": "1.1"}, "src": src, "dst": dst,
            "node": {"name": node}, "outgoing": outgoing, "seq": seq,
            "request": {"method": "GET", "path": path, "url": path, "headers": {"Host": "cart"}},
            "response": {"status": 200, "statusText": "OK"}, "summary": "GET " + path}


c = Collector(binary, "--dedup-hold", "2s")
try:
    for pod in (CLIENT, SERVER, OTHER):
        st, h, b = c.request("POST", "/api/v1/register", {"pod": pod})
        check_eq(st, 200, f"register {pod['name']}")
    live = SSE(c.port, "")

    # identity fill: an entry (no seq: never held) whose peer registered
    e = {"timestamp": 1764064800000, "protocol": {"name": "tcp"}, "src": side(CLIENT, 5555),
         "dst": {"ip": "10.2.0.4", "port": 5432}, "node": {"name": "node-a"}, "outgoing": True}
    st, doc = c.post_entries([e])
    st, full = c.get_json("/api/v1/entries/1")
    check_eq(full["dst"], {"ip": "10.2.0.4", "port": 5432, "name": "db-0", "namespace": "data",
                           "node": "node-c", "workload": "db"}, "peer filled from the registration")
    check_eq(full["src"]["name"], "frontend-abc", "own side kept")
    st, doc = c.post_entries([dict(e, dst={"ip": "fd00::1", "port": 1})])
    check_eq(c.get_json("/api/v1/entries/2")[1]["dst"].get("name"), "frontend-abc", "second IP of a registration")

    # outgoing first, then incoming
    st, doc = c.post_entries([report(True, 40000, 0, "/cart/1")])
    check_eq(c.query_ids('request.path == "/cart/1"'), [], "held while waiting for the other side")
    st, doc = c.post_entries([report(False, 40000, 0, "/cart/1")])
    ids = c.query_ids('request.path == "/cart/1"')
    check_eq(len(ids), 1, "stored once")
    if ids:
        m = c.get_json(f"/api/v1/entries/{ids[0]}")[1]
        check_eq((m["src"]["name"], m["src"]["workload"], m["dst"]["name"], m["dst"]["workload"]),
                 ("frontend-abc", "frontend", "cart-xyz", "cart"), "both identities")
        check_eq((m["outgoing"], m["node"]["name"], m["serverNode"], m["merged"], m["elapsedTime"]),
                 (True, "node-a", "node-b", True, 3.0), "client's view, server node")
    # incoming first, then outgoing; and two calls on one connection (seq 0, 1)
    st, doc = c.post_entries([report(False, 40002, 0, "/cart/2"), report(False, 40002, 1, "/cart/3")])
    st, doc = c.post_entries([report(True, 40002, 1, "/cart/3"), report(True, 40002, 0, "/cart/2")])
    for p in ("/cart/2", "/cart/3"):
        ids = c.query_ids(f'request.path == "{p}"')
        check_eq(len(ids), 1, f"{p} stored once")
        if ids:
            m = c.get_json(f"/api/v1/entries/{ids[0]}")[1]
            check_eq((m["src"]["name"], m["dst"]["name"], m.get("merged")), ("frontend-abc", "cart-xyz", True),
                     f"{p} merged")
    check_eq(c.query_ids('src.workload == "frontend" and dst.workload == "cart"').__len__(), 3, "KFL sees both sides")

    # only one side reports: stored alone after the hold
    posted = time.monotonic()
    st, doc = c.post_entries([report(True, 40004, 0, "/cart/4")])
    check_eq(c.query_ids('request.path == "/cart/4"'), [], "held")
    while not c.query_ids('request.path == "/cart/4"') and time.monotonic() < posted + 15:
        time.sleep(0.1)
    check(time.monotonic() - posted >= 2.0, "held for the 2 s of --dedup-hold")
    ids = c.query_ids('request.path == "/cart/4"')
    check_eq(len(ids), 1, "stored alone after the hold")
    if ids:
        m = c.get_json(f"/api/v1/entries/{ids[0]}")[1]
        check("merged" not in m, "not merged")
        check_eq(m["dst"].get("name"), "cart-xyz", "peer still named from the registration")

    # a peer that is not injected: stored at once
    ext = report(True, 40006, 0, "/ext")
    ext["dst"] = {"ip": "192.0.2.10", "port": 443}
    st, doc = c.post_entries([ext])
    check_eq(len(c.query_ids('request.path == "/ext"')), 1, "non-injected peer: no hold")

    st, s = c.get_json("/api/v1/stats")
    check_eq((s["merged"], s["held"]), (3, 0), "stats merged/held")
    live.pump(lambda x: len(x.ids()) >= 7, timeout=10)
    paths = [json.loads(e["data"]).get("request", {}).get("path") for e in live.of("entry")]
    check_eq(sorted(p for p in paths if p), ["/cart/1", "/cart/2", "/cart/3", "/cart/4", "/ext"],
             "the live stream shows each call once")
    live.s.close()
finally:
    c.stop()
    c.close()
done()
