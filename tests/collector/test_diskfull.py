#!/usr/bin/env python3
"""A full disk never costs an entry its place in memory or the collector its health:
ingest goes on (200), the failed bytes are counted, a failed write is cut back off the
segment (no torn record at the next start), and what did reach the disk reloads.
The data dir is a 1 MiB tmpfs mounted in this test's own mount namespace (needs root,
like the network-namespace tests).
usage: test_diskfull.py path/to/sidetap-collector"""
import ctypes
import os
import subprocess
import sys
import tempfile
import time

from collector_lib import Collector, check, check_eq, done

binary = sys.argv[1]
CLONE_NEWNS = 0x00020000


def entry(i):
    return {"timestamp": 1764064800000 + i, "protocol": {"name": "http"}, "elapsedTime": 1.0,
            "src": {"ip": "10.0.0.1", "port": 1000 + i, "namespace": "load"},
            "dst": {"ip": "10.0.0.2", "port": 80},
            "request": {"method": "GET", "path": f"/item/{i}", "headers": {"X-Pad": "p" * 900}},
            "response": {"status": 200}, "summary": f"GET /item/{i}"}


libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(CLONE_NEWNS) != 0:
    sys.exit(f"FAIL: cannot make a mount namespace ({os.strerror(ctypes.get_errno())}): run as root")
subprocess.run(["mount", "--make-rprivate", "/"], check=True)

with tempfile.TemporaryDirectory(prefix="sidetap-disk-full-") as d:
    data = os.path.join(d, "data")
    os.mkdir(data)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", data], check=True)
    try:
        c = Collector(binary, data_dir=data)
        try:
            for b in range(4):  # ~4.4 MB of records for 1 MiB of disk
                st, doc = c.post_entries([entry(b * 1000 + i) for i in range(1000)])
                check_eq((st, doc and doc.get("accepted")), (200, 1000), f"batch {b} accepted on a full disk")
            check_eq(c.get_text("/healthz")[0], 200, "healthy")
            st, s = c.get_json("/api/v1/stats")
            check_eq(s["entries"], 4000, "every entry stored in memory")
            check_eq(c.query_ids('request.path == "/item/3999"'), [4000], "newest queryable")
        finally:
            c.stop()  # the disk thread writes what is queued before the collector exits
            c.close()
        segs = [f for f in os.listdir(data) if f.endswith(".seg")]
        check_eq(len(segs), 1, f"one segment: {segs}")
        size = os.path.getsize(os.path.join(data, segs[0]))
        check(0 < size <= 1 << 20, f"segment within the 1 MiB disk: {size}")
        # after a failed write the file holds whole records only: it ends with one
        with open(os.path.join(data, segs[0]), "rb") as f:
            check_eq(f.read()[-1:], b"\n", "segment ends at a record boundary")

        c = Collector(binary, data_dir=data)
        try:
            st, s = c.get_json("/api/v1/stats")
            check_eq(s["disk"]["torn"], 0, "no torn record: failed writes were cut back")
            n = s["entries"]
            check(0 < n < 4000, f"what reached the disk reloads: {n}")
            got, page = [], "/api/v1/entries?limit=1000"
            while page:
                st, doc = c.get_json(page)
                check_eq(st, 200, "list entries")
                got += [(e["id"], e["summary"]) for e in doc["entries"]]
                page = doc["next"] and "/api/v1/entries?limit=1000&before=" + doc["next"]
            check_eq(len(got), n, "every reloaded entry listed")
            check_eq([x for x in got if x[1] != f"GET /item/{int(x[0]) - 1}"], [],
                     "each reloaded entry is the one stored under its id")
            # this run fills the disk again: failures are counted, ingest goes on
            st, doc = c.post_entries([entry(10000 + i) for i in range(1000)])
            check_eq((st, doc and doc.get("accepted")), (200, 1000), "accepted after restart")
            # read while the writer is idle: the same figure in /metrics before and after the stats
            deadline = time.time() + 20
            while True:
                errors = c.metric("sidetap_collector_disk_errors_total")
                dropped = c.metric("sidetap_collector_disk_dropped_bytes_total")
                st, s = c.get_json("/api/v1/stats")
                settled = dropped == c.metric("sidetap_collector_disk_dropped_bytes_total")
                if (errors > 0 and settled) or time.time() > deadline:
                    break
                time.sleep(0.2)
            check(errors > 0, "write failures counted")
            check(dropped > 0, f"dropped bytes counted: {dropped}")
            check_eq(s["disk"]["droppedBytes"], dropped, "stats.disk.droppedBytes matches the metric")
        finally:
            c.stop()
            c.close()
    finally:
        subprocess.run(["umount", data], check=False)
done()
