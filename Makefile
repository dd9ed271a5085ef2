# castline: two commands on a fresh Debian/Ubuntu machine.
#   make run   - install what is missing, build (release), start castline serve
#   make test  - install what is missing, then the whole test suite
SHELL := /bin/bash
CARGO ?= cargo
# command:debian-package. A package is installed only when its command is missing
# (so a Node.js from NodeSource, which bundles npm, is left alone).
TEST_TOOLS := ffmpeg:ffmpeg ffprobe:ffmpeg chromium:chromium node:nodejs npm:npm cvlc:vlc curl:curl openssl:openssl varnishd:varnish nginx:nginx promtool:prometheus python3:python3 gst-launch-1.0:gstreamer1.0-tools
BENCH_TOOLS := wrk:wrk h2load:nghttp2-client
# Libraries the build links (FFmpeg 5.1 through ffmpeg-next) and bindgen's
# libclang: Debian packages without a command, checked with dpkg.
BUILD_PACKAGES := pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev \
	libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev
# Test-only Debian packages without a command of their own: GStreamer's
# plugins for the second real publisher (tests/gstreamer.rs: rtmp2sink,
# flvmux, x264enc, voaacenc).
TEST_PACKAGES := gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
CONFIG ?= config/castline.toml

.PHONY: run test deps deps-system deps-bench deps-node build bench lint fmt clean

deps: deps-system deps-node

# Installs only what is missing; runs `apt-get update` once, non-interactively.
define install_missing
	@missing=""; \
	for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
	done; \
	for pkg in $(BUILD_PACKAGES) $(TEST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }
endef

deps-system:
	$(call install_missing,$(TEST_TOOLS))

deps-bench:
	$(call install_missing,$(TEST_TOOLS) $(BENCH_TOOLS))

deps-node:
	@cd tests/player && { [ -d node_modules/hls.js ] && [ -d node_modules/playwright-core ] && [ -d node_modules/shaka-player ] || npm ci --no-audit --no-fund; }

build:
	$(CARGO) build --release

run: deps-system build
	./target/release/castline serve --config $(CONFIG)

test: deps
	$(CARGO) test --all-targets --no-fail-fast

bench: deps-bench
	$(CARGO) bench --bench packaging
	$(CARGO) build --release
	$(CARGO) run --release --example part_latency 30 rtmp passthrough
	$(CARGO) run --release --example part_latency 30 srt passthrough
	bash benches/ingest_cost.sh
	bash benches/memory_budget.sh
	bash benches/origin_vs_nginx.sh
	bash benches/request_ceiling.sh
	bash benches/llhls_players.sh 1000 10000
	RAMP=0 bash benches/llhls_players.sh 3000
	BITRATE=2500k bash benches/llhls_players.sh 1000
	bash benches/ladder.sh
	STARTS=8 bash benches/player_latency.sh
	CASTLINE_NICE=-10 STARTS=8 bash benches/player_latency.sh
	bash benches/player_qoe.sh
	bash benches/origin_tier.sh
	bash benches/failover.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
	rm -rf tests/player/node_modules
