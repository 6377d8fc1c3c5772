#!/usr/bin/env bash
# `make test` lints while it compiles, through RUSTC_WORKSPACE_WRAPPER=clippy-driver and CLIPPY_ARGS
# (ADR 0036). Were that hand-over to stop working (a new toolchain changing CLIPPY_ARGS's form, the
# variables not reaching cargo), the build would pass without linting. This proves it denies a lint.
set -euo pipefail

: "${RUSTC_WORKSPACE_WRAPPER:?set by make test}" "${CLIPPY_ARGS:?set by make test}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if printf 'pub fn f() -> u32 {\n    return 1;\n}\n' |
  "$RUSTC_WORKSPACE_WRAPPER" --edition 2024 --crate-type lib --emit metadata --out-dir "$out" - 2>"$out/log"; then
  echo "check-clippy-wrapper: $RUSTC_WORKSPACE_WRAPPER with CLIPPY_ARGS=$CLIPPY_ARGS let a lint pass; make test would not lint" >&2
  exit 1
fi
if ! grep -q "clippy::needless-return" "$out/log"; then
  echo "check-clippy-wrapper: $RUSTC_WORKSPACE_WRAPPER failed, but not on the lint:" >&2
  cat "$out/log" >&2
  exit 1
fi
