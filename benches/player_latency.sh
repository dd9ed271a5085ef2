#!/usr/bin/env bash
# hls.js live latency in headless Chromium, over several fresh starts of one live stream.
#
# A real-time RTMP publish of a 720p30 source (x264 -bf 2, 2 s GOP, AAC, encoded once to
# a file as long as the whole run and copied out, so no encoder shares the machine with
# castline), the default
# ladder (or LADDER=0: transcode off, the source as its only video rendition). Then
# STARTS fresh Chromium + hls.js plays (default config, lowLatencyMode) of PLAY_SECONDS
# each, one after another, and for each, at its end:
#   hls.js latency: hls.js's own `latency` (live edge of its playlist - playhead);
#   behind publisher: wall clock - EXT-X-PROGRAM-DATE-TIME of the frame on screen
#     (castline anchors PDT at the first frame's arrival), which includes the transcode.
# Chromium is given SETTLE seconds after its launch before it plays: its start-up work
# on these 2 shared cores otherwise starves castline's transcoder, and where hls.js
# starts is where it stays (it does not speed up to catch up by default).
#
# HLS_CONFIG='{"maxLiveSyncPlaybackRate":1.5}' adds hls.js settings to the default config.
# CONFIG_TOML='[transcode]\nkeyframe_interval = 0.4' adds to castline's config.
# CASTLINE_NICE=-10 runs castline at that nice value (see below).
# DROP_EVERY=N drops one source frame in N (a timestamp hole, as from a publisher under load).
# LEVEL_CAP=N caps hls.js's ABR at level N (0 = the lowest rung), so the browser decodes less.
#
# Usage: benches/player_latency.sh   (STARTS=5 PLAY_SECONDS=20 SETTLE=4 LADDER=1 LEVEL_CAP=)
# Needs: target/release/castline (cargo build --release), ffmpeg, node + tests/player deps,
# chromium, curl, python3.
set -euo pipefail

STARTS="${STARTS:-5}"
PLAY="${PLAY_SECONDS:-20}"
SETTLE="${SETTLE:-4}"
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
CASTLINE="$ROOT/target/release/castline"
[[ -x "$CASTLINE" ]] || { echo "run cargo build --release first" >&2; exit 1; }
TMP="$(mktemp -d -t castline-playerlat.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

SRC="$TMP/source.flv"
# Long enough for every start, so the publish never loops: ffmpeg's -stream_loop with
# -c copy leaves a 45 ms hole in the presented video at each loop point (the B-frame
# delay of the next loop's first frame); the one stall caught in 16 starts was there.
SOURCE_SECONDS=$(( STARTS * (PLAY + SETTLE + 8) + 30 ))
# DROP_EVERY=N leaves out one frame in every N (its timestamp stays a hole), as a
# publisher that drops frames under load does.
DROP=()
if [[ -n "${DROP_EVERY:-}" ]]; then
  DROP=(-vf "select='not(eq(mod(n\,$DROP_EVERY)\,$((DROP_EVERY / 2))))'" -fps_mode passthrough)
fi
ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$SOURCE_SECONDS" "${DROP[@]}" \
  -c:v libx264 -preset veryfast -bf 2 -g 60 -b:v 4000k -c:a aac -b:a 128k "$SRC"

{
  echo "[server]"
  echo "data_dir = \"$TMP/data\""
  if [[ "${LADDER:-1}" == 0 ]]; then echo "[transcode]"; echo "enabled = false"; fi
  printf '%b\n' "${CONFIG_TOML:-}"
} >"$TMP/castline.toml"
RUST_LOG=warn "$CASTLINE" serve --config "$TMP/castline.toml" --rtmp-listen 127.0.0.1:0 \
  --srt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  >"$TMP/out" 2>"$TMP/err" &
PIDS+=($!)
# CASTLINE_NICE=-10 gives castline (all its threads) the CPU before Chromium, standing in
# for a player on its own device (here they share 2 cores). Needs root.
CASTLINE_PID=$!
renice_castline() { # every thread, those of the stream's transcoder too once it runs
  [[ -n "${CASTLINE_NICE:-}" ]] || return 0
  for t in /proc/$CASTLINE_PID/task/*; do
    renice -n "$CASTLINE_NICE" -p "${t##*/}" >/dev/null 2>&1 ||
      echo "warning: cannot renice castline thread ${t##*/} (root needed for a negative nice)" >&2
  done
}
renice_castline
for _ in $(seq 1 100); do
  RTMP="$(sed -n 's/^rtmp listening on //p' "$TMP/out")"
  HTTP="$(sed -n 's/^http listening on //p' "$TMP/out")"
  ADMIN="$(sed -n 's/^admin listening on //p' "$TMP/out")"
  [[ -n "$RTMP" && -n "$HTTP" && -n "$ADMIN" ]] && break
  sleep 0.1
done
[[ -n "$HTTP" ]] || { echo "castline did not start" >&2; cat "$TMP/err" >&2; exit 1; }

ffmpeg -nostdin -v error -re -i "$SRC" -c copy -f flv "rtmp://$RTMP/live/lat" &
PIDS+=($!)
URL="http://$HTTP/live/lat/index.m3u8"
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$URL" 2>/dev/null && break; sleep 0.1; done
sleep 5
renice_castline

echo "== hls.js latency, ladder=${LADDER:-1} ${CONFIG_TOML:-}, config ${HLS_CONFIG:-default}, castline nice ${CASTLINE_NICE:-0}, drop every ${DROP_EVERY:-none}, $STARTS starts of ${PLAY} s (settle ${SETTLE} s)"
for i in $(seq 1 "$STARTS"); do
  PLAYER_HLS_CONFIG="${HLS_CONFIG:-}" PLAYER_LEVEL_CAP="${LEVEL_CAP:-}" PLAYER_SETTLE_S="$SETTLE" node tests/player/play.mjs "$URL" "$PLAY" >"$TMP/play$i.json" 2>"$TMP/play$i.err" || true
  python3 - "$TMP/play$i.json" "$i" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"  start {sys.argv[2]}: hls.js latency {d.get('latency')} s, behind publisher {d.get('pdtLatency')} s, "
      f"stalls after start {d.get('stallsAfterStart')}, fatal {len(d.get('fatalErrors') or [])}")
for st in d.get("stalls") or []:
    print(f"    stall at page {st['t']} s, playhead {st['currentTime']:.2f} s, buffered ahead {st['bufferedAhead']}, latency {st['latency']}")
PY
done
curl -fsS "http://$ADMIN/metrics" >"$TMP/metrics"
python3 - "$TMP" "$STARTS" <<'PY'
import json, sys
tmp, n = sys.argv[1], int(sys.argv[2])
lat, pdt = [], []
for i in range(1, n + 1):
    d = json.loads(open(f"{tmp}/play{i}.json").read().strip().splitlines()[-1])
    if d.get("latency") is not None: lat.append(d["latency"])
    if d.get("pdtLatency") is not None: pdt.append(d["pdtLatency"])
def med(v):
    v = sorted(v); return v[len(v) // 2] if v else None
print(f"  hls.js latency: median {med(lat)} s, max {max(lat) if lat else None} s; "
      f"behind publisher: median {med(pdt)} s, max {max(pdt) if pdt else None} s")
names = {"castline_transcode_latency_seconds_bucket{": "from the socket",
         "castline_transcode_encode_latency_seconds_bucket{": "from the decoder"}
buckets = {}
for line in open(f"{tmp}/metrics"):
    name = next((n for n in names if line.startswith(n)), None)
    if name is None: continue
    le = line.split('le="')[1].split('"')[0]
    r = line.split('rendition="')[1].split('"')[0]
    buckets.setdefault((r, names[name]), []).append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
for (r, start), b in sorted(buckets.items()):
    b.sort(); total = b[-1][1]
    q = lambda p: next(le for le, c in b if c >= p * total)
    print(f"  transcode latency {r} ({start}): frames={total:g} p50<={q(0.5)*1000:g} ms p95<={q(0.95)*1000:g} ms")
PY
