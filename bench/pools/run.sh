#!/usr/bin/env bash
# Click to first decoded frame with and without a warm pool (see README.md).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
[[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund
exec node click-to-frame.mjs
