#!/usr/bin/env bash
# The test command (README): installs what the tests need if it is missing,
# then runs every test in the workspace, doc examples included.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import tuf.ngclient' 2>/dev/null; then
  echo "installing python-tuf for the interop tests (scripts/requirements-test.txt)"
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest is missing; install it with: cargo install cargo-nextest --locked" >&2
  exit 1
fi
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc --quiet
