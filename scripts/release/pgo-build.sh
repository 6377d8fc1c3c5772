#!/usr/bin/env bash
# Build the streamspace binary as it is published: release, optimized with a profile of its own hot paths
# (profile-guided optimization, ADR 0042). Prints the binary's path on stdout.
#
#   1. A build of the `dist` profile (release with fat LTO and one codegen unit), instrumented to count what
#      runs (-Cprofile-generate).
#   2. A training run: the quick benchmark (bench/run.sh, BENCH_QUICK=1, P1 and P2). It signs in, starts
#      sessions on the local Docker host and carries HTTP and WebSocket traffic through the session proxy.
#   3. The counts merged (llvm-profdata of the compiler's own LLVM), and the `dist` build again with them
#      (-Cprofile-use). rustc names the profile in its dependency info, so a new profile rebuilds everything.
#
# Needs what bench/run.sh needs (Docker, nginx, wrk; it installs them as root). About 40 minutes on 2 cores,
# most of it in the two single-threaded LTO links.
#
#   PGO_IN   a command prefix for the build side (cargo, rustc, rustup): the release workflow builds in a
#            Debian bookworm container, for the glibc of the published image (`docker exec` into one that
#            lives through the whole build, so what step 1 installs there serves step 3). The repository
#            must be at the same path inside it. Unset: build here.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$(dirname "$repo")/target}
pgo=$target_dir/pgo
# Made here, before the build side writes anything: a build side that runs as another user (root in a
# container) must not own the directory the training run writes its counts to.
mkdir -p "$pgo"
read -r -a build_side <<<"${PGO_IN:-}"

# On the build side, in the repository, with the target directory and the given flags.
build() { (cd "$repo" && "${build_side[@]}" env CARGO_TARGET_DIR="$target_dir" "$@"); }

triple=$(build rustc -vV | sed -n 's/^host: //p')
binary=$target_dir/$triple/dist/streamspace
# --target: the flags reach the binary's own code only, not build scripts and proc macros.
dist() { build RUSTFLAGS="$1" cargo build --profile dist --locked -p streamspace-cli --target "$triple" >&2; }

echo "pgo: 1/3 instrumented build" >&2
build "$repo/scripts/dev/build-deps.sh" >&2
dist "-Cprofile-generate=$pgo/raw"

echo "pgo: 2/3 training run" >&2
rm -rf "$pgo/raw"
mkdir -p "$pgo/raw"
# The run's own settings, whatever the caller's environment says (bench/run.sh calls this script).
env -u BENCH_PROFILE STREAMSPACE_BIN="$binary" LLVM_PROFILE_FILE="$pgo/raw/%m_%p.profraw" BENCH_QUICK=1 \
  BENCH_ONLY=p1,p2 BENCH_UPSTREAMS=fixture,echo BENCH_NICE=0 BENCH_OUT="$pgo/training.md" \
  CARGO_TARGET_DIR="$target_dir" "$repo/bench/run.sh" >&2
if ! compgen -G "$pgo/raw/*.profraw" >/dev/null; then
  echo "pgo: the training run wrote no profile" >&2
  exit 1
fi

echo "pgo: 3/3 optimized build" >&2
# shellcheck disable=SC2016 # expanded by the build side's shell
build sh -c 'set -e
  profdata="$(rustc --print sysroot)/lib/rustlib/$1/bin/llvm-profdata"
  [ -x "$profdata" ] || rustup component add llvm-tools >&2
  "$profdata" merge -o "$2/merged.profdata" "$2/raw"' sh "$triple" "$pgo"
dist "-Cprofile-use=$pgo/merged.profdata"
echo "$binary"
