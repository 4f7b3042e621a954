#!/usr/bin/env python3
"""Simulates a power loss in an install's staging folder, after the updater
was killed: every byte of a partial download that its sidecar does not record
as synced is lost (zeroed, the file keeping its length), and of the files
unpacked so far only those the unpacker recorded as synced with their folders
survive (`{sha}.tree.synced.json`: the first N files of the manifest, which
lists them in package order); every other file and link in the tree is lost.
Then the page cache is dropped, when running as root.

usage: powerloss.py STAGING_DIR     prints `<synced bytes> <lost bytes>`:
  what survives (synced ranges of partial downloads, synced unpacked files)
  and what the power loss took (unpacked files removed, and the bytes of
  partial downloads that were there but not synced, counted in 64 KiB blocks
  that were not all zero; the ranges never downloaded are not counted). A
  byte can count in both, as a file kept and as a partial's byte lost: what
  a resume fetches again is the bytes on the wire, not this.
"""
import json
import os
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
                    block = f.read(min(left, 1 << 16))
                    if not block:
                        break
                    if block.count(0) != len(block):
                        lost_total += len(block)
                    f.seek(-len(block), os.SEEK_CUR)
                    f.write(bytes(len(block)))
                    left -= len(block)
        synced_total += keep
    elif name.endswith(".tree") and os.path.isdir(path):
        sha = name[: -len(".tree")]
        keep = set()
        try:
            with open(os.path.join(staging, sha + ".tree.synced.json")) as f:
                count = json.load(f)["files"]
            with open(os.path.join(staging, sha + ".manifest.json")) as f:
                files = json.load(f)["files"]
            keep = {file["path"] for file in files[:count]}
        except (OSError, ValueError, KeyError):
            pass
        for root, dirs, names in os.walk(path):
            for entry in names:
                full = os.path.join(root, entry)
                relative = os.path.relpath(full, path)
                size = os.lstat(full).st_size
                if relative in keep and not os.path.islink(full):
                    synced_total += size
                else:
                    os.remove(full)
                    lost_total += size
os.sync()
if os.geteuid() == 0:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass
print(synced_total, lost_total)
