#!/usr/bin/env bash
# Validate SPDX SBOMs with the reference SPDX tools (PyPI spdx-tools).
#
#   scripts/images/check-sbom.sh FILE.spdx.json...   validate these files
#   scripts/images/check-sbom.sh                     generate (sbom.py) and validate
#                                                    one per image defined under images/
#
# The tools live in their own venv (STREAMSPACE_TOOLS_DIR, default
# /tmp/streamspace-tools), never in the system Python.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=${STREAMSPACE_TOOLS_DIR:-/tmp/streamspace-tools}
venv=$tools/spdx-tools
out_dir=${SBOM_DIR:-/tmp/streamspace-sbom}
spdx_tools_version=0.8.5

if [[ ! -x $venv/bin/pyspdxtools ]]; then
  echo "check-sbom: installing spdx-tools $spdx_tools_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "spdx-tools==$spdx_tools_version"
fi

files=("$@")
if ((${#files[@]} == 0)); then
  mkdir -p "$out_dir"
  # The images this repository defines: images/<name>/Dockerfile -> streamspace/<name>:latest.
  mapfile -t images < <(for dockerfile in "$(dirname "$0")"/../../images/*/Dockerfile; do
    echo "streamspace/$(basename "$(dirname "$dockerfile")"):latest"
  done | sort)
  if ((${#images[@]} == 0)); then
    echo "check-sbom: no streamspace/* images; run scripts/images/build.sh first" >&2
    exit 1
  fi
  for image in "${images[@]}"; do
    file=$out_dir/$(basename "${image%%:*}").spdx.json
    python3 "$here/sbom.py" "$image" "$file"
    files+=("$file")
  done
fi

failed=0
for file in "${files[@]}"; do
  # pyspdxtools parses, then validates against the SPDX 2.3 rules, and
  # exits non-zero with the list of problems when the document is invalid.
  if "$venv/bin/pyspdxtools" -i "$file" >"$file.check.log" 2>&1; then
    echo "check-sbom: valid   $file"
  else
    echo "check-sbom: INVALID $file" >&2
    head -n 20 "$file.check.log" >&2
    failed=$((failed + 1))
  fi
done
echo "check-sbom: $((${#files[@]} - failed)) valid, $failed invalid"
((failed == 0))
