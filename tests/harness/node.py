"""A Kubernetes-like node made of network namespaces, for integration tests, benchmarks
and the demo. See README.md in this folder for the interface and an example.

Layout (nothing touches the host's own network, routes or iptables):

    netns sth-<tag>-node:  bridge br0 (10.77.N.1/24), one veth v<i> per pod
    netns sth-<tag>-<pod>: eth0 (10.77.N.i/24, default route via .1), lo up,
                           /etc/netns/sth-<tag>-<pod>/{resolv.conf,hosts}

<tag> is the PID plus a random suffix, so concurrent runs never collide; N is random too.
Programs run in a pod with `ip netns exec`, which bind-mounts the pod's resolv.conf and
hosts over /etc. A pod is "injected" exactly as the webhook would do it: sidetap-init as
root, then sidetap-proxy as uid/gid 1717 with the pod identity in its environment.
Everything is removed by Node.close(), which also runs at exit and on SIGTERM/SIGINT/SIGHUP.
"""
import atexit
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from . import netns as _netns

PROXY_UID = 1717
PROXY_GID = 1717
OUTBOUND_PORT = 16001
INBOUND_PORT = 16006
DNS_PORT = 16053
ADMIN_PORT = 16020
PREFIX = "sth-"
HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer", "SUMMARY: AddressSanitizer")

_live_nodes = []
_lock = threading.Lock()
_handlers_installed = False


class HarnessError(Exception):
    pass


def _ip(*args, check=True, input=None):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, input=input, timeout=60)
    if check and r.returncode != 0:
        raise HarnessError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_pids(name):
    r = _ip("netns", "pids", name, check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _delete_netns(name):
    """Kills whatever still runs in the namespace (only our own programs can be there:
    the name is unique to one run) and deletes it."""
    for _ in range(3):
        pids = _netns_pids(name)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    _ip("netns", "del", name, check=False)
    shutil.rmtree("/etc/netns/" + name, ignore_errors=True)


def reap_stale():
    """Removes namespaces left by harness runs whose process is gone (a crashed run)."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return
    for name in names:
        m = re.match(r"^sth-(\d+)-[0-9a-f]+-", name)
        if m and not _pid_alive(int(m.group(1))):
            _delete_netns(name)


def _cleanup_all():
    with _lock:
        nodes = list(_live_nodes)
    for node in nodes:
        try:
            node.close()
        except Exception as e:  # keep cleaning the others
            print("harness: cleanup of %s failed: %s" % (node.prefix, e), file=sys.stderr)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_cleanup_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        def handler(signum, frame):
            _cleanup_all()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        signal.signal(sig, handler)


class Proc:
    """A program started in a pod (or on the host), in its own process group, with its
    stdout and stderr in one log file."""

    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.pid = popen.pid

    @property
    def returncode(self):
        return self.popen.returncode

    def poll(self):
        return self.popen.poll()

    def wait(self, timeout=None):
        return self.popen.wait(timeout)

    def send_signal(self, sig):
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signals the process group, waits up to timeout, then SIGKILLs it. Returns the
        exit status (negative = killed by that signal, as in subprocess)."""
        if self.popen.poll() is None:
            self.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait(10)
        try:  # children that outlived their parent (e.g. nginx workers)
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.popen.returncode

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log().splitlines()[-lines:])

    def sanitizer_errors(self):
        """Lines of ASan/LSan/UBSan reports in the log (empty list = clean)."""
        return [l for l in self.log().splitlines() if any(m in l for m in SANITIZER_MARKERS)]


class Pod:
    """A network namespace with one address on the node's bridge, running programs."""

    def __init__(self, node, name, ip, namespace, labels, workload, service_account):
        self.node = node
        self.name = name
        self.ip = ip
        self.namespace = namespace
        self.labels = dict(labels or {})
        self.workload = workload or name
        self.service_account = service_account
        self.ns = "%s-%s" % (node.prefix, name)
        self.ns_path = "/run/netns/" + self.ns
        self.etc = "/etc/netns/" + self.ns
        self.proxy = None
        self.injected = False

    def __repr__(self):
        return "<Pod %s %s>" % (self.name, self.ip)

    # -- running programs -------------------------------------------------------------

    def command(self, argv, user=None, nofile=None):
        """The argv that runs `argv` in this pod as `user` (None = root, an int uid with
        the same gid, a (uid, gid) pair, or "proxy" for 1717:1717)."""
        prefix = ["ip", "netns", "exec", self.ns]
        if nofile:
            # Raising the hard limit needs CAP_SYS_RESOURCE, which a container may lack.
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            if hard != resource.RLIM_INFINITY:
                nofile = min(nofile, hard)
            prefix += ["prlimit", "--nofile=%d:%d" % (nofile, nofile), "--"]
        if user is not None:
            uid, gid = ((PROXY_UID, PROXY_GID) if user == "proxy" else
                        (user, user) if isinstance(user, int) else user)
            prefix += ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups", "--"]
        return prefix + [str(a) for a in argv]

    def run(self, argv, *, user=None, check=True, timeout=120, input=None, env=None,
            text=True, nofile=None, cwd=None):
        """Runs a program to completion; returns subprocess.CompletedProcess with stdout
        and stderr captured. check=True raises HarnessError on a non-zero exit."""
        r = subprocess.run(self.command(argv, user, nofile), capture_output=True, text=text,
                           input=input, env=self.node._env(env), timeout=timeout, cwd=cwd)
        if check and r.returncode != 0:
            err = r.stderr if text else r.stderr.decode(errors="replace")
            raise HarnessError("%s: %s exited %d: %s" % (self.name, " ".join(map(str, argv)),
                                                         r.returncode, err[-2000:]))
        return r

    def spawn(self, argv, *, name=None, user=None, env=None, nofile=None, stdin=None,
              cwd=None):
        """Starts a long-running program; its output goes to <node.dir>/<pod>.<name>.log.
        The node stops it on close()."""
        name = name or os.path.basename(str(argv[0]))
        log_path = os.path.join(self.node.dir, "%s.%s.log" % (self.name, name))
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(self.command(argv, user, nofile), stdout=log,
                                     stderr=subprocess.STDOUT,
                                     stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                     env=self.node._env(env), cwd=cwd, start_new_session=True)
        proc = Proc("%s/%s" % (self.name, name), popen, log_path)
        self.node._procs.append(proc)
        return proc

    # -- sockets from the test process ------------------------------------------------

    def connect(self, host, port, timeout=10.0):
        """A TCP socket connected from inside this pod (subject to its iptables rules)."""
        return _netns.connect(self.ns_path, host, port, timeout)

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM):
        return _netns.make_socket(self.ns_path, family, type)

    def wait_port(self, port, host=None, timeout=20.0, proc=None):
        """Waits until host:port (default: this pod's IP) accepts TCP from inside the pod."""
        _netns.wait_port(self.ns_path, host or self.ip, port, timeout, proc)

    def http_get(self, host, port, path, timeout=10.0, **kw):
        return _netns.http_get(self.ns_path, host, port, path, timeout, **kw)

    # -- injection ----------------------------------------------------------------------

    def identity_env(self):
        env = {
            "POD_NAME": self.name,
            "POD_NAMESPACE": self.namespace,
            "POD_IP": self.ip,
            "NODE_NAME": self.node.name,
            "SERVICE_ACCOUNT": self.service_account,
            "SIDETAP_WORKLOAD": self.workload,
        }
        if self.labels:
            env["SIDETAP_LABELS"] = ",".join("%s=%s" % kv for kv in sorted(self.labels.items()))
        return env

    def inject(self, *, init, proxy, collector=None, init_args=(), proxy_args=(), env=None,
               wait=True, nofile=None, timeout=30.0):
        """Runs sidetap-init (as root, like the init container) and starts sidetap-proxy
        as uid/gid 1717 with the pod identity, the collector URL and token; waits for
        /readyz. Returns the proxy's Proc (also in self.proxy)."""
        r = self.run([init, *init_args], check=False)
        if r.returncode != 0:
            raise HarnessError("%s: sidetap-init failed (%d): %s" % (self.name, r.returncode,
                                                                    r.stderr))
        self.init_output = r.stderr
        e = self.identity_env()
        if collector is not None:
            e["SIDETAP_COLLECTOR_URL"] = collector.url
            if collector.token:
                e["SIDETAP_TOKEN"] = collector.token
        e.update(env or {})
        self.proxy = self.spawn([proxy, *proxy_args], name="sidetap-proxy", user="proxy", env=e,
                                nofile=nofile)
        self.injected = True
        if wait:
            self.wait_proxy_ready(timeout)
        return self.proxy

    def wait_proxy_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proxy.poll() is not None:
                raise HarnessError("%s: sidetap-proxy exited (%s):\n%s" %
                                   (self.name, self.proxy.returncode, self.proxy.log_tail()))
            try:
                status, _, _ = self.http_get("127.0.0.1", ADMIN_PORT, "/readyz", timeout=2)
                if status == 200:
                    return
                last = "status %d" % status
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise HarnessError("%s: sidetap-proxy not ready after %.0f s (%s):\n%s" %
                           (self.name, timeout, last, self.proxy.log_tail()))

    def metrics(self):
        """The proxy's /metrics as {"name{labels}": value}."""
        status, _, body = self.http_get("127.0.0.1", ADMIN_PORT, "/metrics")
        if status != 200:
            raise HarnessError("%s: /metrics answered %d" % (self.name, status))
        out = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
        return out

    def stop_proxy(self, timeout=20.0):
        """Stops the proxy with SIGTERM; returns (exit status, sanitizer error lines)."""
        if self.proxy is None:
            return None, []
        rc = self.proxy.stop(timeout=timeout)
        return rc, self.proxy.sanitizer_errors()

    def write_etc(self, name, text):
        """Writes /etc/<name> as seen by programs of this pod (ip netns exec binds it)."""
        path = os.path.join(self.etc, name)
        # Rewrite in place: a bind mount pins the inode.
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)


class Collector:
    """A collector stand-in running in its own (not injected) pod: an HTTP sink that
    appends every entry the proxies POST to a JSON-lines file (tests/lib/sink.py when it
    exists, else tests/harness/minisink.py; both take --listen --out --token --mode)."""

    def __init__(self, node, pod, port, token, sink, mode="ok"):
        self.node = node
        self.pod = pod
        self.port = port
        self.token = token
        self.sink = sink
        self.mode = mode
        self.url = "http://%s:%d" % (pod.ip, port)
        self.path = os.path.join(node.dir, "%s.out.jsonl" % pod.name)
        self.proc = None

    def start(self, mode=None, timeout=20.0):
        """(Re)starts the sink; mode "ok" accepts, "503" refuses every POST."""
        self.mode = mode or self.mode
        argv = [sys.executable, self.sink, "--listen", "0.0.0.0:%d" % self.port,
                "--out", self.path, "--mode", self.mode]
        if self.token:
            argv += ["--token", self.token]
        self.proc = self.pod.spawn(argv, name="sink")
        self.pod.wait_port(self.port, proc=self.proc, timeout=timeout)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def _lines(self):
        out = []
        try:
            with open(self.path) as f:
                for line in f:
                    if line.strip():
                        try:
                            out.append(json.loads(line))
                        except ValueError:  # a line being written
                            pass
        except FileNotFoundError:
            pass
        return out

    def entries(self):
        """Every entry received so far, in arrival order."""
        return [l for l in self._lines() if "register" not in l]

    def registrations(self):
        return [l["register"] for l in self._lines() if "register" in l]

    def clear(self):
        if os.path.exists(self.path):
            open(self.path, "w").close()

    def wait_entries(self, pred=lambda e: True, count=1, timeout=20.0):
        """Waits until at least `count` received entries satisfy pred; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            got = [e for e in self.entries() if pred(e)]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.1)


class Node:
    """A node of pods. Use as a context manager:

        with Node() as node:
            web = node.add_pod("web", labels={"app": "web"})
            ...
    """

    def __init__(self, name="node-1", *, subnet=None, logdir=None, keep=None):
        _install_handlers()
        reap_stale()
        self.name = name
        self.tag = "%d-%s" % (os.getpid(), secrets.token_hex(2))
        self.prefix = PREFIX + self.tag
        self.subnet = "10.77.%d" % (subnet if subnet is not None else random.randint(0, 255))
        self.gateway = self.subnet + ".1"
        self.ns = self.prefix + "-node"
        self.keep = keep if keep is not None else bool(os.environ.get("SIDETAP_KEEP_LOGS"))
        self.dir = logdir or tempfile.mkdtemp(prefix="sidetap-%s-" % self.tag)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.pods = {}
        self.dns = None
        self.records = {}
        self._procs = []
        self._namespaces = []
        self._next_host = 10
        self._closed = False
        with _lock:
            _live_nodes.append(self)
        try:
            self._add_netns(self.ns)
            _ip("-n", self.ns, "-batch", "-", input="link set lo up\n"
                "link add br0 type bridge\n"
                "addr add %s/24 dev br0\n"
                "link set br0 up\n" % self.gateway)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _env(self, extra):
        env = dict(os.environ)
        env.update(extra or {})
        return env

    def _add_netns(self, name):
        _ip("netns", "add", name)
        self._namespaces.append(name)
        os.makedirs("/etc/netns/" + name, exist_ok=True)

    # -- pods -----------------------------------------------------------------------------

    def add_pod(self, name, *, namespace="default", labels=None, workload=None,
                service_account="default"):
        """Creates a pod (its own netns, an address on the bridge, lo up, resolv.conf and
        hosts). `name` is the pod name (POD_NAME), a DNS label."""
        if name in self.pods:
            raise HarnessError("pod %s exists" % name)
        if not re.match(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", name):
            raise HarnessError("pod name %r: lower-case letters, digits and '-', <= 63 chars"
                               % name)
        if self._next_host > 250:
            raise HarnessError("node is full")
        ip = "%s.%d" % (self.subnet, self._next_host)
        veth = "v%d" % self._next_host
        self._next_host += 1
        pod = Pod(self, name, ip, namespace, labels, workload, service_account)
        self._add_netns(pod.ns)
        self.pods[name] = pod
        _ip("-n", self.ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
            pod.ns)
        _ip("-n", self.ns, "link", "set", veth, "master", "br0", "up")
        _ip("-n", pod.ns, "-batch", "-", input="link set lo up\n"
            "addr add %s/24 dev eth0\n"
            "link set eth0 up\n"
            "route add default via %s\n" % (ip, self.gateway))
        pod.write_etc("hosts", "127.0.0.1 localhost\n::1 localhost\n%s %s\n" % (ip, name))
        self._write_resolv(pod)
        return pod

    def _write_resolv(self, pod):
        if self.dns is None:
            pod.write_etc("resolv.conf", "# no cluster DNS on this node\n")
            return
        ns = pod.namespace
        pod.write_etc("resolv.conf",
                      "search %s.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n" %
                      (ns, self.domain, self.domain, self.domain, self.dns.ip))

    # -- cluster DNS ----------------------------------------------------------------------

    def add_dns(self, name="kube-dns", domain="cluster.local"):
        """Starts a dnsmasq "cluster DNS" pod answering the names added with add_service()
        and add_record() (and NXDOMAIN for anything else under `domain`); every pod's
        resolv.conf points at it."""
        if self.dns is not None:
            raise HarnessError("the node already has DNS")
        self.domain = domain
        pod = self.add_pod(name, namespace="kube-system", labels={"k8s-app": "kube-dns"})
        self.dns = pod
        self.hosts_path = os.path.join(self.dir, "dns.hosts")
        self._write_hosts()
        self.dns_proc = pod.spawn(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                                   "--no-resolv", "--no-hosts", "--addn-hosts=" + self.hosts_path,
                                   "--listen-address=" + pod.ip, "--bind-interfaces",
                                   "--local=/%s/" % domain, "--pid-file=", "--user=root",
                                   "--log-queries", "--log-facility=-", "--cache-size=0"],
                                  name="dnsmasq")
        pod.wait_port(53, proc=self.dns_proc)
        for p in self.pods.values():
            self._write_resolv(p)
        return pod

    def _write_hosts(self):
        tmp = self.hosts_path + ".tmp"
        with open(tmp, "w") as f:
            for fqdn, ips in sorted(self.records.items()):
                for ip in ips:
                    f.write("%s %s\n" % (ip, fqdn))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.hosts_path)

    def add_record(self, fqdn, ip):
        """Adds an A record to the cluster DNS (dnsmasq re-reads it on SIGHUP). `ip` may
        be a list: one A record each, like a Service with several ready pods."""
        if self.dns is None:
            raise HarnessError("add_dns() first")
        self.records[fqdn] = list(ip) if isinstance(ip, (list, tuple)) else [ip]
        self._write_hosts()
        self.dns_proc.send_signal(signal.SIGHUP)
        time.sleep(0.1)

    def add_service(self, service, pod, namespace=None):
        """<service>.<namespace>.svc.<domain> -> the pod's IP (a headless Service); `pod`
        may be a list of pods (one A record each). Returns the fully qualified name."""
        pods = list(pod) if isinstance(pod, (list, tuple)) else [pod]
        fqdn = "%s.%s.svc.%s" % (service, namespace or pods[0].namespace, self.domain)
        self.add_record(fqdn, [p.ip for p in pods])
        return fqdn

    # -- collector ------------------------------------------------------------------------

    def add_collector(self, name="collector", port=80, token="test-token", sink=None,
                      start=True):
        """Starts an entry sink in its own pod (not injected); returns a Collector whose
        .url and .token go to the proxies. start=False leaves it down (call .start())."""
        pod = self.add_pod(name, namespace="sidetap", labels={"app": "sidetap-collector"})
        if sink is None:
            full = os.path.join(os.path.dirname(HERE), "lib", "sink.py")
            sink = full if os.path.exists(full) else os.path.join(HERE, "minisink.py")
        collector = Collector(self, pod, port, token, sink)
        return collector.start() if start else collector

    # -- host access ----------------------------------------------------------------------

    def expose(self, pod, port, host_port=0, host="127.0.0.1"):
        """Forwards host's 127.0.0.1:<host_port> (0 = any free port) to pod.ip:port, like
        kubectl port-forward, with a small forwarder process (tests/harness/forward.py)
        in the host namespace that opens its upstream sockets inside the pod's netns.
        No interface or route is added to the host. Returns the host port."""
        log_path = os.path.join(self.dir, "forward.%s.%d.log" % (pod.name, port))
        with open(log_path, "ab") as log:
            popen = subprocess.Popen([sys.executable, os.path.join(HERE, "forward.py"),
                                      pod.ns_path, pod.ip, str(port), host, str(host_port)],
                                     stdout=subprocess.PIPE, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        proc = Proc("forward/%s:%d" % (pod.name, port), popen, log_path)
        self._procs.append(proc)
        line = popen.stdout.readline().decode().strip()
        if not line.isdigit():
            raise HarnessError("forwarder failed: %s" % proc.log_tail())
        return int(line)

    # -- teardown -------------------------------------------------------------------------

    def procs(self):
        return list(self._procs)

    def dump_logs(self, lines=30, file=sys.stderr):
        """Prints the tail of every program's log (call it when a test fails)."""
        for proc in self._procs:
            print("---- %s (%s) ----\n%s" % (proc.name, proc.log_path, proc.log_tail(lines)),
                  file=file)

    def close(self):
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self._procs):
            try:
                proc.stop(timeout=5)
            except Exception:
                pass
        for name in reversed(self._namespaces):
            _delete_netns(name)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("harness: logs kept in %s" % self.dir, file=sys.stderr)
        with _lock:
            if self in _live_nodes:
                _live_nodes.remove(self)
