#!/usr/bin/env python3
"""The Kubernetes client against a fake API server (fake_k8s.py): pods, Services and
endpoints are listed (paged) and watched, with the service-account token; peers of
entries get names from them; watch events add and remove names; readyz waits for the
first lists.
usage: test_k8s.py path/to/sidetap-collector"""
import os
import sys
import tempfile
import time

from collector_lib import Collector, check, check_eq, done
from fake_k8s import FakeAPI, endpoints, pod, service

binary = sys.argv[1]
pods = [pod(f"filler-{i}", "fill", f"10.8.{i // 250}.{i % 250 + 1}") for i in range(700)]
pods += [
    pod("details-v1-5f4d584748-8mk9p", "bookinfo", "10.4.0.13", node="node-2",
        owner=("ReplicaSet", "details-v1-5f4d584748"), labels={"app": "details"}, sa="bookinfo-details"),
    pod("redis-leader-0", "guestbook", "10.4.0.21", owner=("StatefulSet", "redis-leader")),
    pod("node-exporter-x", "monitoring", "192.168.1.5", host_network=True),
]
api = FakeAPI({"pods": pods,
               "services": [service("details", "bookinfo", "10.96.0.13")],
               "endpoints": [endpoints("legacy", "old", [("10.4.9.9", "legacy-abc")])]})


def tcp_to(ip, port=80):
    return {"timestamp": 1764064800000, "protocol": {"name": "tcp"}, "outgoing": True,
            "src": {"ip": "10.4.0.1", "port": 33333}, "dst": {"ip": ip, "port": port}}


with tempfile.TemporaryDirectory(prefix="sidetap-k8s-") as d:
    token = os.path.join(d, "token")
    with open(token, "w") as f:
        f.write("sa-token-123\n")
    c = Collector(binary, "--k8s-api", api.url, "--k8s-token-file", token,
                  "--k8s-ca-file", os.path.join(d, "no-ca.crt"))
    try:
        deadline = time.time() + 30
        while c.get_text("/readyz")[0] != 200 and time.time() < deadline:
            time.sleep(0.1)
        check_eq(c.get_text("/readyz"), (200, "ok\n"), "ready after the lists")
        check(all(a == "Bearer sa-token-123" for a in api.auth) and api.auth, "token sent")
        check(any("continue=" in r for r in api.requests if r.startswith("/api/v1/pods")), "pods listed in pages")
        deadline = time.time() + 30
        while not all(api.watching(r) for r in ("pods", "services", "endpoints")) and time.time() < deadline:
            time.sleep(0.1)
        check(all(api.watching(r) for r in ("pods", "services", "endpoints")), "watching all three")
        check(any("resourceVersion=100" in r and "watch=1" in r for r in api.requests), "watch from the list's version")

        st, doc = c.post_entries([tcp_to("10.4.0.13", 9080), tcp_to("10.96.0.13"), tcp_to("10.4.0.21", 6379),
                                  tcp_to("192.168.1.5"), tcp_to("10.4.9.9"), tcp_to("10.8.2.200")])
        check_eq(doc["accepted"], 6, "posted")
        got = {int(e["id"]): e["dst"] for e in c.get_json("/api/v1/entries?limit=10")[1]["entries"]}
        check_eq(got.get(1), {"ip": "10.4.0.13", "port": 9080, "name": "details-v1-5f4d584748-8mk9p",
                              "namespace": "bookinfo", "node": "node-2", "serviceAccount": "bookinfo-details",
                              "workload": "details-v1", "labels": {"app": "details"}}, "pod from the list")
        check_eq(got.get(2), {"ip": "10.96.0.13", "port": 80, "name": "details", "namespace": "bookinfo",
                              "service": "details"}, "Service IP")
        check_eq(got.get(3, {}).get("workload"), "redis-leader", "StatefulSet workload")
        check_eq(got.get(4), {"ip": "192.168.1.5", "port": 80}, "hostNetwork pod not used")
        check_eq((got.get(5, {}).get("name"), got.get(5, {}).get("service")), ("legacy-abc", "legacy"), "endpoints")
        check_eq(got.get(6, {}).get("name"), "filler-700"[:0] + "filler-" + str(2 * 250 + 199), "pod from the last page")

        # watch events
        api.send("pods", "ADDED", pod("new-pod", "bookinfo", "10.4.0.50", owner=("ReplicaSet", "ratings-v1-abc12")))
        api.send("pods", "DELETED", pod("redis-leader-0", "guestbook", "10.4.0.21"))
        api.send("services", "ADDED", service("ratings", "bookinfo", "10.96.0.50"))
        time.sleep(1.0)
        st, doc = c.post_entries([tcp_to("10.4.0.50"), tcp_to("10.4.0.21"), tcp_to("10.96.0.50")])
        got = {int(e["id"]): e["dst"] for e in c.get_json("/api/v1/entries?limit=3")[1]["entries"]}
        check_eq((got.get(7, {}).get("name"), got.get(7, {}).get("workload")), ("new-pod", "ratings-v1"), "ADDED pod")
        check_eq(got.get(8), {"ip": "10.4.0.21", "port": 80}, "DELETED pod forgotten")
        check_eq(got.get(9, {}).get("service"), "ratings", "ADDED service")
        check_eq(c.query_ids('dst.workload == "ratings-v1"'), [7], "KFL over names from Kubernetes")
    finally:
        out = c.stop()
        c.close()
        api.close()
    check("pods, services and endpoints synced" in out, "log says synced")
done()
