#!/usr/bin/env python3
"""DNS through injected pods: dig (UDP and TCP, names that exist and do not) against the
dnsmasq cluster DNS, and an application's own look-ups; the outbound entries of the
calls that follow carry the looked-up name as dst.name.

usage: test_dns.py --init SIDETAP_INIT --proxy SIDETAP_PROXY [--source-root DIR]
"""
import common
from common import ProxyTest, get


class Dns(ProxyTest):
    @classmethod
    def build(cls):
        n = cls.node
        cls.web = cls.plain("web")
        proc = cls.web.spawn(["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"],
                             name="http")
        cls.web.wait_port(8080, proc=proc)
        cls.web_host = n.add_service("web", cls.web)
        n.add_record("api.example.test", cls.web.ip)
        cls.app = cls.injected("app-0", labels={"app": "app"}, workload="app")
        cls.plain_app = cls.plain("app-plain")

    def dig_both(self, *args):
        return [pod.run(["dig", "+short", "+tries=1", "+time=3", *args]).stdout
                for pod in (self.app, self.plain_app)]

    def test_dig(self):
        for args in ([self.web_host], ["+tcp", self.web_host], [self.web_host, "AAAA"],
                     ["nothing.default.svc.cluster.local"], ["api.example.test"]):
            with self.subTest(args=args):
                inj, direct = self.dig_both(*args)
                self.assertEqual(inj, direct)
        self.assertEqual(self.dig_both(self.web_host)[0], self.web.ip + "\n")
        full = [pod.run(["dig", "+tries=1", "nothing.default.svc.cluster.local"]).stdout
                for pod in (self.app, self.plain_app)]
        for out in full:
            self.assertIn("status: NXDOMAIN", out)
        if not common.have_parser("dns"):
            return
        dns_ip = self.node.dns.ip

        def query(name, transport, type_="A"):
            return lambda e: (get(e, "protocol.name") == "dns" and e.get("outgoing") is True
                              and get(e, "request.path") == name
                              and get(e, "request.method") == type_
                              and get(e, "dns.transport") == transport)
        e = self.wait_entries(query(self.web_host, "udp"))[0]
        self.assertPod(e["src"], self.app)
        self.assertEqual((get(e, "dst.ip"), get(e, "dst.port")), (dns_ip, 53))
        self.assertEqual(get(e, "dns.rcode"), "NOERROR")
        self.assertEqual(get(e, "dns.questions"),
                         [{"name": self.web_host, "type": "A", "class": "IN"}])
        self.assertEqual([(a["name"], a["type"], a["data"]) for a in get(e, "dns.answers")],
                         [(self.web_host, "A", self.web.ip)])
        self.assertEqual(e.get("summary"), "A " + self.web_host)
        e = self.wait_entries(query(self.web_host, "tcp"))[0]
        self.assertEqual(get(e, "dns.answers")[0]["data"], self.web.ip)
        e = self.wait_entries(query("nothing.default.svc.cluster.local", "udp"))[0]
        self.assertEqual(get(e, "dns.rcode"), "NXDOMAIN")
        self.assertEqual(get(e, "response.statusText"), "NXDOMAIN")
        self.assertEqual(get(e, "error.message"), "NXDOMAIN")

    def test_app_lookup_names_the_peer(self):
        for host in ("web:8080", "api.example.test:8080"):
            outs = [pod.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                             "http://%s/" % host]).stdout for pod in (self.app, self.plain_app)]
            self.assertEqual(outs, ["200", "200"])
        if not common.have_parser("dns"):
            return
        # curl resolved "web" through the search list: the entry's question is the FQDN.
        e = self.wait_entries(lambda e: get(e, "protocol.name") == "dns" and
                              get(e, "request.path") == self.web_host and
                              get(e, "request.method") == "A" and
                              get(e, "src.ip") == self.app.ip)[0]
        self.assertEqual(get(e, "dns.answers")[0]["data"], self.web.ip)
        for name in (self.web_host, "api.example.test"):
            calls = self.wait_entries(lambda e: e.get("outgoing") is True and
                                      get(e, "dst.ip") == self.web.ip and
                                      get(e, "dst.port") == 8080 and
                                      get(e, "dst.name") == name)
            self.assertPod(calls[0]["src"], self.app)


if __name__ == "__main__":
    common.main()
