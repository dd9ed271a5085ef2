#!/usr/bin/env bash
# Quality of experience per player and per config: several fresh starts of hls.js and
# Shaka Player (headless Chromium) on one live stream, on the default ladder and on
# passthrough, each with parts as their own files (the default) and as byte ranges of
# their segment (`hls.part_addressing = "byteranges"`, configs `*-byteranges`).
#
# A real-time RTMP publish of a 720p30 source (x264 -bf 2, 2 s GOP, AAC), encoded once
# to a file as long as the run and copied out, so no encoder shares the machine with
# castline. For each config (ladder, passthrough) castline starts afresh; then for each
# player STARTS fresh plays of PLAY_SECONDS each, one after another:
#   hlsjs          hls.js 1.7, lowLatencyMode (its defaults)
#   shaka          Shaka 5.2.12, lowLatencyMode (its defaults: HLS segments mode)
#   shaka-seq      Shaka 5.2.12, lowLatencyMode + manifest.hls.sequenceMode (the advice
#                  of Shaka's maintainers for 5.2.x, see tests/playback_shaka.rs)
# The DVR window is DVR_WINDOW seconds (default 10) and the first player starts once
# the first segment has left it: a viewer joining a stream that has been live longer
# than its window, the common case, and the one where Shaka's presentation time (0 at
# the earliest segment listed) and the media time part (see tests/playback_shaka.rs).
# It prints per player: startup (page load to first frame playing), behind publisher
# (wall clock - PROGRAM-DATE-TIME of the playhead, sampled each second after the start)
# p50/p95, stalls after the start, and the rebuffer ratio (time stalled / time since the
# start), over all starts.
#
# VIA=varnish puts the shipped docker/cdn/varnish/castline.vcl (varnishd on a port of its
# own) between the players and castline: the latency a viewer behind that cache gets.
#
# Usage: benches/player_qoe.sh   (STARTS=3 PLAY_SECONDS=30 SETTLE=4 PLAYERS="hlsjs shaka shaka-seq"
#                                 CONFIGS="ladder passthrough ladder-byteranges passthrough-byteranges"
#                                 VIA=direct|varnish)
# Needs: target/release/castline (cargo build --release), ffmpeg, node + tests/player deps,
# chromium, curl, python3 (and varnishd for VIA=varnish).
set -euo pipefail

STARTS="${STARTS:-3}"
PLAY="${PLAY_SECONDS:-30}"
SETTLE="${SETTLE:-4}"
PLAYERS="${PLAYERS:-hlsjs shaka shaka-seq}"
CONFIGS="${CONFIGS:-ladder passthrough ladder-byteranges passthrough-byteranges}"
VIA="${VIA:-direct}"
[[ "$VIA" == direct || "$VIA" == varnish ]] || { echo "VIA is direct or varnish" >&2; exit 1; }
cd "$(dirname "$0")/.."
[[ -x target/release/castline ]] || { echo "run cargo build --release first" >&2; exit 1; }
source benches/common.sh
TMP="$(mktemp -d -t castline-qoe.XXXXXX)"
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT

NPLAYERS=$(wc -w <<<"$PLAYERS")
SOURCE_SECONDS=$(( NPLAYERS * STARTS * (PLAY + SETTLE + 10) + ${DVR_WINDOW:-10} + 40 ))
SRC="$TMP/source.flv"
ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$SOURCE_SECONDS" \
  -c:v libx264 -preset veryfast -bf 2 -g 60 -b:v 4000k -c:a aac -b:a 128k "$SRC"

for CONFIG in $CONFIGS; do
  mkdir -p "$TMP/$CONFIG"
  {
    echo "[hls]"
    echo "dvr_window = ${DVR_WINDOW:-10}.0"
    if [[ "$CONFIG" == *byteranges ]]; then echo 'part_addressing = "byteranges"'; fi
    if [[ "$CONFIG" == passthrough* ]]; then echo "[transcode]"; echo "enabled = false"; fi
  } >"$TMP/$CONFIG/castline.toml"
  RUST_LOG=warn start_castline "$TMP/$CONFIG/castline.toml" "$TMP/$CONFIG/data"
  PIDS+=("$CASTLINE")
  [[ -n "$HTTP" ]] || { echo "castline did not start" >&2; cat "$TMP/$CONFIG/data.err" >&2; exit 1; }
  ffmpeg -nostdin -v error -re -i "$SRC" -c copy -f flv "rtmp://$RTMP/live/qoe" &
  PIDS+=($!)
  URL="http://$HTTP/live/qoe/index.m3u8"
  if [[ "$VIA" == varnish ]]; then
    # The shipped VCL, its backend moved to this castline.
    VPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sed "s/\.port = \"8080\";/.port = \"${HTTP##*:}\";/" docker/cdn/varnish/castline.vcl >"$TMP/$CONFIG/castline.vcl"
    chmod 755 "$TMP" "$TMP/$CONFIG"
    varnishd -F -a "127.0.0.1:$VPORT" -f "$TMP/$CONFIG/castline.vcl" -n "$TMP/$CONFIG/varnish" \
      -s malloc,256m -p backend_idle_timeout=8 >"$TMP/$CONFIG/varnish.log" 2>&1 &
    PIDS+=($!)
    URL="http://127.0.0.1:$VPORT/live/qoe/index.m3u8"
  fi
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$URL" 2>/dev/null && break; sleep 0.1; done
  sleep $(( ${DVR_WINDOW:-10} + 8 ))
  for P in $PLAYERS; do
    case "$P" in
      hlsjs) ENV=(PLAYER=hlsjs) ;;
      shaka) ENV=(PLAYER=shaka) ;;
      shaka-seq) ENV=(PLAYER=shaka 'PLAYER_SHAKA_CONFIG={"manifest":{"hls":{"sequenceMode":true}}}') ;;
      *) echo "unknown player $P" >&2; exit 1 ;;
    esac
    for i in $(seq 1 "$STARTS"); do
      env "${ENV[@]}" PLAYER_SETTLE_S="$SETTLE" node tests/player/play.mjs "$URL" "$PLAY" \
        >"$TMP/$CONFIG/$P.$i.json" 2>"$TMP/$CONFIG/$P.$i.err" || true
    done
  done
  stop_all
done

python3 - "$TMP" "$STARTS" "$PLAYERS" "$CONFIGS" "$PLAY" "$VIA" <<'PY'
import json, sys
tmp, n, players, configs, play, via = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split(), sys.argv[5], sys.argv[6]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else None
print(f"== player QoE ({via}): {n} fresh starts of {play} s per player and config (720p30 source, 2 s GOP; joined after the DVR window slid)")
print("| config | player | started | startup p50 (s) | behind publisher p50 / p95 (s) | stalls after start | time stalled (s) | rebuffer ratio | fatal errors |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for c in configs:
    for p in players:
        runs = []
        for i in range(1, n + 1):
            try:
                runs.append(json.loads(open(f"{tmp}/{c}/{p}.{i}.json").read().strip().splitlines()[-1]))
            except Exception:
                runs.append({})
        started = sum(1 for r in runs if r.get("started"))
        startup = [r["startupSeconds"] for r in runs if r.get("startupSeconds") is not None]
        behind = [x for r in runs for x in (r.get("behindSamples") or [])]
        stalls = sum(r.get("stallsAfterStart") or 0 for r in runs)
        stalled = sum(r.get("stalledSeconds") or 0 for r in runs)
        played = sum(max(0.0, (r.get("playedSeconds") or 0)) for r in runs)
        fatal = sum(len(r.get("fatalErrors") or []) for r in runs)
        ratio = stalled / (played + stalled) if played + stalled > 0 else None
        b50, b95 = pct(behind, 0.5), pct(behind, 0.95)
        print(f"| {c} | {p} | {started}/{n} | {pct(startup, 0.5)} | {b50} / {b95} | {stalls} | {stalled:.2f} | "
              f"{'-' if ratio is None else f'{ratio * 100:.2f} %'} | {fatal} |")
PY
