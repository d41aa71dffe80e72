#!/usr/bin/env python3
"""The sidetap demo: a local "node" made of network namespaces, running the seed
walkthrough's workloads (guestbook, bookinfo, etcd) with real servers, each pod injected
exactly as the webhook injects it (sidetap-init rules, sidetap-proxy as uid 1717 with
the pod identity), a cluster DNS (dnsmasq), a load generator, and sidetap-collector
serving the UI on the host's http://localhost:8899 (as `kubectl port-forward` would).

    run.py [--bin-dir build] [--port 8899] [--ready-file F] [--seconds N]
    run.py stop

Called by scripts/demo, which installs and builds first. Ctrl-C, SIGTERM or `run.py stop`
removes every namespace, process and file it made (tests/harness does the cleanup).
"""
import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import Node, HarnessError  # noqa: E402

APPS = os.path.join(ROOT, "demo", "apps")
STATE_FILE = "/run/sidetap-demo.pid"  # --state-file
NODE_NAME = "demo-node-1"
COLLECTOR_PORT = 8080


def say(msg):
    print("==> " + msg, flush=True)


def pod_name(workload, n):
    """Deployment-style pod names: <workload>-<replicaset hash>-<5 chars>."""
    return "%s-%s-%s" % (workload, secrets.token_hex(5)[:9], secrets.token_hex(3)[:5])


class CollectorRef:
    """What pod.inject() needs to point a proxy at the collector."""

    def __init__(self, url, token):
        self.url = url
        self.token = token


def check_prerequisites():
    if os.geteuid() != 0:
        sys.exit("demo: run as root: it creates network namespaces and iptables rules "
                 "inside them (sudo ./scripts/demo)")
    for tool, args in (("ip", ["netns", "list"]), ("iptables", ["--version"])):
        try:
            subprocess.run([tool, *args], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit("demo: `%s %s` does not work here (%s): the demo needs iproute2 "
                     "network namespaces and iptables" % (tool, " ".join(args), e))
    probe = "sth-probe-%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("demo: cannot create a network namespace (%s): run it on a machine or "
                 "container that allows `ip netns add`" % r.stderr.strip())
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


class Demo:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.bin_dir)
        self.init = os.path.join(self.bin, "proxy", "init", "sidetap-init")
        self.proxy = os.path.join(self.bin, "proxy", "sidetap-proxy")
        self.collector_bin = os.path.join(self.bin, "collector", "sidetap-collector")
        for b in (self.init, self.proxy, self.collector_bin):
            if not os.access(b, os.X_OK):
                sys.exit("demo: %s is missing: build first (ninja -C %s)" % (b, args.bin_dir))
        self.token = secrets.token_hex(16)
        self.node = None
        self.pods = {}

    def add(self, key, workload, namespace, labels, service_account=None, name=None):
        pod = self.node.add_pod(name or pod_name(workload, 0), namespace=namespace,
                                labels=labels, workload=workload,
                                service_account=service_account or "default")
        self.pods[key] = pod
        return pod

    def inject(self, pod):
        pod.inject(init=self.init, proxy=self.proxy, collector=self.collector)

    def start(self):
        self.node = Node(name=NODE_NAME)
        node = self.node
        say("starting cluster DNS (dnsmasq) on the node")
        node.add_dns()

        say("starting sidetap-collector in namespace sidetap")
        cpod = self.add("collector", "sidetap-collector", "sidetap", {"app": "sidetap-collector"},
                        service_account="sidetap-collector")
        data = os.path.join(node.dir, "collector-data")
        os.makedirs(data, exist_ok=True)
        token_file = os.path.join(node.dir, "token")
        with open(token_file, "w") as f:
            f.write(self.token)
        cproc = cpod.spawn([self.collector_bin, "--listen", "0.0.0.0:%d" % COLLECTOR_PORT,
                            "--token-file", token_file, "--data-dir", data],
                           name="sidetap-collector")
        cpod.wait_port(COLLECTOR_PORT, proc=cproc)
        node.add_service("sidetap-collector", cpod)
        self.collector_url = "http://%s:%d" % (cpod.ip, COLLECTOR_PORT)
        self.collector = CollectorRef(self.collector_url, self.token)

        # Pods first (so DNS knows every name before anyone looks one up), then inject,
        # then start the apps, servers before clients.
        say("creating pods: guestbook, bookinfo, etcd")
        gb = {"app": "guestbook", "tier": "frontend"}
        fe = [self.add("frontend-%d" % i, "frontend", "guestbook", gb) for i in range(2)]
        leader = self.add("redis-leader", "redis-leader", "guestbook",
                          {"app": "redis", "role": "leader", "tier": "backend"})
        followers = [self.add("redis-follower-%d" % i, "redis-follower", "guestbook",
                              {"app": "redis", "role": "follower", "tier": "backend"})
                     for i in range(2)]
        bi = {}
        for svc, ver in (("productpage", "v1"), ("details", "v1"), ("reviews", "v1"),
                         ("reviews", "v2"), ("reviews", "v3"), ("ratings", "v1")):
            bi[(svc, ver)] = self.add("%s-%s" % (svc, ver), "%s-%s" % (svc, ver), "bookinfo",
                                      {"app": svc, "version": ver},
                                      service_account="bookinfo-" + svc)
        etcd = [self.add("etcd-%d" % i, "etcd", "etcd", {"app": "etcd"}, name="etcd-%d" % i)
                for i in range(3)]
        etcd_client = self.add("etcd-client", "etcd-client", "etcd", {"app": "etcd-client"})
        loadgen = self.add("loadgen", "loadgen", "default", {"app": "loadgen"})

        node.add_service("frontend", fe)
        node.add_service("redis-leader", leader)
        node.add_service("redis-follower", followers)
        for svc in ("productpage", "details", "reviews", "ratings"):
            node.add_service(svc, [p for (s, _), p in bi.items() if s == svc])
        for i, p in enumerate(etcd):
            node.add_record("etcd-%d.etcd.etcd.svc.%s" % (i, node.domain), p.ip)
        node.add_service("etcd", etcd)

        say("injecting sidetap into %d pods (sidetap-init + sidetap-proxy)" %
            (len(fe) + 3 + len(bi) + len(etcd) + 1))
        for p in [*fe, leader, *followers, *bi.values(), *etcd, etcd_client]:
            self.inject(p)
        for p in (node.dns, loadgen):
            self.register_plain(p)

        say("starting guestbook: redis-leader, 2 redis-followers, 2 frontends")
        rl = leader.spawn(["redis-server", "--port", "6379", "--bind", "0.0.0.0",
                           "--protected-mode", "no", "--save", "", "--appendonly", "no"],
                          name="redis")
        leader.wait_port(6379, proc=rl)
        for p in followers:
            pr = p.spawn(["redis-server", "--port", "6379", "--bind", "0.0.0.0",
                          "--protected-mode", "no", "--save", "", "--appendonly", "no",
                          "--replicaof", "redis-leader.guestbook.svc.cluster.local", "6379"],
                         name="redis")
            p.wait_port(6379, proc=pr)
        for p in fe:
            pf = p.spawn([sys.executable, os.path.join(APPS, "guestbook.py"), "--port", "80"],
                         name="frontend")
            p.wait_port(80, proc=pf)

        say("starting bookinfo: productpage, details, reviews v1/v2/v3, ratings")
        for (svc, ver), p in bi.items():
            pb = p.spawn([sys.executable, os.path.join(APPS, "bookinfo.py"), svc,
                          "--version", ver], name=svc)
            p.wait_port(9080, proc=pb)

        say("starting etcd: 3 members and a client")
        cluster = ",".join("etcd-%d=http://etcd-%d.etcd.etcd.svc.%s:2380" % (i, i, node.domain)
                           for i in range(3))
        procs = []
        for i, p in enumerate(etcd):
            fq = "etcd-%d.etcd.etcd.svc.%s" % (i, node.domain)
            d = os.path.join(node.dir, "etcd-%d.data" % i)
            procs.append((p, p.spawn(["etcd", "--name", "etcd-%d" % i, "--data-dir", d,
                                      "--listen-client-urls", "http://0.0.0.0:2379",
                                      "--advertise-client-urls", "http://%s:2379" % fq,
                                      "--listen-peer-urls", "http://0.0.0.0:2380",
                                      "--initial-advertise-peer-urls", "http://%s:2380" % fq,
                                      "--initial-cluster", cluster,
                                      "--initial-cluster-state", "new",
                                      "--initial-cluster-token", "sidetap-demo"],
                                     name="etcd")))
        for p, pe in procs:
            p.wait_port(2379, proc=pe, timeout=60)
        endpoints = ",".join("http://etcd-%d.etcd.etcd.svc.%s:2379" % (i, node.domain)
                             for i in range(3))
        etcd_client.spawn(["bash", os.path.join(APPS, "etcd_client.sh"), endpoints],
                          name="etcd-client", env={"ETCDCTL_API": "3",
                                                   "SECONDS_MAX": str(int(self.args.seconds))})

        say("starting the load generator and the health prober")
        loadgen.spawn([sys.executable, os.path.join(APPS, "loadgen.py"), "--rate", "2",
                       "--seconds", str(self.args.seconds)], name="loadgen")

        self.port = node.expose(cpod, COLLECTOR_PORT, host_port=self.args.port)

    def register_plain(self, pod):
        """Tells the collector who a pod without a proxy is (the DNS server, the load
        generator), as its Kubernetes API watch would in a cluster."""
        body = json.dumps({"pod": {"name": pod.name, "namespace": pod.namespace,
                                   "node": NODE_NAME, "ip": pod.ip, "ips": [pod.ip],
                                   "workload": pod.workload,
                                   "serviceAccount": pod.service_account,
                                   "labels": pod.labels or {}}})
        # From inside the node: the collector's address is a pod address.
        self.pods["collector"].run(
            ["curl", "-sf", "-o", "/dev/null", "-X", "POST", "-H", "Content-Type: application/json",
             "-H", "Authorization: Bearer " + self.token, "--data-binary", body,
             self.collector_url + "/api/v1/register"], check=False)

    def close(self):
        if self.node is not None:
            self.node.close()
            self.node = None


def stop_running(state_file):
    try:
        pid = int(open(state_file).read().split()[0])
    except (OSError, ValueError, IndexError):
        print("demo: not running")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        os.unlink(state_file)
        print("demo: not running (stale state removed)")
        return 0
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("demo: stopped; every namespace, process and rule it made is gone")
            return 0
        time.sleep(0.1)
    print("demo: pid %d did not stop within 30 s" % pid, file=sys.stderr)
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run", "stop"])
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--port", type=int, default=8899, help="host port for the UI (0 = any free)")
    p.add_argument("--seconds", type=float, default=4 * 3600, help="stop after this long")
    p.add_argument("--ready-file", help="write the UI URL here once everything runs")
    p.add_argument("--state-file", default=STATE_FILE, help="where the running demo's pid is kept")
    args = p.parse_args()

    if args.command == "stop":
        return stop_running(args.state_file)
    check_prerequisites()
    if os.path.exists(args.state_file):
        stop_running(args.state_file)  # run again safely: replace the previous demo

    demo = Demo(args)
    stopping = {"flag": False}

    def on_signal(signum, frame):
        stopping["flag"] = True

    try:
        with open(args.state_file, "w") as f:
            f.write("%d\n" % os.getpid())
        demo.start()
        url = "http://localhost:%d" % demo.port
        print("\n  sidetap is capturing the demo's traffic. Open %s\n" % url)
        print("  Try the filters of the walkthrough, e.g.  !dns and !error and src.namespace == \"bookinfo\"")
        print("  Stop with Ctrl-C, or `./scripts/demo stop` from another shell.\n", flush=True)
        if args.ready_file:
            with open(args.ready_file + ".tmp", "w") as f:
                f.write(url + "\n")
            os.replace(args.ready_file + ".tmp", args.ready_file)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        deadline = time.monotonic() + args.seconds
        while not stopping["flag"] and time.monotonic() < deadline:
            time.sleep(0.5)
        say("stopping: removing namespaces, processes and rules")
    except HarnessError as e:
        print("demo: %s" % e, file=sys.stderr)
        if demo.node is not None:
            demo.node.dump_logs(lines=12)
        return 1
    finally:
        demo.close()
        try:
            if open(args.state_file).read().split()[0] == str(os.getpid()):
                os.unlink(args.state_file)
        except (OSError, IndexError):
            pass
    say("demo stopped, machine clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
