#!/usr/bin/env bash
# The user's downtime during an update: the time from the old app's exit to
# the new version's start, for the PyQt5 tree and a 2,000-file 200 MB tree,
# beside `cp -a` of the same tree (what an in-place copying updater would
# make the user wait), in one run. Also the updater's total time and peak
# memory. Goal: downtime under 100 ms whatever the app's size.
#
# usage: bench/apply.sh [OUT_DIR]     (default: bench-out/)
#   APP_MB=200 ROUNDS=3
# Needs: cargo, python3, cp. Inputs: ../shared/bench/fetch-pairs.sh (PyQt5 5.15.10 -> 5.15.11).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/bench-out}
app_mb=${APP_MB:-200}
rounds=${ROUNDS:-3}
mkdir -p "$out" && out=$(cd "$out" && pwd)
if [ ! -d "$out/pairs/pyqt5/new" ]; then
  bash "$repo/../shared/bench/fetch-pairs.sh" "$out/pairs" >/dev/null
fi
synthetic="$out/synthetic-$app_mb"
[ -d "$synthetic/1.1.0" ] || python3 "$here/gen_tree.py" "$synthetic" "$app_mb"
#   UPDRAFT=path/to/updraft skips the release build (e.g. target/debug/updraft for a quick try).
updraft=${UPDRAFT:-}
if [ -z "$updraft" ]; then
  (cd "$repo" && cargo build --release --quiet --bin updraft)
  updraft="$repo/target/release/updraft"
fi
python3 "$here/apply.py" "$updraft" "$out/apply-bench" "$rounds" \
  "pyqt5=$out/pairs/pyqt5/old,$out/pairs/pyqt5/new" \
  "synthetic=$synthetic/1.0.0,$synthetic/1.1.0"
