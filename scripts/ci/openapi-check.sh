#!/usr/bin/env bash
# Validates the generated OpenAPI document with openapi-spec-validator (PyPI), an implementation
# independent of the one that wrote it.
set -euo pipefail
venv="${STREAMSPACE_TOOLS_VENV:-${CARGO_TARGET_DIR:-../target}/tools-venv}"
if [[ ! -x "$venv/bin/openapi-spec-validator" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q openapi-spec-validator==0.7.*
fi
spec=$(mktemp --suffix=.json)
trap 'rm -f "$spec"' EXIT
cargo run -q -p streamspace-cli -- openapi > "$spec"
"$venv/bin/openapi-spec-validator" "$spec"
