#!/usr/bin/env bash
# The check endpoint under load: `updraft serve` answering /api/version/check
# against nginx serving the same answer as a static file, alternating, in one
# run. Prints requests/s, p99 latency and the server's peak memory.
#
# usage: bench/server.sh [OUT_DIR]      (default: bench-out/)
#   ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2
# Needs: nginx and wrk (apt-get install nginx wrk), curl, cargo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/bench-out}
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install nginx wrk curl" >&2; exit 1; }
done
mkdir -p "$out" && out=$(cd "$out" && pwd)
work="$out/server-bench"
rm -rf "$work" && mkdir -p "$work"
(cd "$repo" && cargo build --release --quiet --bin updraft)
updraft="$repo/target/release/updraft"

# A store with a real-looking history: 1.0.0 .. 1.4.0 with notes.
"$updraft" keygen --out "$work/keys" >/dev/null
"$updraft" repo init --repo "$work/store" --keys "$work/keys" >/dev/null
for minor in 0 1 2 3 4; do
  src="$work/src/1.$minor.0"; mkdir -p "$src/bin"
  printf '#!/bin/sh\necho kuzflow 1.%s.0\n' "$minor" > "$src/bin/kuzflow"; chmod +x "$src/bin/kuzflow"
  head -c 200000 /dev/urandom > "$src/bin/libcore.so"
  printf '## 1.%s.0\n\n- Faster sync.\n- Fixed the tray icon.\n' "$minor" > "$work/notes.md"
  "$updraft" publish --repo "$work/store" --keys "$work/keys" --app kuzflow --version "1.$minor.0" \
    --platform linux --arch x86_64 --main bin/kuzflow --notes "$work/notes.md" --level 3 "$src" >/dev/null
done

port_updraft=18481; port_nginx=18482
query="current_version=1.0.0&platform=linux&arch=x86_64&app=kuzflow&install_id=bench-1"
UPDRAFT_LOG=warn "$updraft" serve --repo "$work/store" --listen "127.0.0.1:$port_updraft" 2>"$work/serve.log" &
server_pid=$!
mkdir -p "$work/nginx/logs" "$work/nginx/root/api/version"
cleanup() { kill "$server_pid" 2>/dev/null || true; [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port_updraft/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port_updraft/api/version/check?$query" > "$work/nginx/root/api/version/check"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port_nginx;
    root $work/nginx/root;
    location = /api/version/check { default_type application/json; try_files /api/version/check =404; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port_nginx/api/version/check" >/dev/null && break; sleep 0.1; done
cmp <(curl -sf "http://127.0.0.1:$port_updraft/api/version/check?$query") <(curl -sf "http://127.0.0.1:$port_nginx/api/version/check?$query") \
  || { echo "the two servers do not give the same answer" >&2; exit 1; }
printf 'answer: %s bytes, identical from both servers\n\n' "$(wc -c < "$work/nginx/root/api/version/check")"

run_wrk() { # url -> "rps p99_ms"
  wrk -t"$threads" -c"$connections" -d"$duration" --latency "$1" > "$work/wrk.txt"
  python3 - "$work/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", text).groups()
p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors: print(f"warning: {errors.group(1)} non-2xx answers", file=sys.stderr)
print(f"{rps:.0f} {p99:.2f}")
PY
}
printf '| %-5s | %-24s | %12s | %9s |\n' round server "requests/s" "p99 ms"
printf '|-------|--------------------------|--------------|-----------|\n'
declare -a up ng
for round in $(seq "$rounds"); do
  r=$(run_wrk "http://127.0.0.1:$port_updraft/api/version/check?$query"); up+=("$r")
  printf '| %-5s | %-24s | %12s | %9s |\n' "$round" "updraft serve (check)" "${r% *}" "${r#* }"
  r=$(run_wrk "http://127.0.0.1:$port_nginx/api/version/check?$query"); ng+=("$r")
  printf '| %-5s | %-24s | %12s | %9s |\n' "$round" "nginx (static answer)" "${r% *}" "${r#* }"
done
peak=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
python3 - "$peak" "${up[@]}" -- "${ng[@]}" <<'PY'
import statistics, sys
args = sys.argv[2:]
split = args.index("--")
up = [tuple(map(float, a.split())) for a in args[:split]]
ng = [tuple(map(float, a.split())) for a in args[split + 1:]]
u_rps, n_rps = statistics.median(r for r, _ in up), statistics.median(r for r, _ in ng)
u_p99 = statistics.median(p for _, p in up)
print(f"\nmedian: updraft {u_rps:.0f} req/s, nginx {n_rps:.0f} req/s -> ratio {u_rps / n_rps:.2f} (goal >= 0.8)")
print(f"updraft p99 {u_p99:.2f} ms (goal < 10 ms); updraft peak RSS {int(sys.argv[1]) / 1024:.1f} MB (goal < 100 MB)")
PY
