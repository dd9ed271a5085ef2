#!/usr/bin/env bash
# Ingest cost, SRT against RTMP, in one run: castline's CPU seconds per second
# of media for STREAMS streams of the same 6 Mbit/s 720p30 source (x264 with
# B-frames + AAC, encoded once), published in real time over RTMP (FLV) and
# then over SRT (MPEG-TS). The ladder is off (transcode.enabled = false): the
# figure is ingest, demux and packaging, which is what differs by protocol.
#
# Usage: benches/ingest_cost.sh   (SECONDS_OF_VIDEO=30 STREAMS=4 by default)
# Needs: target/release/castline (cargo build --release), ffmpeg, python3.
set -euo pipefail

LEN="${SECONDS_OF_VIDEO:-30}"
N="${STREAMS:-4}"
cd "$(dirname "$0")/.."
CASTLINE="$(pwd)/target/release/castline"
[[ -x "$CASTLINE" ]] || { echo "run cargo build --release first" >&2; exit 1; }
TMP="$(mktemp -d -t castline-ingest.XXXXXX)"
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

SRC="$TMP/source.ts"
ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$LEN" \
  -c:v libx264 -preset veryfast -bf 2 -g 60 -b:v 6000k -minrate 6000k -maxrate 6000k \
  -bufsize 6000k -x264-params nal-hrd=cbr -c:a aac -b:a 128k "$SRC"
ffmpeg -nostdin -v error -i "$SRC" -c copy "$TMP/source.flv"
printf '[transcode]\nenabled = false\n' >"$TMP/castline.toml"

source benches/common.sh

run() { # protocol -> prints "cpu_per_stream_second"
  local proto="$1"
  RUST_LOG=warn "$CASTLINE" serve --config "$TMP/castline.toml" --rtmp-listen 127.0.0.1:0 \
    --srt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$TMP/out" 2>"$TMP/err" &
  PID=$!
  local rtmp="" srt=""
  for _ in $(seq 1 100); do
    rtmp="$(sed -n 's/^rtmp listening on //p' "$TMP/out")"
    srt="$(sed -n 's/^srt listening on //p' "$TMP/out")"
    [[ -n "$rtmp" && -n "$srt" ]] && break
    sleep 0.1
  done
  local before after pubs=()
  before="$(cpu_seconds "$PID")"
  for i in $(seq 1 "$N"); do
    if [[ "$proto" == srt ]]; then
      ffmpeg -nostdin -v error -re -i "$SRC" -c copy -f mpegts "srt://$srt?streamid=s$i" &
    else
      ffmpeg -nostdin -v error -re -i "$TMP/source.flv" -c copy -f flv "rtmp://$rtmp/live/s$i" &
    fi
    pubs+=($!)
  done
  wait "${pubs[@]}"
  sleep 1
  after="$(cpu_seconds "$PID")"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  python3 -c "print(f'{($after - $before) / ($N * $LEN):.4f}')"
}

echo "== castline ingest cost, $N streams of 6 Mbit/s 720p30 + AAC, ${LEN} s each (transcode off)"
RTMP_COST="$(run rtmp)"
echo "RTMP: $RTMP_COST CPU-s per stream-second"
SRT_COST="$(run srt)"
echo "SRT:  $SRT_COST CPU-s per stream-second"
python3 -c "print(f'SRT / RTMP: {$SRT_COST / $RTMP_COST:.2f}')"
