#!/usr/bin/env python3
"""Bookinfo, as the seed walkthrough deploys it: productpage calls details and reviews;
reviews v2 and v3 call ratings. Every service answers JSON over HTTP/1.1 on port 9080.

    bookinfo.py SERVICE [--version v1|v2|v3] [--port 9080] [--namespace bookinfo]

Peers are reached by their Service names (details, reviews, ratings), resolved through
the pod's resolv.conf search path, so every call also makes real DNS traffic.
A product id that does not exist answers 404, and every service has /health.
"""
import argparse
import http.client
import json
import socket
import sys

sys.dont_write_bytecode = True
from appserver import JSONHandler, pick_address, serve  # noqa: E402

BOOKS = {
    0: {"id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback",
        "pages": 200, "publisher": "PublisherA", "language": "English",
        "ISBN-10": "1234567890", "ISBN-13": "123-1234567890"},
    1: {"id": 1, "author": "Christopher Marlowe", "year": 1604, "type": "hardcover",
        "pages": 96, "publisher": "PublisherB", "language": "English",
        "ISBN-10": "0987654321", "ISBN-13": "098-0987654321"},
}
REVIEWS = [
    {"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare. "
                                     "The slapstick humour is refreshing!"},
    {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining. The play lacks "
                                     "thematic depth when compared to other plays by Shakespeare."},
]
RATINGS = {0: {"Reviewer1": 5, "Reviewer2": 4}, 1: {"Reviewer1": 3, "Reviewer2": 4}}


def call(host, path, timeout=2.0):
    """GET http://host:9080/path; returns (status, parsed JSON or None). Resolves every
    time (like an app without a DNS cache) and picks one of the A records."""
    try:
        conn = http.client.HTTPConnection(pick_address(host, 9080), 9080, timeout=timeout)
        conn.request("GET", path, headers={"Host": f"{host}:9080", "User-Agent": "bookinfo/1.0",
                                           "Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, None
    except OSError as e:
        return 503, {"error": str(e)}


class Handler(JSONHandler):
    server_version = "bookinfo"

    def product_id(self, prefix):
        try:
            return int(self.path[len(prefix):].split("?")[0])
        except ValueError:
            return -1

    def do_GET(self):
        svc, version = self.server.service, self.server.version
        if self.path == "/health":
            return self.send(200, {"status": "Healthy"})
        if svc == "details" and self.path.startswith("/details/"):
            pid = self.product_id("/details/")
            if pid in BOOKS:
                return self.send(200, BOOKS[pid])
            return self.send(404, {"error": f"product {pid} not found"})
        if svc == "ratings" and self.path.startswith("/ratings/"):
            pid = self.product_id("/ratings/")
            if pid in RATINGS:
                return self.send(200, {"id": pid, "ratings": RATINGS[pid]})
            return self.send(404, {"error": f"ratings for {pid} not found"})
        if svc == "reviews" and self.path.startswith("/reviews/"):
            pid = self.product_id("/reviews/")
            reviews = [dict(r) for r in REVIEWS]
            if version in ("v2", "v3"):
                status, ratings = call("ratings", f"/ratings/{pid}")
                stars = (ratings or {}).get("ratings", {}) if status == 200 else {}
                color = "black" if version == "v2" else "red"
                for r in reviews:
                    if r["reviewer"] in stars:
                        r["rating"] = {"stars": stars[r["reviewer"]], "color": color}
                    else:
                        r["rating"] = {"error": "Ratings service is currently unavailable"}
            return self.send(200, {"id": pid, "podname": socket.gethostname(),
                                        "clustername": "null", "reviews": reviews})
        if svc == "productpage" and self.path.startswith("/api/v1/products/"):
            pid = self.product_id("/api/v1/products/")
            dstatus, details = call("details", f"/details/{pid}")
            if dstatus == 404:
                return self.send(404, {"error": f"product {pid} not found"})
            rstatus, reviews = call("reviews", f"/reviews/{pid}")
            return self.send(200, {"id": pid, "details": details, "reviews": reviews,
                                        "detailsStatus": dstatus, "reviewsStatus": rstatus})
        if svc == "productpage" and self.path.startswith("/productpage"):
            _, details = call("details", "/details/0")
            _, reviews = call("reviews", "/reviews/0")
            return self.send(200, {"title": "The Comedy of Errors", "details": details,
                                        "reviews": reviews})
        self.send(404, {"error": f"no route for {self.path}"})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("service", choices=["productpage", "details", "reviews", "ratings"])
    p.add_argument("--version", default="v1")
    p.add_argument("--port", type=int, default=9080)
    args = p.parse_args()
    return serve(args.port, Handler, f"bookinfo {args.service} {args.version} on :{args.port}",
                 service=args.service, version=args.version)


if __name__ == "__main__":
    sys.exit(main())
