#!/usr/bin/env python3
"""Drives real hand-off updates and measures the user's downtime.

For each tree pair (old, new): publishes both, installs the old one, starts
it, runs `updraft update --wait-pid APP --restart` (which downloads and
unpacks beside the running app, then says it is ready), kills the app, and
records when the new version starts. Prints one table row per round, with
`cp -a` of the same new tree in the same run for comparison (the downtime of
an updater that copies files in place after the app exits).

usage: apply.py UPDRAFT WORK ROUNDS NAME=OLD_DIR,NEW_DIR...
"""
import json
import os
import shutil
import subprocess
import sys
import time

updraft, work, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
pairs = [arg.split("=", 1) for arg in sys.argv[4:]]
arch = {"amd64": "x86_64"}.get(os.uname().machine, os.uname().machine)

APP = """#!/bin/sh
date +%s%N > "$UPDRAFT_DATA_DIR/started"
if [ "$1" = "--wait" ]; then exec sleep 3600; fi
"""


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def tree_stats(path):
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(folder, name)).st_size
    return files, size


def wait_for(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = open(path).read().strip()
            if text:
                return text
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{path} never appeared")
        time.sleep(0.001)


print("| tree | files | MB | round | prepare s (app still running) | downtime ms | switch ms | updater s | updater peak kB | cp -a s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, dirs in pairs:
    old, new = dirs.split(",")
    base = os.path.join(work, name)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    sources = {}
    for version, tree in (("1.0.0", old), ("1.1.0", new)):
        src = os.path.join(base, f"src-{version}")
        shutil.copytree(tree, src, symlinks=True)
        app = os.path.join(src, "bin", "bench-app")
        os.makedirs(os.path.dirname(app), exist_ok=True)
        with open(app, "w") as f:
            f.write(APP)
        os.chmod(app, 0o755)
        sources[version] = src
    files, size = tree_stats(sources["1.1.0"])
    keys, store = os.path.join(base, "keys"), os.path.join(base, "store")
    run(updraft, "keygen", "--out", keys)
    run(updraft, "repo", "init", "--repo", store, "--keys", keys)
    for version, src in sources.items():
        run(updraft, "publish", "--repo", store, "--keys", keys, "--app", "bench", "--version", version,
            "--platform", "linux", "--arch", arch, "--main", "bin/bench-app", "--level", "3", src)
    pristine = os.path.join(base, "pristine")
    run(updraft, "install", "--server", f"file://{store}", "--app", "bench", "--version", "1.0.0",
        "--dir", pristine, "--trusted-root", os.path.join(store, "metadata", "root.json"))
    for round_ in range(1, rounds + 1):
        install = os.path.join(base, "install")
        shutil.rmtree(install, ignore_errors=True)
        run("cp", "-a", pristine, install)
        data = os.path.join(install, "data")
        os.makedirs(data, exist_ok=True)
        started = os.path.join(data, "started")
        run("sync")
        app = subprocess.Popen([os.path.join(install, "current", "bin", "bench-app"), "--wait"],
                               env={**os.environ, "UPDRAFT_DATA_DIR": data})
        wait_for(started)
        os.remove(started)
        began = time.monotonic()
        updater = subprocess.Popen([updraft, "update", "--dir", install, "--yes", "--json", "--restart",
                                    "--wait-pid", str(app.pid)], stdout=subprocess.PIPE, text=True)
        lines = []
        for line in updater.stdout:
            lines.append(line)
            if '"event":"ready"' in line:
                break
        else:
            sys.exit(f"the updater never became ready: {lines}")
        killed = time.time_ns()
        app.kill()
        app.wait()
        lines.extend(updater.stdout)
        _, status, usage = os.wait4(updater.pid, 0)
        updater.returncode = os.waitstatus_to_exitcode(status)
        total = time.monotonic() - began
        if updater.returncode != 0:
            sys.exit(f"updraft update failed: {lines}")
        new_start = int(wait_for(started))
        if os.readlink(os.path.join(install, "current")) != "versions/1.1.0":
            sys.exit("the update did not switch to 1.1.0")
        result = json.loads([line for line in lines if '"event":"result"' in line][-1])
        prepare = result["download_seconds"] + result["install_seconds"]
        downtime_ms = (new_start - killed) / 1e6
        copy = os.path.join(base, "copy")
        shutil.rmtree(copy, ignore_errors=True)
        run("sync")
        t = time.monotonic()
        run("cp", "-a", sources["1.1.0"], copy)
        copy_s = time.monotonic() - t
        print(f"| {name} | {files} | {size / 1e6:.0f} | {round_} | {prepare:.2f} | {downtime_ms:.1f} | "
              f"{result['downtime_seconds'] * 1000:.1f} | {total:.2f} | {usage.ru_maxrss} | {copy_s:.2f} |", flush=True)
