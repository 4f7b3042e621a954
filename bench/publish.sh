#!/usr/bin/env bash
# Packs and publishes a real app tree with updraft beside the tools a publisher
# would otherwise use, in one run, and prints size, time and peak memory.
#
# usage: bench/publish.sh [OUT_DIR]        (default: bench-out/)
#   BENCH_BIG_MB=1024          size of the large synthetic tree for the memory check (0 skips it)
#   BENCH_BIG_LEVELS="3 19"    zstd levels for the memory check (19 on 1 GB takes ~15 minutes)
#
# Needs: cargo, python3, zip, unzip, zstd, xz, tar (apt-get install zip unzip zstd xz-utils).
# Inputs: ../shared/bench/fetch-pairs.sh fetches the PyQt5 5.15.11 wheel (931 files, 37 MB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/bench-out}
big_mb=${BENCH_BIG_MB:-1024}
big_levels=${BENCH_BIG_LEVELS:-3 19}
mkdir -p "$out"
out=$(cd "$out" && pwd)
measure() { python3 "$here/measure.py" "$@"; }

if [ ! -d "$out/pairs/pyqt5/new" ]; then
  bash "$repo/../shared/bench/fetch-pairs.sh" "$out/pairs" >/dev/null
fi
tree="$out/pairs/pyqt5/new"
(cd "$repo" && cargo build --release --quiet --bin updraft)
updraft="$repo/target/release/updraft"
tree_bytes=$(du -sb "$tree" | cut -f1)
tree_files=$(find "$tree" -type f | wc -l)

work="$out/work"
rm -rf "$work" && mkdir -p "$work"
"$updraft" keygen --out "$work/keys" >/dev/null

printf '\nPyQt5 5.15.11 wheel, unpacked: %s files, %s bytes\n\n' "$tree_files" "$tree_bytes"
printf '| %-36s | %12s | %7s | %9s | %9s | %12s |\n' "format (tool)" "bytes" "ratio" "pack s" "unpack s" "pack peak kB"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..38})" "--------------" "---------" "-----------" "-----------" "--------------"
row() { # name file pack_result unpack_command
  local name=$1 file=$2 pack=$3 unpack=$4 size ratio unpack_s
  size=$(stat -c %s "$file")
  ratio=$(python3 -c "print(f'{$size/$tree_bytes*100:.1f}%')")
  rm -rf "$work/unpacked" && mkdir -p "$work/unpacked"
  unpack_s=$(measure sh -c "$unpack" | cut -d' ' -f1)
  printf '| %-36s | %12s | %7s | %9s | %9s | %12s |\n' "$name" "$size" "$ratio" "${pack%% *}" "$unpack_s" "${pack##* }"
}
r=$(measure sh -c "cd '$tree' && zip -q -6 -r '$work/a6.zip' .");  row "zip deflate -6 (zip)" "$work/a6.zip" "$r" "unzip -q '$work/a6.zip' -d '$work/unpacked'"
r=$(measure sh -c "cd '$tree' && zip -q -9 -r '$work/a9.zip' .");  row "zip deflate -9 (zip -9 -r)" "$work/a9.zip" "$r" "unzip -q '$work/a9.zip' -d '$work/unpacked'"
r=$(measure sh -c "tar -C '$tree' -cf - . | zstd -q -3 --long=27 -T2 -o '$work/z3.tar.zst'"); row "tar + zstd -3 --long (zstd)" "$work/z3.tar.zst" "$r" "zstd -q -d --long=27 -c '$work/z3.tar.zst' | tar -xf - -C '$work/unpacked'"
r=$(measure sh -c "tar -C '$tree' -cf - . | zstd -q -19 --long=27 -T2 -o '$work/z19.tar.zst'"); row "tar + zstd -19 --long (zstd)" "$work/z19.tar.zst" "$r" "zstd -q -d --long=27 -c '$work/z19.tar.zst' | tar -xf - -C '$work/unpacked'"
r=$(measure sh -c "tar -C '$tree' -cf - . | zstd -q --ultra -22 --long=27 -T2 -o '$work/z22.tar.zst'"); row "tar + zstd --ultra -22 --long (zstd)" "$work/z22.tar.zst" "$r" "zstd -q -d --long=27 -c '$work/z22.tar.zst' | tar -xf - -C '$work/unpacked'"
r=$(measure sh -c "tar -C '$tree' -cf - . | xz -q -9 -T2 > '$work/x9.tar.xz'"); row "tar + xz -9 (xz)" "$work/x9.tar.xz" "$r" "xz -d -c '$work/x9.tar.xz' | tar -xf - -C '$work/unpacked'"
for level in 3 19; do
  store="$work/store-$level"
  "$updraft" repo init --repo "$store" --keys "$work/keys" >/dev/null
  r=$(measure "$updraft" publish --repo "$store" --keys "$work/keys" --app pyqt5 --version 5.15.11 --platform linux --arch x86_64 --main PyQt5/__init__.py --level "$level" "$tree")
  pkg=$(ls "$store"/releases/v5.15.11/pyqt5_v5.15.11_linux_x86_64_full.tar.zst)
  row "updraft publish --level $level" "$pkg" "$r" "zstd -q -d --long=27 -c '$pkg' | tar -xf - -C '$work/unpacked'"
done
printf '\n(updraft publish times include hashing every file, the manifest, signing and the fsynced store transaction.)\n'

if [ "$big_mb" -gt 0 ]; then
  printf '\nPeak memory of `updraft publish` as the app grows (streaming: it should stay flat)\n\n'
  printf '| %-10s | %6s | %8s | %12s |\n' "tree" "level" "pack s" "peak RSS kB"
  printf '|------------|--------|----------|--------------|\n'
  for mb in 100 "$big_mb"; do
    big="$work/big-$mb"
    python3 - "$big" "$mb" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
for i in range(mb // 4):
    d = os.path.join(root, f"dir{i % 16:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(2 << 20))                                   # 2 MiB incompressible
        f.write(b" ".join(rng.choice(words) for _ in range(330_000))[: 2 << 20])  # 2 MiB text-like
os.makedirs(os.path.join(root, "bin"), exist_ok=True)
open(os.path.join(root, "bin", "app"), "w").write("#!/bin/sh\n")
PY
    for level in $big_levels; do
      store="$work/store-big-$mb-$level"
      "$updraft" repo init --repo "$store" --keys "$work/keys" >/dev/null
      r=$(measure "$updraft" publish --repo "$store" --keys "$work/keys" --app big --version 1.0.0 --platform linux --arch x86_64 --main bin/app --level "$level" "$big")
      printf '| %-10s | %6s | %8s | %12s |\n' "$(du -sh "$big" | cut -f1)" "$level" "${r%% *}" "${r##* }"
      rm -rf "$store"
    done
    rm -rf "$big"
  done
fi
