#!/usr/bin/env bash
# The check endpoint in the scaled layouts (issue 12), in one run, each under
# the same wrk load, alternating round by round:
#   1. one `updraft serve` on SQLite (the default),
#   2. one `updraft serve` on PostgreSQL,
#   3. two `updraft serve` on one PostgreSQL behind nginx, with the
#      load-balancer config of deploy/nginx/updraft.conf,
#   4. nginx serving the same answer as a static file.
# Prints requests/s and p99 latency (wrk --latency) per round and the medians.
#
# usage: bench/scale.sh [OUT_DIR]      (default: bench-out/)
#   ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2
#   BUILD=release|debug   default release; CI (CI set) always uses the debug
#                         build the tests made, never a release build
#   BENCH_POSTGRES=postgres://...   a database to use (it is emptied); without
#                         it, as root, the machine's cluster is started and a
#                         fresh `updraft_bench` database is made
# Needs: nginx and wrk (installed with apt-get when missing and root), curl,
# cargo, PostgreSQL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/bench-out}
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
build=${BUILD:-release}
[ -n "${CI:-}" ] && build=debug
for tool in nginx wrk curl; do
  if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk curl >/dev/null
    else
      echo "$tool is missing: apt-get install nginx wrk curl" >&2; exit 1
    fi
  fi
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
mkdir -p "$out" && out=$(cd "$out" && pwd)
work="$out/scale-bench"
rm -rf "$work" && mkdir -p "$work"
if [ "$build" = release ]; then
  (cd "$repo" && cargo build --release --quiet --bin updraft)
else
  (cd "$repo" && cargo build --quiet --bin updraft)
fi
updraft="$repo/target/$build/updraft"

# PostgreSQL: a database of the benchmark's own.
database=${BENCH_POSTGRES:-}
if [ -z "$database" ]; then
  [ "$(id -u)" = 0 ] || { echo "set BENCH_POSTGRES=postgres://... (or run as root to use the machine's cluster)" >&2; exit 1; }
  pg_version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  pg_ctlcluster "$pg_version" main status >/dev/null 2>&1 || pg_ctlcluster "$pg_version" main start
  pg_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $3}')
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$pg_port" <<'SQL'
SET client_min_messages = warning;
SELECT 'CREATE ROLE updraft_bench LOGIN PASSWORD ''updraft_bench''' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'updraft_bench') \gexec
DROP DATABASE IF EXISTS updraft_bench WITH (FORCE);
CREATE DATABASE updraft_bench OWNER updraft_bench;
SQL
  database="postgres://updraft_bench:updraft_bench@127.0.0.1:$pg_port/updraft_bench"
fi

# The store of bench/server.sh: 1.0.0 .. 1.4.0 with notes.
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

port_sqlite=18491; port_pg=18492; port_a=18493; port_b=18494; port_lb=18495; port_static=18496
query="current_version=1.0.0&platform=linux&arch=x86_64&app=kuzflow&install_id=bench-1"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for conf in lb static; do [ -f "$work/$conf/nginx.pid" ] && kill "$(cat "$work/$conf/nginx.pid")" 2>/dev/null || true; done
}
trap cleanup EXIT
serve() { # port database name
  # --public-url: every instance builds the same download URL whatever the Host.
  UPDRAFT_LOG=warn UPDRAFT_DATABASE="$2" "$updraft" serve --repo "$work/store" --listen "127.0.0.1:$1" \
    --public-url https://updates.example.com --max-connections-per-address 10000 2>"$work/serve-$3.log" &
  pids+=($!)
}
serve "$port_sqlite" "sqlite://$work/server.sqlite" sqlite
serve "$port_pg" "$database" pg
serve "$port_a" "$database" a
serve "$port_b" "$database" b
for port in $port_sqlite $port_pg $port_a $port_b; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done

nginx_conf() { # dir body
  mkdir -p "$work/$1/logs" "$work/$1/temp"
  cat > "$work/$1/nginx.conf" <<CONF
worker_processes auto;
pid $work/$1/nginx.pid;
error_log $work/$1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1/temp/body;
  proxy_temp_path $work/$1/temp/proxy;
  fastcgi_temp_path $work/$1/temp/fastcgi;
  uwsgi_temp_path $work/$1/temp/uwsgi;
  scgi_temp_path $work/$1/temp/scgi;
  keepalive_requests 1000000;
$2
}
CONF
  "$nginx_bin" -p "$work/$1" -c "$work/$1/nginx.conf"
}
# The load balancer: deploy/nginx/updraft.conf with this run's ports.
sed -e "s/server 127.0.0.1:8081 /server 127.0.0.1:$port_a /" -e "s/server 127.0.0.1:8082 /server 127.0.0.1:$port_b /" \
    -e "s/listen 80;/listen 127.0.0.1:$port_lb;/" "$repo/deploy/nginx/updraft.conf" > "$work/updraft-lb.conf"
nginx_conf lb "  include $work/updraft-lb.conf;"
mkdir -p "$work/static/root/api/version"
curl -sf "http://127.0.0.1:$port_sqlite/api/version/check?$query" > "$work/static/root/api/version/check"
nginx_conf static "  sendfile on;
  server {
    listen 127.0.0.1:$port_static;
    root $work/static/root;
    location = /api/version/check { default_type application/json; try_files /api/version/check =404; }
  }"
for port in $port_lb $port_static; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/api/version/check?$query" >/dev/null && break; sleep 0.1; done
done
for port in $port_pg $port_lb $port_static; do
  cmp <(curl -sf "http://127.0.0.1:$port_sqlite/api/version/check?$query") <(curl -sf "http://127.0.0.1:$port/api/version/check?$query") \
    || { echo "port $port does not give the same answer" >&2; exit 1; }
done
printf 'updraft build: %s; answer: %s bytes, identical from all four\n\n' "$build" "$(wc -c < "$work/static/root/api/version/check")"

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
names=("one updraft, SQLite" "one updraft, PostgreSQL" "two updraft + nginx LB" "nginx, static answer")
ports=("$port_sqlite" "$port_pg" "$port_lb" "$port_static")
printf '| %-5s | %-26s | %12s | %9s |\n' round layout "requests/s" "p99 ms"
printf '|-------|----------------------------|--------------|-----------|\n'
results=()
for round in $(seq "$rounds"); do
  for i in 0 1 2 3; do
    r=$(run_wrk "http://127.0.0.1:${ports[$i]}/api/version/check?$query")
    results+=("$i $r")
    printf '| %-5s | %-26s | %12s | %9s |\n' "$round" "${names[$i]}" "${r% *}" "${r#* }"
  done
done
python3 - "${names[@]}" -- "${results[@]}" <<'PY'
import statistics, sys
args = sys.argv[1:]
split = args.index("--")
names, rows = args[:split], [r.split() for r in args[split + 1:]]
print("\n| layout | median requests/s | median p99 ms |\n|---|---|---|")
for i, name in enumerate(names):
    mine = [(float(r[1]), float(r[2])) for r in rows if int(r[0]) == i]
    print(f"| {name} | {statistics.median(r for r, _ in mine):.0f} | {statistics.median(p for _, p in mine):.2f} |")
PY
