#!/usr/bin/env bash
# Creates (or brings up to date) the venv of the Helm chart's tests and prints its path. install-deps.sh runs
# it so that `make test` has the packages before any test starts; pip does nothing when they are there.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}"
venv="${STREAMSPACE_HELM_TEST_VENV:-$target/helm-test-venv}"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/helm/requirements.txt >&2
echo "$venv"
