#!/usr/bin/env python3
"""Simulates a power loss in an install's staging folder, after the updater
was killed: every byte of a partial download that its sidecar does not record
as synced is lost (zeroed, the file keeping its length), and the files
unpacked so far are lost with their folder's contents. Then the page cache is
dropped, when running as root.

usage: powerloss.py STAGING_DIR     prints `<synced bytes> <lost bytes>`
"""
import json
import os
import shutil
import sys

staging = sys.argv[1]
synced_total = lost_total = 0
for name in os.listdir(staging):
    path = os.path.join(staging, name)
    if name.endswith(".part.json"):
        part = path[: -len(".json")]
        if not os.path.exists(part):
            continue
        with open(path) as f:
            synced = sorted(tuple(r) for r in json.load(f).get("synced", []))
        length = os.path.getsize(part)
        keep, cursor, gaps = 0, 0, []
        for start, end in synced:
            if start > cursor:
                gaps.append((cursor, start))
            keep += end - start
            cursor = max(cursor, end)
        if cursor < length:
            gaps.append((cursor, length))
        with open(part, "r+b") as f:
            for start, end in gaps:
                f.seek(start)
                left = end - start
                while left:
                    n = min(left, 1 << 20)
                    f.write(bytes(n))
                    left -= n
                lost_total += end - start
        synced_total += keep
    elif name.endswith(".tree") and os.path.isdir(path):
        shutil.rmtree(path)
        os.mkdir(path)
os.sync()
if os.geteuid() == 0:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass
print(synced_total, lost_total)
