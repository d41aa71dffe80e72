"""A small fake Kubernetes API server for the injector's tests: real HTTP on loopback,
the few endpoints the injector calls, a bearer token check, and a record of every call.

Endpoints: GET /version; GET /api/v1/namespaces/NAME; GET and PATCH (application/json-patch+json,
ops `test` and `add`/`replace`) /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/NAME.
"""
import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "test-token-0123"
MWC_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"


def webhook_config(name="sidetap-injector"):
    hook = {
        "clientConfig": {"service": {"name": "sidetap-injector", "namespace": "sidetap",
                                     "path": "/mutate", "port": 443}},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                   "resources": ["pods"]}],
        "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
    }
    a = copy.deepcopy(hook)
    a["name"] = "namespace.sidetap.io"
    b = copy.deepcopy(hook)
    b["name"] = "object.sidetap.io"
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name, "resourceVersion": "1"}, "webhooks": [a, b]}


def _pointer(doc, path):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    return parent, parts[-1]


class FakeAPI:
    def __init__(self, version=("1", "30"), namespaces=None):
        self.version = version
        self.namespaces = namespaces or {}
        self.forbidden = set()
        self.secrets = {}            # (namespace, name) -> Secret object
        self.secrets_forbidden = False
        self.mwc = webhook_config()
        self.calls = []
        self.patches = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def status(self, code, msg):
                self.send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "message": msg, "code": code})

            def handle_any(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with api.lock:
                    api.calls.append((method, self.path, self.headers.get("Content-Type"), body))
                if self.headers.get("Authorization") != "Bearer " + TOKEN:
                    return self.status(401, "Unauthorized")
                if method == "GET" and self.path == "/version":
                    return self.send(200, {"major": api.version[0], "minor": api.version[1],
                                           "gitVersion": "v%s.%s.2" % (api.version[0], api.version[1].rstrip("+"))})
                if self.path.startswith("/api/v1/namespaces/") and "/secrets" in self.path:
                    if api.secrets_forbidden:
                        return self.status(403, "secrets is forbidden")
                    parts = self.path.split("/")  # ['', 'api', 'v1', 'namespaces', NS, 'secrets', NAME?]
                    ns = parts[4]
                    if method == "GET" and len(parts) == 7:
                        sec = api.secrets.get((ns, parts[6]))
                        return self.send(200, sec) if sec else self.status(404, "secret not found")
                    if method == "POST" and len(parts) == 6:
                        sec = json.loads(body)
                        key = (ns, sec["metadata"]["name"])
                        with api.lock:
                            if key in api.secrets:
                                return self.status(409, "already exists")
                            api.secrets[key] = sec
                        return self.send(201, sec)
                if method == "GET" and self.path.startswith("/api/v1/namespaces/"):
                    name = self.path.rsplit("/", 1)[1]
                    if name in api.forbidden:
                        return self.status(403, 'namespaces "%s" is forbidden' % name)
                    if name not in api.namespaces:
                        return self.status(404, 'namespaces "%s" not found' % name)
                    return self.send(200, {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": name, "labels": api.namespaces[name]}})
                if self.path == MWC_PATH + api.mwc["metadata"]["name"]:
                    if method == "GET":
                        with api.lock:
                            return self.send(200, api.mwc)
                    if method == "PATCH":
                        if self.headers.get("Content-Type") != "application/json-patch+json":
                            return self.status(415, "unsupported patch type")
                        ops = json.loads(body)
                        with api.lock:
                            doc = copy.deepcopy(api.mwc)
                            try:
                                for op in ops:
                                    parent, key = _pointer(doc, op["path"])
                                    k = int(key) if isinstance(parent, list) else key
                                    if op["op"] == "test":
                                        if parent[k] != op["value"]:
                                            return self.status(422, "test failed: " + op["path"])
                                    elif op["op"] in ("add", "replace"):
                                        parent[k] = op["value"]
                                    else:
                                        return self.status(422, "unsupported op " + op["op"])
                            except (KeyError, IndexError, ValueError) as e:
                                return self.status(422, "bad path: %r" % e)
                            doc["metadata"]["resourceVersion"] = str(int(doc["metadata"]["resourceVersion"]) + 1)
                            api.mwc = doc
                            api.patches.append(ops)
                            return self.send(200, doc)
                return self.status(404, "not found")

            def do_GET(self):
                self.handle_any("GET")

            def do_POST(self):
                self.handle_any("POST")

            def do_PATCH(self):
                self.handle_any("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, method, path_prefix):
        with self.lock:
            return sum(1 for c in self.calls if c[0] == method and c[1].startswith(path_prefix))

    def ca_bundles(self):
        with self.lock:
            return [h["clientConfig"].get("caBundle") for h in self.mwc["webhooks"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
