#!/usr/bin/env python3
"""gRPC through injected pods: a real etcd member and etcdctl put/get/watch (gRPC over
h2c), compared with a plain etcd and client; entries carry both identities.

usage: test_grpc.py --init SIDETAP_INIT --proxy SIDETAP_PROXY [--source-root DIR]
"""
import os
import time

import common
from common import ProxyTest, get


class Grpc(ProxyTest):
    @classmethod
    def build(cls):
        n = cls.node
        cls.etcd = cls.injected("etcd-0", labels={"app": "etcd"}, workload="etcd",
                                service_account="etcd")
        cls.direct = cls.plain("etcd-direct")
        for pod in (cls.etcd, cls.direct):
            url = "http://%s" % pod.ip
            proc = pod.spawn(["etcd", "--name", pod.name,
                              "--data-dir", os.path.join(n.dir, pod.name + ".etcd"),
                              "--listen-client-urls", url + ":2379",
                              "--advertise-client-urls", url + ":2379",
                              "--listen-peer-urls", url + ":2380",
                              "--initial-advertise-peer-urls", url + ":2380",
                              "--initial-cluster", "%s=%s:2380" % (pod.name, url),
                              "--log-level", "warn"], name="etcd",
                             env={"ETCD_UNSUPPORTED_ARCH": "", "ETCDCTL_API": "3"})
            pod.wait_port(2379, proc=proc, timeout=60)
        cls.host = n.add_service("etcd", cls.etcd)
        cls.direct_host = n.add_service("etcd-direct", cls.direct)
        cls.client = cls.injected("etcd-client", labels={"app": "etcdctl"})
        cls.plain_client = cls.plain("etcd-plain")

    def ctl(self, pod, host, *args, **kw):
        return pod.run(["etcdctl", "--endpoints", "http://%s:2379" % host, "--dial-timeout=10s",
                        *args], env={"ETCDCTL_API": "3"}, **kw)

    def both(self, *args):
        return [self.ctl(self.client, self.host, *args).stdout,
                self.ctl(self.plain_client, self.direct_host, *args).stdout]

    def test_put_get(self):
        inj, direct = self.both("put", "/sidetap/key1", "value one")
        self.assertEqual(inj, "OK\n")
        self.assertEqual(inj, direct)
        value = "x" * 100000
        inj, direct = self.both("put", "/sidetap/big", value)
        self.assertEqual(inj, direct)
        inj, direct = self.both("get", "--prefix", "/sidetap/")
        self.assertEqual(inj, "/sidetap/big\n%s\n/sidetap/key1\nvalue one\n" % value)
        self.assertEqual(inj, direct)
        if not common.have_parser("grpc"):
            return
        out, inn = self.pair(lambda e: get(e, "protocol.name") == "grpc" and
                             get(e, "request.path") == "/etcdserverpb.KV/Put",
                             self.client, self.etcd, 2379, count=2)
        for e in out + inn:
            self.assertEqual(get(e, "request.method"), "POST")
            self.assertEqual(get(e, "response.status"), 200)
            self.assertNotIn("error", e)
        self.pair(lambda e: get(e, "protocol.name") == "grpc" and
                  get(e, "request.path") == "/etcdserverpb.KV/Range", self.client, self.etcd,
                  2379, count=1)

    def test_watch(self):
        outputs = []
        for pod, host in ((self.client, self.host), (self.plain_client, self.direct_host)):
            watch = pod.spawn(["etcdctl", "--endpoints", "http://%s:2379" % host, "watch",
                               "/watched"], name="watch", env={"ETCDCTL_API": "3"})
            time.sleep(1.0)  # the watch stream is open once etcdctl has connected
            for v in ("v1", "v2", "v3"):
                self.ctl(pod, host, "put", "/watched", v)
            ok = common.wait_until(lambda: watch.log().count("PUT") >= 3, timeout=15)
            watch.stop()
            self.assertTrue(ok, watch.log())
            outputs.append(watch.log())
        self.assertEqual(outputs[0], "PUT\n/watched\nv1\nPUT\n/watched\nv2\nPUT\n/watched\nv3\n")
        self.assertEqual(outputs[0], outputs[1])


if __name__ == "__main__":
    common.main()
