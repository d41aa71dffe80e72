#!/usr/bin/env python3
"""TLS through injected pods: curl to an openssl s_server serving a file; the bytes pass
unchanged (the download's checksum and curl's verification of the certificate), and the
entry carries the SNI, the offered ALPN list and the negotiated version.

usage: test_tls.py --init SIDETAP_INIT --proxy SIDETAP_PROXY [--source-root DIR]
"""
import os
import subprocess

import common
from common import ProxyTest, get


class Tls(ProxyTest):
    @classmethod
    def build(cls):
        n = cls.node
        cls.www = os.path.join(n.dir, "tlswww")
        os.makedirs(cls.www)
        cls.blob = os.path.join(cls.www, "blob.bin")
        with open(cls.blob, "wb") as f:
            f.write(os.urandom(2 << 20))
        cls.blob_sha = common.sha256_file(cls.blob)
        cls.server = cls.injected("tls-server", labels={"app": "tls"})
        cls.direct = cls.plain("tls-direct")
        cls.host = n.add_service("secure", cls.server)
        cls.direct_host = n.add_service("secure-direct", cls.direct)
        cls.cert = os.path.join(n.dir, "cert.pem")
        cls.key = os.path.join(n.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=sidetap-test", "-keyout", cls.key, "-out", cls.cert,
                        "-addext", "subjectAltName=DNS:%s,DNS:%s" % (cls.host, cls.direct_host)],
                       check=True, capture_output=True)
        for pod in (cls.server, cls.direct):
            # -WWW serves files relative to the working directory.
            proc = pod.spawn(["openssl", "s_server", "-accept", "8443", "-cert", cls.cert,
                              "-key", cls.key, "-WWW", "-alpn", "http/1.1", "-quiet"],
                             name="s_server", cwd=cls.www)
            pod.wait_port(8443, proc=proc)
        cls.client = cls.injected("tls-client", labels={"app": "curl"})
        cls.plain_client = cls.plain("tls-plain")

    def curl_both(self, args, tail=""):
        out = []
        for pod, host in ((self.client, self.host), (self.plain_client, self.direct_host)):
            r = pod.run(["sh", "-c", "curl -sS --cacert %s %s%s" %
                         (self.cert, args.replace("HOST", host), tail)], timeout=60)
            out.append(r.stdout)
        return out

    def test_download(self):
        for version in ("--tlsv1.3", "--tlsv1.2 --tls-max 1.2"):
            with self.subTest(version=version):
                inj, direct = self.curl_both(version + " https://HOST:8443/blob.bin",
                                             " | sha256sum")
                self.assertEqual(inj.split()[0], self.blob_sha)
                self.assertEqual(direct.split()[0], self.blob_sha)
        if not common.have_parser("tls"):
            return
        out, inn = self.pair(lambda e: get(e, "protocol.name") == "tls" and
                             get(e, "tls.bytesToClient", 0) > 2 << 20, self.client,
                             self.server, 8443, count=2)
        by_version = {get(e, "tls.version"): e for e in out}
        self.assertEqual(sorted(by_version), ["TLS 1.2", "TLS 1.3"])
        for e in out + inn:
            self.assertEqual(get(e, "tls.sni"), self.host)
            self.assertEqual(get(e, "tls.alpn"), ["h2", "http/1.1"])
            self.assertNotIn("error", e)
            self.assertGreater(get(e, "tls.bytesToClient"), 2 << 20)
        e12 = by_version["TLS 1.2"]
        self.assertEqual(get(e12, "tls.alpnSelected"), "http/1.1")
        self.assertEqual(get(e12, "summary"), "TLS %s http/1.1" % self.host)

    def test_bad_certificate_is_relayed(self):
        # Without the CA curl must fail verification the same way with and without us.
        outs = []
        for pod, host in ((self.client, self.host), (self.plain_client, self.direct_host)):
            r = pod.run(["curl", "-sS", "https://%s:8443/blob.bin" % host], check=False)
            outs.append(r.returncode)
        self.assertEqual(outs, [60, 60])


if __name__ == "__main__":
    common.main()
