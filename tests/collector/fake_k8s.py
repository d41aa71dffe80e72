"""A small fake Kubernetes API server for the collector's k8s client: GET /api/v1/{pods,
services,endpoints} lists (paged with `continue` when ?limit is smaller than the list) and
?watch=1 streams JSON lines that the test pushes with send(). Records the Authorization
headers it saw."""
import json
import queue
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCES = ("pods", "services", "endpoints")


class FakeAPI:
    def __init__(self, objects):
        self.objects = {r: list(objects.get(r, [])) for r in RESOURCES}
        self.watches = {r: [] for r in RESOURCES}  # queues of open watches
        self.auth = []
        self.requests = []
        self.rv = 100
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                qs = dict(urllib.parse.parse_qsl(u.query))
                api.auth.append(self.headers.get("Authorization"))
                api.requests.append(self.path)
                parts = u.path.strip("/").split("/")
                if len(parts) != 3 or parts[:2] != ["api", "v1"] or parts[2] not in RESOURCES:
                    self.send_error(404)
                    return
                res = parts[2]
                if qs.get("watch") in ("1", "true"):
                    q = queue.Queue()
                    with api.lock:
                        api.watches[res].append(q)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    try:
                        while True:
                            ev = q.get()
                            if ev is None:
                                break
                            self.wfile.write(json.dumps(ev).encode() + b"\n")
                            self.wfile.flush()
                    except OSError:
                        pass
                    return
                items = api.objects[res]
                start = int(qs.get("continue", "0") or 0)
                limit = int(qs.get("limit", "1000"))
                page = items[start:start + limit]
                meta = {"resourceVersion": str(api.rv)}
                if start + limit < len(items):
                    meta["continue"] = str(start + limit)
                body = json.dumps({"kind": "List", "metadata": meta, "items": page}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def send(self, res, type_, obj):
        with self.lock:
            self.rv += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
            for q in self.watches[res]:
                q.put({"type": type_, "object": obj})

    def watching(self, res):
        with self.lock:
            return len(self.watches[res])

    def close(self):
        with self.lock:
            for qs in self.watches.values():
                for q in qs:
                    q.put(None)
        self.server.shutdown()
        self.server.server_close()


def pod(name, ns, ip, node="node-1", owner=None, labels=None, host_network=False, sa="default"):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node, "serviceAccountName": sa, "hostNetwork": host_network},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def service(name, ns, ip):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "clusterIPs": [ip]}}


def endpoints(name, ns, addrs):
    return {"metadata": {"name": name, "namespace": ns},
            "subsets": [{"addresses": [{"ip": ip, "targetRef": {"kind": "Pod", "name": p}} for ip, p in addrs]}]}
