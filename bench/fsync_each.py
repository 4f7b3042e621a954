#!/usr/bin/env python3
"""fdatasync every file under DIR from 4 threads, as the unpacker syncs each
file it closes: the per-file durable write `bench/update.sh` shows beside a
single `sync`.

usage: fsync_each.py DIR
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor


def fdatasync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


files = [os.path.join(root, name) for root, _, names in os.walk(sys.argv[1]) for name in names]
with ThreadPoolExecutor(4) as pool:
    list(pool.map(fdatasync, files))
