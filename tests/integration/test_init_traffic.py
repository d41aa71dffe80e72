#!/usr/bin/env python3
"""sidetap-init's rules with real packets: which connections reach the proxy's listeners
(and with which original destination) and which go straight through. The proxy is
played by probe.py, so this checks the rules alone.

usage: test_init_traffic.py SIDETAP_INIT
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import Node  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "probe.py")
INIT = None

CLIENT = r"""
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(b"q", (host, port))
    print(s.recv(200).decode().strip())
else:
    s = socket.create_connection((host, port), timeout=3)
    print(s.makefile().readline().strip())
"""


@unittest.skipUnless(os.geteuid() == 0, "needs root")
class Traffic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node()
        try:
            n = cls.node
            cls.app = n.add_pod("app")        # injected
            cls.peer = n.add_pod("peer")      # plain
            cls.other = n.add_pod("other")    # plain, in an excluded CIDR
            cls.only = n.add_pod("only")      # injected, inbound capture only for port 7000
            cls.app.write_etc("resolv.conf", "nameserver %s\n" % cls.peer.ip)
            for pod in (cls.app, cls.only):
                pod.write_etc("resolv.conf", "nameserver %s\n" % cls.peer.ip)
            cls.app.run([INIT, "--exclude-outbound-ports", "5432", "--exclude-outbound-cidrs",
                         cls.other.ip, "--exclude-inbound-ports", "7001"])
            cls.only.run([INIT, "--include-inbound-ports", "7000"])
            for pod in (cls.app, cls.only):
                p = pod.spawn(["python3", PROBE, "proxy", "16001", "16006", "16053", "16020"],
                              name="probe-proxy", user="proxy")
                pod.wait_port(16020, proc=p)
                d = pod.spawn(["python3", PROBE, "direct", pod.name, "7000", "7001", "7002"],
                              name="direct")
                pod.wait_port(7002, proc=d)
            for pod in (cls.peer, cls.other):
                d = pod.spawn(["python3", PROBE, "direct", pod.name, "80", "5432", "53"],
                              name="direct")
                pod.wait_port(53, proc=d)
        except BaseException:
            cls.node.dump_logs()
            cls.node.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.node.close()

    def ask(self, pod, host, port, proto="tcp", user=None):
        r = pod.run(["python3", "-c", CLIENT, host, str(port), proto], user=user, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def test_outbound_redirected(self):
        self.assertEqual(self.ask(self.app, self.peer.ip, 80),
                         "outbound %s:80" % self.peer.ip)

    def test_proxy_uid_and_gid_exempt(self):
        self.assertEqual(self.ask(self.app, self.peer.ip, 80, user=1717), "direct peer 80")
        self.assertEqual(self.ask(self.app, self.peer.ip, 80, user=(1000, 1717)),
                         "direct peer 80")
        self.assertEqual(self.ask(self.app, self.peer.ip, 80, user=(1717, 1000)),
                         "direct peer 80")
        self.assertEqual(self.ask(self.app, self.peer.ip, 80, user=(1000, 1000)),
                         "outbound %s:80" % self.peer.ip)

    def test_excluded_port_and_cidr(self):
        self.assertEqual(self.ask(self.app, self.peer.ip, 5432), "direct peer 5432")
        self.assertEqual(self.ask(self.app, self.other.ip, 80), "direct other 80")

    def test_loopback_and_own_ip_not_captured(self):
        self.assertEqual(self.ask(self.app, "127.0.0.1", 7000), "direct app 7000")
        self.assertEqual(self.ask(self.app, self.app.ip, 7000), "direct app 7000")

    def test_inbound(self):
        self.assertEqual(self.ask(self.peer, self.app.ip, 7000), "inbound %s:7000" % self.app.ip)
        self.assertEqual(self.ask(self.peer, self.app.ip, 7002), "inbound %s:7002" % self.app.ip)
        # Excluded port and the admin port are not captured.
        self.assertEqual(self.ask(self.peer, self.app.ip, 7001), "direct app 7001")
        self.assertEqual(self.ask(self.peer, self.app.ip, 16020), "admin")

    def test_inbound_include_list(self):
        self.assertEqual(self.ask(self.peer, self.only.ip, 7000),
                         "inbound %s:7000" % self.only.ip)
        self.assertEqual(self.ask(self.peer, self.only.ip, 7001), "direct only 7001")

    def test_dns(self):
        # UDP and TCP DNS to the resolv.conf nameserver go to the DNS listener...
        self.assertEqual(self.ask(self.app, self.peer.ip, 53, "udp"), "dns %s" % self.app.ip)
        self.assertEqual(self.ask(self.app, self.peer.ip, 53), "dns %s:53" % self.peer.ip)
        # ...but not the proxy's own forwarding, nor DNS to another server.
        self.assertEqual(self.ask(self.app, self.peer.ip, 53, "udp", user=1717),
                         "direct peer 53")
        self.assertEqual(self.ask(self.app, self.other.ip, 53, "udp"), "direct other 53")


if __name__ == "__main__":
    INIT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
