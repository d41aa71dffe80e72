#!/usr/bin/env python3
"""End to end on the network-namespace node (tests/harness): real nginx, redis-server,
curl and redis-cli in pods injected with sidetap-init + sidetap-proxy, shipping to the real
sidetap-collector in its own pod. The queries must return exactly the calls that were
made: each call between two injected pods once (both proxies report it; the collector
joins them), with both identities.
usage: test_e2e.py SIDETAP_COLLECTOR SIDETAP_PROXY SIDETAP_INIT"""
import json
import os
import sys
import tempfile
import time
import types
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from harness import Node  # noqa: E402

from collector_lib import check, check_eq, done  # noqa: E402

if os.geteuid() != 0:
    print("SKIP: needs root (network namespaces)")
    sys.exit(77)
COLLECTOR, PROXY, INIT = sys.argv[1:4]
TOKEN = "e2e-token-%d" % os.getpid()

NGINX_CONF = """
worker_processes 1;
error_log %(dir)s/nginx.err.log;
pid %(dir)s/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %(dir)s;
  proxy_temp_path %(dir)s;
  fastcgi_temp_path %(dir)s;
  uwsgi_temp_path %(dir)s;
  scgi_temp_path %(dir)s;
  server {
    listen 9080;
    location = /details/0 { default_type application/json; return 200 '{"id":0,"author":"William Shakespeare"}'; }
    location = /health { return 200 "ok"; }
    location / { return 404; }
  }
}
"""


def api(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as r:
        return json.loads(r.read())


def query(port, q):
    return api(port, "/api/v1/entries?" + urllib.parse.urlencode({"q": q, "limit": 1000}))["entries"]


with tempfile.TemporaryDirectory(prefix="sidetap-e2e-") as tmp, Node(name="node-1") as node:
    os.chmod(tmp, 0o755)
    try:
        node.add_dns()
        cpod = node.add_pod("sidetap-collector-0", namespace="sidetap", workload="sidetap-collector")
        cproc = cpod.spawn([COLLECTOR, "--listen", "0.0.0.0:80", "--no-k8s", "--dedup-hold", "3s"],
                           name="collector", env={"SIDETAP_TOKEN": TOKEN})
        cpod.wait_port(80, proc=cproc)
        coll = types.SimpleNamespace(url="http://%s:80" % cpod.ip, token=TOKEN)
        hport = node.expose(cpod, 80)

        details = node.add_pod("details-v1-5f4d584748-8mk9p", namespace="bookinfo",
                               labels={"app": "details"}, workload="details-v1")
        product = node.add_pod("productpage-v1-7d6cfb7dfd-x2x4b", namespace="bookinfo",
                               labels={"app": "productpage"}, workload="productpage-v1")
        redis = node.add_pod("redis-leader-0", namespace="guestbook", labels={"app": "redis"},
                             workload="redis-leader")
        front = node.add_pod("frontend-6b9d8c7f6-abcde", namespace="guestbook",
                             labels={"app": "guestbook"}, workload="frontend")
        details_fqdn = node.add_service("details", details)
        redis_fqdn = node.add_service("redis-leader", redis)
        for pod in (details, product, redis, front):
            pod.inject(init=INIT, proxy=PROXY, collector=coll)

        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"dir": tmp})
        ng = details.spawn(["nginx", "-c", conf, "-g", "daemon off;"], name="nginx")
        details.wait_port(9080, proc=ng)
        rs = redis.spawn(["redis-server", "--port", "6379", "--bind", "0.0.0.0", "--save", "",
                          "--appendonly", "no", "--protected-mode", "no"], name="redis")
        redis.wait_port(6379, proc=rs)
        time.sleep(0.5)

        # the traffic
        codes = []
        for path in ("/details/0", "/details/99", "/health"):
            r = product.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                             "http://%s:9080%s" % (details_fqdn, path)])
            codes.append(r.stdout)
        check_eq(codes, ["200", "404", "200"], "curl status codes")
        for args in (["SET", "guestbook:1", "hello"], ["GET", "guestbook:1"]):
            r = front.run(["redis-cli", "-h", redis_fqdn, *args])
            check(r.stdout.strip() in ("OK", "hello"), "redis-cli %s: %r" % (args, r.stdout))

        # wait for the entries (proxies batch; the collector holds one side up to 3 s)
        deadline = time.time() + 40
        while time.time() < deadline:
            http = query(hport, "http")
            red = query(hport, "redis")
            st = api(hport, "/api/v1/stats")
            if len(http) >= 3 and len(red) >= 2 and st["held"] == 0:
                break
            time.sleep(0.5)
        time.sleep(4)  # anything still on its way (a duplicate would show up now)

        http = query(hport, "http")
        check_eq(sorted(e["request"]["path"] for e in http), ["/details/0", "/details/99", "/health"],
                 "every HTTP call exactly once")
        one = query(hport, 'http and request.path == "/details/0"')
        check_eq(len(one), 1, "/details/0 once")
        if one:
            e = api(hport, "/api/v1/entries/" + one[0]["id"])
            check_eq((e["src"].get("name"), e["src"].get("namespace"), e["src"].get("workload"), e["src"]["ip"]),
                     (product.name, "bookinfo", "productpage-v1", product.ip), "client identity")
            check_eq((e["dst"].get("name"), e["dst"].get("workload"), e["dst"]["ip"], e["dst"]["port"]),
                     (details.name, "details-v1", details.ip, 9080), "server identity")
            check_eq((e.get("merged"), e["outgoing"], e["node"]["name"], e["response"]["status"]),
                     (True, True, "node-1", 200), "joined from both proxies")
            check_eq(e["response"]["body"]["data"], '{"id":0,"author":"William Shakespeare"}', "body captured")
        ids404 = [e["id"] for e in query(hport, "http and response.status == 404")]
        check_eq(len(ids404), 1, "one 404")
        check_eq([e["id"] for e in query(
            hport, '!dns and request.path != "/health" and request.path != "/healthz" and response.status == 404')],
            ids404, "query 5 of the brief")
        check_eq(len(query(hport, '!dns and !error and src.namespace == "bookinfo" and http')), 3,
                 "bookinfo HTTP calls")
        red = query(hport, 'redis and src.namespace == "guestbook"')
        check_eq(sorted(e["request"]["method"] for e in red), ["GET", "SET"], "the redis commands, once each")
        check(all(e.get("merged") and e["dst"].get("workload") == "redis-leader" for e in red),
              "redis calls joined with the server's identity")
        dns = query(hport, 'dns and src.namespace == "bookinfo" and !error and request.path == "%s"' % details_fqdn)
        check(len(dns) >= 1, "the DNS lookups of details are there")
        m = api(hport, "/api/v1/servicemap?window=15m")
        edges = {e["id"]: e for e in m["edges"]}
        e = edges.get("bookinfo/productpage-v1->bookinfo/details-v1:http")
        check(e is not None and e["requests"] == 3, "service map edge productpage -> details: %s" % e)
        st = api(hport, "/api/v1/stats")
        check_eq((st["rejected"], st["merged"] >= 5), (0, True), "nothing rejected; calls merged")
        for pod in (details, product, redis, front):
            rc, errs = pod.stop_proxy()
            check_eq(errs, [], "%s proxy sanitizer report" % pod.name)
        cproc.stop()
        check(not cproc.sanitizer_errors(), "collector sanitizer report: %s" % cproc.sanitizer_errors())
    except BaseException:
        node.dump_logs(lines=40)
        raise
    if __import__("collector_lib").failures:
        node.dump_logs(lines=40)
done()
