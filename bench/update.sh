#!/usr/bin/env bash
# `updraft update` of a large app against `curl -o` of the same package from
# the same server, alternating, in one run. Prints both times and the client's
# peak memory.
#
# usage: bench/update.sh [OUT_DIR]     (default: bench-out/)
#   APP_MB=200 ROUNDS=3
# Needs: curl, cargo, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/bench-out}
app_mb=${APP_MB:-200}
rounds=${ROUNDS:-3}
mkdir -p "$out" && out=$(cd "$out" && pwd)
work="$out/update-bench"
rm -rf "$work" && mkdir -p "$work"
(cd "$repo" && cargo build --release --quiet --bin updraft)
updraft="$repo/target/release/updraft"
measure() { python3 "$here/measure.py" "$@"; }

# Two releases of a ~APP_MB app: 2,000 files, half incompressible.
python3 "$here/gen_tree.py" "$work/src" "$app_mb"
"$updraft" keygen --out "$work/keys" >/dev/null
"$updraft" repo init --repo "$work/store" --keys "$work/keys" >/dev/null
for version in 1.0.0 1.1.0; do
  "$updraft" publish --repo "$work/store" --keys "$work/keys" --app big --version "$version" --platform linux \
    --arch "$(uname -m | sed 's/amd64/x86_64/')" --main bin/app --level 3 "$work/src/$version" >/dev/null
done
package=$(ls "$work"/store/releases/v1.1.0/big_v1.1.0_*_full.tar.zst)
size=$(stat -c %s "$package")
port=18491
"$updraft" serve --repo "$work/store" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
"$updraft" install --server "http://127.0.0.1:$port" --app big --version 1.0.0 --dir "$work/pristine" \
  --trusted-root "$work/store/metadata/root.json" >/dev/null
url="http://127.0.0.1:$port/${package#$work/store/}"

printf '\npackage: %s bytes (%s files, %s MB unpacked)\n\n' "$size" 2001 "$app_mb"
printf '| round | what                                   | seconds | peak RSS kB |\n'
printf '|-------|----------------------------------------|---------|-------------|\n'
row() { printf '| %-5s | %-38s | %7s | %11s |\n' "$@"; }
for round in $(seq "$rounds"); do
  rm -rf "$work/install" && cp -a "$work/pristine" "$work/install"
  sync
  r=$(measure sh -c "'$updraft' update --dir '$work/install' --yes --json > '$work/update.json'")
  [ "$(readlink "$work/install/current")" = "versions/1.1.0" ] || { echo "update did not switch to 1.1.0" >&2; exit 1; }
  phases=$(python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if '\"result\"' in l][0]; print(f\"{r['download_seconds']:.2f} {r['install_seconds']:.2f}\")" "$work/update.json")
  row "$round" "updraft update: download + verify" "${phases% *}" ""
  row "$round" "updraft update: unpack + switch" "${phases#* }" ""
  row "$round" "updraft update: whole command" "${r%% *}" "${r##* }"
  rm -f "$work/curl.out"; sync
  r=$(measure curl -sf -o "$work/curl.out" "$url")
  row "$round" "curl -o (download only)" "${r%% *}" "${r##* }"
done
