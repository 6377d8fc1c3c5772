#!/usr/bin/env bash
# Release one session image: multi-platform build and push with buildx, keyless
# cosign signature, and an SPDX SBOM per platform attached as a signed
# attestation. Run by .github/workflows/release-images.yml, which provides the
# registry login, QEMU, buildx, cosign and the OIDC token (id-token: write).
#
#   scripts/images/publish.sh NAME
#
# Environment:
#   IMAGE_PREFIX  repository prefix, e.g. ghcr.io/acme/streamspace (required)
#   IMAGE_REPOSITORY  the whole repository instead of IMAGE_PREFIX/NAME, e.g.
#                 ghcr.io/acme/streamspace for the control plane's image
#   STREAMSPACE_BINARIES  for images built around the prebuilt binary
#                 (streamspace): a folder with <arch>/streamspace for every
#                 platform in PLATFORMS, each built on Debian bookworm
#   BASE_IMAGE    image the app images build FROM, by digest (optional)
#   VERSION       release version for an extra tag, e.g. 1.4.0 (optional)
#   GITHUB_SHA, GITHUB_OUTPUT  set by GitHub Actions (GITHUB_SHA falls back
#                 to the checkout's HEAD)
set -euo pipefail

name=${1:?usage: publish.sh NAME}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
context=$(cd "$here/../../images/$name" && pwd)
repo=${IMAGE_REPOSITORY:-${IMAGE_PREFIX:?IMAGE_PREFIX is required}/$name}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

platforms=$(grep -v '^#' "$context/PLATFORMS" | tr -d ' \n')
platforms=${platforms:-linux/amd64,linux/arm64}

# The control plane's image copies a binary built beforehand, one per platform,
# into a copy of its context (the source tree stays as it is).
if grep -q '^COPY bin/' "$context/Dockerfile"; then
  binaries=${STREAMSPACE_BINARIES:?STREAMSPACE_BINARIES is required for $name}
  cp -a "$context" "$work/context"
  context=$work/context
  for platform in ${platforms//,/ }; do
    # linux/arm64/v8 -> arm64, Docker's TARGETARCH.
    arch=${platform#*/}
    arch=${arch%%/*}
    "$here/stage-binary.sh" "$context" "$arch" "$binaries/$arch/streamspace"
  done
fi

sha=${GITHUB_SHA:-$(git -C "$here" rev-parse HEAD)}
tags=(--tag "$repo:sha-${sha:0:12}")
if [[ -n ${VERSION:-} ]]; then
  tags+=(--tag "$repo:$VERSION" --tag "$repo:latest")
fi
build_args=()
# Only images that build FROM ${BASE_IMAGE} take it (the fixture does not).
if [[ -n ${BASE_IMAGE:-} ]] && grep -q '^ARG BASE_IMAGE' "$context/Dockerfile"; then
  build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
fi

echo "publish: $repo for $platforms" >&2
docker buildx build \
  --platform "$platforms" \
  "${tags[@]}" \
  "${build_args[@]}" \
  --cache-from "type=registry,ref=$repo:buildcache" \
  --cache-to "type=registry,ref=$repo:buildcache,mode=max" \
  --metadata-file "$work/metadata.json" \
  --push \
  "$context"
digest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' \
  "$work/metadata.json")
ref=$repo@$digest
echo "publish: pushed $ref" >&2

# Keyless: the certificate binds the signature to this workflow run's OIDC
# identity, recorded in the public transparency log. --recursive signs the
# index and every platform manifest, so a pull by platform digest verifies too.
cosign sign --yes --recursive "$ref"

# One SBOM per platform, each read from that platform's image; each is
# attested on its platform manifest and on the index, so verifying either the
# tag (index) or a platform digest finds it.
docker buildx imagetools inspect --raw "$ref" >"$work/index.json"
for platform in ${platforms//,/ }; do
  platform_digest=$(python3 - "$work/index.json" "$platform" <<'EOF'
import json, sys
index, (os_, arch, *variant) = json.load(open(sys.argv[1])), sys.argv[2].split("/")
for m in index["manifests"]:
    p = m.get("platform", {})
    if p.get("os") == os_ and p.get("architecture") == arch and (not variant or p.get("variant") == variant[0]):
        print(m["digest"])
        break
else:
    sys.exit(f"no manifest for {sys.argv[2]}")
EOF
)
  sbom=$work/$name-${platform//\//-}.spdx.json
  python3 "$here/sbom.py" "$repo@$platform_digest" "$sbom" --platform "$platform"
  "$here/check-sbom.sh" "$sbom"
  cosign attest --yes --type spdxjson --predicate "$sbom" "$repo@$platform_digest"
  cosign attest --yes --type spdxjson --predicate "$sbom" "$ref"
done

if [[ -n ${GITHUB_OUTPUT:-} ]]; then
  echo "digest=$digest" >>"$GITHUB_OUTPUT"
  echo "ref=$ref" >>"$GITHUB_OUTPUT"
fi
