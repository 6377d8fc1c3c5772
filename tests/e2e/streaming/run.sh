#!/usr/bin/env bash
# Live streaming in a real browser through the StreamSpace session proxy (see README.md).
# Needs: Docker running with the session images built (scripts/images/build.sh),
# /usr/bin/chromium, Node 20+. Exits non-zero when a check fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd "$repo/.." && pwd)/target}"

# The binary under test: STREAMSPACE_BIN, or a (no-op when up to date) debug build of this checkout.
if [[ -z "${STREAMSPACE_BIN:-}" ]]; then
  if [[ "${STREAMSPACE_SKIP_BUILD:-0}" != 1 ]]; then
    (cd "$repo" && cargo build --quiet -p streamspace-cli)
  fi
  export STREAMSPACE_BIN="$CARGO_TARGET_DIR/debug/streamspace"
fi

cd "$here"
# npm ci when node_modules is missing or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

exec node --test --test-concurrency=1 --test-reporter=spec streaming.test.mjs
