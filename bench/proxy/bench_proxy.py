#!/usr/bin/env python3
"""sidetap-proxy benchmark: wrk against nginx in a pod of the node harness, three ways,
in one go, each bounded in time:

  direct    client pod -> nginx pod
  haproxy   client pod -> haproxy (TCP mode, no parsing) in the nginx pod -> nginx, over lo
  sidetap   client pod -> injected nginx pod: sidetap-init rules -> sidetap-proxy (inbound,
            HTTP parsing, entries shipped to a collector stand-in) -> nginx, over lo

Each server pod has its own nginx (1 worker, same config) so the three paths differ only
by the proxy. The collector stand-in is an nginx that answers every POST with 200 (a
Python sink would steal CPU from the measured path on a small machine).

Prints requests/s and p50/p99 latency for each (medians of interleaved rounds, so a busy
machine hurts all three alike), the ratios against direct and against haproxy, the CPU
time haproxy and sidetap-proxy spend per request (robust to load from other processes), and the proxy's RSS idle, under load (peak), with 1,000 open idle connections
(no byte sent) and with 1,000 idle keep-alive connections (one request done each).
All traffic stays inside the harness's network namespaces. Needs root.

usage: bench_proxy.py --proxy BUILD/proxy/sidetap-proxy --init BUILD/proxy/init/sidetap-init
                      [--duration 10] [--rounds 3] [--connections 64] [--size 612] [--strace S] [--perf S]
"""
import argparse
import os
import re
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from harness import Node, netns, start_nginx  # noqa: E402

NGINX_HTTP = """\
    keepalive_requests 1000000;
    keepalive_timeout 300;
    client_max_body_size 64m;
    server {{
        listen 80 backlog=4096;
        root {root};
        location /api/ {{ return 200 '{{"accepted":1}}'; }}
    }}
"""

HAPROXY_CONF = """\
global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend fe
    bind {ip}:8080
    default_backend be
backend be
    server nginx {ip}:80
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Peak RSS of a process while running."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.1)


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def parse_wrk(out):
    def latency_ms(label):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(rps.group(1)) if rps else float("nan"),
            "requests": int(total.group(1)) if total else 0,
            "p50": latency_ms("50"), "p99": latency_ms("99"),
            "errors": (errors.group(1) if errors else "") +
                      (" non-2xx %s" % non2xx.group(1) if non2xx else "")}


def hold_connections(pod, ip, port, n, request=None):
    """Opens n connections from the pod (and optionally does one request on each)."""
    def make():
        out = []
        for _ in range(n):
            out.append(socket.create_connection((ip, port), timeout=20))
        return out
    socks = netns.in_netns(pod.ns_path, make)
    if request:
        for s in socks:
            s.sendall(request)
        for s in socks:
            s.settimeout(20)
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"</html>\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    return socks


def count_syscalls(client, url, pid, args):
    """Syscalls per request of process `pid` (all threads) over one wrk run under strace -c."""
    import signal
    import subprocess
    import tempfile
    with tempfile.NamedTemporaryFile(prefix="bench-strace-", suffix=".txt", delete=False) as f:
        out = f.name
    st = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", out, "-p", str(pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    r = client.run(["wrk", "-t1", "-c%d" % args.connections, "-d%ds" % args.strace, url],
                   timeout=args.strace + 60, nofile=20000)
    st.send_signal(signal.SIGINT)
    st.wait(30)
    requests = max(parse_wrk(r.stdout)["requests"], 1)
    per = {}
    with open(out) as f:
        for line in f:
            cols = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(cols) >= 5 and cols[3].isdigit() and cols[-1] != "total":
                per[cols[-1]] = int(cols[3]) / requests
    os.unlink(out)
    return sum(per.values()), per


def profile(client, url, pid, args):
    """perf's flat profile of process `pid` over one wrk run: the top symbols with their share."""
    import signal
    import subprocess
    import tempfile
    data = tempfile.mktemp(prefix="bench-perf-", suffix=".data")
    pr = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-o", data, "-p", str(pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    client.run(["wrk", "-t1", "-c%d" % args.connections, "-d%ds" % args.perf, url],
               timeout=args.perf + 60, nofile=20000)
    pr.send_signal(signal.SIGINT)
    pr.wait(60)
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                          "--sort", "dso,symbol", "--percent-limit", "0.7"],
                         capture_output=True, text=True)
    by_dso = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                             "--sort", "dso", "--percent-limit", "0.5"],
                            capture_output=True, text=True)
    os.unlink(data)
    keep = lambda out: [line for line in out.splitlines()  # noqa: E731
                        if line.strip() and not line.startswith("#")]
    return keep(by_dso.stdout) + [""] + keep(rep.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--size", type=int, default=612, help="response body bytes")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--strace", type=int, default=0, metavar="SECONDS",
                    help="also count haproxy's and sidetap-proxy's syscalls per request over one "
                         "extra wrk run of SECONDS under strace -c (slows that run; not in the medians)")
    ap.add_argument("--perf", type=int, default=0, metavar="SECONDS",
                    help="also print perf's profile of sidetap-proxy over one extra wrk run of "
                         "SECONDS (not in the medians)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_proxy: needs root (network namespaces)")
        return 77
    args.proxy = os.path.abspath(args.proxy)
    args.init = os.path.abspath(args.init)
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    with open("/proc/loadavg") as f:
        load_before = " ".join(f.read().split()[:3])
    with Node(name="bench-node") as node:
        root = os.path.join(node.dir, "www")
        os.makedirs(root)
        body = ("x" * (args.size - 8) + "</html>\n").encode()
        with open(os.path.join(root, "index.html"), "wb") as f:
            f.write(body)

        def nginx(pod):
            start_nginx(pod, NGINX_HTTP.format(root=root), rlimit_nofile=16384, nofile=20000)

        sink = node.add_pod("collector", namespace="sidetap")
        nginx(sink)

        class Sink:
            url = "http://%s:80" % sink.ip
            token = "bench"

        direct = node.add_pod("nginx-direct")
        nginx(direct)
        viahap = node.add_pod("nginx-haproxy")
        nginx(viahap)
        hconf = os.path.join(node.dir, "haproxy.cfg")
        with open(hconf, "w") as f:
            f.write(HAPROXY_CONF.format(ip=viahap.ip))
        hap = viahap.spawn(["haproxy", "-f", hconf, "-db"], name="haproxy", nofile=40000)
        viahap.wait_port(8080, proc=hap)
        tapped = node.add_pod("nginx-sidetap", labels={"app": "nginx"}, workload="nginx")
        nginx(tapped)
        proxy = tapped.inject(init=args.init, proxy=args.proxy, collector=Sink, nofile=40000)
        client = node.add_pod("wrk")
        time.sleep(1.0)
        idle_rss = rss_kib(proxy.pid)
        hap_idle = rss_kib(hap.pid)

        targets = [("direct", "http://%s:80/index.html" % direct.ip, None),
                   ("haproxy", "http://%s:8080/index.html" % viahap.ip, hap.pid),
                   ("sidetap", "http://%s:80/index.html" % tapped.ip, proxy.pid)]
        # Rounds interleave the three paths, so a busy machine hurts them alike; the
        # figures are medians over the rounds.
        runs = {name: [] for name, _, _ in targets}
        for _ in range(args.rounds):
            for name, url, pid in targets:
                client.run(["wrk", "-t1", "-c%d" % args.connections, "-d1s", url], timeout=60)
                sampler = Sampler(pid) if pid else None
                if sampler:
                    sampler.start()
                cpu0 = cpu_seconds(pid) if pid else 0
                r = client.run(["wrk", "-t1", "-c%d" % args.connections,
                                "-d%ds" % args.duration, "--latency", url],
                               timeout=args.duration + 60, nofile=20000)
                cpu = cpu_seconds(pid) - cpu0 if pid else 0
                if sampler:
                    sampler.stop.set()
                    sampler.join()
                res = parse_wrk(r.stdout)
                res["peak_rss"] = sampler.peak if sampler else 0
                res["cpu_us"] = cpu * 1e6 / res["requests"] if pid and res["requests"] else 0
                runs[name].append(res)
        results = {}
        for name, rs in runs.items():
            results[name] = {k: median([r[k] for r in rs]) for k in
                             ("rps", "p50", "p99", "peak_rss", "cpu_us")}
            results[name]["peak_rss"] = max(r["peak_rss"] for r in rs)
            results[name]["errors"] = " ".join(r["errors"] for r in rs if r["errors"])

        syscalls = {}
        if args.strace:
            for name, url, pid in targets[1:]:
                syscalls[name] = count_syscalls(client, url, pid, args)

        perf_lines = profile(client, targets[2][1], proxy.pid, args) if args.perf else []

        metrics = tapped.metrics()
        entries = sum(v for k, v in metrics.items() if k.startswith("sidetap_entries_total{"))
        shipped = metrics.get("sidetap_entries_shipped_total", 0)
        dropped = sum(v for k, v in metrics.items()
                      if k.startswith("sidetap_entries_dropped_total{"))

        # 1,000 idle connections through the proxy: no byte, then one request each.
        time.sleep(1.0)
        socks = hold_connections(client, tapped.ip, 80, args.idle)
        time.sleep(1.0)
        rss_idle_conns = rss_kib(proxy.pid)
        open_conns = tapped.metrics().get('sidetap_connections_open{direction="inbound"}', 0)
        for s in socks:
            s.close()
        time.sleep(1.0)
        req = b"GET /index.html HTTP/1.1\r\nHost: bench\r\n\r\n"
        socks = hold_connections(client, tapped.ip, 80, args.idle, request=req)
        time.sleep(1.0)
        rss_ka_conns = rss_kib(proxy.pid)
        for s in socks:
            s.close()
        time.sleep(1.0)
        rss_after = rss_kib(proxy.pid)
        socks = hold_connections(client, viahap.ip, 8080, args.idle, request=req)
        time.sleep(0.5)
        hap_conns = rss_kib(hap.pid)
        for s in socks:
            s.close()

    d, h, s = results["direct"], results["haproxy"], results["sidetap"]
    print()
    print("sidetap-proxy benchmark: wrk -t1 -c%d -d%ds, %d-byte responses from nginx (1 worker),"
          " median of %d interleaved rounds; load average before: %s"
          % (args.connections, args.duration, args.size, args.rounds, load_before))
    print("%-9s %12s %10s %10s %14s  %s" % ("path", "requests/s", "p50 ms", "p99 ms",
                                            "proxy CPU/req", "errors"))
    for name in ("direct", "haproxy", "sidetap"):
        r = results[name]
        cpu = "%.1f us" % r["cpu_us"] if r["cpu_us"] else "-"
        print("%-9s %12.0f %10.3f %10.3f %14s  %s" % (name, r["rps"], r["p50"], r["p99"], cpu,
                                                      r["errors"] or "-"))
    print()
    print("throughput sidetap/direct  %.2fx   sidetap/haproxy %.2fx   haproxy/direct %.2fx"
          % (s["rps"] / d["rps"], s["rps"] / h["rps"], h["rps"] / d["rps"]))
    print("p99        sidetap/direct  %.2fx   sidetap/haproxy %.2fx"
          % (s["p99"] / d["p99"], s["p99"] / h["p99"]))
    print("CPU/req    sidetap/haproxy %.2fx" % (s["cpu_us"] / h["cpu_us"]))
    print()
    mib = lambda kib: kib / 1024.0  # noqa: E731
    print("sidetap-proxy RSS: idle %.1f MiB, under load (peak) %.1f MiB, "
          "%d idle connections %.1f MiB (proxy counted %d open), "
          "%d keep-alive connections after a request %.1f MiB, after closing %.1f MiB"
          % (mib(idle_rss), mib(s["peak_rss"]), args.idle, mib(rss_idle_conns), open_conns,
             args.idle, mib(rss_ka_conns), mib(rss_after)))
    print("haproxy RSS:       idle %.1f MiB, under load (peak) %.1f MiB, %d connections %.1f MiB"
          % (mib(hap_idle), mib(h["peak_rss"]), args.idle, mib(hap_conns)))
    print("entries: %d made, %d shipped, %d dropped" % (entries, shipped, dropped))
    for name, (total, per) in syscalls.items():
        print("%-8s syscalls/request %.2f: %s" % (name, total, ", ".join(
            "%s %.2f" % (call, n) for call, n in sorted(per.items(), key=lambda kv: -kv[1]) if n >= 0.01)))
    if perf_lines:
        print("\nsidetap-proxy profile (perf, %d s of wrk):" % args.perf)
        for line in perf_lines:
            print("  " + line.strip())
    print()
    targets_met = [
        ("throughput >= 1.0x haproxy", s["rps"] >= h["rps"]),
        ("p99 <= haproxy", s["p99"] <= h["p99"]),
        ("idle RSS < 4 MiB", idle_rss < 4096),
        ("RSS with %d connections < 32 MiB" % args.idle, max(rss_idle_conns, rss_ka_conns) < 32768),
    ]
    for label, ok in targets_met:
        print("target %-40s %s" % (label, "met" if ok else "MISSED"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
