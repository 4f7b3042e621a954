#!/usr/bin/env python3
"""Runs one command and prints `<seconds> <peak RSS kB>` for it and its children.

usage: measure.py [--machine-cpu] CMD [ARGS...]
  (use `sh -c '...'` for pipelines: the peak is that of the largest single
  process in the pipeline)
  --machine-cpu  also print the CPU seconds the whole machine spent busy
                 (user, system and interrupts on every core, from /proc/stat)
                 while the command ran, then the seconds it had (cores x
                 wall time): `<seconds> <peak RSS kB> <busy> <had>`. On one
                 machine that also runs the server, this shows whether the
                 cores, not the disk, set the time.
"""
import os
import resource
import subprocess
import sys
import time


def busy_seconds():
    """Busy CPU seconds of the whole machine since boot (all cores)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    # user nice system idle iowait irq softirq steal ...
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


args = sys.argv[1:]
machine_cpu = bool(args) and args[0] == "--machine-cpu"
if machine_cpu:
    args = args[1:]
busy_before = busy_seconds() if machine_cpu else 0.0
start = time.perf_counter()
completed = subprocess.run(args, stdout=subprocess.DEVNULL)
elapsed = time.perf_counter() - start
busy = busy_seconds() - busy_before if machine_cpu else 0.0
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if completed.returncode != 0:
    print(f"command failed with exit code {completed.returncode}: {args}", file=sys.stderr)
    sys.exit(completed.returncode)
if machine_cpu:
    print(f"{elapsed:.2f} {peak} {busy:.2f} {elapsed * os.cpu_count():.2f}")
else:
    print(f"{elapsed:.2f} {peak}")
