#!/usr/bin/env bash
# The Helm chart's tests: rendered and linted by Helm's own engine, validated against the Kubernetes JSON
# schemas, its safety properties asserted (tests/helm). No cluster is needed (none can run here): what needs
# one is listed in docs/kubernetes.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=$(scripts/ci/helm-test-venv.sh)
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/helm "$@"
