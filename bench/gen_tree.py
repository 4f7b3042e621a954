#!/usr/bin/env python3
"""Writes two releases (1.0.0 and 1.1.0) of a synthetic app of MB megabytes,
plus bin/app.

usage: gen_tree.py ROOT MB [FILES] [KIND]   (makes ROOT/1.0.0/ and ROOT/1.1.0/)
  FILES  number of files (default 2,000, in 40 folders)
  KIND   mixed (default: each file half random, half low-entropy) or
         random (incompressible: the package is as large as the app)
"""
import os
import random
import sys

root, mb = sys.argv[1], int(sys.argv[2])
files = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
kind = sys.argv[4] if len(sys.argv) > 4 else "mixed"
rng = random.Random(1)
per = mb * 1024 * 1024 // files
for version in ("1.0.0", "1.1.0"):
    base = os.path.join(root, version)
    for i in range(files):
        d = os.path.join(base, f"lib/pkg{i % 40:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"mod{i:04d}.bin"), "wb") as f:
            if kind == "random":
                f.write(os.urandom(per))
            else:
                f.write(os.urandom(per // 2) + bytes(rng.getrandbits(3) for _ in range(per // 2)))
    os.makedirs(os.path.join(base, "bin"), exist_ok=True)
    with open(os.path.join(base, "bin", "app"), "w") as f:
        f.write(f"#!/bin/sh\necho app {version}\n")
    os.chmod(os.path.join(base, "bin", "app"), 0o755)
