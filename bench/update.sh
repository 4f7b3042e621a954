#!/usr/bin/env bash
# The whole `updraft update` of a large app beside `curl -o` of the same
# package from the same server, alternating, in one run; then the bytes an
# update costs on the wire when it is killed half way (SIGKILL) or loses power
# half way (bench/powerloss.py: what was not synced is lost, page cache
# dropped), and resumed. A "disk floor" row copies the unpacked app and
# syncs it: the durable write that bounds any install on this disk (and once
# more syncing each file on its own, as the unpacker does). For the
# first size, update and curl also run over a slower link with a round trip
# (bench/proxy.py). Every update is measured as a whole command: check,
# download, verification, unpacking, the journaled switch. Beside it, what a
# user would otherwise run: `curl | zstd -d | tar -x` of the same package,
# unverified, with and without a sync. Every timed row also prints the CPU
# seconds the whole machine was busy (client, server and kernel, on all
# cores) against the seconds it had: on loopback the server shares the cores.
#
# usage: bench/update.sh [OUT_DIR]     (default: bench-out/)
#   SIZES="200 1024"   app sizes in MB: that many files of 1 MiB of random
#                      bytes (the package is as large as the app)
#   ROUNDS=3           timed rounds per size
#   LINK_MB=25         the link speed (MB/s) of the extra rounds on a link
#   RTT_MS=50          the round trip of the timed round on that link
# Needs: curl, zstd, tar, cargo, python3 (and root, to drop the page cache).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/bench-out}
sizes=${SIZES:-200 1024}
rounds=${ROUNDS:-3}
link_mb=${LINK_MB:-25}
rtt_ms=${RTT_MS:-50}
mkdir -p "$out" && out=$(cd "$out" && pwd)
(cd "$repo" && cargo build --release --quiet --bin updraft)
updraft="$repo/target/release/updraft"
measure() { python3 "$here/measure.py" "$@"; }
arch=$(uname -m | sed 's/amd64/x86_64/')
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
# Each measured command starts on a quiet disk: what `cp` and the last
# round left is synced, and the journal has committed (a second).
quiet() { sync; sleep 1; }
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/healthz" && return; sleep 0.05; done; }
row() { printf '| %-6s | %-5s | %-56s | %8s | %13s | %11s |\n' "$@"; }
# One timed row, started on a quiet disk. $1: label, $2: command (sh -c).
timed() {
  quiet
  local r secs rss busy had
  r=$(measure --machine-cpu sh -c "$2")
  read -r secs rss busy had <<<"$r"
  row "$mb" "$round" "$1" "$secs" "$busy / $had" "$rss"
}
ratio() { python3 -c "import sys; print(f'{int(sys.argv[1]) / int(sys.argv[2]):.3f}x')" "$1" "$2"; }

printf '| app MB | round | what                                                     | seconds  | CPU busy/had  | peak RSS kB |\n'
printf '|--------|-------|----------------------------------------------------------|----------|---------------|-------------|\n'
port=18491
for mb in $sizes; do
  work="$out/update-bench-$mb"
  rm -rf "$work" && mkdir -p "$work"
  python3 "$here/gen_tree.py" "$work/src" "$mb" "$mb" random
  "$updraft" keygen --out "$work/keys" >/dev/null
  "$updraft" repo init --repo "$work/store" --keys "$work/keys" >/dev/null
  for version in 1.0.0 1.1.0; do
    "$updraft" publish --repo "$work/store" --keys "$work/keys" --app big --version "$version" \
      --platform linux --arch "$arch" --main bin/app --level 3 --no-delta "$work/src/$version" >/dev/null
  done
  rm -rf "$work/src"
  package=$(ls "$work"/store/releases/v1.1.0/big_v1.1.0_*_full.tar.zst)
  size=$(stat -c %s "$package")
  port=$((port + 2)); proxy_port=$((port + 1))
  "$updraft" serve --repo "$work/store" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
  pids+=($!)
  wait_port "$port"
  "$updraft" install --server "http://127.0.0.1:$port" --app big --version 1.0.0 --dir "$work/pristine" \
    --trusted-root "$work/store/metadata/root.json" >/dev/null
  url="http://127.0.0.1:$port/${package#"$work"/store/}"
  round=""
  row "$mb" "" "package: $size bytes, $mb files" "" "" ""
  for round in $(seq "$rounds"); do
    rm -rf "$work/install" && cp -a "$work/pristine" "$work/install"
    timed "updraft update (whole command, durable)" \
      "'$updraft' update --dir '$work/install' --yes --json > '$work/update.json'"
    [ "$(readlink "$work/install/current")" = "versions/1.1.0" ] || { echo "update did not switch to 1.1.0" >&2; exit 1; }
    # The disk's part alone: the unpacked app copied from the page cache
    # and synced, no network, no verification (what any durable install
    # of these files must at least wait for).
    rm -rf "$work/floor"
    timed "cp -a of the unpacked app, then sync (disk floor)" \
      "cp -a '$work/install/versions/1.1.0' '$work/floor' && sync -f '$work/floor'"
    rm -rf "$work/floor"
    # The same, each file synced on its own as the unpacker does.
    timed "cp -a, then fdatasync each file, 4 threads" \
      "cp -a '$work/install/versions/1.1.0' '$work/floor' && python3 '$here/fsync_each.py' '$work/floor'"
    rm -rf "$work/floor"
    # What a user would otherwise run: download and unpack in one pipe,
    # nothing verified, then the same made durable.
    mkdir "$work/floor"
    timed "curl piped into zstd -d and tar -x (unverified)" \
      "curl -sf '$url' | zstd -dcq | tar -x -C '$work/floor'"
    rm -rf "$work/floor" && mkdir "$work/floor"
    timed "the same pipe, then sync (unverified, durable)" \
      "curl -sf '$url' | zstd -dcq | tar -x -C '$work/floor' && sync -f '$work/floor'"
    rm -rf "$work/floor"
    rm -f "$work/curl.out"
    timed "curl -o (download only, not synced)" "curl -sf -o '$work/curl.out' '$url'"
    rm -f "$work/curl.out"
    timed "curl -o, then sync the file (durable)" "curl -sf -o '$work/curl.out' '$url' && sync '$work/curl.out'"
    rm -f "$work/curl.out"
  done
  round=""

  # Through the proxy: a link of that speed and round trip, and a counter
  # that can kill the updater. $1: rate (bytes/s, 0 = none), $2: delay (ms).
  via_proxy() {
    count="$work/count-$proxy_port"
    python3 "$here/proxy.py" "$proxy_port" "$port" "$count" "$1" "$2" &
    proxy=$!
    pids+=($proxy)
    for _ in $(seq 100); do [ -e "$count" ] && break; sleep 0.05; done
    rm -rf "$work/via" && cp -a "$work/pristine" "$work/via"
    python3 - "$work/via/update_config.json" "$proxy_port" <<'PY'
import json, sys
path, port = sys.argv[1], sys.argv[2]
config = json.load(open(path))
config["update_server"]["base_url"] = f"http://127.0.0.1:{port}"
json.dump(config, open(path, "w"), indent=2)
PY
  }
  stop_proxy() {
    kill "$proxy" 2>/dev/null || true
    wait "$proxy" 2>/dev/null || true
    rm -f "$count" "$count.kill"
  }

  # Time on a slower link with a round trip: the pieces a download asks for
  # must not leave the link idle.
  if [ "$mb" = "${sizes%% *}" ]; then
    label="$link_mb MB/s, $rtt_ms ms link"
    via_proxy $((link_mb * 1000 * 1000)) "$rtt_ms"
    timed "updraft update on a $label" "'$updraft' update --dir '$work/via' --yes --json > '$work/update.json'"
    [ "$(readlink "$work/via/current")" = "versions/1.1.0" ] || { echo "update did not switch to 1.1.0" >&2; exit 1; }
    stop_proxy
    via_proxy $((link_mb * 1000 * 1000)) "$rtt_ms"; rm -f "$work/curl.out"
    timed "curl -o on a $label" "curl -sf -o '$work/curl.out' 'http://127.0.0.1:$proxy_port/${package#"$work"/store/}'"
    rm -f "$work/curl.out"
    stop_proxy
  fi

  # Bytes on the wire after an interruption, counted by the proxy.
  interrupted() { # $1: label, $2: rate (bytes/s, 0 = none), $3: power loss (yes/no)
    via_proxy "$2" 0
    local before; before=$(cat "$count")
    "$updraft" update --dir "$work/via" --yes --json >/dev/null 2>&1 &
    local updater=$!
    echo "$updater $((size / 2))" > "$count.kill"
    wait "$updater" 2>/dev/null || true
    local lost=""
    if [ "$3" = yes ]; then
      lost=$(python3 "$here/powerloss.py" "$work/via/.updraft/staging")
      lost=" (the power loss kept ${lost% *} bytes on disk)"
    fi
    [ "$(readlink "$work/via/current")" = "versions/1.0.0" ] || { echo "the killed update switched" >&2; exit 1; }
    "$updraft" update --dir "$work/via" --yes --json >/dev/null
    [ "$(readlink "$work/via/current")" = "versions/1.1.0" ] || { echo "the resumed update did not switch" >&2; exit 1; }
    sleep 0.1
    local after; after=$(cat "$count")
    row "$mb" "" "$1: $(ratio $((after - before)) "$size") of the package$lost" "" "" ""
    stop_proxy
  }
  interrupted "killed at 50 %, resumed" 0 no
  interrupted "power lost at 50 %, resumed" 0 yes
  if [ "$mb" = "${sizes%% *}" ]; then
    interrupted "power lost at 50 % on a $link_mb MB/s link" $((link_mb * 1000 * 1000)) yes
  fi
  rm -rf "$work/install" "$work/via" "$work/pristine"
done
