#!/usr/bin/env python3
"""Storage: entries survive a restart (ids continue), a torn last record is cut off, the
memory budget evicts the oldest first, and the disk stays within --retention-bytes.
usage: test_persist.py path/to/sidetap-collector"""
import ctypes
import glob
import json
import mmap
import os
import struct
import subprocess
import sys
import tempfile
import time

from collector_lib import Collector, check, check_eq, done, fixture_entries

binary = sys.argv[1]
SIX = [
    ("!dns and !error", [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 15, 16, 18, 19, 21, 22, 23, 24]),
    ('redis and src.namespace == "guestbook"', [15, 16, 17]),
    ('node.name == "i-028d42e8587e84db7" and dst.ip == "127.0.0.1" and dst.port == "8080"', [9]),
]


def entry(i, pad=900):
    return {"timestamp": 1764064800000 + i, "protocol": {"name": "http"}, "elapsedTime": 1.0,
            "src": {"ip": "10.0.0.1", "port": 1000 + i % 50000, "namespace": "load"},
            "dst": {"ip": "10.0.0.2", "port": 80},
            "request": {"method": "GET", "path": f"/item/{i}", "headers": {"X-Pad": "p" * pad}},
            "response": {"status": 200}, "summary": f"GET /item/{i}"}


def resident_bytes(path):
    """How much of a file is in the page cache: mincore(2) over a private mapping of it
    (never touched, so every page mincore sees is the file's cached page)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    page = mmap.PAGESIZE
    vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        first = ctypes.c_char.from_buffer(m)
        rc = libc.mincore(ctypes.addressof(first), size, vec)
        del first
        m.close()
    if rc != 0:
        raise OSError(ctypes.get_errno(), "mincore")
    return sum(page for v in vec if v & 1)


with tempfile.TemporaryDirectory(prefix="sidetap-persist-") as d:
    data = os.path.join(d, "data")
    c = Collector(binary, data_dir=data)
    try:
        st, doc = c.post_entries(fixture_entries())
        check_eq(doc["accepted"], 24, "fixtures stored")
    finally:
        out = c.stop()
        c.close()

    c = Collector(binary, data_dir=data)
    try:
        st, s = c.get_json("/api/v1/stats")
        check_eq((s["entries"], s["disk"]["loaded"], s["disk"]["torn"]), (24, 24, 0), "reloaded after restart")
        for q, want in SIX:
            check_eq(c.query_ids(q), sorted(want, reverse=True), f"after restart: {q}")
        st, e9 = c.get_json("/api/v1/entries/9")
        want = dict(fixture_entries()[8])
        want["id"] = "9"
        check_eq(e9, want, "entry 9 identical after restart")
        st, doc = c.post_entries(fixture_entries()[:1])
        check_eq(c.query_ids("id > 24"), [25], "ids continue after a restart")
    finally:
        c.stop()
        c.close()

    # a torn last record (a crash mid-write): cut off at the next start
    segs = sorted(glob.glob(os.path.join(data, "*.seg")))
    check(len(segs) >= 1, f"segment files in {data}")
    size = os.path.getsize(segs[-1])
    with open(segs[-1], "ab") as f:
        f.write(b"ST\x40\x00\x00\x00\x00\x00\x00\x00" + b'{"id":"26","timest')
    c = Collector(binary, data_dir=data)
    try:
        st, s = c.get_json("/api/v1/stats")
        check_eq((s["entries"], s["disk"]["torn"]), (25, 1, ), "torn record skipped")
        check_eq(os.path.getsize(segs[-1]), size, "torn tail truncated")
        st, doc = c.post_entries(fixture_entries()[:1])
        check_eq(c.query_ids("id > 24"), [26, 25], "ingest continues after a torn record")
    finally:
        c.stop()
        c.close()
    with open(segs[-1], "rb") as f:
        check(f.read().endswith(b"\n"), "segment ends with a whole record")

    # record formats: "ST" records (FNV-1a, written by earlier builds) still load, "SC"
    # records carry a CRC-32C; a record whose checksum does not match is cut as torn.
    CRC32C = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        CRC32C.append(c)

    def crc32c(b):
        c = 0xFFFFFFFF
        for x in b:
            c = CRC32C[(c ^ x) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF

    def fnv1a(b):
        h = 2166136261
        for x in b:
            h = ((h ^ x) * 16777619) & 0xFFFFFFFF
        return h

    def record(magic, checksum, e):
        text = json.dumps(e, separators=(",", ":")).encode()
        return magic + struct.pack("<IIQ", len(text), checksum(text), e["timestamp"]) + text + b"\n"

    old = os.path.join(d, "old")
    os.makedirs(old)
    recs = [dict(entry(i, pad=10), id=str(i)) for i in (1, 2, 3, 4)]
    bad = bytearray(record(b"SC", crc32c, recs[3]))
    bad[40] ^= 0x01  # one flipped bit inside the JSON text
    seg = os.path.join(old, "%020d.seg" % 1)
    with open(seg, "wb") as f:
        f.write(record(b"ST", fnv1a, recs[0]) + record(b"ST", fnv1a, recs[1]) +
                record(b"SC", crc32c, recs[2]) + bytes(bad))
    c = Collector(binary, data_dir=old)
    try:
        st, s = c.get_json("/api/v1/stats")
        check_eq((s["entries"], s["disk"]["loaded"], s["disk"]["torn"]), (3, 3, 1),
                 "FNV-1a and CRC-32 records loaded, the corrupted one cut")
        check_eq(c.query_ids('request.path == "/item/2"'), [2], "an FNV-1a record's fields")
        check_eq(c.query_ids('request.path == "/item/3"'), [3], "a CRC-32 record's fields")
        st, doc = c.post_entries([entry(5, pad=10)])
        check_eq(doc["accepted"], 1, "ingest after loading old records")
    finally:
        c.stop()
        c.close()
    with open(seg, "rb") as f:
        tail = f.read()
    new = json.loads(tail[tail.rindex(b"\n", 0, len(tail) - 1) + 1 + 18:])
    check_eq(new["request"]["path"], "/item/5", "new record appended after the cut")
    check_eq(tail[-(18 + len(json.dumps(new, separators=(",", ":"))) + 1):][:2], b"SC", "new records are SC")

    # memory budget: 1 MiB holds fewer than 3000 ~1.2 KiB entries; the oldest go first
    mem = os.path.join(d, "mem")
    c = Collector(binary, "--memory", "1Mi", "--retention-bytes", "256Ki", data_dir=mem)
    try:
        for b in range(6):
            st, doc = c.post_entries([entry(b * 500 + i) for i in range(500)])
            check_eq(doc["accepted"], 500, f"batch {b}")
        st, s = c.get_json("/api/v1/stats")
        check(0 < s["entries"] < 3000, f"some entries evicted: {s['entries']}")
        check_eq(s["entries"] + s["evicted"], 3000, "stored + evicted = appended")
        check(s["bytes"] <= 1 << 20, f"memory within the budget: {s['bytes']}")
        check_eq(s["newestId"], "3000", "newest kept")
        check_eq(s["oldestId"], str(3000 - s["entries"] + 1), "oldest evicted first")
        st, doc = c.get_json("/api/v1/entries/1")
        check_eq(st, 404, "entry 1 evicted")
        check_eq(c.query_ids('request.path == "/item/2999"'), [3000], "newest queryable")
        st, text = c.get_text("/metrics")
        check(f"sidetap_collector_entries_evicted_total {s['evicted']}\n" in text, "evicted metric")
        kept = s["entries"]
    finally:
        c.stop()
        c.close()
    disk = sum(os.path.getsize(p) for p in glob.glob(os.path.join(mem, "*.seg")))
    check(disk <= 256 * 1024 + 64 * 1024 + 2048, f"disk within retention + one segment: {disk}")
    check(len(glob.glob(os.path.join(mem, "*.seg"))) >= 2, "segments rolled")
    c = Collector(binary, "--memory", "1Mi", data_dir=mem)
    try:
        st, s = c.get_json("/api/v1/stats")
        check_eq(s["newestId"], "3000", "newest reloaded")
        check(0 < s["entries"] <= kept + 5, f"reload within the budget: {s['entries']}")
    finally:
        c.stop()
        c.close()

    # Synced segments leave the page cache: the store has its own copy, and the cache would
    # count against the pod's memory limit. Every closed segment, its tail included, is
    # synced and dropped (segments of --retention-bytes/4 = 4 MiB; ~12 MB written).
    cache = os.path.join(d, "cache")
    c = Collector(binary, "--retention-bytes", "16Mi", data_dir=cache)
    try:
        for b in range(10):
            st, doc = c.post_entries([entry(b * 1000 + i) for i in range(1000)])
            check_eq(doc["accepted"], 1000, f"cache batch {b}")
        segs = sorted(glob.glob(os.path.join(cache, "*.seg")))
        check(len(segs) >= 3, f"segments rolled: {segs}")
        fs = subprocess.run(["stat", "-f", "-c", "%T", cache], capture_output=True, text=True).stdout.strip()
        if fs in ("tmpfs", "ramfs"):
            print(f"note: {cache} is on {fs}: its pages are the storage, page-cache check skipped")
        else:
            def cached():
                return {os.path.basename(p): resident_bytes(p) for p in segs[:-1]}
            deadline = time.time() + 20
            while time.time() < deadline and max(cached().values()) > 256 * 1024:
                time.sleep(0.2)
            check(max(cached().values()) <= 256 * 1024,
                  f"closed segments dropped from the page cache ({fs}): {cached()}")
    finally:
        c.stop()
        c.close()
    c = Collector(binary, "--retention-bytes", "16Mi", data_dir=cache)
    try:
        st, s = c.get_json("/api/v1/stats")
        check_eq((s["entries"], s["newestId"]), (10000, "10000"), "every entry reloaded")
        check_eq(c.query_ids('request.path == "/item/4321"'), [4322], "a middle one queryable")
    finally:
        c.stop()
        c.close()
done()
