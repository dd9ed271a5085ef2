#!/usr/bin/env bash
# The origin tier on one machine: an ingest node pushing one stream (a
# 1280x720 x264 publish from ffmpeg, transcode off, so the push is not lost
# in the ladder's cost) to 1, 2 and 4 origins, against role `all` doing
# the same alone. Everything on 127.0.0.1 and this machine's cores.
#
# Per run: the ingest process's CPU seconds over WINDOW seconds of the
# stream; push latency p50/p99 (an object made on the ingest node → the
# origin's answer, from castline_push_latency_seconds, all origins);
# part-ready p50/p99 on the packager (newest frame in → part handed on).
# Then PLAYERS LL-HLS players (benches/llhls_load.rs) for WINDOW seconds
# against one origin, and against role `all`: the serving process's CPU.
#
# Usage: benches/origin_tier.sh            WINDOW=20 PLAYERS=1000 ORIGINS="1 2 4"
# Needs target/release/{castline,llhls-load} (cargo build --release) and ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
WINDOW="${WINDOW:-20}"
PLAYERS="${PLAYERS:-1000}"
ORIGINS=(${ORIGINS:-1 2 4})
SECRET="a-push-secret-for-the-bench"
[[ -x target/release/castline && -x target/release/llhls-load ]] || {
  echo "run cargo build --release first" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" || true
TMP="$(mktemp -d -t castline-tier.XXXXXX)"
PIDS=()
trap 'kill ${PIDS[@]:-} ${FFMPEG:-} 2>/dev/null || true; wait 2>/dev/null; rm -rf "$TMP"' EXIT

# quantiles METRICS_URL HISTOGRAM: p50 and p99 in ms over every series.
quantiles() {
  curl -s "$1" | python3 -c '
import sys
name = sys.argv[1]
buckets = {}
for l in sys.stdin:
    if l.startswith(name + "_bucket{"):
        le = l.split("le=\"")[1].split("\"")[0]
        le = float("inf") if le == "+Inf" else float(le)
        buckets[le] = buckets.get(le, 0) + float(l.split()[-1])
edges = sorted(buckets)
total = buckets[float("inf")] if buckets else 0
def q(p):
    if not total: return "n/a"
    want, lo, below = p * total, 0.0, 0.0
    for e in edges:
        if buckets[e] >= want:
            if e == float("inf"): return ">%g" % (lo * 1000)
            return "%.2f" % ((lo + (e - lo) * (want - below) / max(buckets[e] - below, 1e-9)) * 1000)
        lo, below = e, buckets[e]
print("p50=%sms p99=%sms n=%d" % (q(0.5), q(0.99), total))' "$2"
}

publish() { # to rtmp://$1, 720p30 x264 with B-frames + AAC, in the background
  ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset ultrafast -g 60 \
    -b:v 2500k -bf 2 -c:a aac -b:a 128k -t 3600 -f flv "rtmp://$1/live/tier" &
  FFMPEG=$!
}

wait_live() { # until http://$1 serves the stream's playlist
  for _ in $(seq 150); do
    curl -sf "http://$1/live/tier/source/index.m3u8" > /dev/null && return
    sleep 0.2
  done
  echo "the stream never appeared on $1" >&2; exit 1
}

load() { # PLAYERS players against http://$1; prints the serving process's CPU
  local before after result
  before=$(cpu_seconds "$2")
  result=$(target/release/llhls-load --url "http://$1/live/tier/source/index.m3u8" \
    --players "$PLAYERS" --seconds "$WINDOW" --ramp 2)
  after=$(cpu_seconds "$2")
  echo "players=$PLAYERS serving_cpu_s=$(python3 -c "print(round($after-$before,2))") $result"
}

run() { # N origins (0: role all alone)
  local n=$1 origins=() urls=() first_http="" ingest_pid
  PIDS=()
  for i in $(seq 1 "$n"); do
    printf '[transcode]\nenabled = false\n[cluster]\nrole = "origin"\nlisten = "127.0.0.1:0"\nsecret = "%s"\n' \
      "$SECRET" > "$TMP/origin$i.toml"
    start_castline "$TMP/origin$i.toml" "$TMP/origin$i-$n"
    PIDS+=("$CASTLINE")
    origins+=("\"http://$(awk '/^push listening/ {print $4}' "$TMP/origin$i-$n.out")\"")
    [[ -z "$first_http" ]] && first_http=$HTTP && ORIGIN_PID=$CASTLINE
  done
  if (( n == 0 )); then
    printf '[transcode]\nenabled = false\n' > "$TMP/ingest.toml"
  else
    printf '[transcode]\nenabled = false\n[cluster]\nrole = "ingest"\norigins = [%s]\nsecret = "%s"\n' \
      "$(IFS=,; echo "${origins[*]}")" "$SECRET" > "$TMP/ingest.toml"
  fi
  start_castline "$TMP/ingest.toml" "$TMP/ingest-$n"
  ingest_pid=$CASTLINE
  PIDS+=("$ingest_pid")
  [[ -z "$first_http" ]] && first_http=$HTTP && ORIGIN_PID=$CASTLINE
  publish "$RTMP"
  wait_live "$first_http"
  sleep 3
  local before after
  before=$(cpu_seconds "$ingest_pid")
  sleep "$WINDOW"
  after=$(cpu_seconds "$ingest_pid")
  local role="ingest->$n origins"; (( n == 0 )) && role="all (alone)"
  echo "role=$role ingest_cpu_s_per_s=$(python3 -c "print(round(($after-$before)/$WINDOW,3))")" \
    "push_latency[$(quantiles "http://$ADMIN/metrics" castline_push_latency_seconds)]" \
    "part_ready[$(quantiles "http://$ADMIN/metrics" castline_part_ready_seconds)]"
  if (( n <= 1 )); then
    echo "  serving from $([[ $n == 0 ]] && echo 'role all' || echo 'the origin'): $(load "$first_http" "$ORIGIN_PID")"
  fi
  kill "$FFMPEG" "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}

run 0
for n in "${ORIGINS[@]}"; do run "$n"; done
