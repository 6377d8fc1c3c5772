#!/usr/bin/env bash
# One command per part of the scale benchmark: bench/scale.sh agents|replicas|api (see bench/README.md).
# Builds the streamspace binary (release) and the agent simulator, starts PostgreSQL, then runs scale.py, which
# prints a Markdown table and writes bench/results/<part>-latest.md. Not part of `make test`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
# Outside the clone, as the Makefile has it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(dirname "$repo")/target}

if ! command -v wrk >/dev/null; then
  echo "scale: installing wrk" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
eval "$("$repo/scripts/dev/postgres-up.sh")"

# Binaries: the control plane as shipped (release) and the simulator (its own Cargo project).
if [[ -z ${STREAMSPACE_BIN:-} ]]; then
  (cd "$repo" && cargo build --release -p streamspace-cli)
  export STREAMSPACE_BIN=$CARGO_TARGET_DIR/release/streamspace
fi
(cd "$here/agentsim" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR/bench cargo build --release --locked -q)
export AGENTSIM_BIN=$CARGO_TARGET_DIR/bench/release/agentsim

# 1,000 agents are 1,000 sockets in the control plane and in the simulator: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)"

# exec: Ctrl-C and SIGTERM reach the driver, which stops everything it started.
exec python3 "$here/scale.py" "$@"
