#!/usr/bin/env python3
"""A small single-node Kafka broker stand-in for recording test captures (stdlib only).

It speaks the real Kafka wire protocol (kafka.apache.org/protocol, the message JSON specs of
Apache Kafka 4.1) for what a librdkafka client (kcat) needs to produce and consume:
ApiVersions (v0-3, flexible v3), Metadata (v0-12), Produce (v0-10), Fetch (v0-12),
ListOffsets (v0-7), FindCoordinator (v0-3), InitProducerId (v0-4). Flexible versions use
compact strings/arrays and tagged fields; ApiVersions responses always use response
header v0. Records are kept in memory per topic partition as the record batches the
producer sent (base offsets rewritten), and served back by Fetch. Produce with acks=0
gets no response, like a real broker.

Topics are created on first use, except names starting with "missing", which answer
UNKNOWN_TOPIC_OR_PARTITION so captures can show an error. Every topic has --partitions
partitions. Bad input closes that connection with a message on stderr; the broker goes on.

usage: kafka_broker.py --port P [--advertise-port A] [--seconds S] [--ready FILE]
"""
import argparse
import socket
import socketserver
import struct
import sys
import threading
import time

# Request header v2 (flexible) from these versions on, per api key (Kafka 4.1 specs).
FLEXIBLE = {0: 9, 1: 12, 2: 6, 3: 9, 10: 3, 18: 3, 22: 2}
SUPPORTED = {0: (0, 10), 1: (0, 12), 2: (0, 7), 3: (0, 12), 10: (0, 3), 18: (0, 3), 22: (0, 4)}
MAX_FRAME = 16 * 1024 * 1024
UNKNOWN_TOPIC_OR_PARTITION = 3
UNSUPPORTED_VERSION = 35
NODE_ID = 1


class BadRequest(Exception):
    pass


class Reader:
    def __init__(self, data, flexible):
        self.d, self.p, self.flex = data, 0, flexible

    def take(self, n):
        if self.p + n > len(self.d):
            raise BadRequest("request truncated at byte %d" % self.p)
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        v = shift = 0
        while True:
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 28:
                raise BadRequest("varint too long")

    def string(self, legacy=False):
        if self.flex and not legacy:
            n = self.uvarint() - 1
        else:
            n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")

    def bytes_(self):
        n = self.uvarint() - 1 if self.flex else self.i32()
        return None if n < 0 else self.take(n)

    def array_len(self):
        n = self.uvarint() - 1 if self.flex else self.i32()
        return max(n, 0)

    def uuid(self):
        return self.take(16)

    def tags(self):
        if self.flex:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(self.uvarint())

    def topic_partitions(self, read_partition):
        """The array of topics, each with its array of partitions, that the topic APIs
        share: [(topic, [read_partition(topic), ...]), ...]."""
        topics = []
        for _ in range(self.array_len()):
            topic = self.string()
            parts = []
            for _ in range(self.array_len()):
                parts.append(read_partition(topic))
                self.tags()
            self.tags()
            topics.append((topic, parts))
        return topics


class Writer:
    def __init__(self, flexible):
        self.b, self.flex = bytearray(), flexible

    def i8(self, v):
        self.b += struct.pack(">b", v)

    def i16(self, v):
        self.b += struct.pack(">h", v)

    def i32(self, v):
        self.b += struct.pack(">i", v)

    def i64(self, v):
        self.b += struct.pack(">q", v)

    def uvarint(self, v):
        while v >= 0x80:
            self.b.append((v & 0x7F) | 0x80)
            v >>= 7
        self.b.append(v)

    def string(self, s):
        if s is None:
            if self.flex:
                self.uvarint(0)
            else:
                self.i16(-1)
            return
        e = s.encode()
        if self.flex:
            self.uvarint(len(e) + 1)
        else:
            self.i16(len(e))
        self.b += e

    def bytes_(self, data):
        if data is None:
            if self.flex:
                self.uvarint(0)
            else:
                self.i32(-1)
            return
        if self.flex:
            self.uvarint(len(data) + 1)
        else:
            self.i32(len(data))
        self.b += data

    def array(self, n):
        if self.flex:
            self.uvarint(n + 1)
        else:
            self.i32(n)

    def tags(self):
        if self.flex:
            self.uvarint(0)

    def topic_partitions(self, topics, write_partition):
        """Writes [(topic, parts), ...] as a topics-of-partitions array,
        write_partition(topic, part) for each partition."""
        self.array(len(topics))
        for topic, parts in topics:
            self.string(topic)
            self.array(len(parts))
            for part in parts:
                write_partition(topic, part)
                self.tags()
            self.tags()


class Log:
    """Record batches per (topic, partition)."""

    def __init__(self, partitions):
        self.lock = threading.Lock()
        self.partitions = partitions
        self.data = {}  # (topic, partition) -> list of (base_offset, batch bytes)
        self.next = {}
        self.topic_ids = {}

    def known(self, topic):
        return not topic.startswith("missing")

    def topic_id(self, topic):
        with self.lock:
            if topic not in self.topic_ids:
                self.topic_ids[topic] = bytes([len(self.topic_ids) + 1] * 16)
            return self.topic_ids[topic]

    def append(self, topic, partition, records):
        """Appends v2 record batches; returns the base offset of the first one."""
        with self.lock:
            key = (topic, partition)
            base = self.next.get(key, 0)
            off = 0
            first = base
            while records and off + 61 <= len(records):
                length = struct.unpack(">i", records[off + 8:off + 12])[0]
                end = off + 12 + length
                if end > len(records) or records[off + 16] != 2:
                    raise BadRequest("not a v2 record batch")
                last_delta = struct.unpack(">i", records[off + 23:off + 27])[0]
                batch = struct.pack(">q", base) + records[off + 8:end]
                self.data.setdefault(key, []).append((base, batch))
                base += last_delta + 1
                off = end
            self.next[key] = base
            return first

    def high_watermark(self, topic, partition):
        with self.lock:
            return self.next.get((topic, partition), 0)

    def read(self, topic, partition, offset, max_bytes):
        with self.lock:
            out = bytearray()
            for base, batch in self.data.get((topic, partition), []):
                last = base + struct.unpack(">i", batch[23:27])[0]
                if last < offset:
                    continue
                if out and len(out) + len(batch) > max_bytes:
                    break
                out += batch
            return bytes(out)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        buf = bytearray()
        try:
            while True:
                while len(buf) < 4:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                size = struct.unpack(">i", buf[:4])[0]
                if size < 8 or size > MAX_FRAME:
                    raise BadRequest("frame size %d out of range" % size)
                while len(buf) < 4 + size:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                frame, buf = bytes(buf[4:4 + size]), buf[4 + size:]
                reply = self.server.broker.request(frame)
                if reply is not None:
                    sock.sendall(struct.pack(">i", len(reply)) + reply)
        except (BadRequest, struct.error, UnicodeError) as e:
            print("kafka_broker: %s: %s; closing the connection" % (self.client_address, e), file=sys.stderr)
        except OSError:
            pass


class Broker:
    def __init__(self, args):
        self.args = args
        self.log = Log(args.partitions)

    def request(self, frame):
        hr = Reader(frame, False)
        api, ver, corr = hr.i16(), hr.i16(), hr.i32()
        if api not in SUPPORTED:
            raise BadRequest("api key %d not supported" % api)
        flex = ver >= FLEXIBLE.get(api, 1 << 30)
        hr.string(legacy=True)  # client_id
        if flex:
            hr.flex = True
            hr.tags()
        body = Reader(frame[hr.p:], flex)
        lo, hi = SUPPORTED[api]
        w = Writer(flex)
        if api == 18:
            if ver > hi:  # answer v0 so any client can read it (KIP-511)
                w = Writer(False)
                self.api_versions(w, 0, UNSUPPORTED_VERSION)
            else:
                self.api_versions(w, ver, 0)
            return struct.pack(">i", corr) + bytes(w.b)
        if ver < lo or ver > hi:
            raise BadRequest("api key %d version %d not supported" % (api, ver))
        handler = {0: self.produce, 1: self.fetch, 2: self.list_offsets, 3: self.metadata,
                   10: self.find_coordinator, 22: self.init_producer_id}[api]
        if handler(body, w, ver) is False:
            return None  # acks=0
        header = struct.pack(">i", corr) + (b"\x00" if flex else b"")
        return header + bytes(w.b)

    def api_versions(self, w, ver, error):
        w.i16(error)
        w.array(len(SUPPORTED))
        for api, (lo, hi) in sorted(SUPPORTED.items()):
            w.i16(api)
            w.i16(lo)
            w.i16(hi)
            w.tags()
        if ver >= 1:
            w.i32(0)
        w.tags()

    def metadata(self, r, w, ver):
        topics = None
        n = r.uvarint() - 1 if r.flex else r.i32()
        if n >= 0:
            topics = []
            for _ in range(n):
                if ver >= 10:
                    r.uuid()
                topics.append(r.string())
                r.tags()
        if ver >= 3:
            w.i32(0)
        w.array(1)
        w.i32(NODE_ID)
        w.string("127.0.0.1")
        w.i32(self.args.advertise_port)
        if ver >= 1:
            w.string(None)  # rack
        w.tags()
        if ver >= 2:
            w.string("sidetap-test-cluster")
        if ver >= 1:
            w.i32(NODE_ID)
        if topics is None:
            topics = sorted({t for t, _ in self.log.next})
        w.array(len(topics))
        for t in topics:
            known = t is not None and self.log.known(t)
            w.i16(0 if known else UNKNOWN_TOPIC_OR_PARTITION)
            w.string(t)
            if ver >= 10:
                w.b += self.log.topic_id(t) if known else bytes(16)
            if ver >= 1:
                w.i8(0)  # is_internal
            parts = range(self.args.partitions) if known else []
            w.array(len(parts))
            for p in parts:
                w.i16(0)
                w.i32(p)
                w.i32(NODE_ID)
                if ver >= 7:
                    w.i32(0)
                for _ in range(3 if ver >= 5 else 2):  # replicas, isr, offline
                    is_offline = _ == 2
                    w.array(0 if is_offline else 1)
                    if not is_offline:
                        w.i32(NODE_ID)
                w.tags()
            if ver >= 8:
                w.i32(-2147483648)
            w.tags()
        if 8 <= ver <= 10:
            w.i32(-2147483648)
        w.tags()

    def produce(self, r, w, ver):
        if ver >= 3:
            r.string()  # transactional_id
        acks = r.i16()
        r.i32()

        def append(topic):  # -> (partition, error, base offset)
            p = r.i32()
            records = r.bytes_()
            if not self.log.known(topic) or p >= self.args.partitions:
                return p, UNKNOWN_TOPIC_OR_PARTITION, -1
            return p, 0, self.log.append(topic, p, records or b"")

        def answer(topic, part):
            p, err, base = part
            w.i32(p)
            w.i16(err)
            w.i64(base)
            if ver >= 2:
                w.i64(-1)
            if ver >= 5:
                w.i64(0)
            if ver >= 8:
                w.array(0)
                w.string(None)

        results = r.topic_partitions(append)
        r.tags()
        if acks == 0:
            return False
        w.topic_partitions(results, answer)
        if ver >= 1:
            w.i32(0)
        w.tags()
        return True

    def fetch(self, r, w, ver):
        if ver <= 14:
            r.i32()  # replica_id
        max_wait = r.i32()
        r.i32()  # min_bytes
        max_bytes = r.i32() if ver >= 3 else 1 << 20
        if ver >= 4:
            r.i8()
        if ver >= 7:
            r.i32()
            r.i32()

        def wanted_partition(topic):  # -> (partition, fetch offset)
            p = r.i32()
            if ver >= 9:
                r.i32()
            off = r.i64()
            if ver >= 12:
                r.i32()
            if ver >= 5:
                r.i64()
            r.i32()
            return p, off

        def answer(topic, part):
            p, off = part
            known = self.log.known(topic) and p < self.args.partitions
            hw = self.log.high_watermark(topic, p) if known else -1
            w.i32(p)
            w.i16(0 if known else UNKNOWN_TOPIC_OR_PARTITION)
            w.i64(hw)
            if ver >= 4:
                w.i64(hw)
            if ver >= 5:
                w.i64(0)
            if ver >= 4:
                w.array(0)  # aborted transactions
            if ver >= 11:
                w.i32(-1)
            w.bytes_(self.log.read(topic, p, off, max_bytes) if known else None)

        wanted = r.topic_partitions(wanted_partition)
        # Nothing new anywhere: wait a little like a real broker (bounded).
        if all(off >= self.log.high_watermark(t, p) for t, ps in wanted for p, off in ps):
            time.sleep(min(max(max_wait, 0), 200) / 1000.0)
        if ver >= 1:
            w.i32(0)
        if ver >= 7:
            w.i16(0)
            w.i32(0)
        w.topic_partitions(wanted, answer)
        w.tags()

    def list_offsets(self, r, w, ver):
        r.i32()
        if ver >= 2:
            r.i8()

        def wanted_partition(topic):  # -> (partition, timestamp)
            p = r.i32()
            if ver >= 4:
                r.i32()
            ts = r.i64()
            if ver == 0:
                r.i32()
            return p, ts

        def answer(topic, part):
            p, ts = part
            known = self.log.known(topic) and p < self.args.partitions
            off = self.log.high_watermark(topic, p) if ts == -1 else 0
            w.i32(p)
            w.i16(0 if known else UNKNOWN_TOPIC_OR_PARTITION)
            if ver == 0:
                w.array(1)
                w.i64(off)
            else:
                w.i64(-1)
                w.i64(off if known else -1)
                if ver >= 4:
                    w.i32(0)

        wanted = r.topic_partitions(wanted_partition)
        if ver >= 2:
            w.i32(0)
        w.topic_partitions(wanted, answer)
        w.tags()

    def find_coordinator(self, r, w, ver):
        r.string()
        if ver >= 1:
            r.i8()
        if ver >= 1:
            w.i32(0)
        w.i16(0)
        if ver >= 1:
            w.string(None)
        w.i32(NODE_ID)
        w.string("127.0.0.1")
        w.i32(self.args.advertise_port)
        w.tags()

    def init_producer_id(self, r, w, ver):
        w.i32(0)
        w.i16(0)
        w.i64(1000)
        w.i16(0)
        w.tags()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True, help="loopback port to listen on")
    p.add_argument("--advertise-port", type=int, help="port put in Metadata (default --port)")
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--seconds", type=float, default=60, help="exit after this long")
    p.add_argument("--ready", help="touch this file once listening")
    args = p.parse_args()
    args.advertise_port = args.advertise_port or args.port
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.broker = Broker(args)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    if args.ready:
        open(args.ready, "w").close()
    time.sleep(args.seconds)
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
