#!/usr/bin/env python3
"""sidetap-init: exact rule text (--dry-run) for flag combinations, input validation, and
real apply / re-apply / clean in throwaway network namespaces with both iptables backends.

usage: test_init.py SIDETAP_INIT
"""
import os
import subprocess
import sys
import tempfile
import unittest
import uuid

INIT = None  # set from argv

HEAD = """\
*nat
:SIDETAP_INBOUND - [0:0]
:SIDETAP_IN_REDIRECT - [0:0]
:SIDETAP_OUTPUT - [0:0]
:SIDETAP_REDIRECT - [0:0]
:SIDETAP_DNS - [0:0]
"""

DEFAULT_V4 = HEAD + """\
-A SIDETAP_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006
-A SIDETAP_REDIRECT -p tcp -j REDIRECT --to-ports 16001
-A SIDETAP_INBOUND -p tcp -m tcp --dport 16020 -j RETURN
-A SIDETAP_INBOUND -p tcp -j SIDETAP_IN_REDIRECT
-A SIDETAP_OUTPUT -m owner --uid-owner 1717 -j RETURN
-A SIDETAP_OUTPUT -m owner --gid-owner 1717 -j RETURN
-A SIDETAP_OUTPUT -j SIDETAP_DNS
-A SIDETAP_OUTPUT -o lo -j RETURN
-A SIDETAP_OUTPUT -p tcp -j SIDETAP_REDIRECT
-A SIDETAP_DNS -d 10.96.0.10/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 16053
-A SIDETAP_DNS -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 16053
-A PREROUTING -p tcp -j SIDETAP_INBOUND
-A OUTPUT -j SIDETAP_OUTPUT
COMMIT
"""


# A rule of someone else's that must survive apply and clean.
FOREIGN = "-A OUTPUT -d 192.0.2.1/32 -j RETURN\n"


def run_init(*args, env=None, netns=None):
    cmd = [INIT, *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIDETAP_")}
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=60)


class Tmp:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="sidetap-init-test-")

    def file(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path


class DryRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.resolv = cls.tmp.file("resolv.conf",
                                  "search default.svc.cluster.local svc.cluster.local\n"
                                  "nameserver 10.96.0.10\noptions ndots:5\n")
        cls.resolv6 = cls.tmp.file("resolv6.conf",
                                   "nameserver 10.96.0.10\nnameserver fd00:10:96::a\n"
                                   "nameserver 10.96.0.10\n")
        cls.no_ns = cls.tmp.file("empty.conf", "search x\n")

    def dry(self, *args, env=None):
        r = run_init("--dry-run", "--ipv6=off", *args, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_defaults(self):
        r = self.dry("--resolv-conf", self.resolv)
        self.assertEqual(r.stdout, "# iptables-restore --noflush\n" + DEFAULT_V4)
        self.assertEqual(r.stderr, "")

    def test_env_equals_flags(self):
        env = {"SIDETAP_RESOLV_CONF": self.resolv, "SIDETAP_EXCLUDE_OUTBOUND_PORTS": "5432",
               "SIDETAP_PROXY_UID": "2000", "SIDETAP_IPV6": "off"}
        a = run_init("--dry-run", env=env)
        b = self.dry("--resolv-conf", self.resolv, "--exclude-outbound-ports", "5432",
                     "--proxy-uid", "2000")
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.stdout, b.stdout)
        # A flag wins over its environment variable.
        c = run_init("--dry-run", "--proxy-uid", "3000", env=env)
        self.assertIn("--uid-owner 3000 ", c.stdout)
        self.assertNotIn("2000", c.stdout)

    def test_all_options(self):
        r = self.dry("--resolv-conf", self.resolv,
                     "--include-inbound-ports", "8080, 80,9090,80",
                     "--exclude-inbound-ports", "9090",
                     "--exclude-outbound-ports", ",".join(str(p) for p in range(1000, 1017)),
                     "--exclude-outbound-cidrs", "169.254.169.254/32, 10.1.2.3/8,fd00::/8",
                     "--proxy-uid", "1337", "--proxy-gid", "1338",
                     "--outbound-port", "15001", "--inbound-port", "15006",
                     "--dns-port", "15053", "--admin-port", "15020")
        self.assertEqual(r.stdout, "# iptables-restore --noflush\n" + HEAD + """\
-A SIDETAP_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A SIDETAP_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A SIDETAP_INBOUND -p tcp -m tcp --dport 15020 -j RETURN
-A SIDETAP_INBOUND -p tcp -m tcp --dport 9090 -j RETURN
-A SIDETAP_INBOUND -p tcp -m multiport --dports 80,8080,9090 -j SIDETAP_IN_REDIRECT
-A SIDETAP_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A SIDETAP_OUTPUT -m owner --gid-owner 1338 -j RETURN
-A SIDETAP_OUTPUT -d 169.254.169.254/32 -j RETURN
-A SIDETAP_OUTPUT -d 10.0.0.0/8 -j RETURN
-A SIDETAP_OUTPUT -j SIDETAP_DNS
-A SIDETAP_OUTPUT -o lo -j RETURN
-A SIDETAP_OUTPUT -p tcp -m multiport --dports 1000,1001,1002,1003,1004,1005,1006,1007,1008,1009,1010,1011,1012,1013,1014 -j RETURN
-A SIDETAP_OUTPUT -p tcp -m multiport --dports 1015,1016 -j RETURN
-A SIDETAP_OUTPUT -p tcp -j SIDETAP_REDIRECT
-A SIDETAP_DNS -d 10.96.0.10/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053
-A SIDETAP_DNS -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 15053
-A PREROUTING -p tcp -j SIDETAP_INBOUND
-A OUTPUT -j SIDETAP_OUTPUT
COMMIT
""")
        self.assertIn("ignoring excluded CIDR fd00::/8", r.stderr)

    def test_no_inbound_no_dns(self):
        for args in (["--no-dns"], [], ["--resolv-conf", self.no_ns]):
            env = {"SIDETAP_NO_DNS": "true"} if not args else None
            r = run_init("--dry-run", "--ipv6=off", "--include-inbound-ports", "", *args,
                         env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "# iptables-restore --noflush\n" + HEAD + """\
-A SIDETAP_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006
-A SIDETAP_REDIRECT -p tcp -j REDIRECT --to-ports 16001
-A SIDETAP_OUTPUT -m owner --uid-owner 1717 -j RETURN
-A SIDETAP_OUTPUT -m owner --gid-owner 1717 -j RETURN
-A SIDETAP_OUTPUT -o lo -j RETURN
-A SIDETAP_OUTPUT -p tcp -j SIDETAP_REDIRECT
-A PREROUTING -p tcp -j SIDETAP_INBOUND
-A OUTPUT -j SIDETAP_OUTPUT
COMMIT
""", args)

    def test_ipv6(self):
        r = run_init("--dry-run", "--ipv6=on", "--resolv-conf", self.resolv6,
                     "--exclude-outbound-cidrs", "fd00:1::5,10.9.0.0/16")
        self.assertEqual(r.returncode, 0, r.stderr)
        v4, v6 = r.stdout.split("# ip6tables-restore --noflush\n")
        self.assertEqual(v4, "# iptables-restore --noflush\n" + DEFAULT_V4.replace(
            "-A SIDETAP_OUTPUT -j SIDETAP_DNS\n",
            "-A SIDETAP_OUTPUT -d 10.9.0.0/16 -j RETURN\n-A SIDETAP_OUTPUT -j SIDETAP_DNS\n"))
        self.assertEqual(v6, HEAD + """\
-A SIDETAP_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006
-A SIDETAP_REDIRECT -p tcp -j REDIRECT --to-ports 16001
-A SIDETAP_INBOUND -p tcp -m tcp --dport 16020 -j RETURN
-A SIDETAP_INBOUND -p tcp -j SIDETAP_IN_REDIRECT
-A SIDETAP_OUTPUT -m owner --uid-owner 1717 -j RETURN
-A SIDETAP_OUTPUT -m owner --gid-owner 1717 -j RETURN
-A SIDETAP_OUTPUT -d fd00:1::5/128 -j RETURN
-A SIDETAP_OUTPUT -j SIDETAP_DNS
-A SIDETAP_OUTPUT -o lo -j RETURN
-A SIDETAP_OUTPUT -p tcp -j SIDETAP_REDIRECT
-A SIDETAP_DNS -d fd00:10:96::a/128 -p udp -m udp --dport 53 -j REDIRECT --to-ports 16053
-A SIDETAP_DNS -d fd00:10:96::a/128 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 16053
-A PREROUTING -p tcp -j SIDETAP_INBOUND
-A OUTPUT -j SIDETAP_OUTPUT
COMMIT
""")
        # With IPv6 off, IPv6 inputs are reported and left out.
        r = self.dry("--resolv-conf", self.resolv6)
        self.assertEqual(r.stdout, "# iptables-restore --noflush\n" + DEFAULT_V4)
        self.assertIn("DNS to fd00:10:96::a/128 is not captured", r.stderr)

    def test_bad_input(self):
        cases = [
            (["--outbound-port", "0"], {}, "--outbound-port: \"0\" is not a port (1-65535)"),
            (["--inbound-port", "65536"], {}, "--inbound-port: \"65536\" is not a port"),
            (["--dns-port", "53a"], {}, "--dns-port: \"53a\" is not a port"),
            (["--admin-port", ""], {}, "--admin-port: \"\" is not a port"),
            (["--exclude-inbound-ports", "22,x"], {}, "--exclude-inbound-ports: \"x\" is not a port"),
            (["--exclude-outbound-ports", "-1"], {}, "--exclude-outbound-ports: \"-1\" is not a port"),
            (["--include-inbound-ports", "80,*"], {}, "--include-inbound-ports: \"80,*\": '*' must be the whole value"),
            (["--exclude-outbound-cidrs", "10.0.0.0/33"], {}, "--exclude-outbound-cidrs: \"10.0.0.0/33\": prefix length must be 0-32"),
            (["--exclude-outbound-cidrs", "fd00::/129"], {}, "prefix length must be 0-128"),
            (["--exclude-outbound-cidrs", "10.0.0/8"], {}, "--exclude-outbound-cidrs: \"10.0.0/8\" is not an IP address or CIDR"),
            (["--exclude-outbound-cidrs", "example.com"], {}, "is not an IP address or CIDR"),
            (["--proxy-uid", "root"], {}, "--proxy-uid: \"root\" is not a numeric id"),
            (["--proxy-gid", "4294967295"], {}, "--proxy-gid: \"4294967295\" is not a numeric id"),
            (["--ipv6", "maybe"], {}, "--ipv6: \"maybe\": expected auto, on or off"),
            (["--iptables-backend", "nf"], {}, "--iptables-backend: \"nf\": expected auto, nft or legacy"),
            (["--resolv-conf", "/nonexistent/resolv.conf"], {}, "--resolv-conf: cannot read /nonexistent/resolv.conf"),
            (["--inbound-port", "16001"], {}, "--outbound-port and --inbound-port are both 16001"),
            ([], {"SIDETAP_DNS_PORT": "16020"}, "--dns-port and --admin-port are both 16020"),
            ([], {"SIDETAP_EXCLUDE_OUTBOUND_CIDRS": "1.2.3.4/40"}, "SIDETAP_EXCLUDE_OUTBOUND_CIDRS: \"1.2.3.4/40\""),
            ([], {"SIDETAP_NO_DNS": "perhaps"}, "SIDETAP_NO_DNS: \"perhaps\" is not a boolean"),
            ([], {"SIDETAP_OUTBOUND_PORT": "http"}, "SIDETAP_OUTBOUND_PORT: \"http\" is not a port"),
            (["extra"], {}, "unexpected argument \"extra\""),
            (["--frobnicate"], {}, "unknown option --frobnicate"),
            (["--ipv6"], {}, "--ipv6 needs a value"),
            (["--clean"], {}, "--dry-run and --clean cannot be combined"),
        ]
        for args, env, message in cases:
            with self.subTest(args=args, env=env):
                r = run_init("--dry-run", *args, env=env)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertIn(message, r.stderr)
                self.assertNotIn("Sanitizer", r.stderr)

    def test_help_version(self):
        r = run_init("--help")
        self.assertEqual(r.returncode, 0)
        for flag in ("--include-inbound-ports", "--exclude-outbound-cidrs", "--iptables-backend",
                     "--dry-run", "--clean", "--ipv6", "--no-dns", "--proxy-uid"):
            self.assertIn(flag, r.stdout)
        r = run_init("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^sidetap-init \d+\.\d+\.\d+\n$")


def have_netns():
    return os.geteuid() == 0 and subprocess.run(["ip", "netns", "list"],
                                                capture_output=True).returncode == 0


@unittest.skipUnless(have_netns(), "needs root and ip netns")
class Apply(unittest.TestCase):
    """Real iptables in a fresh network namespace per test, with each backend."""

    def setUp(self):
        self.ns = "sti-%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns])
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        self.tmp = Tmp()
        self.resolv = self.tmp.file("resolv.conf", "nameserver 10.96.0.10\n")

    def ipt(self, backend, input):
        """Feeds foreign rules to iptables-restore --noflush."""
        r = subprocess.run(["ip", "netns", "exec", self.ns, "iptables-%s-restore" % backend,
                            "--noflush"], input=input, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def save(self, backend, v6=False):
        """The nat table without comments and counters."""
        out = subprocess.run(["ip", "netns", "exec", self.ns,
                              ("ip6tables-" if v6 else "iptables-") + backend + "-save", "-t",
                              "nat"], capture_output=True, text=True, check=True).stdout
        return "".join(l + "\n" for l in out.splitlines() if not l.startswith("#"))

    def rules(self, backend, v6=False):
        return [l for l in self.save(backend, v6).splitlines() if l.startswith("-A ")]

    def init(self, backend, *args):
        return run_init("--iptables-backend", backend, "--resolv-conf", self.resolv, *args,
                        netns=self.ns)

    def expected(self, *args, ipv6="off"):
        r = run_init("--dry-run", "--ipv6=" + ipv6, "--resolv-conf", self.resolv, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    @staticmethod
    def rule_lines(restore_text):
        return [l for l in restore_text.splitlines() if l.startswith("-A ")]

    def sorted_rules(self, restore_text):
        # iptables-save lists rules chain by chain (built-in chains first, then user chains
        # in the order they were created); compare per chain, keeping order within a chain.
        chains = {}
        for l in self.rule_lines(restore_text):
            chains.setdefault(l.split()[1], []).append(l)
        return chains

    def check_backend(self, backend):
        clean_save = self.save(backend)
        # A foreign rule that must survive apply and clean.
        self.ipt(backend, "*nat\n" + FOREIGN + "COMMIT\n")

        r = self.init(backend, "--ipv6=off")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("applied 13 IPv4 rules (%s)" % backend, r.stderr)
        first = self.save(backend)
        self.assertEqual(self.sorted_rules(first),
                         self.sorted_rules(FOREIGN + self.expected()))

        # Idempotent: the second run leaves exactly the same table (jump order kept).
        r = self.init(backend, "--ipv6=off")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.save(backend), first)

        # A stray rule in our chain and a duplicate jump are removed by the next run.
        self.ipt(backend, "*nat\n-A SIDETAP_OUTPUT -p udp -j RETURN\n"
                                "-A OUTPUT -j SIDETAP_OUTPUT\n-I PREROUTING 1 -j SIDETAP_INBOUND\nCOMMIT\n")
        self.assertNotEqual(self.save(backend), first)
        r = self.init(backend, "--ipv6=off")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.save(backend), first)

        # New flags replace the old rules in one transaction.
        r = self.init(backend, "--ipv6=off", "--exclude-outbound-ports", "5432", "--no-dns")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sorted_rules(self.save(backend)),
                         self.sorted_rules(FOREIGN + self.expected("--exclude-outbound-ports",
                                                                   "5432", "--no-dns")))

        # Bad input writes nothing.
        before = self.save(backend)
        r = self.init(backend, "--exclude-outbound-cidrs", "10.0.0.0/99")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.save(backend), before)

        # Clean removes everything we added and nothing else; a second clean is a no-op.
        r = self.init(backend, "--clean")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("removed 7 IPv4", r.stderr)
        self.assertEqual(self.rules(backend), ["-A OUTPUT -d 192.0.2.1/32 -j RETURN"])
        self.assertNotIn("SIDETAP", self.save(backend))
        r = self.init(backend, "--clean")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("removed 0 IPv4 and 0 IPv6", r.stderr)
        self.ipt(backend, "*nat\n-D OUTPUT -d 192.0.2.1/32 -j RETURN\nCOMMIT\n")
        self.assertEqual(self.save(backend), clean_save)

    def test_nft(self):
        self.check_backend("nft")

    def test_legacy(self):
        self.check_backend("legacy")

    def test_auto_backend(self):
        # Fresh namespace: nft. With legacy rules present: legacy, as Istio decides.
        r = run_init("--resolv-conf", self.resolv, "--ipv6=off", netns=self.ns)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(nft)", r.stderr)
        self.assertIn("SIDETAP_OUTPUT", self.save("nft"))
        r = run_init("--clean", netns=self.ns)
        self.assertIn("(nft)", r.stderr)
        self.ipt("legacy", "*filter\n-A INPUT -p tcp --dport 9 -j ACCEPT\nCOMMIT\n")
        r = run_init("--resolv-conf", self.resolv, "--ipv6=off", netns=self.ns)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(legacy)", r.stderr)
        self.assertIn("SIDETAP_OUTPUT", self.save("legacy"))
        self.assertNotIn("SIDETAP", self.save("nft"))

    def test_ipv6_auto(self):
        # No global IPv6 address: IPv4 only. With one: both families.
        resolv = self.tmp.file("r6.conf", "nameserver 10.96.0.10\nnameserver fd00::a\n")
        r = run_init("--iptables-backend", "nft", "--resolv-conf", resolv, netns=self.ns)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("applied 13 IPv4 rules (nft)", r.stderr)
        self.assertNotIn("SIDETAP", self.save("nft", v6=True))
        subprocess.run(["ip", "-n", self.ns, "addr", "add", "fd00:77::5/64", "dev", "lo", "nodad"],
                       check=True)
        r = run_init("--iptables-backend", "nft", "--resolv-conf", resolv, netns=self.ns)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("applied 13 IPv4 and 13 IPv6 rules (nft)", r.stderr)
        exp = run_init("--dry-run", "--ipv6=on", "--resolv-conf", resolv).stdout
        exp6 = exp.split("# ip6tables-restore --noflush\n")[1]
        self.assertEqual(self.sorted_rules(self.save("nft", v6=True)), self.sorted_rules(exp6))
        r = run_init("--iptables-backend", "nft", "--clean", netns=self.ns)
        self.assertIn("removed 7 IPv4 and 7 IPv6", r.stderr)
        self.assertNotIn("SIDETAP", self.save("nft", v6=True))


if __name__ == "__main__":
    INIT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
