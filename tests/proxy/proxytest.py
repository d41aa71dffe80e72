#!/usr/bin/env python3
"""proxytest.py - focused tests of sidetap-proxy in a network namespace of their own.

    proxytest.py SCENARIO        (as root; env SIDETAP_PROXY = the binary)

Each run creates a namespace "stp<pid>" with loopback and a veth interface pod0 holding
the "pod IP" 10.77.0.1 (and 10.77.0.9, a second address DNS hands out), nat rules like
sidetap-init's (REDIRECT to 16001/16006/16053, uid 1717 exempt), then re-runs itself
inside the namespace, where it starts the real servers (servers.py, dnsmasq), the
collector stand-in (tests/lib/sink.py) and the proxy as uid 1717 (setpriv), and checks
exact bytes, entries and metrics. Everything it made is removed at the end, also on
failure. Scenarios: see SCENARIOS at the bottom.
"""
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True
from servers import blob  # noqa: E402  (the bytes the http server answers /blob with)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SIDETAP_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
PROXY = os.environ.get("SIDETAP_PROXY", "")
POD_IP = "10.77.0.1"
POD_IP6 = "fd77::1"
OTHER_IP = "10.77.0.9"
PY = sys.executable or "python3"

POD_ENV = {
    "POD_NAME": "web-7d6cfb7dfd-x2x4b",
    "POD_NAMESPACE": "shop",
    "POD_IP": POD_IP,
    "NODE_NAME": "node-1",
    "SERVICE_ACCOUNT": "web-sa",
    "SIDETAP_WORKLOAD": "web",
    "SIDETAP_LABELS": "app=web,tier=front",
}

# Ports redirected to the outbound listener (as sidetap-init would for all TCP).
OUT_PORTS = "8080,7000,7001,7002,7003,8086,8087"
DIRECT_PORT = 8085  # not redirected: the "without the proxy" path
BLACKHOLE_PORT = 8087  # the proxy's SYNs to it are dropped (connect timeout)
IN_PORT = 9090      # redirected to the inbound listener
SINK_PORT = 18080


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise Failure("timed out after %gs waiting for %s" % (timeout, what))


def have_parser(name):
    """True when the parsers library has a real module for `name` (they land one by one)."""
    path = os.path.join(ROOT, "parsers", name + ".c")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return "Placeholder" not in f.read(400)


class Env:
    """Processes of one scenario inside the namespace; all stopped by close()."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
                p.wait()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def servers(self, *specs):
        ready = self.path("servers.ready")
        self.spawn([PY, os.path.join(HERE, "servers.py"), "--ready", ready] + list(specs))
        wait_for(lambda: os.path.exists(ready), 10, "servers")

    def sink(self, *extra, port=SINK_PORT, name="sink"):
        ready = self.path(name + ".ready")
        out = self.path(name + ".jsonl")
        p = self.spawn([PY, os.path.join(ROOT, "tests", "lib", "sink.py"), "--listen", "127.0.0.1:%d" % port,
                        "--out", out, "--token", "s3cret", "--ready", ready] + list(extra))
        wait_for(lambda: os.path.exists(ready), 10, "sink")
        return p, out

    def proxy(self, env=None, args=(), collector=True, ready=True):
        e = dict(os.environ)
        e.update(POD_ENV)
        e.update({"SIDETAP_DRAIN_SECONDS": "2", "SIDETAP_FLUSH_SECONDS": "2", "SIDETAP_BATCH_MS": "50",
                  "SIDETAP_RESOLV_CONF": self.path("resolv.conf")})
        if collector:
            e.update({"SIDETAP_COLLECTOR_URL": "http://127.0.0.1:%d" % SINK_PORT, "SIDETAP_TOKEN": "s3cret"})
        e.update(env or {})
        log = open(self.path("proxy.log"), "ab")
        p = self.spawn(["setpriv", "--reuid", "1717", "--regid", "1717", "--clear-groups", PROXY] + list(args),
                       env=e, stdout=log, stderr=log)
        if ready:
            wait_for(lambda: p.poll() is not None or admin_get("/readyz")[0] == 200, 20, "proxy /readyz")
            check(p.poll() is None, "proxy exited at start:\n" + self.log())
        return p

    def log(self):
        try:
            with open(self.path("proxy.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, p, sig=signal.SIGTERM, timeout=20):
        p.send_signal(sig)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure("proxy did not stop within %ds after signal %d:\n%s" % (timeout, sig, self.log()))
        return rc


def admin_get(path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", 16020, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    except OSError:
        return 0, ""


def proc_cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics():
    status, text = admin_get("/metrics")
    eq(status, 200, "/metrics status")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def http_get(host, port, path):
    c = http.client.HTTPConnection(host, port, timeout=20)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def read_lines(path):
    """The sink's complete lines. It may be writing one right now: a line without its
    newline yet is left for the next read (a big entry reaches the file in pieces)."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]
    except FileNotFoundError:
        return []


def entries_of(path):
    return [e for e in read_lines(path) if "register" not in e]


def recv_all(s):
    out = bytearray()
    while True:
        d = s.recv(65536)
        if not d:
            return bytes(out)
        out += d


# ---------------------------------------------------------------- scenarios


def t_relay_http(env):
    """Bytes identical with and without the proxy; entries carry the pod identity and the
    upstream socket's port; registration first; metrics and health endpoints."""
    env.servers("http:8080", "http:%d" % DIRECT_PORT)
    _, sink = env.sink()
    p = env.proxy()
    eq(admin_get("/healthz")[0], 200, "/healthz")
    for size in (0, 1000, 3 << 20):
        s1, h1, direct = http_get(POD_IP, DIRECT_PORT, "/blob?size=%d" % size)
        s2, h2, proxied = http_get(POD_IP, 8080, "/blob?size=%d" % size)
        eq((s1, s2), (200, 200), "status")
        eq(hashlib.sha256(proxied).hexdigest(), hashlib.sha256(direct).hexdigest(), "sha256 of %d bytes" % size)
        eq(len(proxied), size, "body length")
    peer_port = int(h2["X-Peer-Port"])
    # a 2 MiB upload through the proxy is echoed unchanged
    c = http.client.HTTPConnection(POD_IP, 8080, timeout=20)
    up = blob(2 << 20)
    c.request("POST", "/echo", body=up)
    r = c.getresponse()
    eq(r.read() == up, True, "2 MiB echo identical")
    c.close()

    got = wait_for(lambda: len(entries_of(sink)) >= 4 and entries_of(sink), 15, "4 entries at the sink")
    lines = read_lines(sink)
    check("register" in lines[0], "first request to the collector is the registration: %r" % lines[0])
    reg = lines[0]["register"]
    eq(reg["name"], POD_ENV["POD_NAME"], "register name")
    eq(reg["namespace"], "shop", "register namespace")
    eq(reg["node"], "node-1", "register node")
    eq(reg["ip"], POD_IP, "register ip")
    eq(reg["ips"], [POD_IP], "register ips")
    eq(reg["workload"], "web", "register workload")
    eq(reg["serviceAccount"], "web-sa", "register serviceAccount")
    eq(reg["labels"], {"app": "web", "tier": "front"}, "register labels")

    last = [e for e in got if e["src"]["port"] == peer_port]
    eq(len(last), 1, "one entry whose src.port is the port the server saw (%d)" % peer_port)
    e = last[0]
    eq(e["outgoing"], True, "outgoing")
    eq(e["src"]["ip"], POD_IP, "src.ip")
    for k, v in (("name", POD_ENV["POD_NAME"]), ("namespace", "shop"), ("node", "node-1"),
                 ("workload", "web"), ("serviceAccount", "web-sa")):
        eq(e["src"].get(k), v, "src." + k)
    eq(e["src"]["labels"], {"app": "web", "tier": "front"}, "src.labels")
    eq(e["dst"]["ip"], POD_IP, "dst.ip")
    eq(e["dst"]["port"], 8080, "dst.port")
    eq(e["node"], {"name": "node-1"}, "node")
    eq(e["seq"], 0, "seq")
    if have_parser("http1"):
        eq(e["protocol"]["name"], "http", "protocol")
        eq(e["request"]["method"], "GET", "method")
        eq(e["request"]["path"], "/blob", "path")
        eq(e["response"]["status"], 200, "status")
    else:
        eq(e["protocol"]["name"], "tcp", "protocol (no HTTP/1 parser yet)")

    # the sink writes a batch before it answers: wait until the proxy has the answer
    m = wait_for(lambda: (lambda m: m["sidetap_batches_sent_total"] >= 1 and m)(metrics()), 10,
                 "the proxy counts a batch as sent")
    eq(m['sidetap_connections_total{direction="outbound"}'], 4, "outbound connections")
    check(m['sidetap_bytes_total{direction="outbound",flow="to_client"}'] > (5 << 20), "bytes to client counted")
    check(m['sidetap_bytes_total{direction="outbound",flow="to_server"}'] > (2 << 20), "bytes to server counted")
    eq(m["sidetap_collector_up"], 1, "collector up")
    check(m["sidetap_registrations_total"] >= 1, "registered")
    check(m["sidetap_batches_sent_total"] >= 1, "batches sent")
    check(m["sidetap_resident_memory_bytes"] > 0, "rss")
    eq(m["sidetap_capture_memory_limit_bytes"], 16 << 20, "capture limit")
    for name in ("sidetap_entries_dropped_total{reason=\"queue_full\"}", "sidetap_ship_queue_entries",
                 "sidetap_self_connect_rejected_total", "sidetap_parse_errors_total{protocol=\"http\"}",
                 "sidetap_timeouts_total{kind=\"idle\"}", 'sidetap_connect_failures_total{direction="outbound"}'):
        check(name in m, "metric %s present" % name)
    eq(env.stop(p), 0, "exit code")


def t_half_close(env):
    """The client's FIN reaches the server while the server->client direction stays open."""
    env.servers("eofecho:7000")
    p = env.proxy(collector=False)
    data = blob(300000)
    s = socket.create_connection((POD_IP, 7000), timeout=20)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = recv_all(s)
    s.close()
    head, _, rest = got.partition(b"\n")
    eq(head.decode(), "got %d %s" % (len(data), hashlib.sha256(data).hexdigest()), "server saw every byte + FIN")
    eq(rest == blob(1 << 20), True, "1 MiB answer after the FIN arrived intact")
    wait_for(lambda: metrics()['sidetap_connections_open{direction="outbound"}'] == 0, 10, "connection closed")
    eq(env.stop(p), 0, "exit code")


def t_server_first(env):
    """A server that speaks first is relayed at once, before the detect window."""
    env.servers("banner:7001")
    p = env.proxy(collector=False, env={"SIDETAP_ENTRIES_FILE": env.path("entries.jsonl")})
    t0 = time.time()
    s = socket.create_connection((POD_IP, 7001), timeout=5)
    f = s.makefile("rb")
    eq(f.readline(), b"220 sidetap-test ready\r\n", "banner")
    check(time.time() - t0 < 2, "banner took %.2fs" % (time.time() - t0))
    s.sendall(b"hello\r\n")
    eq(f.readline(), b"hello\r\n", "echo")
    f.close()
    s.close()
    eq(env.stop(p), 0, "exit code")
    es = entries_of(env.path("entries.jsonl"))
    eq(len(es), 1, "one entry for the banner connection")
    eq(es[0]["protocol"]["name"], "tcp", "server-first connection is opaque tcp")
    eq(es[0]["tcp"], {"bytesToServer": 7, "bytesToClient": 24 + 7}, "byte counts")


def t_refused(env):
    """Upstream refused -> the client sees a reset; upstream reset -> the client sees a reset."""
    env.servers("reset:7002")
    p = env.proxy(collector=False)
    # Nothing listens on 8086. The reset may already be there when connect() checks
    # SO_ERROR (loopback is fast), or arrive at the first recv().
    try:
        s = socket.create_connection((POD_IP, 8086), timeout=5)
        d = s.recv(100)
        raise Failure("expected a reset for a refused upstream, got %r" % d)
    except (ConnectionResetError, ConnectionRefusedError):
        pass
    s = socket.create_connection((POD_IP, 7002), timeout=5)
    s.sendall(b"x" * 100)
    try:
        d = s.recv(100)
        raise Failure("expected a reset from the upstream's reset, got %r" % d)
    except ConnectionResetError:
        pass
    s.close()
    m = metrics()
    eq(m['sidetap_connect_failures_total{direction="outbound"}'], 1, "connect failures")
    eq(m['sidetap_resets_total{direction="outbound"}'], 2, "resets")
    eq(env.stop(p), 0, "exit code")


def t_collector_down(env):
    """No collector listening: traffic is unaffected, the queue stays bounded and drops
    are counted; when the collector comes up the queued entries arrive."""
    env.servers("http:8080")
    # batches of 2: the 3 queued entries fill more than a batch, which once made the
    # batch timer re-arm at every loop turn while the collector was down (a core spinning)
    p = env.proxy(env={"SIDETAP_QUEUE_ENTRIES": "3", "SIDETAP_BATCH_ENTRIES": "2"})
    for i in range(8):
        status, _, body = http_get(POD_IP, 8080, "/blob?size=%d" % (5000 + i))
        eq((status, body == blob(5000 + i)), (200, True), "request %d through the proxy" % i)
    m = wait_for(lambda: (lambda m: m["sidetap_registration_failures_total"] >= 1 and m)(metrics()), 10,
                 "a failed registration")
    eq(m["sidetap_collector_up"], 0, "collector_up while down")
    eq(m['sidetap_entries_dropped_total{reason="queue_full"}'], 5, "drops counted")
    eq(m["sidetap_ship_queue_entries"], 3, "queue depth bounded")
    cpu0 = proc_cpu_seconds(p.pid)
    time.sleep(1.5)
    spent = proc_cpu_seconds(p.pid) - cpu0
    check(spent < 0.3, "the proxy idles while the collector is down: %.2f s of CPU in 1.5 s" % spent)
    # queued as JSON: 3 entries with ~5 KB bodies each, their text only
    check(3 * 5000 < m["sidetap_ship_queue_bytes"] < 3 * 12000, "queue bytes: %r" % m["sidetap_ship_queue_bytes"])
    _, sink = env.sink()
    es = wait_for(lambda: len(entries_of(sink)) >= 3 and entries_of(sink), 15, "queued entries after recovery")
    eq(len(es), 3, "the 3 newest entries arrive")
    # two batches may be in flight at once, so batches can arrive in either order
    eq(sorted(e["response"]["body"]["size"] for e in es), [5005, 5006, 5007], "the newest 3")
    check("register" in read_lines(sink)[0], "registration before entries")
    eq(metrics()["sidetap_collector_up"], 1, "collector_up after recovery")
    eq(env.stop(p), 0, "exit code")


def t_threads_stop(env):
    """SIDETAP_THREADS=3, stopping while the collector is down: the workers are joined
    before the final flush, /metrics keeps answering meanwhile with their counts kept
    (their thread-local counters are gone), and what cannot be shipped is counted."""
    env.servers("http:8080")
    p = env.proxy(env={"SIDETAP_THREADS": "3", "SIDETAP_FLUSH_SECONDS": "3"})
    for i in range(12):
        eq(http_get(POD_IP, 8080, "/blob?size=%d" % (10 + i))[0], 200, "request %d" % i)
    before = metrics()
    eq(before['sidetap_connections_total{direction="outbound"}'], 12, "connections before the stop")
    eq(len([k for k in before if k.startswith("sidetap_thread_connections_total{")]), 3, "3 threads")
    p.send_signal(signal.SIGTERM)
    time.sleep(1.0)  # drained at once (nothing open); the flush waits for the collector
    check(p.poll() is None, "still flushing")
    m = metrics()
    eq(m['sidetap_connections_total{direction="outbound"}'], 12, "the workers' connections still counted")
    eq(m['sidetap_entries_total{protocol="http"}'], 12, "the workers' entries still counted")
    eq(len([k for k in m if k.startswith("sidetap_thread_connections_total{")]), 1,
       "only the main thread is left")
    eq(p.wait(15), 0, "exit code")
    check("stopped" in env.log(), "clean stop logged")

def t_collector_slow(env):
    """A slow collector: two batches go at once (one per connection), none is lost or
    shipped twice."""
    env.servers("http:8080")
    _, sink = env.sink("--delay-ms", "400")
    p = env.proxy(env={"SIDETAP_BATCH_ENTRIES": "2"})
    wait_for(lambda: read_lines(sink), 10, "registration")
    for i in range(8):
        eq(http_get(POD_IP, 8080, "/blob?size=%d" % (100 + i))[0], 200, "request %d" % i)
    got = wait_for(lambda: len(entries_of(sink)) >= 8 and entries_of(sink), 20, "8 entries")
    eq(sorted(e["response"]["body"]["size"] for e in got), list(range(100, 108)), "each entry once")
    c = http.client.HTTPConnection("127.0.0.1", SINK_PORT, timeout=10)
    c.request("GET", "/stats")
    stats = json.loads(c.getresponse().read())
    c.close()
    eq(stats["inflightMax"], 2, "two batches in flight at once")
    wait_for(lambda: metrics()["sidetap_entries_shipped_total"] == 8, 10, "8 entries counted as shipped")
    eq(env.stop(p), 0, "exit code")

def t_collector_503(env):
    """503 + Retry-After: the batch is retried, not lost; 400: dropped and counted."""
    env.servers("http:8080")
    sink_p, sink = env.sink("--mode", "down-after", "0")
    p = env.proxy()
    http_get(POD_IP, 8080, "/blob?size=10")
    wait_for(lambda: metrics()["sidetap_batches_failed_total"] >= 1, 10, "a failed batch")
    m = metrics()
    eq(m["sidetap_collector_up"], 0, "collector_up on 503")
    eq(m["sidetap_entries_shipped_total"], 0, "nothing shipped yet")
    sink_p.terminate()
    sink_p.wait()
    env.sink(name="sink2")
    wait_for(lambda: len(entries_of(env.path("sink2.jsonl"))) == 1, 15, "the retried batch")
    eq(env.stop(p), 0, "exit code")
    env.close()


def t_collector_400(env):
    env.servers("http:8080")
    env.sink("--mode", "400")
    p = env.proxy()
    http_get(POD_IP, 8080, "/blob?size=10")
    wait_for(lambda: metrics()['sidetap_entries_dropped_total{reason="collector_rejected"}'] == 1, 10,
             "a rejected batch counted")
    eq(env.stop(p), 0, "exit code")
    check("rejected a batch" in env.log(), "rejection logged:\n" + env.log())


def t_sigterm_drain(env):
    """SIGTERM: stop accepting, let an open request finish, ship what is queued, exit 0."""
    env.servers("http:8080")
    _, sink = env.sink()
    p = env.proxy(env={"SIDETAP_BATCH_MS": "60000", "SIDETAP_DRAIN_SECONDS": "5"})
    eq(http_get(POD_IP, 8080, "/blob?size=100")[0], 200, "first request")
    c = http.client.HTTPConnection(POD_IP, 8080, timeout=20)
    c.request("GET", "/slow?ms=1200")
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    eq(admin_get("/readyz")[0], 503, "/readyz while draining")
    try:
        socket.create_connection((POD_IP, 8080), timeout=2).recv(1)
        raise Failure("a new connection was accepted while draining")
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    r = c.getresponse()
    eq((r.status, r.read()), (200, b"slow done"), "the open request finished")
    c.close()
    rc = p.wait(15)
    eq(rc, 0, "exit code after drain")
    es = entries_of(sink)
    eq(len(es), 2, "both entries flushed by the final POST (batch timer was 60 s)")
    check("stopped" in env.log(), "clean stop logged")


def t_threads(env):
    """SIDETAP_THREADS=3: connections are spread over the threads' listeners (SO_REUSEPORT),
    bytes stay identical, every entry reaches the collector once through the main thread,
    /metrics sums the threads, and SIGTERM drains open requests on every thread."""
    env.servers("http:8080", "http:%d" % DIRECT_PORT)
    _, sink = env.sink()
    p = env.proxy(env={"SIDETAP_THREADS": "3", "SIDETAP_DRAIN_SECONDS": "5"})
    check("3 threads" in env.log(), "start line names 3 threads: %r" % env.log())
    n = 60
    for i in range(n):
        s1, _, direct = http_get(POD_IP, DIRECT_PORT, "/blob?size=%d" % (1000 + i))
        s2, _, proxied = http_get(POD_IP, 8080, "/blob?size=%d" % (1000 + i))
        eq((s1, s2), (200, 200), "status %d" % i)
        eq(proxied, direct, "body %d identical" % i)
    got = wait_for(lambda: len(entries_of(sink)) >= n and entries_of(sink), 15, "%d entries" % n)
    eq(len(got), n, "one entry per request")
    eq(sorted(int(e["request"]["queryString"]["size"]) for e in got), list(range(1000, 1000 + n)),
       "every request's entry, once")
    eq(len({e["src"]["port"] for e in got}), n, "one connection each")
    for e in got:
        eq((e["src"]["name"], e["src"]["namespace"], e["dst"]["port"], e["response"]["status"]),
           (POD_ENV["POD_NAME"], "shop", 8080, 200), "entry fields")
    m = metrics()
    eq(m['sidetap_connections_total{direction="outbound"}'], n, "connections summed over the threads")
    per = [v for k, v in m.items() if k.startswith("sidetap_thread_connections_total{")]
    eq(len(per), 3, "a counter per thread")
    eq(sum(per), n, "per-thread counters add up")
    check(sum(1 for v in per if v > 0) >= 2, "connections spread over the threads: %r" % per)
    eq(m['sidetap_entries_total{protocol="http"}'], n, "entries counted once")

    # SIGTERM with requests open on several threads: each finishes, all entries are shipped.
    conns = []
    for i in range(6):
        c = http.client.HTTPConnection(POD_IP, 8080, timeout=20)
        c.request("GET", "/slow?ms=1500")
        conns.append(c)
    time.sleep(0.4)
    busy = [v for k, v in metrics().items() if k.startswith("sidetap_thread_connections_total{")]
    p.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    eq(admin_get("/readyz")[0], 503, "/readyz while draining")
    for c in conns:
        r = c.getresponse()
        eq((r.status, r.read()), (200, b"slow done"), "open request finished")
        c.close()
    eq(p.wait(15), 0, "exit code after drain")
    check(sum(1 for a, b in zip(busy, per) if a > b) >= 2, "slow requests on several threads: %r" % busy)
    eq(len(entries_of(sink)), n + 6, "every entry flushed, the drained ones too")
    check("stopped" in env.log(), "clean stop logged")


def dns_query(name, qid, qtype=1):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)


def udp_ask(query, server, port=53, uid=None):
    """Sends one query and returns the answer bytes; as `uid` to bypass the redirect."""
    code = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(5);"
            "s.sendto(bytes.fromhex(sys.argv[1]),(sys.argv[2],int(sys.argv[3])));"
            "d,a=s.recvfrom(65535);print(d.hex(),a[0],a[1])")
    argv = [PY, "-c", code, query.hex(), server, str(port)]
    if uid is not None:
        argv = ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups"] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    check(out.returncode == 0, "DNS query failed: %s" % out.stderr)
    data, ip, port = out.stdout.split()
    return bytes.fromhex(data), ip, int(port)


def t_dns(env):
    """UDP DNS through 16053 to dnsmasq: identical answer bytes from the nameserver's
    address; TCP DNS too; names learned name later outbound entries."""
    with open(env.path("resolv.conf"), "w") as f:
        f.write("# test\nsearch shop.svc.cluster.local\nnameserver %s\noptions ndots:5\n" % POD_IP)
    env.spawn(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
               "--listen-address=" + POD_IP, "--port=53", "--pid-file=" + env.path("dnsmasq.pid"),
               "--user=root", "--address=/web.example.test/" + OTHER_IP, "--local-ttl=300",
               "--cname=alias.example.test,web.example.test", "--log-facility=" + env.path("dnsmasq.log")])

    def dnsmasq_up():
        try:
            return udp_ask(dns_query("web.example.test", 1), POD_IP, uid=1717)
        except (Failure, subprocess.TimeoutExpired):
            return None

    wait_for(dnsmasq_up, 20, "dnsmasq to answer")
    env.servers("http:8080")
    p = env.proxy(collector=False, env={"SIDETAP_ENTRIES_FILE": env.path("entries.jsonl")})
    for name in ("web.example.test", "alias.example.test"):
        q = dns_query(name, 0x4242)
        direct, dip, dport = udp_ask(q, POD_IP, uid=1717)
        proxied, pip, pport = udp_ask(q, POD_IP)
        eq((pip, pport), (POD_IP, 53), "answer comes from the nameserver's address")
        eq(proxied.hex(), direct.hex(), "answer bytes for %s" % name)
        eq(direct[3] & 0x0f, 0, "rcode NOERROR")
    # TCP DNS (REDIRECT to 16053/tcp)
    out = subprocess.run(["dig", "+tcp", "+short", "@" + POD_IP, "web.example.test"], capture_output=True,
                         text=True, timeout=10)
    eq(out.stdout.strip(), OTHER_IP, "dig +tcp answer")
    m = metrics()
    eq(m["sidetap_dns_queries_total"], 2, "UDP queries forwarded")
    eq(m["sidetap_dns_answers_total"], 2, "UDP answers returned")
    eq(m['sidetap_connections_total{direction="dns"}'], 3, "dns connections (2 UDP + 1 TCP)")
    # an outbound connection to the learned address is named after the question
    eq(http_get(OTHER_IP, 8080, "/blob?size=10")[0], 200, "request to the resolved address")
    eq(env.stop(p), 0, "exit code")
    es = entries_of(env.path("entries.jsonl"))
    web = [e for e in es if e["dst"]["ip"] == OTHER_IP]
    eq(len(web), 1, "one entry for the request to %s" % OTHER_IP)
    dns = [e for e in es if e["protocol"]["name"] == "dns"]
    if have_parser("dns"):
        eq(len(dns), 3, "three dns entries")
        eq(m["sidetap_names_learned_total"] >= 2, True, "names learned")
        eq(web[0]["dst"].get("name"), "web.example.test", "dst.name from the DNS answer")
        udp = [e for e in dns if e["dst"]["port"] == 53 and e["request"]]
        check(all(e["outgoing"] for e in dns), "dns entries are outgoing")
        check(udp, "dns entries present")
    else:
        check("name" not in web[0]["dst"], "no name without a DNS parser")


def t_dns_resolv(env):
    """The nameserver follows resolv.conf: rewritten (atomically, as the kubelet does, then
    in place), the next queries go to the new nameserver without a restart; a version
    without a nameserver keeps the last one."""
    def dnsmasq(ip, answer, name):
        env.spawn(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
                   "--listen-address=" + ip, "--port=53", "--pid-file=" + env.path(name + ".pid"),
                   "--user=root", "--address=/web.example.test/" + answer, "--local-ttl=0",
                   "--log-facility=" + env.path(name + ".log")])

        def up():
            try:
                return udp_ask(dns_query("web.example.test", 1), ip, uid=1717)
            except (Failure, subprocess.TimeoutExpired):
                return None
        wait_for(up, 20, "dnsmasq on %s" % ip)

    dnsmasq(POD_IP, "10.1.1.1", "dns-a")
    dnsmasq(OTHER_IP, "10.2.2.2", "dns-b")
    resolv = env.path("resolv.conf")

    def write(text, atomic):
        if atomic:
            with open(resolv + ".new", "w") as f:
                f.write(text)
            os.rename(resolv + ".new", resolv)
        else:
            with open(resolv, "w") as f:
                f.write(text)

    def answer(qid):
        """The A record the app gets through the proxy (it always asks POD_IP:53)."""
        data, ip, port = udp_ask(dns_query("web.example.test", qid), POD_IP)
        eq((ip, port), (POD_IP, 53), "answer comes from the address the app asked")
        return socket.inet_ntoa(data[-4:])

    write("search shop.svc.cluster.local\nnameserver %s\n" % POD_IP, atomic=False)
    p = env.proxy(collector=False, env={"SIDETAP_ENTRIES_FILE": env.path("entries.jsonl")})
    eq(answer(1), "10.1.1.1", "answer from the first nameserver")
    write("search shop.svc.cluster.local\nnameserver %s\noptions ndots:5\n" % OTHER_IP, atomic=True)
    time.sleep(1.2)  # the file is looked at no more than once a second
    eq(answer(2), "10.2.2.2", "answer from the nameserver resolv.conf names now")
    eq(answer(3), "10.2.2.2", "and the next one")
    write("# being rewritten\n", atomic=False)
    time.sleep(1.2)
    eq(answer(4), "10.2.2.2", "no nameserver in the file: the last one stays")
    write("nameserver %s\n" % POD_IP, atomic=False)
    time.sleep(1.2)
    eq(answer(5), "10.1.1.1", "rewritten in place: followed too")
    m = metrics()
    eq(m["sidetap_dns_queries_total"], 5, "UDP queries forwarded")
    eq(m["sidetap_dns_answers_total"], 5, "UDP answers returned")
    eq(env.stop(p), 0, "exit code")
    log = env.log()
    eq(log.count("resolv.conf changed: DNS queries now go to"), 2, "one log line per change:\n" + log)
    check("now go to %s port 53" % OTHER_IP in log, "log names the new nameserver:\n" + log)
    if have_parser("dns"):
        es = [e for e in entries_of(env.path("entries.jsonl")) if e["protocol"]["name"] == "dns"]
        eq(len(es), 5, "five dns entries")
        got = sorted((e["dns"]["id"], e["dst"]["ip"]) for e in es)
        eq([ip for _, ip in got], [POD_IP, OTHER_IP, OTHER_IP, OTHER_IP, POD_IP],
           "each entry names the nameserver that answered")


def t_inbound(env):
    """Inbound listener: original destination is the pod's own port; dst is the pod."""
    env.servers("http:%d" % IN_PORT)
    p = env.proxy(collector=False, env={"SIDETAP_ENTRIES_FILE": env.path("entries.jsonl")})
    c = http.client.HTTPConnection(POD_IP, IN_PORT, timeout=20)
    c.request("GET", "/blob?size=70000")
    client_port = c.sock.getsockname()[1]
    r = c.getresponse()
    eq((r.status, r.read() == blob(70000)), (200, True), "inbound response")
    c.close()
    eq(env.stop(p), 0, "exit code")
    es = entries_of(env.path("entries.jsonl"))
    eq(len(es), 1, "one inbound entry")
    e = es[0]
    eq(e["outgoing"], False, "outgoing")
    eq(e["dst"]["name"], POD_ENV["POD_NAME"], "dst.name is the pod")
    eq(e["dst"]["port"], IN_PORT, "dst.port")
    eq(e["src"]["ip"], POD_IP, "src.ip is the client's address on the wire")
    eq(e["src"]["port"], client_port, "src.port is the client's port")
    check("name" not in e["src"], "src identity left to the collector")


def t_ipv6(env):
    """IPv6: the [::] listener, IP6T_SO_ORIGINAL_DST, entries with IPv6 endpoints."""
    env.servers("http6:8080")
    p = env.proxy(collector=False, env={"SIDETAP_ENTRIES_FILE": env.path("entries.jsonl")})
    s, h, body = http_get(POD_IP6, 8080, "/blob?size=200000")
    eq((s, body == blob(200000)), (200, True), "response over IPv6")
    eq(env.stop(p), 0, "exit code")
    es = entries_of(env.path("entries.jsonl"))
    eq(len(es), 1, "one entry")
    eq(es[0]["dst"]["ip"], POD_IP6, "dst.ip")
    eq(es[0]["dst"]["port"], 8080, "dst.port")
    eq(es[0]["src"]["ip"], POD_IP6, "src.ip")
    eq(es[0]["src"]["port"], int(h["X-Peer-Port"]), "src.port is the upstream socket's port")


def post(host, port, path, body, headers):
    c = http.client.HTTPConnection(host, port, timeout=20)
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    out = (r.status, r.read())
    c.close()
    return out


def t_capture_limits(env):
    """Body cap, redaction list, metadata-only and the parsed-connection limit: capture
    degrades, the bytes relayed never change."""
    env.servers("http:8080")
    body = blob(5000)
    hdrs = {"X-Secret": "hunter2", "Authorization": "Bearer visible", "Content-Type": "application/octet-stream"}
    cases = [
        ({"SIDETAP_BODY_CAP": "1000", "SIDETAP_REDACT_HEADERS": "X-Secret, cookie"}, "cap"),
        ({"SIDETAP_CAPTURE_BODIES": "false"}, "nobodies"),
        ({"SIDETAP_MAX_CONNECTIONS": "0"}, "unparsed"),
    ]
    for extra, name in cases:
        out = env.path("entries-%s.jsonl" % name)
        extra = dict(extra, SIDETAP_ENTRIES_FILE=out)
        p = env.proxy(collector=False, env=extra)
        eq(post(POD_IP, 8080, "/echo", body, hdrs), (200, body), "%s: echo identical" % name)
        m = metrics()
        eq(env.stop(p), 0, "%s: exit code" % name)
        es = entries_of(out)
        if name == "unparsed":
            eq(es, [], "no entries without a parser")
            eq(m["sidetap_unparsed_connections_total"], 1, "unparsed connection counted")
            continue
        eq(len(es), 1, "%s: one entry" % name)
        e = es[0]
        if not have_parser("http1"):
            continue
        req = e["request"]
        if name == "cap":
            eq(req["headers"].get("X-Secret"), "[REDACTED]", "X-Secret redacted")
            eq(req["headers"].get("Authorization"), "Bearer visible", "the list replaces the default")
            eq((req["body"]["size"], req["body"]["truncated"]), (5000, True), "request body cut")
            eq(req["body"]["encoding"], "base64", "binary body")
            import base64
            eq(base64.b64decode(req["body"]["data"]), body[:1000], "first 1000 bytes kept")
        else:
            eq(req["headers"].get("Authorization"), "[REDACTED]", "default redaction list")
            eq(req["body"]["size"], 5000, "body size still counted")
            check(not req["body"].get("data"), "no body bytes captured: %r" % req["body"])


def t_backpressure(env):
    """A client that stops reading: the proxy stops reading the server too (bounded
    buffers), then relays everything intact once the client reads again."""
    env.servers("http:8080")
    p = env.proxy(collector=False)
    size = 40 << 20
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(30)
    s.connect((POD_IP, 8080))
    s.sendall(b"GET /blob?size=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % size)
    key = 'sidetap_bytes_total{direction="outbound",flow="to_client"}'
    # The client reads nothing: the proxy's count of bytes read from the server must
    # grow, then stall well below the body size.
    last = [-1.0]

    def stalled():
        time.sleep(0.5)
        v = metrics()[key]
        done = v > (1 << 20) and v == last[0]
        last[0] = v
        return done and v

    stuck_at = wait_for(stalled, 30, "the relay to stall")
    check(stuck_at < 10 << 20, "proxy read %d of %d bytes while the client read nothing" % (stuck_at, size))
    got = recv_all(s)
    s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), "status line %r" % head[:40])
    eq(len(body), size, "body length")
    eq(hashlib.sha256(body).hexdigest(), hashlib.sha256(blob(size)).hexdigest(), "body sha256")
    eq(env.stop(p), 0, "exit code")


def t_slow_peers(env):
    """Peers that take bytes slower than they arrive: the proxy's writes are partial and
    the rest waits for EV_WRITE; every byte arrives once, in order, both directions."""
    env.servers("http:8080", "slowsink:7003")
    p = env.proxy(collector=False, env={"SIDETAP_BUFFER_SIZE": "64KiB"})
    # download to a client with a small window that reads in small steps, with pauses
    size = 6 << 20
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(30)
    s.connect((POD_IP, 8080))
    s.sendall(b"GET /blob?size=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % size)
    got = bytearray()
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
        if len(got) % (256 << 10) < 4096:
            time.sleep(0.002)
    s.close()
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    eq(len(body), size, "download length")
    eq(hashlib.sha256(body).hexdigest(), hashlib.sha256(blob(size)).hexdigest(), "download sha256")
    # upload to a server that reads slowly
    data = blob(4 << 20)
    s = socket.create_connection((POD_IP, 7003), timeout=30)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    answer = recv_all(s)
    s.close()
    eq(answer.decode(), "got %d %s\n" % (len(data), hashlib.sha256(data).hexdigest()), "upload as the server saw it")
    wait_for(lambda: metrics()['sidetap_connections_open{direction="outbound"}'] == 0, 10, "connections closed")
    m = metrics()
    check(m['sidetap_bytes_total{direction="outbound",flow="to_client"}'] >= size, "bytes to client counted")
    eq(m['sidetap_bytes_total{direction="outbound",flow="to_server"}'] >= len(data), True, "bytes to server counted")
    eq(m['sidetap_resets_total{direction="outbound"}'], 0, "no resets")
    eq(env.stop(p), 0, "exit code")


def t_timeouts(env):
    """Idle timeout: a connection quiet for SIDETAP_IDLE_TIMEOUT is closed, one that keeps
    moving bytes is not. Connect timeout: an upstream that never answers the SYN -> the
    client gets a reset after SIDETAP_CONNECT_TIMEOUT."""
    env.servers("banner:7001")
    p = env.proxy(collector=False, env={"SIDETAP_IDLE_TIMEOUT": "1", "SIDETAP_CONNECT_TIMEOUT": "1"})
    quiet = socket.create_connection((POD_IP, 7001), timeout=10)
    busy = socket.create_connection((POD_IP, 7001), timeout=10)
    qf, bf = quiet.makefile("rb"), busy.makefile("rb")
    eq(qf.readline(), b"220 sidetap-test ready\r\n", "banner (quiet)")
    eq(bf.readline(), b"220 sidetap-test ready\r\n", "banner (busy)")
    t0 = time.time()
    for i in range(8):  # 2.4 s of traffic every 0.3 s: never 1 s idle
        busy.sendall(b"ping %d\r\n" % i)
        eq(bf.readline(), b"ping %d\r\n" % i, "echo %d" % i)
        time.sleep(0.3)
    eq(qf.readline(), b"", "the quiet connection was closed")
    waited = time.time() - t0
    check(waited < 5, "closed after %.1fs" % waited)
    busy.sendall(b"still here\r\n")
    eq(bf.readline(), b"still here\r\n", "the busy connection still relays")
    m = metrics()
    eq(m['sidetap_timeouts_total{kind="idle"}'], 1, "idle timeouts")
    for f in (qf, bf, quiet, busy):
        f.close()
    # connect timeout
    t0 = time.time()
    s = socket.create_connection((POD_IP, BLACKHOLE_PORT), timeout=10)
    try:
        d = s.recv(10)
        raise Failure("expected a reset after the connect timeout, got %r" % d)
    except ConnectionResetError:
        pass
    took = time.time() - t0
    check(0.8 < took < 5, "reset after %.2fs, expected about 1s" % took)
    s.close()
    m = metrics()
    eq(m['sidetap_timeouts_total{kind="connect"}'], 1, "connect timeouts")
    eq(m['sidetap_connect_failures_total{direction="outbound"}'], 1, "connect failures")
    eq(env.stop(p), 0, "exit code")


def t_self_connect(env):
    """A connection straight to the listener (its original destination is the listener)
    is closed and counted instead of looping."""
    p = env.proxy(collector=False)
    try:  # the reset may already be there when connect() checks SO_ERROR
        s = socket.create_connection(("127.0.0.1", 16001), timeout=5)
        eq(s.recv(10), b"", "closed")
        s.close()
    except ConnectionResetError:
        pass
    eq(metrics()["sidetap_self_connect_rejected_total"], 1, "self-connect counted")
    eq(metrics()['sidetap_connections_total{direction="outbound"}'], 0, "nothing relayed")
    eq(env.stop(p), 0, "exit code")


def t_bad_config(env):
    """Bad values: a message naming the variable or flag, exit code 2, no crash."""
    cases = [
        ({"SIDETAP_BODY_CAP": "lots"}, [], "SIDETAP_BODY_CAP"),
        ({"SIDETAP_OUTBOUND_PORT": "70000"}, [], "SIDETAP_OUTBOUND_PORT"),
        ({"SIDETAP_CAPTURE_BODIES": "maybe"}, [], "SIDETAP_CAPTURE_BODIES"),
        ({"SIDETAP_DRAIN_SECONDS": "-1"}, [], "SIDETAP_DRAIN_SECONDS"),
        ({"SIDETAP_COLLECTOR_URL": "ftp://x"}, [], "SIDETAP_COLLECTOR_URL"),
        ({"SIDETAP_LABELS": "app"}, [], "SIDETAP_LABELS"),
        ({"SIDETAP_LABELS_FILE": "/nonexistent/labels"}, [], "SIDETAP_LABELS_FILE"),
        ({"SIDETAP_DNS_UPSTREAM": "not-an-ip"}, [], "SIDETAP_DNS_UPSTREAM"),
        ({}, ["--inbound-port", "16001"], "SIDETAP_INBOUND_PORT"),
        ({}, ["--threads", "0"], "--threads"),
        ({}, ["--threads", "65"], "--threads"),
        ({}, ["--capture-memory=12XB"], "--capture-memory"),
        ({}, ["--no-such-flag"], "--no-such-flag"),
        ({}, ["--idle-timeout"], "--idle-timeout"),
    ]
    for extra, args, needle in cases:
        e = dict(os.environ)
        e.update(extra)
        r = subprocess.run([PROXY] + args, env=e, capture_output=True, text=True, timeout=10)
        eq(r.returncode, 2, "exit code for %s %s" % (extra, args))
        check(needle in r.stderr, "message for %s %s names %s: %r" % (extra, args, needle, r.stderr))
    r = subprocess.run([PROXY, "--help"], capture_output=True, text=True, timeout=10)
    eq(r.returncode, 0, "--help exit code")
    for needle in ("SIDETAP_COLLECTOR_URL", "--outbound-port", "SIDETAP_CAPTURE_MEMORY"):
        check(needle in r.stdout, "--help mentions " + needle)
    # labels file in the downward API format
    lf = env.path("labels")
    with open(lf, "w") as f:
        f.write('app="web"\npod-template-hash="7d6cfb7dfd"\nquote="a\\"b"\n')
    _, sink = env.sink()
    p = env.proxy(env={"SIDETAP_LABELS": "", "SIDETAP_LABELS_FILE": lf})
    reg = wait_for(lambda: read_lines(sink), 10, "registration")[0]["register"]
    eq(reg["labels"], {"app": "web", "pod-template-hash": "7d6cfb7dfd", "quote": 'a"b'}, "labels from file")
    eq(env.stop(p), 0, "exit code")


SCENARIOS = {
    "relay-http": t_relay_http,
    "half-close": t_half_close,
    "server-first": t_server_first,
    "refused": t_refused,
    "collector-down": t_collector_down,
    "collector-503": t_collector_503,
    "collector-400": t_collector_400,
    "sigterm-drain": t_sigterm_drain,
    "dns": t_dns,
    "dns-resolv": t_dns_resolv,
    "inbound": t_inbound,
    "self-connect": t_self_connect,
    "ipv6": t_ipv6,
    "capture-limits": t_capture_limits,
    "backpressure": t_backpressure,
    "slow-peers": t_slow_peers,
    "timeouts": t_timeouts,
    "threads": t_threads,
    "collector-slow": t_collector_slow,
    "threads-stop": t_threads_stop,
    "bad-config": t_bad_config,
}


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def inside(name, tmp):
    env = Env(tmp)
    try:
        SCENARIOS[name](env)
    except Failure as e:
        print("FAIL %s: %s" % (name, e))
        log = env.log()
        if log:
            print("--- proxy log ---\n" + log[-6000:])
        return 1
    finally:
        env.close()
    print("ok %s" % name)
    return 0


def outside(name):
    if os.geteuid() != 0 or not PROXY or shutil.which("setpriv") is None:
        print("SKIP: needs root, setpriv and SIDETAP_PROXY")
        return 77
    ns = "stp%d" % os.getpid()
    # meson stops a test that overruns with SIGTERM: still remove the namespace.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    tmp = tempfile.mkdtemp(prefix="sidetap-proxytest-")
    os.chmod(tmp, 0o777)
    try:
        sh("ip", "netns", "add", ns)
        nx = ["ip", "netns", "exec", ns]
        sh(*nx, "ip", "link", "set", "lo", "up")
        # a veth pair stands in for the pod's eth0 (no dummy module on every kernel)
        sh(*nx, "ip", "link", "add", "pod0", "type", "veth", "peer", "name", "pod0p")
        sh(*nx, "ip", "link", "set", "pod0p", "up")
        sh(*nx, "ip", "addr", "add", POD_IP + "/24", "dev", "pod0")
        sh(*nx, "ip", "addr", "add", OTHER_IP + "/32", "dev", "pod0")
        sh(*nx, "ip", "-6", "addr", "add", POD_IP6 + "/64", "dev", "pod0", "nodad")
        sh(*nx, "ip", "link", "set", "pod0", "up")
        ipt = nx + ["iptables", "-w", "-t", "nat", "-A", "OUTPUT"]
        own = ["-m", "owner", "!", "--uid-owner", "1717"]
        sh(*ipt, "-p", "tcp", *own, "-m", "multiport", "--dports", OUT_PORTS, "-j", "REDIRECT", "--to-ports", "16001")
        sh(*ipt, "-p", "tcp", *own, "--dport", str(IN_PORT), "-j", "REDIRECT", "--to-ports", "16006")
        sh(*ipt, "-p", "udp", *own, "-d", POD_IP, "--dport", "53", "-j", "REDIRECT", "--to-ports", "16053")
        sh(*ipt, "-p", "tcp", *own, "-d", POD_IP, "--dport", "53", "-j", "REDIRECT", "--to-ports", "16053")
        # the proxy's own SYNs to BLACKHOLE_PORT vanish: its connect can only time out
        sh(*nx, "iptables", "-w", "-A", "OUTPUT", "-p", "tcp", "--dport", str(BLACKHOLE_PORT), "-m", "owner",
           "--uid-owner", "1717", "-j", "DROP")
        ip6 = nx + ["ip6tables", "-w", "-t", "nat", "-A", "OUTPUT"]
        sh(*ip6, "-p", "tcp", *own, "-m", "multiport", "--dports", OUT_PORTS, "-j", "REDIRECT", "--to-ports", "16001")
        with open(os.path.join(tmp, "resolv.conf"), "w") as f:
            f.write("nameserver %s\n" % POD_IP)
        r = subprocess.run(nx + [PY, os.path.abspath(__file__), "--inside", name, tmp], timeout=240)
        return r.returncode
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--inside":
        return inside(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print("usage: proxytest.py {%s}" % "|".join(SCENARIOS))
        return 2
    return outside(sys.argv[1])


if __name__ == "__main__":
    sys.exit(main())
