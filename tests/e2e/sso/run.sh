#!/usr/bin/env bash
# Single sign-on through the UI in headless Chromium against the test identity providers (see README.md).
# Needs: Docker running (the control plane's built-in agent), ui/dist built before the binary (make ui),
# /usr/bin/chromium, Node 20+. Installs the identity providers' npm packages when missing or stale.
set -euo pipefail
shopt -s nullglob
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for idp in "$here"/../../idp/*/; do
  if [[ ! -f "$idp/node_modules/.package-lock.json" || "$idp/package-lock.json" -nt "$idp/node_modules/.package-lock.json" ]]; then
    (cd "$idp" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
exec "$here/../suite.sh" sso
