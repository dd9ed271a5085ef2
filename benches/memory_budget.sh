#!/usr/bin/env bash
# Memory under many publishers, with and without the media budget bounding
# it, in one run: PUBLISHERS real ffmpeg publishers (160x120 x264 150 kbit/s +
# AAC 64 kbit/s, passthrough) for SECONDS; castline's RSS and store bytes
# every 5 s, first with hls.memory_budget_mb = BUDGET_MB, then with the
# default 8192 (which these streams never reach: the unbounded case).
#
# Usage: benches/memory_budget.sh   (PUBLISHERS=20 SECONDS_OF_VIDEO=60 BUDGET_MB=6)
# Needs: a castline binary (CASTLINE=..., default target/release/castline), ffmpeg, curl.
set -euo pipefail

N="${PUBLISHERS:-20}"
LEN="${SECONDS_OF_VIDEO:-60}"
BUDGET="${BUDGET_MB:-6}"
cd "$(dirname "$0")/.."
CASTLINE="${CASTLINE:-$(pwd)/target/release/castline}"
[[ -x "$CASTLINE" ]] || { echo "build castline first (cargo build --release)" >&2; exit 1; }
TMP="$(mktemp -d -t castline-memory.XXXXXX)"
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  pkill -f "rtmp://127.0.0.1:29350/live/m" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { curl -s 127.0.0.1:28081/metrics | awk -v m="$1" '$1 == m {print $2}'; }

run() { # budget_mb
  cat > "$TMP/c.toml" <<EOT
[ingest]
max_pending_per_address = 64
[transcode]
enabled = false
[hls]
memory_budget_mb = $1
EOT
  rm -rf "$TMP/data" && mkdir "$TMP/data"
  "$CASTLINE" serve --config "$TMP/c.toml" --rtmp-listen 127.0.0.1:29350 \
    --http-listen 127.0.0.1:28080 --admin-listen 127.0.0.1:28081 \
    --srt-listen 127.0.0.1:29000 --data-dir "$TMP/data" >/dev/null 2>"$TMP/log" &
  PID=$!
  sleep 1
  echo "memory_budget_mb = $1: idle RSS $(rss_kb $PID) kB"
  for i in $(seq 1 "$N"); do
    ffmpeg -nostdin -v error -re -f lavfi -i testsrc2=size=160x120:rate=30 \
      -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset ultrafast \
      -bf 2 -g 30 -sc_threshold 0 -b:v 150k -c:a aac -b:a 64k -t "$LEN" \
      -f flv "rtmp://127.0.0.1:29350/live/m$i" >/dev/null 2>&1 &
  done
  for s in $(seq 5 5 "$LEN"); do
    sleep 5
    echo "  t=${s}s RSS $(rss_kb $PID) kB, store $(metric castline_store_bytes) bytes"
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  wait
}

run "$BUDGET"
run 8192
