#!/usr/bin/env bash
# One command for targets P1, P2 and P3: bench/run.sh (see bench/README.md).
# Installs what is missing, builds the streamspace binary (as published) and the load client, then runs
# bench.py, which prints a Markdown table and writes bench/results/latest.md. Not part of `make test`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
# Outside the clone, as the Makefile has it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(dirname "$repo")/target}

if [[ $(nproc) -lt 2 ]]; then
  echo "bench: needs 2 CPUs (proxy on one, load on the other)" >&2
  exit 1
fi

# Tools: nginx and wrk (valgrind to count instructions, perf and nstat to count system calls and segments) from apt, Docker through the project's script, CHP from npm (locked).
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if [[ ,${BENCH_ONLY:-}, == *,instructions,* ]]; then
  command -v valgrind >/dev/null || missing+=(valgrind)
fi
if [[ ,${BENCH_ONLY:-}, == *,syscalls,* ]]; then
  command -v perf >/dev/null || missing+=(linux-perf)
  command -v nstat >/dev/null || missing+=(iproute2)
fi
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$repo/scripts/dev/build-deps.sh"
"$repo/scripts/images/docker-up.sh"
if ! docker image inspect streamspace/fixture:latest >/dev/null 2>&1; then
  echo "bench: building the fixture image" >&2
  "$repo/scripts/images/build.sh" fixture
fi
if [[ ! -x "$here/node_modules/.bin/configurable-http-proxy" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

# Binaries: the control plane as published (release, profile-guided: scripts/release/pgo-build.sh, which
# runs this script once to train it) and the load client (its own Cargo project).
if [[ -z ${STREAMSPACE_BIN:-} ]]; then
  STREAMSPACE_BIN=$("$repo/scripts/release/pgo-build.sh")
  export STREAMSPACE_BIN
fi
(cd "$here/wsload" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR/bench cargo build --release --locked -q)
export WSLOAD_BIN=$CARGO_TARGET_DIR/bench/release/wsload

# The fast upstream image: the fixture image plus wsload's echo server (nothing is pulled).
if [[ ,${BENCH_UPSTREAMS:-fixture,echo}, == *,echo,* ]]; then
  context=$(mktemp -d)
  cp "$here/echo/Dockerfile" "$WSLOAD_BIN" "$context/"
  status=0
  docker build -q -t "${BENCH_ECHO_IMAGE:-streamspace/bench-echo:latest}" "$context" >/dev/null || status=$?
  rm -rf "$context"
  ((status == 0)) || exit "$status"
fi

# 1,000 tunnels mean 2,000+ sockets in the proxy and the client: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < 4096)); then
  echo "bench: the open-file limit is $(ulimit -n); BENCH_TUNNELS=1000 needs at least 4096" >&2
fi

# exec: Ctrl-C and SIGTERM reach the driver, which stops everything it started.
exec python3 "$here/bench.py" "$@"
