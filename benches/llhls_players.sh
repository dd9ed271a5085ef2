#!/usr/bin/env bash
# N LL-HLS players (benches/llhls_load.rs, `llhls-load`) against castline's
# origin, a 320x240 publish from ffmpeg at BITRATE, transcode off (the
# rendition is the source), everything on 127.0.0.1 and on this machine's
# cores: castline, ffmpeg and the load generator share them.
#
# Usage: benches/llhls_players.sh [PLAYERS ...]     (default: 1000 3000 10000)
#        BITRATE=2500k DURATION=15 HTTP2=1 benches/llhls_players.sh 1000
#        HTTP2=1 PER_CONNECTION=50 benches/llhls_players.sh 10000   (50 players
#        share each h2 connection, as a CDN edge multiplexes its viewers)
#        PRELOAD=1 benches/llhls_players.sh 1000   (players ask for the preload
#        hint beside each blocking reload, as AVPlayer does; HTTP/1.1 only)
#        CACHE=varnish benches/llhls_players.sh 10000   (through docker/cdn's VCL;
#        the line then also gives the origin's 200s per class during the run)
#        RAMP=0 benches/llhls_players.sh 3000   (a join burst: every player starts
#        at once; join_ms is each player's wait for its first part)
#        BACKLOG=128 ...   (origin.listen_backlog; 128 is what a listener gets
#        from tokio's bind, 4096 castline's default)
#        LOADGEN_NICE=-15 ...   (the load generator first on the CPU)
#
# Needs target/release/{castline,llhls-load} (cargo build --release) and ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
BITRATE="${BITRATE:-400k}"
DURATION="${DURATION:-15}"
PLAYERS=("${@:-1000 3000 10000}")
[[ -x target/release/castline && -x target/release/llhls-load ]] || {
  echo "run cargo build --release first" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" || true

TMP="$(mktemp -d -t castline-players.XXXXXX)"
chmod 755 "$TMP" # varnishd reads its VCL after dropping root
printf '[transcode]\nenabled = false\n[origin]\nlisten_backlog = %s\n[[origin.cdn]]\nid = "varnish"\n' \
  "${BACKLOG:-4096}" > "$TMP/castline.toml"
trap 'kill ${CASTLINE:-} ${FFMPEG:-} ${VARNISH:-} 2>/dev/null || true; wait 2>/dev/null; rm -rf "$TMP"' EXIT
start_castline "$TMP/castline.toml" "$TMP/data"
publish_testsrc load "$BITRATE"
URL="http://$HTTP/live/load/source/index.m3u8"
if [[ "${CACHE:-}" == varnish ]]; then
  VPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  sed "s/.port = \"8080\";/.port = \"${HTTP##*:}\";/" docker/cdn/varnish/castline.vcl > "$TMP/castline.vcl"
  varnishd -F -a "127.0.0.1:$VPORT" -f "$TMP/castline.vcl" -n "$TMP/varnish" -s malloc,512m \
    -p backend_idle_timeout=8 > /dev/null 2>&1 &
  VARNISH=$!
  URL="http://127.0.0.1:$VPORT/live/load/source/index.m3u8"
  for _ in $(seq 100); do curl -sf "$URL" > /dev/null && break; sleep 0.2; done
fi
origin_200s() { # media, blocking and plain playlist 200s the origin answered so far
  curl -s "http://$ADMIN/metrics" | python3 -c '
import sys
n = {"media": 0, "blocking_playlist": 0, "playlist": 0}
for l in sys.stdin:
    for c in n:
        if l.startswith("castline_http_requests_total{class=\"%s\",status=\"200\"" % c):
            n[c] += float(l.split()[-1])
print(" ".join("%s=%d" % kv for kv in n.items()))'
}
sleep 3
for n in ${PLAYERS[@]}; do
  before=$(cpu_seconds $CASTLINE); origin_before=$(origin_200s)
  flags=(); [[ -n "${HTTP2:-}" ]] && flags+=(--http2 --per-connection "${PER_CONNECTION:-1}")
  [[ -n "${PRELOAD:-}" ]] && flags+=(--preload)
  result=$(nice -n "${LOADGEN_NICE:-0}" target/release/llhls-load --url "$URL" --players "$n" --seconds "$DURATION" \
    --ramp "${RAMP:-$(( n / 1000 + 2 ))}" "${flags[@]}")
  after=$(cpu_seconds $CASTLINE)
  echo "players=$n ramp_s=${RAMP:-$(( n / 1000 + 2 ))} backlog=${BACKLOG:-4096} bitrate=$BITRATE cache=${CACHE:-none} castline_cpu_s=$(python3 -c "print(round($after-$before,2))") origin_200s_before=[$origin_before] after=[$(origin_200s)] $result"
done
