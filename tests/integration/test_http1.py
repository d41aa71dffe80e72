#!/usr/bin/env python3
"""HTTP/1.1 through injected pods with nginx, curl and wrk: keep-alive, pipelining,
chunked (gzip) responses, a 100 MiB download, large uploads (Content-Length and chunked),
HEAD. Every result is compared with the same run between two plain pods, and the
collector must receive entries with both pods' identities.

usage: test_http1.py --init SIDETAP_INIT --proxy SIDETAP_PROXY [--source-root DIR]
"""
import os
import re
import unittest

import common
from common import ProxyTest, get, where
from harness import start_nginx

NGINX_HTTP = """\
    default_type application/octet-stream;
    keepalive_requests 100000;
    server {{
        listen 80;
        root {docroot};
        add_header X-Conn-Requests $connection_requests;
        location ~ \\.txt$ {{
            gzip on;
            gzip_types text/plain;
            gzip_min_length 0;
            default_type text/plain;
        }}
        location /put/ {{
            root {dir}/{pod}.up;
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 256m;
            client_body_buffer_size 1m;
        }}
    }}
"""

BIG = 100 << 20
UPLOAD = 24 << 20

PIPELINE_LUA = """\
init = function(args)
  local r = {}
  for i = 1, 4 do r[i] = wrk.format(nil, "/index.html") end
  req = table.concat(r)
end
request = function() return req end
"""


def normalize(headers):
    """Drops what legitimately differs between two servers' answers (the date)."""
    return re.sub(r"(?im)^date: .*\r?\n", "", headers)


class Http1(ProxyTest):
    @classmethod
    def build(cls):
        n = cls.node
        cls.docroot = os.path.join(n.dir, "www")
        os.makedirs(cls.docroot)
        with open(os.path.join(cls.docroot, "index.html"), "w") as f:
            f.write("<html><body>sidetap test page</body></html>\n")
        text = "".join("line %d: the quick brown fox jumps over the lazy dog\n" % i
                       for i in range(6000))
        with open(os.path.join(cls.docroot, "text.txt"), "w") as f:
            f.write(text)
        cls.big = os.path.join(cls.docroot, "big.bin")
        with open(cls.big, "wb") as f:
            for _ in range(BIG >> 20):
                f.write(os.urandom(1 << 20))
        cls.big_sha = common.sha256_file(cls.big)
        cls.upload = os.path.join(n.dir, "upload.bin")
        with open(cls.upload, "wb") as f:
            f.write(os.urandom(UPLOAD))
        cls.upload_sha = common.sha256_file(cls.upload)
        # Make the mtimes (ETag, Last-Modified) identical for both servers: same files.
        labels = {"app": "web", "tier": "front"}
        cls.web = cls.injected("web-7d9f8", namespace="shop", labels=labels, workload="web",
                               service_account="web-sa")
        cls.direct = cls.plain("web-direct", namespace="shop")
        for pod in (cls.web, cls.direct):
            start_nginx(pod, NGINX_HTTP.format(dir=n.dir, pod=pod.name, docroot=cls.docroot),
                        error_log="warn", worker_connections=4096)
        cls.web_host = n.add_service("web", cls.web)
        cls.direct_host = n.add_service("web-direct", cls.direct)
        cls.client = cls.injected("client-5c4b", namespace="shop", labels={"app": "client"},
                                  workload="client", service_account="client-sa")
        cls.plain_client = cls.plain("client-plain", namespace="shop")

    def curl_both(self, args, shell_tail=""):
        """Runs the same curl command injected (client -> web) and plain (plain client ->
        direct server); returns (injected stdout, plain stdout)."""
        out = []
        for pod, host in ((self.client, self.web_host), (self.plain_client, self.direct_host)):
            cmd = "curl -sS " + args.replace("HOST", host) + shell_tail
            r = pod.run(["sh", "-c", cmd], timeout=300)
            out.append(r.stdout)
        return out

    def test_get_keepalive(self):
        fmt = "'%{http_code} %{num_connects} %{size_download} %header{x-conn-requests}\\n'"
        inj, direct = self.curl_both("-w " + fmt + " -o /dev/null http://HOST/index.html"
                                     " -o /dev/null http://HOST/index.html"
                                     " -o /dev/null http://HOST/index.html")
        self.assertEqual(inj, "200 1 44 1\n200 0 44 2\n200 0 44 3\n")
        self.assertEqual(inj, direct)
        if not common.have_parser("http1"):
            return
        out, inn = self.pair(lambda e: get(e, "request.path") == "/index.html" and
                             get(e, "request.headers.User-Agent", "").startswith("curl"),
                             self.client, self.web, 80, count=3)
        for entries in (out, inn):
            entries.sort(key=lambda e: e["seq"])
            self.assertEqual([e["seq"] for e in entries[:3]], [0, 1, 2])
            self.assertEqual(len({get(e, "src.port") for e in entries[:3]}), 1)
            e = entries[0]
            self.assertEqual(e["protocol"], {"name": "http", "version": "1.1", "abbr": "HTTP"})
            self.assertEqual(get(e, "request.method"), "GET")
            self.assertEqual(get(e, "request.url"), "/index.html")
            self.assertEqual(get(e, "request.headers.Host"), self.web_host)
            self.assertEqual(get(e, "response.status"), 200)
            self.assertEqual(get(e, "response.statusText"), "OK")
            self.assertEqual(get(e, "response.body.size"), 44)
            self.assertEqual(get(e, "response.body.data"),
                             "<html><body>sidetap test page</body></html>\n")
            self.assertEqual(get(e, "response.headers.X-Conn-Requests"), "1")
            self.assertEqual(e.get("summary"), "GET /index.html")
            self.assertNotIn("error", e)

    def test_head(self):
        inj, direct = self.curl_both("-I http://HOST/big.bin")
        self.assertIn("Content-Length: %d" % BIG, inj)
        self.assertEqual(normalize(inj), normalize(direct))
        if not common.have_parser("http1"):
            return
        out, inn = self.pair(lambda e: get(e, "request.method") == "HEAD", self.client, self.web,
                             80)
        for e in out + inn:
            self.assertEqual(get(e, "response.status"), 200)
            self.assertEqual(get(e, "response.headers.Content-Length"), str(BIG))
            self.assertEqual(get(e, "response.body.size"), 0)

    def test_chunked_gzip(self):
        # Raw gzip bytes (chunked on the wire) and the decoded text must both match.
        raw_inj, raw_direct = self.curl_both("-H 'Accept-Encoding: gzip' -D - "
                                             "-o /dev/null http://HOST/text.txt")
        self.assertIn("Transfer-Encoding: chunked", raw_inj)
        self.assertEqual(normalize(raw_inj), normalize(raw_direct))
        inj, direct = self.curl_both("-H 'Accept-Encoding: gzip' http://HOST/text.txt",
                                     " | sha256sum")
        self.assertEqual(inj, direct)
        inj, direct = self.curl_both("--compressed http://HOST/text.txt", " | sha256sum")
        self.assertEqual(inj, direct)
        self.assertEqual(inj.split()[0],
                         common.sha256_file(os.path.join(self.docroot, "text.txt")))
        if not common.have_parser("http1"):
            return
        size = int(self.client.run(["sh", "-c", "curl -s -H 'Accept-Encoding: gzip' "
                                    "http://%s/text.txt | wc -c" % self.web_host]).stdout)
        out, inn = self.pair(lambda e: get(e, "request.path") == "/text.txt" and
                             get(e, "response.headers.Content-Encoding") == "gzip",
                             self.client, self.web, 80, count=3)
        for e in out + inn:
            self.assertEqual(get(e, "response.headers.Transfer-Encoding"), "chunked")
            self.assertEqual(get(e, "response.body.size"), size)
            self.assertEqual(get(e, "response.body.encoding"), "base64")

    def test_pipelining(self):
        reqs = b"".join(b"GET /index.html?n=%d HTTP/1.1\r\nHost: web\r\n%s\r\n" %
                        (i, b"Connection: close\r\n" if i == 2 else b"") for i in range(3))
        answers = []
        for pod, server in ((self.client, self.web), (self.plain_client, self.direct)):
            s = pod.connect(server.ip, 80)
            s.sendall(reqs)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            answers.append(normalize(data.decode()))
        self.assertEqual(answers[0].count("HTTP/1.1 200 OK"), 3)
        self.assertEqual(answers[0], answers[1])
        # wrk with 4 requests per write on each connection, bounded.
        script = os.path.join(self.node.dir, "pipeline.lua")
        with open(script, "w") as f:
            f.write(PIPELINE_LUA)
        r = self.client.run(["wrk", "-t1", "-c4", "-d1s", "-s", script,
                             "http://%s/" % self.web_host], timeout=60)
        self.assertRegex(r.stdout, r"\d+ requests in")
        self.assertNotIn("Non-2xx", r.stdout)
        self.assertNotIn("Socket errors", r.stdout)
        if not common.have_parser("http1"):
            return
        out, inn = self.pair(lambda e: get(e, "request.url", "").startswith("/index.html?n="),
                             self.client, self.web, 80, count=3)
        for entries in (out, inn):
            entries.sort(key=lambda e: e["seq"])
            self.assertEqual([get(e, "request.url") for e in entries],
                             ["/index.html?n=0", "/index.html?n=1", "/index.html?n=2"])
            self.assertEqual([get(e, "request.queryString.n") for e in entries], ["0", "1", "2"])
            self.assertEqual([get(e, "response.headers.X-Conn-Requests") for e in entries],
                             ["1", "2", "3"])

    def test_wrk_keepalive(self):
        for pod, host in ((self.client, self.web_host), (self.plain_client, self.direct_host)):
            r = pod.run(["wrk", "-t1", "-c8", "-d1s", "http://%s/index.html" % host], timeout=60)
            self.assertRegex(r.stdout, r"\d+ requests in")
            self.assertNotIn("Non-2xx", r.stdout)
            self.assertNotIn("Socket errors", r.stdout)

    def test_big_download(self):
        inj, direct = self.curl_both("http://HOST/big.bin", " | sha256sum")
        self.assertEqual(inj.split()[0], self.big_sha)
        self.assertEqual(direct.split()[0], self.big_sha)
        if not common.have_parser("http1"):
            return
        out, inn = self.pair(lambda e: get(e, "request.path") == "/big.bin" and
                             get(e, "request.method") == "GET", self.client, self.web, 80)
        for e in out + inn:
            self.assertEqual(get(e, "response.body.size"), BIG)
            self.assertIs(get(e, "response.body.truncated"), True)
            self.assertGreater(get(e, "response.bytes"), BIG)

    def test_upload(self):
        for mode, extra in (("length", ""), ("chunked", "-H 'Transfer-Encoding: chunked' ")):
            with self.subTest(mode=mode):
                name = "up-%s.bin" % mode
                inj, direct = self.curl_both("-o /dev/null -w '%%{http_code}' %s-T - "
                                             "http://HOST/put/%s < %s" % (extra, name, self.upload))
                self.assertIn(inj, ("201", "204"))
                self.assertEqual(inj, direct)
                for pod in (self.web, self.direct):
                    stored = os.path.join(self.node.dir, pod.name + ".up", "put", name)
                    self.assertEqual(common.sha256_file(stored), self.upload_sha)
                if not common.have_parser("http1"):
                    continue
                out, inn = self.pair(lambda e: get(e, "request.path") == "/put/" + name,
                                     self.client, self.web, 80)
                for e in out + inn:
                    self.assertEqual(get(e, "request.method"), "PUT")
                    self.assertEqual(get(e, "request.body.size"), UPLOAD)
                    self.assertIs(get(e, "request.body.truncated"), True)
                    self.assertEqual(get(e, "response.status"), 201)

    def test_one_side_injected(self):
        # Plain client -> injected server: only the server's proxy reports (inbound).
        r = self.plain_client.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                   "http://%s/index.html?from=plain" % self.web_host])
        self.assertEqual(r.stdout, "200")
        # Injected client -> plain server: only the client's proxy reports (outbound).
        r = self.client.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                             "http://%s/index.html?to=plain" % self.direct_host])
        self.assertEqual(r.stdout, "200")
        if not common.have_parser("http1"):
            return
        inn = self.wait_entries(lambda e: get(e, "request.url") == "/index.html?from=plain")
        self.assertEqual(len(inn), 1)
        self.assertIs(inn[0]["outgoing"], False)
        self.assertPod(inn[0]["dst"], self.web, 80)
        self.assertEqual(get(inn[0], "src.ip"), self.plain_client.ip)
        out = self.wait_entries(lambda e: get(e, "request.url") == "/index.html?to=plain")
        self.assertEqual(len(out), 1)
        self.assertIs(out[0]["outgoing"], True)
        self.assertPod(out[0]["src"], self.client)
        self.assertEqual((get(out[0], "dst.ip"), get(out[0], "dst.port")), (self.direct.ip, 80))


if __name__ == "__main__":
    common.main()
