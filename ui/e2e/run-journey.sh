#!/usr/bin/env bash
# Runs the UI journey against a fresh `streamspace up` (temp data dir, free ports) and cleans up.
# Builds nothing: needs ${STREAMSPACE_BIN:-${CARGO_TARGET_DIR:-<repo>/../target}/debug/streamspace},
# ui/dist (npm run build) and ui/node_modules (npm ci). See e2e/run-journey.mjs for the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node e2e/run-journey.mjs "$@"
