#!/usr/bin/env bash
# A store in a folder beside the same store in two S3 implementations on
# loopback (s3s-fs and moto_server), in one run: `updraft publish` of an app
# into each (time and peak memory), then the package downloaded with curl
# through `updraft serve` on each, beside curl straight from the bucket
# (SigV4-signed, `--aws-sigv4`) and from `serve --repo DIR`.
#
# usage: bench/s3.sh [OUT_DIR]     (default: bench-out/)
#   MB=100        app size in MB (files of 1 MiB of random bytes)
#   UPDRAFT_BIN   the binary (default target/release/updraft if built, else target/debug/updraft)
# Needs: curl, python3, s3s-fs, moto_server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/bench-out}
mb=${MB:-100}
mkdir -p "$out" && out=$(cd "$out" && pwd)
updraft=${UPDRAFT_BIN:-}
if [ -z "$updraft" ]; then
  if [ -x "$repo/target/release/updraft" ]; then updraft="$repo/target/release/updraft"; else updraft="$repo/target/debug/updraft"; fi
fi
measure() { python3 "$here/measure.py" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
row() { printf '| %-46s | %8s | %11s | %9s |\n' "$@"; }
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]) / 1e6:.0f}')" "$1" "$2"; }

work="$out/s3-bench"
rm -rf "$work" && mkdir -p "$work/app/bin"
printf '#!/bin/sh\necho bench\n' >"$work/app/bin/app" && chmod +x "$work/app/bin/app"
python3 - "$work/app" "$mb" <<'EOF'
import os, sys
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], f"blob{i:04}.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
EOF
"$updraft" keygen --out "$work/keys" >/dev/null

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
s3s_port=$(free_port); mkdir -p "$work/s3s/updraft"
s3s-fs --host 127.0.0.1 --port "$s3s_port" --access-key bench --secret-key bench-secret "$work/s3s" >"$work/s3s.log" 2>&1 </dev/null &
pids+=($!)
moto_port=$(free_port)
moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$s3s_port"; wait_port "$moto_port"
curl -s -X PUT "http://127.0.0.1:$moto_port/updraft" >/dev/null

arch=$(uname -m)
publish() { # REPO ENDPOINT
  AWS_ENDPOINT_URL=$2 measure "$updraft" publish --repo "$1" --keys "$work/keys" --app bench --version 1.0.0 \
    --platform linux --arch "$arch" --main bin/app --level 1 --no-delta "$work/app"
}
package="releases/v1.0.0/bench_v1.0.0_linux_${arch}_full.tar.zst"

echo "app: $mb MB of random bytes; binary: $updraft"
echo
printf '| %-46s | %8s | %11s | %9s |\n' "what" "seconds" "peak RSS kB" "MB/s"
printf '|------------------------------------------------|----------|-------------|-----------|\n'
"$updraft" repo init --repo "$work/store" --keys "$work/keys" >/dev/null
read -r s k < <(publish "$work/store" "")
row "publish into a folder" "$s" "$k" ""
for name in s3s moto; do
  port_var="${name}_port"; endpoint="http://127.0.0.1:${!port_var}"
  AWS_ENDPOINT_URL=$endpoint "$updraft" repo init --repo s3://updraft/store --keys "$work/keys" >/dev/null
  read -r s k < <(publish s3://updraft/store "$endpoint")
  row "publish into $name (s3://updraft/store)" "$s" "$k" ""
done
size=$(stat -c %s "$work/store/$package")
echo
echo "package: $size bytes"
echo
printf '| %-46s | %8s | %11s | %9s |\n' "download (curl -o /dev/null)" "seconds" "peak RSS kB" "MB/s"
printf '|------------------------------------------------|----------|-------------|-----------|\n'
serve() { # NAME REPO ENDPOINT; sets $port
  port=$(free_port)
  AWS_ENDPOINT_URL=$3 "$updraft" serve --repo "$2" --database "sqlite://$work/$1.sqlite" --listen "127.0.0.1:$port" >/dev/null 2>"$work/serve-$1.log" &
  pids+=($!)
  wait_port "$port"
}
for round in 1 2; do
  serve "dir-$round" "$work/store" ""
  read -r s k < <(measure curl -sf -o /dev/null "http://127.0.0.1:$port/$package")
  row "serve --repo DIR (round $round)" "$s" "$k" "$(rate "$size" "$s")"
  for name in s3s moto; do
    port_var="${name}_port"; endpoint="http://127.0.0.1:${!port_var}"
    read -r s k < <(measure curl -sf -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user bench:bench-secret -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$endpoint/updraft/store/$package")
    row "curl straight from $name (round $round)" "$s" "$k" "$(rate "$size" "$s")"
    serve "$name-$round" s3://updraft/store "$endpoint"
    read -r s k < <(measure curl -sf -o /dev/null "http://127.0.0.1:$port/$package")
    row "serve --repo s3:// on $name (round $round)" "$s" "$k" "$(rate "$size" "$s")"
  done
done
