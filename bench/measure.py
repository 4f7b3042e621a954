#!/usr/bin/env python3
"""Runs one command and prints `<seconds> <peak RSS kB>` for it and its children.

usage: measure.py CMD [ARGS...]   (use `sh -c '...'` for pipelines: the peak is
that of the largest single process in the pipeline)
"""
import resource
import subprocess
import sys
import time

start = time.perf_counter()
completed = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if completed.returncode != 0:
    print(f"command failed with exit code {completed.returncode}: {sys.argv[1:]}", file=sys.stderr)
    sys.exit(completed.returncode)
print(f"{elapsed:.2f} {peak}")
