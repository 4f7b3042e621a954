#!/usr/bin/env bash
# Delta packages: updraft's patch beside the tools a publisher would otherwise
# use, on real consecutive releases, in one run: bytes, make time and peak
# memory, apply time and peak memory, and the full package.
#
# usage: bench/delta.sh [OUT_DIR]          (default: bench-out/delta)
#   PAIRS="esbuild ruff pyqt5"             which pairs of ../shared/bench/fetch-pairs.sh
#   PAIRS_DIR=DIR                          where fetch-pairs.sh put them (fetched if missing)
#
# Off-the-shelf tools diff a tar of the old tree against a tar of the new one
# (what a user of them would do); updraft diffs the trees file by file.
# Needs: bsdiff, xdelta3, zstd (Debian; installed here if missing), python3
# with PyPI `hdiffpatch` (installed if missing; skipped if that fails).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/bench-out/delta}
pairs=${PAIRS:-esbuild ruff pyqt5}
mkdir -p "$out"
out=$(cd "$out" && pwd)
pairs_dir=${PAIRS_DIR:-$out/pairs}
measure() { python3 "$here/measure.py" "$@"; }
tools="python3 $here/delta_tools.py"

missing=()
for tool in bsdiff xdelta3 zstd; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
have_hdiff=1
python3 -c 'import hdiffpatch' 2>/dev/null || python3 -m pip install -q hdiffpatch >/dev/null 2>&1 || have_hdiff=0
python3 -c 'import hdiffpatch' 2>/dev/null || have_hdiff=0

[ -d "$pairs_dir/pyqt5/new" ] || bash "$repo/../shared/bench/fetch-pairs.sh" "$pairs_dir" >/dev/null
(cd "$repo" && cargo build --release --quiet -p updraft-delta --example delta && cargo build --release --quiet --bin updraft)
delta="$repo/target/release/examples/delta"
updraft="$repo/target/release/updraft"
work="$out/work"
rm -rf "$work" && mkdir -p "$work"
"$updraft" keygen --out "$work/keys" >/dev/null

tarball() { (cd "$1" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$2" .); }

for pair in $pairs; do
  old="$pairs_dir/$pair/old"; new="$pairs_dir/$pair/new"; w="$work/$pair"; mkdir -p "$w"
  tarball "$old" "$w/old.tar"; tarball "$new" "$w/new.tar"
  printf '\n%s: old %s bytes, new %s bytes (%s files)\n\n' "$pair" "$(du -sb "$old" | cut -f1)" "$(du -sb "$new" | cut -f1)" "$(find "$new" -type f | wc -l)"
  printf '| %-34s | %10s | %8s | %10s | %8s | %10s | %-5s |\n' tool bytes "make s" "make kB" "apply s" "apply kB" ok
  printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------------------" ------------ ---------- ------------ ---------- ------------ -------
  row() { # name patch make_result apply_result ok
    printf '| %-34s | %10s | %8s | %10s | %8s | %10s | %-5s |\n' "$1" "$(stat -c %s "$2")" "${3%% *}" "${3##* }" "${4%% *}" "${4##* }" "$5"
  }
  same() { if cmp -s "$1" "$2"; then echo yes; else echo NO; fi; }
  m=$(measure bsdiff "$w/old.tar" "$w/new.tar" "$w/p.bsdiff")
  a=$(measure bspatch "$w/old.tar" "$w/r.bsdiff" "$w/p.bsdiff")
  row "bsdiff 4.3 (Debian)" "$w/p.bsdiff" "$m" "$a" "$(same "$w/r.bsdiff" "$w/new.tar")"
  m=$(measure $tools bsdiff-xz "$w/p.bsdiff" "$w/p.bsxz")
  row "bsdiff, streams recompressed xz -9e" "$w/p.bsxz" "$m (+bsdiff)" "- -" "-"
  m=$(measure xdelta3 -9 -f -e -s "$w/old.tar" "$w/new.tar" "$w/p.xd3")
  a=$(measure xdelta3 -f -d -s "$w/old.tar" "$w/p.xd3" "$w/r.xd3")
  row "xdelta3 -9" "$w/p.xd3" "$m" "$a" "$(same "$w/r.xd3" "$w/new.tar")"
  # zstd's advice and the example's report go to a log, not into the table.
  m=$(measure zstd -q -f -19 --long=31 --patch-from="$w/old.tar" "$w/new.tar" -o "$w/p.zst" 2>>"$w/stderr.log")
  a=$(measure zstd -q -f -d --long=31 --patch-from="$w/old.tar" "$w/p.zst" -o "$w/r.zst")
  row "zstd -19 --long=31 --patch-from" "$w/p.zst" "$m" "$a" "$(same "$w/r.zst" "$w/new.tar")"
  if [ "$have_hdiff" = 1 ]; then
    m=$(measure $tools hdiff "$w/old.tar" "$w/new.tar" "$w/p.hdiff")
    a=$(measure $tools hpatch "$w/old.tar" "$w/p.hdiff" "$w/r.hdiff")
    row "HDiffPatch 2.6 lzma2 (PyPI)" "$w/p.hdiff" "$m" "$a" "$(same "$w/r.hdiff" "$w/new.tar")"
  fi
  store="$w/store"
  "$updraft" repo init --repo "$store" --keys "$work/keys" >/dev/null
  main=$(cd "$new" && find . -type f -print -quit | sed 's|^\./||')
  m=$(measure "$updraft" publish --repo "$store" --keys "$work/keys" --app "$pair" --version 2.0.0 --platform windows --arch x86_64 --main "$main" --no-delta "$new")
  row "full package (updraft publish)" "$store/releases/v2.0.0/${pair}_v2.0.0_windows_x86_64_full.tar.zst" "$m" "- -" "-"
  m=$(measure "$delta" make "$old" "$new" "$w/p.updraft" 2>>"$w/stderr.log")
  rm -rf "$w/r.updraft"
  a=$(measure "$delta" apply "$old" "$w/p.updraft" "$w/r.updraft" 2>>"$w/stderr.log")
  ok=$(if diff -r "$new" "$w/r.updraft" >/dev/null; then echo yes; else echo NO; fi)
  row "updraft delta" "$w/p.updraft" "$m" "$a" "$ok"
  python3 - "$w" "$have_hdiff" <<'PY'
import os, sys
w, have_hdiff = sys.argv[1], sys.argv[2] == "1"
others = ["p.bsdiff", "p.bsxz", "p.xd3", "p.zst"] + (["p.hdiff"] if have_hdiff else [])
full = [f for f in os.listdir(os.path.join(w, "store/releases/v2.0.0")) if f.endswith("_full.tar.zst")][0]
sizes = {f: os.path.getsize(os.path.join(w, f)) for f in others}
sizes["full"] = os.path.getsize(os.path.join(w, "store/releases/v2.0.0", full))
best = min(sizes, key=sizes.get)
ours = os.path.getsize(os.path.join(w, "p.updraft"))
print(f"\nupdraft / smallest other ({best}, {sizes[best]} bytes): {ours / sizes[best]:.3f}x")
PY
done
