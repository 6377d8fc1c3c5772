#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine. Idempotent: safe to run
# before every build or test. Machines here have no systemd, so dockerd is
# started as a plain background process.
set -euo pipefail

log=${DOCKERD_LOG:-/tmp/dockerd.log}
timeout_s=${DOCKERD_START_TIMEOUT:-60}

if docker version >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "docker-up: dockerd is missing and installing it needs root" >&2
    exit 1
  fi
  echo "docker-up: installing docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# A daemon may already be starting (another script raced us); only launch one
# when no dockerd process exists, otherwise just wait for it.
if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "docker-up: starting dockerd (log: $log)" >&2
  # setsid: the daemon must outlive this script and its caller's job control.
  # Every session gets its own bridge network; the default address pools hold
  # only ~30 of them, so hand out /28 subnets of a /16 (4096 networks).
  setsid dockerd --default-address-pool "base=${DOCKER_ADDRESS_POOL:-10.213.0.0/16},size=28" \
    >>"$log" 2>&1 </dev/null &
fi

deadline=$((SECONDS + timeout_s))
until docker version >/dev/null 2>&1; do
  if ((SECONDS >= deadline)); then
    echo "docker-up: dockerd did not answer within ${timeout_s}s; tail of $log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
  fi
  sleep 0.5
done
echo "docker-up: docker engine is up" >&2
