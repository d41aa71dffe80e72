#!/usr/bin/env python3
"""sidetap-injector as a server: HTTPS on loopback against a fake Kubernetes API (real HTTP,
real libcurl in the injector). Clients are curl, openssl s_client and Python's ssl module.

usage: test_server.py SIDETAP_INJECTOR FIXTURES_DIR SIDETAP_AWAIT"""
import base64
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakeapi import FakeAPI, TOKEN  # noqa: E402

INJECTOR = FIXTURES = AWAIT = None
HOST = "sidetap-injector.sidetap.svc"


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Injector:
    """One sidetap-injector process on 127.0.0.1:random."""

    def __init__(self, tmp, api_url, extra=(), env=None, token_file=True):
        self.tmp = tmp
        self.certdir = os.path.join(tmp, "certs-%d" % random.randrange(1 << 30))
        os.makedirs(self.certdir)
        tokfile = os.path.join(tmp, "sa-token")
        with open(tokfile, "w") as f:
            f.write(TOKEN + "\n")
        ingest = os.path.join(tmp, "ingest-token")
        with open(ingest, "w") as f:
            f.write("ingest-secret\n")
        args = [INJECTOR, "--listen", "127.0.0.1:0", "--cert-dir", self.certdir, "--kube-api", api_url,
                "--kube-token-file", tokfile, "--kube-ca-file", "", "--resync", "1", "--timeout", "2",
                "--image", "registry.example/sidetap:test"] + (["--token-file", ingest] if token_file else []) + list(extra)
        self.log = open(os.path.join(tmp, "injector-%d.log" % random.randrange(1 << 30)), "w+")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True, env=e)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on port "):
            self.proc.kill()
            self.log.seek(0)
            raise AssertionError("injector did not start: %r %s" % (line, self.log.read()))
        self.port = int(line.split()[-1])
        self.ca = os.path.join(self.certdir, "ca.crt")

    def url(self, path):
        return "https://%s:%d%s" % (HOST, self.port, path)

    def curl(self, path, data=None, ctype="application/json", extra=()):
        args = ["curl", "-sS", "--max-time", "10", "--cacert", self.ca, "--resolve",
                "%s:%d:127.0.0.1" % (HOST, self.port), "-w", "\n%{http_code}"]
        if data is not None:
            args += ["-H", "Content-Type: " + ctype, "--data-binary", "@-"]
        args += list(extra) + [self.url(path)]
        p = subprocess.run(args, input=data, capture_output=True, timeout=20)
        body, _, code = p.stdout.rpartition(b"\n")
        return int(code or 0), body, p

    def mutate(self, fixture_doc):
        code, body, _ = self.curl("/mutate", json.dumps(fixture_doc).encode())
        assert code == 200, (code, body)
        return json.loads(body)["response"]

    def tls_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx

    def log_text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        text = self.log_text()
        self.log.close()
        # ASan reports (leaks included) make the process exit non-zero.
        assert rc == 0, "injector exited %d:\n%s" % (rc, text[-3000:])
        return text


def fixture(name, ns=None):
    with open(os.path.join(FIXTURES, name + ".json")) as f:
        doc = json.load(f)
    if ns:
        doc["request"]["namespace"] = ns
        doc["request"]["object"]["metadata"]["namespace"] = ns
    return doc


def decode_patch(resp):
    return json.loads(base64.b64decode(resp["patch"]))


class WithAPI(unittest.TestCase):
    """One injector against one fake API for the API-facing behaviour."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sidetap-inj-")
        cls.api = FakeAPI(version=("1", "30+"), namespaces={
            "bookinfo": {"sidetap.io/inject": "enabled"},
            "plain": {},
            "locked": {"sidetap.io/inject": "enabled", "pod-security.kubernetes.io/enforce": "restricted"},
            "base": {"pod-security.kubernetes.io/enforce": "baseline"},
        })
        cls.api.forbidden.add("secret-ns")
        cls.inj = Injector(cls.tmp, cls.api.url, ["--native-sidecars", "auto"])

    @classmethod
    def tearDownClass(cls):
        log = cls.inj.stop()
        cls.api.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert "signal 15: stopping" in log

    def ca_b64(self):
        with open(self.inj.ca, "rb") as f:
            return base64.b64encode(f.read()).decode()

    def test_ca_bundle_patched_into_both_webhooks(self):
        want = self.ca_b64()
        wait_for(lambda: self.api.ca_bundles() == [want, want], what="caBundle patch")
        ops = self.api.patches[0]
        self.assertEqual(ops, [
            {"op": "test", "path": "/webhooks/0/name", "value": "namespace.sidetap.io"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": want},
            {"op": "test", "path": "/webhooks/1/name", "value": "object.sidetap.io"},
            {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": want}])
        # The bundle is a CA that verifies the serving certificate for the service name.
        pem = base64.b64decode(want).decode()
        self.assertIn("BEGIN CERTIFICATE", pem)
        # Someone re-applies the configuration without caBundle: it comes back.
        with self.api.lock:
            for h in self.api.mwc["webhooks"]:
                h["clientConfig"].pop("caBundle", None)
        wait_for(lambda: self.api.ca_bundles() == [want, want], what="caBundle restored")
        self.assertIn("caBundle of MutatingWebhookConfiguration sidetap-injector updated", self.inj.log_text())

    def test_serving_certificate_names(self):
        out = subprocess.run(["openssl", "x509", "-in", os.path.join(self.inj.certdir, "tls.crt"),
                              "-noout", "-ext", "subjectAltName,extendedKeyUsage,basicConstraints"],
                             capture_output=True, text=True, check=True).stdout
        for name in ("DNS:sidetap-injector", "DNS:sidetap-injector.sidetap", "DNS:sidetap-injector.sidetap.svc",
                     "DNS:sidetap-injector.sidetap.svc.cluster.local", "TLS Web Server Authentication",
                     "CA:FALSE"):
            self.assertIn(name, out)
        v = subprocess.run(["openssl", "verify", "-CAfile", self.inj.ca, "-purpose", "sslserver",
                            os.path.join(self.inj.certdir, "tls.crt")], capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

    def test_native_sidecars_follow_server_version(self):
        wait_for(lambda: "native sidecars on (--native-sidecars auto)" in self.inj.log_text(), what="version")
        self.assertIn("Kubernetes v1.30.2: native sidecars on", self.inj.log_text())
        resp = self.inj.mutate(fixture("bookinfo-details"))
        patch = decode_patch(resp)
        inits = [op for op in patch if op["path"] == "/spec/initContainers"][0]["value"]
        self.assertEqual([c["name"] for c in inits], ["sidetap-init", "sidetap-proxy"])
        self.assertEqual(inits[1]["restartPolicy"], "Always")

    def test_namespace_decisions_and_cache(self):
        before = self.api.count("GET", "/api/v1/namespaces/bookinfo")
        for _ in range(3):
            resp = self.inj.mutate(fixture("bookinfo-ratings"))
            self.assertIn("patch", resp)
        self.assertLessEqual(self.api.count("GET", "/api/v1/namespaces/bookinfo") - before, 1)
        resp = self.inj.mutate(fixture("bookinfo-ratings", ns="plain"))
        self.assertNotIn("patch", resp)
        self.assertEqual(resp["warnings"], [
            "sidetap: not injected: namespace plain is not labelled sidetap.io/inject=enabled and "
            "the pod has no sidetap.io/inject=\"true\""])
        resp = self.inj.mutate(fixture("bookinfo-ratings", ns="locked"))
        self.assertEqual(resp["warnings"], [
            "sidetap: not injected: namespace locked enforces Pod Security \"restricted\", which rejects "
            "the NET_ADMIN init container: kubectl label namespace locked "
            "pod-security.kubernetes.io/enforce=privileged --overwrite"])
        doc = fixture("bookinfo-ratings", ns="base")
        doc["request"]["object"]["metadata"]["labels"]["sidetap.io/inject"] = "true"
        resp = self.inj.mutate(doc)
        self.assertIn("enforces Pod Security \"baseline\"", resp["warnings"][0])
        resp = self.inj.mutate(fixture("bookinfo-ratings", ns="secret-ns"))
        self.assertEqual(resp["warnings"], [
            "sidetap: not injected: cannot read namespace secret-ns: Kubernetes API answered 403: the "
            "injector's ClusterRole needs get on namespaces"])
        resp = self.inj.mutate(fixture("bookinfo-ratings", ns="missing"))
        self.assertIn("Kubernetes API answered HTTP 404", resp["warnings"][0])
        # kube-system is decided without asking the API.
        n = self.api.count("GET", "/api/v1/namespaces/kube-system")
        resp = self.inj.mutate(fixture("bookinfo-ratings", ns="kube-system"))
        self.assertEqual(resp["warnings"], ["sidetap: not injected: namespace kube-system is never injected"])
        self.assertEqual(self.api.count("GET", "/api/v1/namespaces/kube-system"), n)
        log = self.inj.log_text()
        self.assertIn("locked/ratings-v1-64f4b6dd4b-*: not injected: namespace locked enforces", log)
        self.assertIn("bookinfo/ratings-v1-64f4b6dd4b-*: injected (native sidecar, by namespace label)", log)

    def test_token_sent_and_metrics(self):
        self.inj.mutate(fixture("bookinfo-details"))
        code, body, _ = self.inj.curl("/metrics")
        self.assertEqual(code, 200)
        text = body.decode()
        self.assertRegex(text, r'sidetap_injector_reviews_total\{decision="injected"\} [1-9]')
        self.assertIn("sidetap_injector_native_sidecars 1", text)
        self.assertRegex(text, r"sidetap_injector_certificate_expiry_seconds 77\d{5}")  # ~90 days
        with self.api.lock:
            self.assertTrue(all(c[1] for c in self.api.calls))


class ServerRobustness(unittest.TestCase):
    """HTTP and TLS misbehaviour: every bad client gets a clear answer or a closed socket,
    and the server keeps answering everyone else."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sidetap-inj-")
        cls.inj = Injector(cls.tmp, "none", ["--native-sidecars", "off"])
        cls.good = json.dumps(fixture("guestbook-frontend")).encode()

    @classmethod
    def tearDownClass(cls):
        cls.inj.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_healthy(self):
        code, body, _ = self.inj.curl("/mutate", self.good)
        self.assertEqual(code, 200)
        self.assertIn("patch", json.loads(body)["response"])

    def test_error_messages(self):
        code, body, _ = self.inj.curl("/mutate", self.good, ctype="text/plain")
        self.assertEqual((code, json.loads(body)),
                         (415, {"error": "Content-Type must be application/json (got text/plain)"}))
        code, body, _ = self.inj.curl("/mutate", b"{\"kind\": ")
        self.assertEqual(code, 400)
        self.assertEqual(json.loads(body)["error"], "body is not JSON: unexpected token near end of file (line 1, column 9)")
        code, body, _ = self.inj.curl("/mutate", b'{"kind":"Pod","apiVersion":"v1"}')
        self.assertEqual((code, json.loads(body)), (400, {"error": "not an AdmissionReview: kind is \"Pod\""}))
        code, body, _ = self.inj.curl("/mutate", b"")
        self.assertEqual((code, json.loads(body)), (400, {"error": "empty body: POST an AdmissionReview"}))
        code, body, _ = self.inj.curl("/mutate", b"{" * (4 << 20))
        self.assertEqual(code, 413)
        self.assertIn(b"Request Entity Too Large", body)
        code, body, _ = self.inj.curl("/mutate")
        self.assertEqual((code, json.loads(body)), (405, {"error": "/mutate takes POST with an AdmissionReview"}))
        code, body, _ = self.inj.curl("/admin")
        self.assertEqual(code, 404)
        code, body, _ = self.inj.curl("/healthz")
        self.assertEqual((code, body), (200, b"ok\n"))
        self.assert_healthy()

    def test_old_tls_versions_refused(self):
        for flag in ("-tls1", "-tls1_1"):
            p = subprocess.run(["openssl", "s_client", flag, "-cipher", "DEFAULT:@SECLEVEL=0",
                                "-connect", "127.0.0.1:%d" % self.inj.port, "-servername", HOST],
                               input=b"", capture_output=True, timeout=20)
            self.assertNotEqual(p.returncode, 0)
            # The server's alert, not a client-side refusal.
            self.assertIn(b"alert protocol version", p.stderr + p.stdout)
        for flag, proto in (("-tls1_2", b"TLSv1.2"), ("-tls1_3", b"TLSv1.3")):
            p = subprocess.run(["openssl", "s_client", flag, "-CAfile", self.inj.ca, "-verify_return_error",
                                "-connect", "127.0.0.1:%d" % self.inj.port, "-servername", HOST,
                                "-verify_hostname", HOST],
                               input=b"", capture_output=True, timeout=20)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(b"New, " + proto + b", Cipher is", p.stdout)
            self.assertIn(b"Verify return code: 0 (ok)", p.stdout)
        code, _, _ = self.inj.curl("/healthz", extra=["--tls-max", "1.1"])
        self.assertEqual(code, 0)
        self.assert_healthy()

    def test_garbage_and_plain_http(self):
        rnd = random.Random(7)
        for payload in (bytes(rnd.randrange(256) for _ in range(4096)),
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"\x16\x03\x01\x00\x05hello"):
            with socket.create_connection(("127.0.0.1", self.inj.port), timeout=5) as s:
                try:
                    s.sendall(payload)
                    s.settimeout(5)
                    data = s.recv(4096)
                    while data and s.recv(4096):
                        pass
                except (ConnectionResetError, BrokenPipeError):
                    pass
            self.assert_healthy()
        # Malformed HTTP inside a good TLS session.
        ctx = self.inj.tls_context()
        with socket.create_connection(("127.0.0.1", self.inj.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST) as s:
                s.sendall(b"BLAH\x00\x01 / HTTP/9.9\r\n\r\n")
                data = s.recv(4096)
                self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 400"), data[:100])
        self.assert_healthy()

    def test_untrusting_client_fails_cleanly(self):
        p = subprocess.run(["curl", "-sS", "--max-time", "10", "--resolve", "%s:%d:127.0.0.1" % (HOST, self.inj.port),
                            self.inj.url("/healthz")], capture_output=True)
        self.assertEqual(p.returncode, 60)  # curl: peer certificate cannot be authenticated
        self.assert_healthy()

    def test_slow_clients_do_not_disturb_others(self):
        ctx = self.inj.tls_context()
        slow = []
        for i in range(20):
            raw = socket.create_connection(("127.0.0.1", self.inj.port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname=HOST)
            s.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000\r\n\r\n{\"apiVersion\":")
            slow.append(s)
        # Idle TCP connections that never start TLS, too.
        idle = [socket.create_connection(("127.0.0.1", self.inj.port), timeout=10) for _ in range(20)]
        t0 = time.time()
        for _ in range(5):
            self.assert_healthy()
        self.assertLess(time.time() - t0, 5)
        # The server closes them after --timeout (2 s).
        for s in slow:
            s.settimeout(6)
            try:
                data = s.recv(1024)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            self.assertFalse(data.startswith(b"HTTP/1.1 200"), data[:60])
            s.close()
        for s in idle:
            s.settimeout(6)
            try:
                self.assertEqual(s.recv(1024), b"")
            except ConnectionResetError:
                pass
            s.close()
        self.assert_healthy()

    def test_keep_alive_many_requests(self):
        ctx = self.inj.tls_context()
        with socket.create_connection(("127.0.0.1", self.inj.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST) as s:
                f = s.makefile("rb")
                for i in range(20):
                    s.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json; charset=utf-8\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(self.good) + self.good)
                    status = f.readline()
                    self.assertEqual(status, b"HTTP/1.1 200 OK\r\n")
                    length = 0
                    while True:
                        h = f.readline()
                        if h == b"\r\n":
                            break
                        if h.lower().startswith(b"content-length:"):
                            length = int(h.split(b":")[1])
                    body = json.loads(f.read(length))
                    self.assertEqual(body["response"]["allowed"], True)


class Certificates(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sidetap-inj-")
        self.api = FakeAPI()

    def tearDown(self):
        self.api.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def serial(self, inj):
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % inj.port, "-servername", HOST],
                           input=b"", capture_output=True, timeout=20)
        x = subprocess.run(["openssl", "x509", "-noout", "-serial", "-issuer"], input=p.stdout,
                           capture_output=True, timeout=20)
        return x.stdout.decode().strip()

    def make_ca_and_cert(self, d, name):
        os.makedirs(d, exist_ok=True)
        ca_key, ca, key, csr, crt = (os.path.join(d, n) for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt"))
        ext = os.path.join(d, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % HOST)
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=" + name)
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + HOST)
        run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", crt, "-days", "2", "-extfile", ext)
        return ca, crt, key

    def test_mounted_certificates_reload_and_ca_bundle_follows(self):
        live = os.path.join(self.tmp, "live")
        ca, crt, key = self.make_ca_and_cert(os.path.join(self.tmp, "gen1"), "first-ca")
        os.makedirs(live)
        for src in (ca, crt, key):
            shutil.copy(src, live)
        inj = Injector(self.tmp, self.api.url, ["--tls-cert", os.path.join(live, "tls.crt"),
                                                "--tls-key", os.path.join(live, "tls.key"),
                                                "--tls-ca", os.path.join(live, "ca.crt")])
        try:
            inj.ca = os.path.join(live, "ca.crt")
            def b64(path):
                with open(path, "rb") as f:
                    return base64.b64encode(f.read()).decode()
            first = b64(ca)
            wait_for(lambda: self.api.ca_bundles() == [first, first], what="first caBundle")
            self.assertIn("issuer=CN = first-ca", self.serial(inj))
            # Rotate: a Secret update replaces the files.
            ca2, crt2, key2 = self.make_ca_and_cert(os.path.join(self.tmp, "gen2"), "second-ca")
            for src in (ca2, crt2, key2):
                shutil.copy(src, os.path.join(live, os.path.basename(src) + ".new"))
                os.rename(os.path.join(live, os.path.basename(src) + ".new"), os.path.join(live, os.path.basename(src)))
            second = b64(ca2)
            wait_for(lambda: self.api.ca_bundles() == [second, second], what="rotated caBundle")
            wait_for(lambda: "issuer=CN = second-ca" in self.serial(inj), what="new certificate served")
            code, _, _ = inj.curl("/healthz")
            self.assertEqual(code, 200)
            # A broken file is refused and the current certificate stays.
            with open(os.path.join(live, "tls.key"), "w") as f:
                f.write("not a key")
            wait_for(lambda: "certificate check failed, keeping the current one" in inj.log_text(), what="bad key")
            code, _, _ = inj.curl("/healthz")
            self.assertEqual(code, 200)
        finally:
            log = inj.stop()
        self.assertIn("serving certificate reloaded", log)

    def test_generated_certificate_renewed_before_expiry(self):
        inj = Injector(self.tmp, self.api.url, env={"SIDETAP_CERT_VALIDITY_SECONDS": "6"})
        try:
            first = self.serial(inj)
            self.assertIn("serial=", first)
            # A third of 6 s left -> renewed by the 1 s resync, same CA (caBundle unchanged).
            wait_for(lambda: self.serial(inj) != first, timeout=15, what="renewal")
            code, _, _ = inj.curl("/healthz")
            self.assertEqual(code, 200)
            self.assertEqual(len(self.api.patches), 1)
        finally:
            log = inj.stop()
        self.assertIn("serving certificate renewed", log)

    def test_replicas_share_the_bundle(self):
        """Two injectors (replicas, or a rolling update's old and new pod) each make a CA:
        the bundle converges to both, newest first, and stays put. A CA left by an earlier
        pod is kept; a foreign CA and an expired sidetap CA are dropped."""
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)
        pems = {}
        for name, days in (("sidetap-injector-ca-1", "30"), ("someone-else-ca", "30")):
            key = os.path.join(self.tmp, name + ".key")
            crt = os.path.join(self.tmp, name + ".crt")
            run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", crt, "-days", days, "-subj", "/CN=" + name)
            with open(crt, "rb") as f:
                pems[name] = f.read()
        expired = os.path.join(self.tmp, "expired.crt")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", expired + ".key", "-out", expired + ".csr", "-subj", "/CN=sidetap-injector-ca-0")
        run("openssl", "x509", "-req", "-in", expired + ".csr", "-signkey", expired + ".key", "-days", "-1",
            "-out", expired)  # notAfter a day before notBefore: expired
        with open(expired, "rb") as f:
            pems["expired"] = f.read()
        start = base64.b64encode(pems["sidetap-injector-ca-1"] + pems["someone-else-ca"] + pems["expired"]).decode()
        with self.api.lock:
            for h in self.api.mwc["webhooks"]:
                h["clientConfig"]["caBundle"] = start
        a = Injector(self.tmp, self.api.url)
        time.sleep(1.1)  # a newer notBefore for the second CA (1 s resolution)
        b = Injector(self.tmp, self.api.url)
        try:
            ca = {}
            for inj in (a, b):
                with open(inj.ca, "rb") as f:
                    ca[inj] = f.read()
            # Newest notBefore first; the injectors' own CAs start 5 minutes back (clock skew).
            want = base64.b64encode(pems["sidetap-injector-ca-1"] + ca[b] + ca[a]).decode()
            wait_for(lambda: self.api.ca_bundles() == [want, want], timeout=15, what="shared bundle")
            n = len(self.api.patches)
            time.sleep(3)  # three more resyncs of each: nothing left to change
            self.assertEqual(len(self.api.patches), n)
            self.assertEqual(self.api.ca_bundles(), [want, want])
            for inj in (a, b):
                code, _, _ = inj.curl("/healthz")
                self.assertEqual(code, 200)
        finally:
            a.stop()
            b.stop()

    def test_api_unreachable_is_survivable(self):
        inj = Injector(self.tmp, "http://127.0.0.1:9", ["--native-sidecars", "auto"])
        try:
            resp = inj.mutate(fixture("bookinfo-details"))
            self.assertNotIn("patch", resp)
            self.assertRegex(resp["warnings"][0], r"^sidetap: not injected: cannot read namespace bookinfo: Kubernetes API: ")
            wait_for(lambda: "cannot read MutatingWebhookConfiguration" in inj.log_text(), what="log")
        finally:
            inj.stop()


class TokenSecret(unittest.TestCase):
    """The ingest token lives in Secret sidetap/sidetap-token: made by the injector when
    missing, read when present, copied into each proxy's env."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sidetap-inj-")
        self.api = FakeAPI(namespaces={"bookinfo": {"sidetap.io/inject": "enabled"}})

    def tearDown(self):
        self.api.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self):
        return Injector(self.tmp, self.api.url, ["--token-secret-name", "sidetap-token", "--namespace", "sidetap",
                                                 "--native-sidecars", "off"], token_file=False)

    def proxy_token(self, resp):
        patch = decode_patch(resp)
        proxy = [op for op in patch if op["path"] == "/spec/containers/0"][0]["value"]
        return [e for e in proxy["env"] if e["name"] == "SIDETAP_TOKEN"][0]["value"]

    def test_created_when_missing(self):
        inj = self.start()
        try:
            wait_for(lambda: inj.curl("/readyz")[0] == 200, what="ready")
            sec = self.api.secrets[("sidetap", "sidetap-token")]
            self.assertEqual(sec["type"], "Opaque")
            token = base64.b64decode(sec["data"]["token"]).decode()
            self.assertRegex(token, r"^[0-9a-f]{48}$")
            self.assertEqual(self.proxy_token(inj.mutate(fixture("bookinfo-details"))), token)
        finally:
            log = inj.stop()
        self.assertIn("created Secret sidetap/sidetap-token with a new ingest token", log)

    def test_existing_secret_is_used(self):
        self.api.secrets[("sidetap", "sidetap-token")] = {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sidetap-token", "namespace": "sidetap"},
            "data": {"token": base64.b64encode(b"my-own-token-1234567890").decode()}}
        inj = self.start()
        try:
            wait_for(lambda: inj.curl("/readyz")[0] == 200, what="ready")
            self.assertEqual(self.proxy_token(inj.mutate(fixture("bookinfo-details"))), "my-own-token-1234567890")
            self.assertEqual(self.api.count("POST", "/api/v1/namespaces/sidetap/secrets"), 0)
        finally:
            inj.stop()

    def test_not_ready_without_token(self):
        self.api.secrets_forbidden = True
        inj = self.start()
        try:
            code, body, _ = inj.curl("/readyz")
            self.assertEqual((code, json.loads(body)),
                             (503, {"error": "waiting for the ingest token (Secret sidetap/sidetap-token)"}))
            resp = inj.mutate(fixture("bookinfo-details"))
            self.assertNotIn("patch", resp)
            self.assertEqual(resp["warnings"], [
                "sidetap: not injected: waiting for the ingest token (Secret sidetap/sidetap-token)"])
            self.assertIn("cannot read Secret sidetap/sidetap-token: HTTP 403", inj.log_text())
        finally:
            inj.stop()


class Await(unittest.TestCase):
    """sidetap-await, the postStart hook: waits for 200 on the proxy's admin port."""

    def test_waits_for_ready(self):
        import http.server
        import threading
        hits = []

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                hits.append(self.path)
                self.send_response(200 if len(hits) >= 3 else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            url = "http://127.0.0.1:%d/readyz" % srv.server_address[1]
            p = subprocess.run([AWAIT, url, "10"], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(hits, ["/readyz"] * 3)
        finally:
            srv.shutdown()
            srv.server_close()

    def test_gives_up_and_rejects_bad_urls(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = subprocess.run([AWAIT, "http://127.0.0.1:%d/readyz" % port, "1"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"not ready after 1 s (last status -1)", p.stderr)
        for bad in ("https://127.0.0.1:16020/readyz", "http://localhost:16020/readyz", "http://127.0.0.1/x"):
            p = subprocess.run([AWAIT, bad], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 2, bad)


if __name__ == "__main__":
    INJECTOR, FIXTURES, AWAIT = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0], "-v"])
