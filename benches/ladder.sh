#!/usr/bin/env bash
# The default ladder from a 720p30 source, in one run:
#   1. castline transcoding a real-time RTMP publish: CPU seconds per second of video,
#      and the added latency per rung (source frame off the socket -> encoded frame, and
#      decoded frame -> encoded frame, which leaves out the source's B-frame reorder delay);
#   2. the ffmpeg CLI doing the same decode, scale and encode (same x264 settings,
#      keyframe every second) on the same file: CPU seconds per second of video;
#   3. how many such streams castline keeps in real time at once (STREAMS="1 2 3").
#
# Usage: benches/ladder.sh   (SECONDS_OF_VIDEO=30 STREAMS="1 2 3" SOURCE_BFRAMES=2 by default)
# Needs: target/release/castline (cargo build --release; or CASTLINE=path), ffmpeg, curl, python3.
set -euo pipefail

LEN="${SECONDS_OF_VIDEO:-30}"
STREAMS="${STREAMS:-1 2 3}"
cd "$(dirname "$0")/.."
CASTLINE="${CASTLINE:-$(pwd)/target/release/castline}"
[[ -x "$CASTLINE" ]] || { echo "run cargo build --release first" >&2; exit 1; }
TMP="$(mktemp -d -t castline-ladder.XXXXXX)"
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# The source, encoded once (as OBS would: x264 with B-frames, 2 s GOP, AAC), so the
# publishers below only copy it out in real time.
SRC="$TMP/source.flv"
ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$LEN" \
  -c:v libx264 -preset veryfast -bf "${SOURCE_BFRAMES:-2}" -g 60 -b:v 4000k -c:a aac -b:a 128k "$SRC"

source benches/common.sh

start_castline() {
  RUST_LOG=warn "$CASTLINE" serve --rtmp-listen 127.0.0.1:0 --srt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 >"$TMP/out" 2>"$TMP/err" &
  PID=$!
  for _ in $(seq 1 100); do
    RTMP="$(sed -n 's/^rtmp listening on //p' "$TMP/out")"
    ADMIN="$(sed -n 's/^admin listening on //p' "$TMP/out")"
    [[ -n "$RTMP" && -n "$ADMIN" ]] && return
    sleep 0.1
  done
  echo "castline did not start" >&2; exit 1
}

metric() { # sum of a metric's samples whose line matches $1
  curl -fsS "http://$ADMIN/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'
}

echo "== 1+3. castline, default ladder (720p, 480p, 360p from 1280x720@30), ${LEN} s of video per stream"
for n in $STREAMS; do
  start_castline
  before="$(cpu_seconds "$PID")"
  pubs=()
  for i in $(seq 1 "$n"); do
    ffmpeg -nostdin -v error -re -i "$SRC" -c copy -f flv "rtmp://$RTMP/live/bench$i" &
    pubs+=($!)
  done
  wait "${pubs[@]}"
  sleep 2 # let the last frames through the encoders
  after="$(cpu_seconds "$PID")"
  dropped="$(metric castline_hub_dropped_events_total)"
  segments="$(metric castline_segments_total)"
  python3 - "$n" "$before" "$after" "$LEN" "$dropped" "$segments" <<'EOF'
import sys
n, before, after, length, dropped, segments = sys.argv[1:]
n, cpu, length = int(n), float(after) - float(before), float(length)
print(f"streams={n} cpu_s={cpu:.1f} cpu_s_per_video_s={cpu / (n * length):.3f} "
      f"(per stream) hub_events_dropped={dropped} segments={segments} "
      f"real_time={'yes' if float(dropped) == 0 else 'NO'}")
EOF
  if [[ "$n" == "$(echo "$STREAMS" | awk '{print $1}')" ]]; then
    curl -fsS "http://$ADMIN/metrics" | python3 -c '
import re, sys
rows = {}
names = {"castline_transcode_latency_seconds_bucket{": "from the socket",
         "castline_transcode_encode_latency_seconds_bucket{": "from the decoder"}
for line in sys.stdin:
    name = next((n for n in names if line.startswith(n)), None)
    if name is None: continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line))
    le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
    rows.setdefault((labels["rendition"], names[name]), []).append((le, int(line.split()[-1])))
for (r, start), b in sorted(rows.items()):
    b.sort(); total = b[-1][1]
    q = lambda p: next(le for le, c in b if c >= p * total)
    print(f"  transcode latency {r} ({start}): frames={total} p50<={q(0.5)*1000:g} ms p95<={q(0.95)*1000:g} ms p99<={q(0.99)*1000:g} ms")
'
  fi
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done

echo "== 2. ffmpeg CLI, the same ladder and x264 settings, same file (as fast as it goes)"
X264="-preset veryfast -tune zerolatency -profile:v high -bf 0 -g 300 -x264-params scenecut=0:open-gop=0:rc-lookahead=0 -force_key_frames expr:gte(t,n_forced*1)"
CMD=(ffmpeg -nostdin -v error -i "$SRC" -filter_complex
  "[0:v]split=3[a][b][c];[a]scale=1280:720:flags=bilinear[v1];[b]scale=854:480:flags=bilinear[v2];[c]scale=640:360:flags=bilinear[v3]"
  -map "[v1]" -c:v libx264 $X264 -b:v 3000k -maxrate 3000k -bufsize 3000k -f null -
  -map "[v2]" -c:v libx264 $X264 -b:v 1200k -maxrate 1200k -bufsize 1200k -f null -
  -map "[v3]" -c:v libx264 $X264 -b:v 700k -maxrate 700k -bufsize 700k -f null -)
echo "  ${CMD[*]}"
/usr/bin/time -f "%U %S %e" -o "$TMP/time" "${CMD[@]}"
read -r u s e <"$TMP/time"
python3 -c "u,s,e,l=$u,$s,$e,$LEN; print(f'  ffmpeg cpu_s={u+s:.1f} cpu_s_per_video_s={(u+s)/l:.3f} wall_s={e:.1f}')"
