#!/usr/bin/env python3
"""Protocols sidetap does not parse: an unknown binary protocol (client-first, half-close)
and a server-first SMTP-like protocol. Neither hangs, the bytes are identical to a plain
run, and each connection gives one `tcp` entry with exact byte counts.

usage: test_opaque.py --init SIDETAP_INIT --proxy SIDETAP_PROXY [--source-root DIR]
"""
import hashlib
import os
import socket
import time

import common
from common import ProxyTest, get

HERE = os.path.dirname(os.path.abspath(__file__))


def recv_all(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


class Opaque(ProxyTest):
    @classmethod
    def build(cls):
        cls.server = cls.injected("opaque-server", labels={"app": "opaque"})
        cls.direct = cls.plain("opaque-direct")
        for pod in (cls.server, cls.direct):
            proc = pod.spawn(["python3", os.path.join(HERE, "opaque_server.py"), "binary:9000",
                              "banner:2525"], name="servers")
            pod.wait_port(2525, proc=proc)
        cls.client = cls.injected("opaque-client", labels={"app": "client"})
        cls.plain_client = cls.plain("opaque-plain")

    def test_binary(self):
        payload = bytes(range(256)) * 4096 + b"\x00\xff" * 1000  # 1 MiB + 2000 bytes
        answers = []
        for pod, server in ((self.client, self.server), (self.plain_client, self.direct)):
            s = pod.connect(server.ip, 9000)
            s.settimeout(20)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            answers.append(recv_all(s))
            s.close()
        self.assertEqual(answers[0], hashlib.sha256(payload).digest() + payload[::-1])
        self.assertEqual(answers[0], answers[1])
        out, inn = self.pair(lambda e: get(e, "dst.port") == 9000, self.client, self.server,
                             9000)
        for e in out + inn:
            self.assertEqual(get(e, "protocol.name"), "tcp")
            self.assertEqual(get(e, "tcp.bytesToServer"), len(payload))
            self.assertEqual(get(e, "tcp.bytesToClient"), 32 + len(payload))
            self.assertNotIn("error", e)

    def test_server_first(self):
        transcripts = []
        for pod, server in ((self.client, self.server), (self.plain_client, self.direct)):
            s = pod.connect(server.ip, 2525)
            s.settimeout(5)
            t0 = time.monotonic()
            f = s.makefile("rwb")
            banner = f.readline()
            waited = time.monotonic() - t0
            self.assertLess(waited, 3.0, "banner took %.1f s" % waited)
            lines = [banner]
            for cmd in (b"EHLO client.test", b"MAIL FROM:<a@b>", b"QUIT"):
                f.write(cmd + b"\r\n")
                f.flush()
                lines.append(f.readline())
            self.assertEqual(f.read(), b"")  # the server closed after 221
            f.close()
            s.close()
            transcripts.append(lines)
        self.assertEqual(transcripts[0], [b"220 opaque.test ESMTP ready\r\n",
                                          b"250 EHLO client.test\r\n", b"250 MAIL FROM:<a@b>\r\n",
                                          b"221 bye\r\n"])
        self.assertEqual(transcripts[0], transcripts[1])
        out, inn = self.pair(lambda e: get(e, "dst.port") == 2525, self.client, self.server, 2525)
        for e in out + inn:
            self.assertEqual(get(e, "protocol.name"), "tcp")
            self.assertEqual(get(e, "tcp.bytesToServer"), len(b"EHLO client.test\r\n"
                                                              b"MAIL FROM:<a@b>\r\nQUIT\r\n"))
            self.assertEqual(get(e, "tcp.bytesToClient"), sum(map(len, transcripts[0])))

    def test_silent_client_closes(self):
        # A client that connects and closes without a byte: no entry is required, but
        # the proxies must not hang or crash, and later connections still work.
        for _ in range(20):
            self.client.connect(self.server.ip, 9000).close()
        s = self.client.connect(self.server.ip, 2525)
        s.settimeout(5)
        self.assertEqual(s.recv(100), b"220 opaque.test ESMTP ready\r\n")
        s.close()


if __name__ == "__main__":
    common.main()
