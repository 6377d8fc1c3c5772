#!/usr/bin/env bash
# Validates the generated OpenAPI document with openapi-spec-validator (PyPI), an implementation
# independent of the one that wrote it, and checks that the UI's copy (ui/openapi.json, from which
# ui/src/types/openapi.ts is generated) is the document the server serves.
set -euo pipefail
venv="${STREAMSPACE_TOOLS_VENV:-${CARGO_TARGET_DIR:-../target}/tools-venv}"
if [[ ! -x "$venv/bin/openapi-spec-validator" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q openapi-spec-validator==0.7.*
fi
spec=$(mktemp --suffix=.json)
trap 'rm -f "$spec"' EXIT
make --no-print-directory -s bin
"${CARGO_TARGET_DIR:-../target}/debug/streamspace" openapi > "$spec"
"$venv/bin/openapi-spec-validator" "$spec"
if ! diff -u ui/openapi.json "$spec"; then
  echo "ui/openapi.json is stale: run \`make ui-api\` and commit the result" >&2
  exit 1
fi
