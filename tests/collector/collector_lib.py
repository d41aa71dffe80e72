"""Helpers for the collector tests: start the real sidetap-collector on a free loopback
port, talk to it over HTTP, stop it and check it exited cleanly (sanitizers included)."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "entries.json")
TOKEN = "test-token-" + str(os.getpid())

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr)
    return cond


def check_eq(got, want, what):
    return check(got == want, f"{what}: got {got!r}, want {want!r}")


def done():
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("ok")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fixture_entries():
    with open(FIXTURES) as f:
        return json.load(f)["entries"]


class Collector:
    def __init__(self, binary, *args, data_dir=None, token=TOKEN, env=None):
        self.binary = binary
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.TemporaryDirectory(prefix="sidetap-collector-test-")
        self.data_dir = data_dir
        self.token = token
        self.log = open(os.path.join(self.tmp.name, "collector.log"), "w+")
        cmd = [binary, "--listen", f"127.0.0.1:{self.port}"]
        if "--k8s-api" not in args:
            cmd.append("--no-k8s")
        if data_dir:
            cmd += ["--data-dir", data_dir]
        cmd += list(args)
        e = dict(os.environ)
        e.pop("KUBERNETES_SERVICE_HOST", None)
        if token:
            e["SIDETAP_TOKEN"] = token
        else:
            cmd.append("--no-auth")
        if env:
            e.update(env)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        deadline = time.time() + 30
        while True:
            try:
                if self.get_text("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.log.seek(0)
                raise RuntimeError("collector did not start:\n" + self.log.read())
            time.sleep(0.05)

    def request(self, method, path, body=None, headers=None, token=True, timeout=60):
        h = dict(headers or {})
        if token and self.token:
            h.setdefault("Authorization", "Bearer " + self.token)
        data = body
        if body is not None and not isinstance(body, (bytes, bytearray)):
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get_text(self, path, headers=None):
        st, h, b = self.request("GET", path, headers=headers, token=False, timeout=5)
        return st, b.decode()

    def metric(self, name):
        """The value of an unlabelled metric in /metrics."""
        st, text = self.get_text("/metrics")
        return [int(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ")][0]

    def get_json(self, path):
        st, h, b = self.request("GET", path, token=False)
        return st, json.loads(b)

    def post_entries(self, entries, **kw):
        st, h, b = self.request("POST", "/api/v1/entries", {"entries": entries}, **kw)
        return st, json.loads(b) if b else None

    def query_ids(self, q, limit=1000):
        st, doc = self.get_json("/api/v1/entries?" + urllib.parse.urlencode({"q": q, "limit": limit}))
        if st != 200:
            return ("error", st, doc)
        return [int(e["id"]) for e in doc["entries"]]

    def stop(self, sig=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.seek(0)
        out = self.log.read()
        check(self.proc.returncode == 0, f"collector exited with {self.proc.returncode}:\n{out[-4000:]}")
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


class SSE:
    def __init__(self, port, q, rcvbuf=None):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(("127.0.0.1", port))
        self.s.settimeout(30)
        # HTTP/1.0: the stream is sent without chunked framing
        self.s.sendall(f"GET /api/v1/stream?{urllib.parse.urlencode({'q': q})} HTTP/1.0\r\n\r\n".encode())
        self.buf = b""
        self.events = []
        self.eof = False
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split()[1])
        self.headers = head.decode()

    def _recv(self):
        d = self.s.recv(65536)
        if not d:
            self.eof = True
            raise EOFError
        self.buf += d

    def pump(self, until, timeout=30):
        """Reads events until until(self) is true."""
        deadline = time.time() + timeout
        while not until(self):
            if time.time() > deadline:
                return False
            self.s.settimeout(max(0.1, deadline - time.time()))
            try:
                self._recv()
            except (EOFError, socket.timeout, ConnectionResetError):
                return until(self)
            finally:
                self._parse()
        return True

    def _parse(self):
        while b"\n\n" in self.buf:
            block, self.buf = self.buf.split(b"\n\n", 1)
            ev = {"event": "message", "data": ""}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    continue
                k, _, v = line.partition(": ")
                ev[k] = v
            if ev.get("data"):
                self.events.append(ev)

    def of(self, kind):
        return [e for e in self.events if e["event"] == kind]

    def ids(self):
        return [int(e["id"]) for e in self.of("entry")]
