#!/usr/bin/env python3
"""Convert .cap captures (tests/captures/README.md) into fuzz seeds for fuzz_replay.h.

usage: cap2seed.py OUT_DIR FILE.cap...   writes OUT_DIR/<name>.seed for each capture.
Records longer than 65535 bytes are split (the seed format has a 16-bit length).
"""
import os
import struct
import sys


def convert(path):
    data = open(path, "rb").read()
    nl = data.index(b"\n")
    header = data[:nl].decode()
    udp = "transport=udp" in header
    out = bytearray([1 if udp else 0])
    off = nl + 1
    while off + 13 <= len(data):
        direction, length, _ts = struct.unpack(">BIQ", data[off:off + 13])
        chunk = data[off + 13:off + 13 + length]
        off += 13 + length
        for i in range(0, max(len(chunk), 1), 65535):
            part = chunk[i:i + 65535]
            out += struct.pack(">BH", direction & 1, len(part)) + part
    return bytes(out)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for path in sys.argv[2:]:
        name = os.path.splitext(os.path.basename(path))[0]
        with open(os.path.join(out_dir, name + ".seed"), "wb") as f:
            f.write(convert(path))


if __name__ == "__main__":
    main()
