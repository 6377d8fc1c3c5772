#!/usr/bin/env bash
# Build the images: scripts/images/build.sh [name...]
#
# Names are folders under images/; each is tagged streamspace/<name>:latest.
# The default is every session image: images built around a prebuilt binary
# (their Dockerfile COPYs bin/, i.e. streamspace, the control plane's image)
# are built only when named, with STREAMSPACE_BINARY naming a build of the
# streamspace binary for the Docker host's architecture (`make image` does both
# with the release build, `make test-image` with the debug one). Images another one starts FROM (found in its
# Dockerfile's FROM/ARG lines) are built first, so `build.sh chromium` also
# rebuilds base, which costs a second or two when Docker's layer cache holds it.
#
# Builds trust the host's CA certificates (/etc/ssl/certs/ca-certificates.crt,
# so a network that intercepts TLS needs no setting): the file is staged as
# certs/extra-ca.crt in a temporary copy of the context of every image that has
# a certs/ folder, where only a throwaway build stage uses it, so it never
# reaches an image. STREAMSPACE_EXTRA_CA=/path/ca.pem names another PEM file;
# STREAMSPACE_EXTRA_CA= (empty) trusts Debian's own list only.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
images_dir=$(cd "$here/../../images" && pwd)
host_ca=/etc/ssl/certs/ca-certificates.crt
if [[ -f $host_ca ]]; then default_ca=$host_ca; else default_ca=""; fi
extra_ca=${STREAMSPACE_EXTRA_CA-$default_ca}

if [[ -n $extra_ca ]] && ! grep -q -- '-----BEGIN CERTIFICATE-----' "$extra_ca"; then
  echo "build: STREAMSPACE_EXTRA_CA=$extra_ca is not a PEM certificate file" >&2
  exit 2
fi

needs_binary() { grep -q '^COPY bin/' "$images_dir/$1/Dockerfile"; }

all=()
session_images=()
for dockerfile in "$images_dir"/*/Dockerfile; do
  name=$(basename "$(dirname "$dockerfile")")
  all+=("$name")
  needs_binary "$name" || session_images+=("$name")
done
if (($# > 0)); then requested=("$@"); else requested=("${session_images[@]}"); fi

# Depth-first over the streamspace/* images a Dockerfile builds FROM.
order=()
declare -A state=()
visit() {
  local name=$1 dep
  case ${state[$name]:-} in
    built) return 0 ;;
    active) echo "build: dependency cycle at $name" >&2; exit 2 ;;
  esac
  if [[ ! -f $images_dir/$name/Dockerfile ]]; then
    echo "build: no image '$name' (have: ${all[*]})" >&2
    exit 2
  fi
  state[$name]=active
  local deps=()
  mapfile -t deps < <(grep -E '^(FROM|ARG)' "$images_dir/$name/Dockerfile" |
    grep -oE 'streamspace/[a-z0-9._-]+' | sed 's|^streamspace/||' | sort -u)
  for dep in "${deps[@]}"; do visit "$dep"; done
  state[$name]=built
  order+=("$name")
}
for name in "${requested[@]}"; do visit "$name"; done

"$here/docker-up.sh"
"$here/bootstrap-base.sh"

# Milliseconds since the epoch; EPOCHREALTIME's separator follows the locale.
now_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  echo $((t / 1000))
}

stage=$(mktemp -d /tmp/streamspace-build.XXXXXX)
trap 'rm -rf "$stage"' EXIT

total_start=$(now_ms)
report=()
for name in "${order[@]}"; do
  tag=streamspace/$name:latest
  ctx=$stage/$name
  # A copy, so staging a CA never touches the source tree. COPY's cache key is
  # the files' content, so the changing path does not defeat the layer cache.
  cp -a "$images_dir/$name" "$ctx"
  if [[ -n $extra_ca && -d $ctx/certs ]]; then
    cp "$extra_ca" "$ctx/certs/extra-ca.crt"
  fi
  build_args=()
  if needs_binary "$name"; then
    if [[ -z ${STREAMSPACE_BINARY:-} ]]; then
      echo "build: $name needs STREAMSPACE_BINARY, a build of streamspace (make image sets it)" >&2
      exit 2
    fi
    # Docker's own name for the host's architecture, as buildx would set TARGETARCH.
    arch=$(docker version -f '{{.Server.Arch}}')
    "$here/stage-binary.sh" "$ctx" "$arch" "$STREAMSPACE_BINARY"
    build_args+=(--build-arg "TARGETARCH=$arch")
  fi
  log=/tmp/streamspace-build-$name.log
  echo "build: $tag (log: $log)" >&2
  start=$(now_ms)
  # --force-rm: a failed step must not leave its container behind.
  if ! docker build --force-rm "${build_args[@]}" -t "$tag" "$ctx" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "build: $tag FAILED after $((($(now_ms) - start) / 1000))s" >&2
    exit 1
  fi
  ms=$(($(now_ms) - start))
  size=$(docker image inspect -f '{{.Size}}' "$tag")
  report+=("$(printf '%-28s %4d.%ds %6d MB' "$tag" $((ms / 1000)) $((ms % 1000 / 100)) $((size / 1000000)))")
done

printf '%-28s %7s %9s\n' image time size
printf '%s\n' "${report[@]}"
ms=$(($(now_ms) - total_start))
printf 'build: %d image(s) in %d.%ds\n' "${#order[@]}" $((ms / 1000)) $((ms % 1000 / 100))
