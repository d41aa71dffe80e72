#!/usr/bin/env python3
"""The ingest path keeps each entry's own text and splices it (collector/jscan.c,
ingest.c): what a client sends in "id", "merged" and "serverNode" is cut out, whitespace
is dropped, escaped and duplicate keys read as jansson reads them (last one wins),
identity members are spliced into src/dst (also into an empty object), the stored text
is exactly the sent one plus "id" when nothing had to change, and malformed JSON is
refused with the position of the fault.
usage: test_ingest.py path/to/sidetap-collector"""
import json
import sys

from collector_lib import Collector, check, check_eq, done

binary = sys.argv[1]
POD = {"name": "a-1", "namespace": "ns", "ip": "10.0.0.1", "serviceAccount": "sa-a",
       "workload": "a", "labels": {"app": "a", "note": "caf\u00e9 \"q\""}}


def post_raw(c, body):
    st, h, b = c.request("POST", "/api/v1/entries", body, headers={"Content-Type": "application/json"})
    return st, json.loads(b) if b else None


def stored_text(c, eid):
    st, h, b = c.request("GET", f"/api/v1/entries/{eid}", token=False)
    check_eq(st, 200, f"GET entry {eid}")
    return b.decode().rstrip("\n")  # the API ends the document with a newline


c = Collector(binary, "--dedup-hold", "0")
try:
    st, h, b = c.request("POST", "/api/v1/register", {"pod": POD})
    check_eq(st, 200, "register")

    # 1: compact, nothing to change: stored byte for byte, "id" appended last
    plain = ('{"timestamp":1764064800000,"elapsedTime":0.30000000000000004,"protocol":{"name":"redis"},'
             '"src":{"ip":"10.9.0.1","port":5},"seq":1,"outgoing":true,"summary":"GET k\\u00e9\\n","x":[1,2.50,{}]}')
    check_eq(post_raw(c, b'{"entries":[' + plain.encode() + b']}'), (200, {"accepted": 1, "rejected": []}),
             "plain entry accepted")
    check_eq(stored_text(c, 1), plain[:-1] + ',"id":"1"}', "plain entry stored as sent")

    # 2: client fields cut out, whitespace dropped, identity spliced into an empty src
    sent = ('{ "timestamp": 1, "protocol": {"name": "http"}, "id": "99", "merged": true,\n'
            '  "serverNode": "x", "src": {}, "dst": {"ip": "10.0.0.1", "port": 80, "name": "given"},\n'
            '  "outgoing": false, "seq": 2, "id": "98" }')
    check_eq(post_raw(c, b'{"entries":[' + sent.encode() + b']}')[0], 200, "rewritten entry accepted")
    text = stored_text(c, 2)
    check_eq(text, json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False),
             "whitespace dropped")
    e = json.loads(text)
    check_eq((e["id"], "merged" in e, "serverNode" in e, e["src"]), ("2", False, False, {}),
             "client id/merged/serverNode cut out, src without ip left alone")
    check_eq(e["dst"], {"ip": "10.0.0.1", "port": 80, "name": "given", "namespace": "ns",
                        "workload": "a", "serviceAccount": "sa-a", "labels": POD["labels"]},
             "identity spliced into dst, the given name kept")
    check_eq(text.count('"id"'), 1, "one id member")

    # 3: escaped keys are the keys they spell; duplicates: the last wins
    esc = (b'{"entries":[{"timestamp":3,"protocol":{"n\\u0061me":"dns"},"s\\u0072c":{"ip":"9.9.9.9"},'
           b'"src":{"ip":"10.0.0.1","port":7},"seq":3,"outgoing":true,"\\u0069d":"5"}]}')
    check_eq(post_raw(c, esc)[0], 200, "escaped keys accepted")
    e = json.loads(stored_text(c, 3))
    check_eq((e["id"], e["protocol"]["name"], e["src"]["ip"], e["src"]["name"], e["src"]["port"]),
             ("3", "dns", "10.0.0.1", "a-1", 7), "escaped keys, last duplicate wins, identity filled")
    st, doc = c.get_json("/api/v1/entries?q=" + "dns%20and%20src.name%20%3D%3D%20%22a-1%22")
    check_eq([x["id"] for x in doc["entries"]], ["3"], "the index sees the decoded and filled fields")

    # 4: per-entry rejections keep their messages; the rest is stored
    st, doc = post_raw(c, json.dumps({"entries": [
        {"timestamp": 4, "protocol": {"name": "http"}, "response": {"body": {"encoding": "x" * 50}}},
        {"timestamp": 4, "protocol": {"name": "http"}, "request": {"headers": {"a": "b", "c": 1, "c": "d"}}},
        {"timestamp": 4, "protocol": {"name": "http"}, "request": {"headers": {"a": 1, "a": "b", "c": None}}},
        {"timestamp": -0.0, "elapsedTime": -1e-400, "protocol": {"name": "h" * 33}},
        {"timestamp": 18446744073709551615, "protocol": {"name": "http"}},
    ]}).encode())
    check_eq(st, 400, "an integer beyond 64 bits refuses the batch")
    check(doc["error"].startswith("malformed JSON at line 1, column "), f"position given: {doc}")
    st, doc = post_raw(c, b'{"entries":['
                       b'{"timestamp":4,"protocol":{"name":"http"},"response":{"body":{"encoding":"' + b"x" * 50 + b'"}}},'
                       b'{"timestamp":4,"protocol":{"name":"http"},"request":{"headers":{"a":"b","c":1,"c":"d"}}},'
                       b'{"timestamp":4,"protocol":{"name":"http"},"request":{"headers":{"a":1,"a":"b","c":null}}},'
                       b'{"timestamp":-0.0,"elapsedTime":-1e-400,"protocol":{"name":"' + b"h" * 33 + b'"}},'
                       b'{"timestamp":4,"protocol":{"name":"http"}}]}')
    check_eq((st, doc), (200, {"accepted": 2, "rejected": [
        {"index": 0, "error": 'entries[0].response.body.encoding: expected "text" or "base64", found "'
                              + "x" * 40 + '"'},
        {"index": 2, "error": 'entries[2].request.headers["c"]: expected a string, found null'},
        {"index": 3, "error": "entries[3].protocol.name: expected a protocol name of 1 to 32 characters"},
    ]}), "rejections by index with jansson's reading of duplicates and -0")

    # 5: malformed JSON: position and reason
    for body, want in [(b'{"entries":[1,]}', "malformed JSON at line 1, column 15: "),
                       (b'{"entries":\n [{"a":"\xff"}]}', "malformed JSON at line 2, column 9: invalid UTF-8"),
                       (b'{"entries":[]} x', "malformed JSON at line 1, column 16: end of input expected"),
                       (b'{"entries":["\\u0000"]}', "malformed JSON at line 1, column 14: \\u0000 is not allowed"),
                       (b'{"entries":["a\tb"]}', "malformed JSON at line 1, column 15: control character 0x09"),
                       (b'[' * 3000, "malformed JSON at line 1, column 2049: maximum nesting depth (2048)")]:
        st, doc = post_raw(c, body)
        check_eq(st, 400, f"malformed {body[:20]!r}")
        check(doc["error"].startswith(want), f"message for {body[:20]!r}: {doc['error']!r}, want {want!r}")
    st, doc = c.get_json("/api/v1/stats")
    check_eq(doc["stored"], 5, "stored count")
finally:
    c.stop()

# with a data dir, a thread fdatasyncs what the loop wrote; --no-fsync turns it off
import tempfile
import time
for args, want_syncs in ((), True), (("--no-fsync",), False):
    with tempfile.TemporaryDirectory(prefix="sidetap-ingest-") as d:
        c = Collector(binary, *args, data_dir=d)
        try:
            check_eq(post_raw(c, b'{"entries":[' + plain.encode() + b']}')[0], 200, f"post {args}")
            deadline, syncs = time.time() + 10, 0
            while time.time() < deadline:
                syncs = c.metric("sidetap_collector_disk_syncs_total")
                if syncs or not want_syncs:
                    break
                time.sleep(0.1)
            time.sleep(0.3)
            syncs = c.metric("sidetap_collector_disk_syncs_total")
            check_eq(syncs > 0, want_syncs, f"segment syncs {args}: {syncs}")
        finally:
            c.stop()
        c = Collector(binary, data_dir=d)
        try:
            check_eq(stored_text(c, 1), plain[:-1] + ',"id":"1"}', f"reloaded as stored {args}")
        finally:
            c.stop()
done()
