#!/usr/bin/env bash
# A hostile tenant against `streamspace up` in headless Chromium (see README.md).
# Needs: Docker running with streamspace/fixture and streamspace/hostile built
# (scripts/images/build.sh fixture hostile), ui/dist built before the binary (make ui),
# /usr/bin/chromium, Node 20+. Exits non-zero when any attack succeeds.
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

exec node --test --test-concurrency=1 --test-reporter=spec hostile.test.mjs
