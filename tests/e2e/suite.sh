#!/usr/bin/env bash
# Runs one browser suite of tests/e2e (`suite.sh streaming` runs streaming/streaming.test.mjs)
# against this checkout's binary: STREAMSPACE_BIN, or the debug build of `make bin` (a no-op when up to date).
# Installs the suite's npm packages when they are missing or older than its lock file.
set -euo pipefail

suite=$1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/$suite" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd "$repo/.." && pwd)/target}"

if [[ -z "${STREAMSPACE_BIN:-}" ]]; then
  if [[ "${STREAMSPACE_SKIP_BUILD:-0}" != 1 ]]; then
    make --no-print-directory -s -C "$repo" bin
  fi
  export STREAMSPACE_BIN="$CARGO_TARGET_DIR/debug/streamspace"
fi

cd "$here"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

exec node --test --test-concurrency=1 --test-reporter=spec "$suite.test.mjs"
