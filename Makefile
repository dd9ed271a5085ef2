# castline: two commands on a fresh Debian/Ubuntu machine.
#   make run   - install what is missing, build (release), start castline serve
#   make test  - install what is missing, then the whole test suite
SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := ffmpeg chromium nodejs npm pkg-config
CONFIG ?= config/castline.toml

.PHONY: run test deps deps-system deps-node build bench lint fmt clean

deps: deps-system deps-node

# Installs only what is missing; runs `apt-get update` once, non-interactively.
deps-system:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }

deps-node:
	@cd tests/player && { [ -d node_modules/hls.js ] && [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund; }

build:
	$(CARGO) build --release

run: deps-system build
	./target/release/castline serve --config $(CONFIG)

test: deps
	$(CARGO) test --all-targets --no-fail-fast

bench: deps-system
	$(CARGO) bench --bench packaging
	$(CARGO) build --release
	$(CARGO) run --release --example part_latency 30
	bash benches/origin_vs_nginx.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
	rm -rf tests/player/node_modules
