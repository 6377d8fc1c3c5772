# StreamSpace: `make up` runs the product, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Build output lives outside the clone so every checkout on this machine reuses it.
export CARGO_TARGET_DIR ?= $(abspath $(CURDIR)/../target)
CARGO ?= cargo

# The PostgreSQL that scripts/dev/postgres-up.sh starts; `make test` takes the URL from the script itself.
export STREAMSPACE_TEST_DATABASE_URL ?= postgres://streamspace:streamspace@127.0.0.1:5432/streamspace

.PHONY: help up build bin ui images services test test-all test-needing-services build-tests lint fmt-check test-rust test-unit test-store test-api test-e2e test-sessions \
	test-ui ui-api idp-deps image test-image test-images test-streaming test-sharing test-journey test-hostile test-sso test-api-fuzz openapi-check test-helm crds \
	test-prometheus bench-pools bench-agents bench-replicas bench-api

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

up: ui ## Run everything in one process: UI + API on :8000, sessions on :8001, a Docker agent, SQLite in ./data
	scripts/dev/build-deps.sh
	scripts/images/docker-up.sh
	@# The first template's image before the product starts; the others build meanwhile (a cached build takes seconds).
	scripts/images/build.sh chromium
	@echo "make up: building the firefox and desktop images in the background (log: /tmp/streamspace-images.log)"
	scripts/images/build.sh firefox desktop >/tmp/streamspace-images.log 2>&1 &
	$(CARGO) run --release -p streamspace-cli -- up

build: ui ## Build the streamspace binary (release), UI included
	scripts/dev/build-deps.sh
	$(CARGO) build --release -p streamspace-cli

build-pgo: ui ## Build the streamspace binary as published: release, profile-guided by a training run (about 40 minutes, needs Docker; ADR 0042)
	scripts/release/pgo-build.sh

# The binary is the one cargo links for the CLI's own end-to-end tests, so one build serves every test: a plain
# `cargo build -p streamspace-cli` resolves the dependencies' features without the tests' and compiled about
# 70 crates a second time (4 minutes of a clean CI run).
bin: build-tests ## Build the debug streamspace binary (UI embedded as in release) that the end-to-end suites run

ui/node_modules/.package-lock.json: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund

# Built again only when a source changed: a new ui/dist makes cargo compile the server again.
UI_SOURCES := $(shell find ui/src ui/public -type f 2>/dev/null) $(wildcard ui/index.html ui/*.config.* ui/tsconfig*.json)

ui/dist/index.html: ui/node_modules/.package-lock.json $(UI_SOURCES)
	cd ui && npm run build

ui: ui/dist/index.html ## Build the web UI into ui/dist (embedded by the next cargo build)

# The identity providers the SSO tests start (npm oidc-provider and samlify; the host's npm config picks the registry).
tests/idp/oidc/node_modules/.package-lock.json: tests/idp/oidc/package-lock.json
	cd tests/idp/oidc && npm ci --no-audit --no-fund

tests/idp/saml/node_modules/.package-lock.json: tests/idp/saml/package-lock.json
	cd tests/idp/saml && npm ci --no-audit --no-fund

idp-deps: tests/idp/oidc/node_modules/.package-lock.json tests/idp/saml/node_modules/.package-lock.json ## Install the npm packages of the test identity providers (OIDC and SAML)

images: ## Build the session images (Debian base bootstrapped locally when no registry answers)
	scripts/images/docker-up.sh
	scripts/images/build.sh

image: build ## Build the control plane's image streamspace/streamspace:latest around the release binary
	STREAMSPACE_BINARY=$(CARGO_TARGET_DIR)/release/streamspace scripts/images/build.sh streamspace

services: ## Install and start what the tests need: packages, Docker, PostgreSQL, the session images
	scripts/ci/install-deps.sh
	scripts/images/docker-up.sh
	scripts/dev/postgres-up.sh >/dev/null
	scripts/images/build.sh

IMAGES_LOG := /tmp/streamspace-images.log

# The session images build (downloads and unpacking, mostly) while the code compiles and the checks
# that need no service run; the tests start once both are done. No test may skip for want of a
# service here (see crates/store/tests/postgres.rs).
#
# Clippy's lints run while the tests compile: clippy-driver (rustc with clippy's lints, what `cargo clippy`
# runs) compiles the workspace's own crates, CLIPPY_ARGS in the form cargo-clippy hands it, so the
# dependencies compile once rather than a second time in check mode (10 minutes on an empty 2-core
# machine). `cargo test --no-run` builds every target `cargo clippy --all-targets` checks but benches, and
# there are none. Every cargo command under `make test` inherits the wrapper, so none compiles the
# workspace again without it; scripts/ci/check-clippy-wrapper.sh first proves that the wrapper denies a lint.
test: export RUSTC_WORKSPACE_WRAPPER := clippy-driver
test: export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
test: ## Run every test, after installing and starting what they need
	scripts/ci/install-deps.sh
	scripts/images/docker-up.sh
	@echo "make test: building the session images in the background (log: $(IMAGES_LOG))"
	@scripts/images/build.sh >$(IMAGES_LOG) 2>&1 & images=$$!; \
	  $(MAKE) --no-print-directory fmt-check test-ui ui build-tests bin; compiled=$$?; \
	  if ! wait $$images; then tail -n 40 $(IMAGES_LOG); echo "make test: the session images failed"; exit 1; fi; \
	  cat $(IMAGES_LOG); exit $$compiled
	eval "$$(scripts/dev/postgres-up.sh)" && STREAMSPACE_REQUIRE_SERVICES=1 $(MAKE) --no-print-directory test-needing-services

test-all: lint test-ui ui test-needing-services ## Every test, on a machine `make services` has set up

test-needing-services: test-rust openapi-check test-api-fuzz test-helm test-prometheus test-images test-streaming test-sharing test-journey test-hostile test-sso

lint: fmt-check ## rustfmt and clippy, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt-check: ## rustfmt's check alone
	$(CARGO) fmt --all -- --check

# The server's tests check the UI it embeds: ui/dist exists before they compile, even under `make -j`.
test-rust test-api: ui idp-deps

test-rust: ## All Rust tests: unit, store conformance, API, agents, Docker, sessions end to end
	$(CARGO) nextest run --workspace --no-fail-fast

build-tests: ui idp-deps ## Compile every Rust test (what test-rust runs), running none
	@if [[ -n "$$CLIPPY_ARGS" ]]; then scripts/ci/check-clippy-wrapper.sh; fi
	$(CARGO) nextest run --workspace --no-run

test-unit: ## Unit tests only
	$(CARGO) nextest run --workspace --lib

test-store: ## Store conformance suite on SQLite and PostgreSQL
	$(CARGO) nextest run -p streamspace-store

test-api: ## API tests through the real router
	$(CARGO) nextest run -p streamspace-server --test api

test-e2e: ## End-to-end tests against the built binary (real Docker for sessions)
	$(CARGO) nextest run -p streamspace-cli

test-sessions: ## Sessions end to end: agent, Docker, proxy (needs the fixture image)
	$(CARGO) nextest run -p streamspace-cli --test sessions

test-ui: ui/node_modules/.package-lock.json ## UI typecheck, lint and unit tests; the UI's API types match ui/openapi.json
	cd ui && npm run check:api && npm run typecheck && npm run lint && npm test

ui-api: ui/node_modules/.package-lock.json ## Regenerate ui/openapi.json from the server and the UI's API types from it
	$(CARGO) run -q -p streamspace-cli -- openapi > ui/openapi.json
	cd ui && npm run gen:api

test-streaming: bin ## Live streaming in headless Chromium through the proxy, for every streaming image
	tests/e2e/streaming/run.sh

test-sharing: bin ## Sharing a session with a viewer and a collaborator, in two headless Chromium browsers
	tests/e2e/sharing/run.sh

test-journey: bin ## The UI journey in headless Chromium against `streamspace up` with its Docker agent
	ui/e2e/run-journey.sh

test-hostile: bin ## A hostile session attacks another session and the UI's credentials, in headless Chromium
	tests/e2e/hostile/run.sh

bench-pools: bin ## Click to first decoded frame, median of 20, with and without a warm pool (bench/pools)
	bench/pools/run.sh

bench-agents: ## 1,000 simulated agents on one control plane, SQLite and PostgreSQL: memory, CPU, command latency (bench/scale.sh)
	bench/scale.sh agents

bench-replicas: ## GET and POST /api/v1/sessions with wrk on 3 replicas on PostgreSQL, and on one alone (bench/scale.sh)
	bench/scale.sh replicas

bench-api: ## Target P4: GET /api/v1/sessions with wrk, 100 sessions, one control plane on SQLite (bench/scale.sh)
	bench/scale.sh api

test-sso: bin ## Single sign-on through the UI in headless Chromium against the OIDC and SAML test identity providers
	tests/e2e/sso/run.sh

# The smoke tests check what the control plane's image holds and how it runs as the chart runs it, not the
# compiler's optimizations: they take the image around the debug binary the other suites run, which spares
# `make test` a release build (12 minutes on an empty 2-core machine). `make image` builds the release one.
test-image: bin ## Build streamspace/streamspace:latest around the debug binary, for the image smoke tests
	STREAMSPACE_BINARY=$(CARGO_TARGET_DIR)/debug/streamspace scripts/images/build.sh streamspace

test-images: test-image ## Image smoke tests (session images and the control plane's), SBOM validation, release workflow lint
	scripts/images/smoke_test.py
	scripts/images/check-sbom.sh
	scripts/images/lint-workflow.sh

test-api-fuzz: bin ## Property-based API tests from the OpenAPI document (schemathesis): no 5xx, responses as documented
	scripts/ci/api-fuzz.sh

test-helm: ## The Helm chart rendered and linted by Helm's engine, validated against the Kubernetes schemas
	scripts/ci/helm-test.sh

test-prometheus: ## Alert rules: promtool checks them and runs their unit tests (deploy/prometheus/tests), one per alert
	scripts/ci/prometheus-test.sh

crds: ## Regenerate the chart's CRDs (deploy/helm/streamspace/crds) from the Rust types
	$(CARGO) run -q -p streamspace-cli -- kubernetes crds --dir deploy/helm/streamspace/crds

openapi-check: bin ## Validate the generated OpenAPI document with an independent validator; ui/openapi.json is current
	scripts/ci/openapi-check.sh
