#!/usr/bin/env bash
# Put a prebuilt streamspace binary into an image's build context, where its
# Dockerfile expects it (COPY bin/${TARGETARCH}/streamspace). Used by build.sh
# (the host's release build) and publish.sh (one build per platform).
#
#   scripts/images/stage-binary.sh CONTEXT ARCH BINARY
#
# ARCH is Docker's name (amd64, arm64). The binary's ELF machine must match it:
# a binary staged under the wrong architecture would otherwise be found only
# when the image fails to start on that platform.
set -euo pipefail

context=${1:?usage: stage-binary.sh CONTEXT ARCH BINARY}
arch=${2:?usage: stage-binary.sh CONTEXT ARCH BINARY}
binary=${3:?usage: stage-binary.sh CONTEXT ARCH BINARY}

case $arch in
  amd64) machine=003e ;;
  arm64) machine=00b7 ;;
  *) echo "stage-binary: no ELF machine known for architecture $arch" >&2; exit 2 ;;
esac
if [[ ! -f $binary ]]; then
  echo "stage-binary: $binary does not exist (build it first: make build)" >&2
  exit 2
fi
# ELF magic at offset 0, e_machine (little-endian) at offset 18.
magic=$(od -An -tx1 -N4 "$binary" | tr -d ' \n')
found=$(od -An -tx2 -j18 -N2 --endian=little "$binary" | tr -d ' \n')
if [[ $magic != 7f454c46 || $found != "$machine" ]]; then
  echo "stage-binary: $binary is not an ELF executable for $arch (magic $magic, machine $found)" >&2
  exit 2
fi
# install sets the mode: artifacts handed between CI jobs lose the executable bit.
install -D -m 0755 "$binary" "$context/bin/$arch/streamspace"
