#!/usr/bin/env bash
# The test command (README): installs what the tests need if it is missing,
# then runs every test in the workspace, doc examples included.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import tuf.ngclient, maturin, PyQt5, pytestqt, fastapi, uvicorn, feedparser, playwright, moto.server' 2>/dev/null; then
  echo "installing python-tuf, maturin, PyQt5, pytest-qt and FastAPI for the tests (scripts/requirements-test.txt)"
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi
# A CJK font for the Chinese update-dialog tests (egui has none built in).
if [ ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] && [ ! -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] \
   && [ -z "${UPDRAFT_CJK_FONT:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing fonts-wqy-microhei for the Chinese dialog tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null
  else
    echo "the Chinese dialog tests need a CJK font: apt-get install fonts-wqy-microhei (or set UPDRAFT_CJK_FONT)" >&2
    exit 1
  fi
fi
# Debian's chromium for the dashboard's browser tests (Playwright cannot
# download its own browsers here; it drives /usr/bin/chromium).
if ! command -v chromium >/dev/null && [ -z "${UPDRAFT_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium for the dashboard browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the dashboard tests need chromium: apt-get install chromium (or set UPDRAFT_CHROMIUM)" >&2
    exit 1
  fi
fi
# PostgreSQL for the storage suite and the scale-out tests (issue 12): the
# machine's cluster, started if it is stopped, and a role that may create
# databases (each test makes its own). Idempotent. The outage test runs a
# private cluster of its own (initdb into a temp folder), so stopping it
# disturbs no other test.
if [ -z "${UPDRAFT_TEST_POSTGRES:-}" ]; then
  if command -v pg_ctlcluster >/dev/null && [ "$(id -u)" = 0 ]; then
    pg_version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$pg_version main" || pg_createcluster "$pg_version" main >/dev/null
    pg_ctlcluster "$pg_version" main status >/dev/null 2>&1 || pg_ctlcluster "$pg_version" main start
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'updraft_test') THEN
        CREATE ROLE updraft_test LOGIN CREATEDB PASSWORD 'updraft_test';
      END IF; END \$\$;"
    pg_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $3}')
    export UPDRAFT_TEST_POSTGRES="postgres://updraft_test:updraft_test@127.0.0.1:$pg_port/postgres"
  elif [ -n "${CI:-}" ]; then
    echo "CI needs PostgreSQL for the storage tests: run as root with postgresql installed, or set UPDRAFT_TEST_POSTGRES" >&2
    exit 1
  else
    echo "UPDRAFT_TEST_POSTGRES is not set and PostgreSQL cannot be started here: the PostgreSQL tests will be skipped" >&2
  fi
fi
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing nginx for the load-balancer tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  elif [ -n "${CI:-}" ]; then
    echo "the load-balancer tests need nginx: apt-get install nginx" >&2
    exit 1
  fi
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest is missing; install it with: cargo install cargo-nextest --locked" >&2
  exit 1
fi
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc --quiet
# The Python package: the wheel reuses the dev build above (python/pyproject.toml),
# then its tests run offscreen against the `updraft` binary nextest just built.
target_dir=${CARGO_TARGET_DIR:-target}
python3 -m pip install --quiet --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps ./python
UPDRAFT_BIN=${UPDRAFT_BIN:-$target_dir/debug/updraft} QT_QPA_PLATFORM=offscreen \
  python3 -m pytest -q -p no:cacheprovider python/tests
