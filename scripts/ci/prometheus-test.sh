#!/usr/bin/env bash
# The alert rules: promtool checks them and runs their unit tests, and every alert has a test.
set -euo pipefail
cd "$(dirname "$0")/../../deploy/prometheus"

promtool check rules streamspace-rules.yml
promtool test rules tests/*.test.yml

untested=()
while read -r alert; do
  grep -q "alertname: $alert\$" tests/*.test.yml || untested+=("$alert")
done < <(sed -n 's/^ *- alert: *//p' streamspace-rules.yml)
if ((${#untested[@]})); then
  echo "alerts without a promtool test: ${untested[*]}" >&2
  exit 1
fi
