"""Shared set-up for the proxy integration tests: command-line arguments (the built
programs, passed by meson), one node per test module with cluster DNS and a collector
sink, injected and plain pods, entry look-ups and the end-of-module sanitizer check.

A test module defines a subclass of ProxyTest with a `build(cls)` classmethod that adds its
pods; every pod injected through `cls.injected()` has its proxy checked at the end: still
running after every test, exits 0 on SIGTERM, no ASan/LSan/UBSan report.
"""
import argparse
import hashlib
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from harness import HarnessError, Node  # noqa: E402,F401

ARGS = None


def parse_args():
    """Takes --init, --proxy and --source-root off sys.argv (the rest goes to unittest)."""
    global ARGS
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--init", required=True)
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--source-root", default=os.environ.get("SIDETAP_SOURCE_ROOT",
                                                             os.path.dirname(os.path.dirname(HERE))))
    ARGS, rest = ap.parse_known_args()
    ARGS.init = os.path.abspath(ARGS.init)
    ARGS.proxy = os.path.abspath(ARGS.proxy)
    sys.argv[1:] = rest
    return ARGS


def main():
    parse_args()
    if os.geteuid() != 0:
        print("integration tests need root (network namespaces); skipping")
        sys.exit(77)
    unittest.main(verbosity=2)


def have_parser(name):
    """True when parsers/<name>.c exists in the source tree: that protocol's entries carry
    their own fields; until then they are `tcp` entries. Relay checks never depend on it."""
    return os.path.exists(os.path.join(ARGS.source_root, "parsers", name + ".c"))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def get(entry, path, default=None):
    """get(e, "request.headers.Host") -> value or default."""
    cur = entry
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def where(entries, **fields):
    """Entries whose dotted fields equal the given values: where(es, protocol__name="http")."""
    out = []
    for e in entries:
        if all(get(e, k.replace("__", ".")) == v for k, v in fields.items()):
            out.append(e)
    return out


class ProxyTest(unittest.TestCase):
    """One node per test module; subclasses add pods in build()."""

    maxDiff = None
    node = None
    proxied = ()

    @classmethod
    def setUpClass(cls):
        cls.node = Node()
        cls.proxied = []
        try:
            cls.dns = cls.node.add_dns()
            cls.sink = cls.node.add_collector()
            cls.build()
        except BaseException:
            cls.node.dump_logs()
            cls.node.close()
            raise

    @classmethod
    def build(cls):
        pass

    @classmethod
    def injected(cls, name, **kw):
        """An injected pod: sidetap-init + sidetap-proxy (uid 1717) reporting to the sink."""
        inject = {k: kw.pop(k) for k in ("init_args", "proxy_args", "env", "nofile") if k in kw}
        pod = cls.node.add_pod(name, **kw)
        pod.inject(init=ARGS.init, proxy=ARGS.proxy, collector=cls.sink, **inject)
        cls.proxied.append(pod)
        return pod

    @classmethod
    def plain(cls, name, **kw):
        return cls.node.add_pod(name, **kw)

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            for pod in cls.proxied:
                if pod.proxy is None:
                    continue
                if pod.proxy.poll() is not None:
                    problems.append("%s: proxy died (status %s)" % (pod.name, pod.proxy.returncode))
                rc, report = pod.stop_proxy()
                if rc != 0:
                    problems.append("%s: proxy exit status %s on SIGTERM" % (pod.name, rc))
                if report:
                    problems.append("%s: sanitizer report:\n%s" % (pod.name, pod.proxy.log_tail(60)))
            if problems:
                cls.node.dump_logs()
        finally:
            cls.node.close()
        if problems:
            raise AssertionError("\n".join(problems))

    def tearDown(self):
        dead = [p.name for p in self.proxied if p.proxy is not None and p.proxy.poll() is not None]
        if dead:
            self.node.dump_logs()
            self.fail("proxy died in %s" % ", ".join(dead))

    # -- assertions on entries ----------------------------------------------------------

    def assertPod(self, side, pod, port=None):
        """side (an entry's src or dst) carries exactly this pod's identity."""
        want = {"ip": pod.ip, "name": pod.name, "namespace": pod.namespace,
                "node": self.node.name, "workload": pod.workload,
                "serviceAccount": pod.service_account}
        if pod.labels:
            want["labels"] = pod.labels
        got = {k: side.get(k) for k in want}
        self.assertEqual(got, want)
        if port is not None:
            self.assertEqual(side.get("port"), port)

    def wait_entries(self, pred, count=1, timeout=20.0):
        got = self.sink.wait_entries(pred, count, timeout)
        if len(got) < count:
            self.node.dump_logs(10)
            self.fail("expected %d matching entries, got %d; all received: %s" %
                      (count, len(got), [summary(e) for e in self.sink.entries()][-30:]))
        return got

    def pair(self, pred, client, server, server_port, count=1, timeout=20.0):
        """The outbound entries (client's proxy) and inbound entries (server's proxy) of
        exchanges matching pred between two injected pods, checked for both identities and
        for matching src ip/port and seq. Returns (outbound, inbound) lists, in order."""
        def is_out(e):
            return pred(e) and e.get("outgoing") is True and get(e, "src.ip") == client.ip \
                and get(e, "dst.ip") == server.ip and get(e, "dst.port") == server_port

        def is_in(e):
            return pred(e) and e.get("outgoing") is False and get(e, "src.ip") == client.ip \
                and get(e, "dst.ip") == server.ip and get(e, "dst.port") == server_port
        key = lambda e: (get(e, "src.port"), e.get("seq"))  # noqa: E731
        deadline = time.monotonic() + timeout
        while True:
            entries = self.sink.entries()
            out = [e for e in entries if is_out(e)]
            inn = [e for e in entries if is_in(e)]
            done = len(out) >= count and sorted(map(key, out)) == sorted(map(key, inn))
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if len(out) < count or len(inn) < count:
            self.node.dump_logs(10)
            self.fail("expected %d outbound and inbound entries, got %d and %d; last received: %s"
                      % (count, len(out), len(inn), [summary(e) for e in entries][-30:]))
        for e in out:
            self.assertPod(e["src"], client)
            self.assertEqual(get(e, "node.name"), self.node.name)
        for e in inn:
            self.assertPod(e["dst"], server, server_port)
            self.assertEqual(get(e, "node.name"), self.node.name)
        self.assertEqual(sorted(map(key, out)), sorted(map(key, inn)))
        return out, inn


def summary(e):
    return "%s %s %s:%s->%s:%s %s" % (get(e, "protocol.name"), "out" if e.get("outgoing") else "in",
                                      get(e, "src.ip"), get(e, "src.port"), get(e, "dst.ip"),
                                      get(e, "dst.port"), e.get("summary"))


def wait_until(fn, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
