#!/usr/bin/env bash
# Installs the Debian packages that compiling StreamSpace needs; quick when they are there. samael binds
# libxmlsec1 (SAML signatures, ADR 0026): libclang-dev for its bindings, libxmlsec1-dev, libxml2-dev,
# libssl-dev and pkg-config to link it.
set -euo pipefail

packages=(libclang-dev libxmlsec1-dev libxml2-dev libssl-dev pkg-config "$@")
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=()
  if ((EUID != 0)); then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
