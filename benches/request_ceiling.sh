#!/usr/bin/env bash
# The request rate this machine can carry at all: wrk (C, one of the lightest
# HTTP/1.1 load generators) against castline and against nginx serving the
# same two objects, a 200 ms part of a 400 kbit/s rendition and the live media
# playlist, over 1,000 and 10,000 keep-alive connections on 127.0.0.1. The
# server and wrk share this machine's cores, as llhls_players.sh's players do.
#
# Why: N LL-HLS players at the live edge each make a blocking reload and a
# part request per part, so 2 x N / PART-TARGET requests a second (10,000
# players of 200 ms parts: 100,000/s). If nginx, serving static files with
# sendfile and no blocking, cannot reach that rate here, no origin can on
# this machine, and the figure says so.
#
# Each line also gives the handshakes the kernel dropped because the
# server's accept queue was full (nstat's TcpExtListenOverflows, when nstat is
# there): a join burst past the listen backlog.
#
# Usage: benches/request_ceiling.sh              (CONNECTIONS="1000 10000", DURATION=8)
#        CONNECTIONS=10000 DURATION=5 benches/request_ceiling.sh
#        BACKLOG=128 benches/request_ceiling.sh   (castline's origin.listen_backlog;
#        128 is what tokio's bind gives, 4096 castline's default)
# Needs target/release/castline (cargo build --release), ffmpeg, nginx, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
DURATION="${DURATION:-8}"
CONNECTIONS=(${CONNECTIONS:-1000 10000})
[[ -x target/release/castline ]] || { echo "run cargo build --release first" >&2; exit 1; }
for tool in wrk nginx ffmpeg curl python3; do
  command -v "$tool" > /dev/null || { echo "missing $tool (make deps-bench)" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" || true

TMP="$(mktemp -d -t castline-ceiling.XXXXXX)"
chmod 755 "$TMP"
printf '[transcode]\nenabled = false\n[origin]\nlisten_backlog = %s\n' "${BACKLOG:-4096}" > "$TMP/castline.toml"
trap 'kill ${CASTLINE:-} ${FFMPEG:-} ${NGINX:-} 2>/dev/null || true; wait 2>/dev/null; rm -rf "$TMP"' EXIT
start_castline "$TMP/castline.toml" "$TMP/data"
publish_testsrc ceiling 400k
BASE="http://$HTTP/live/ceiling/source"
sleep 3
curl -sf -o "$TMP/index.m3u8" "$BASE/index.m3u8"
# The newest complete part: it stays servable while its segment is in the
# DVR window (300 s by default), far longer than the runs below.
PART=$(sed -n 's/^#EXT-X-PART:.*URI="\([^"]*\)".*/\1/p' "$TMP/index.m3u8" | tail -1)
[[ -n "$PART" && "$PART" != *..* ]] || { echo "no part listed in $BASE/index.m3u8" >&2; exit 1; }

# nginx, 2 workers, serving byte-identical copies (the playlist as fetched once).
ROOT="$TMP/root/live/ceiling/source"
mkdir -p "$ROOT/$(dirname "$PART")" "$TMP/nginx"
cp "$TMP/index.m3u8" "$ROOT/index.m3u8"
curl -sf -o "$ROOT/$PART" "$BASE/$PART"
chmod -R a+rX "$TMP/root"
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile 20000;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 12000; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    open_file_cache max=16;
    types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s; }
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server { listen 127.0.0.1:$NPORT backlog=16384; root $TMP/root; }
}
EOF
nginx -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -g 'daemon off;' &
NGINX=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$NPORT/live/ceiling/source/index.m3u8" && break; sleep 0.1; done
cmp -s "$ROOT/$PART" <(curl -sf "http://127.0.0.1:$NPORT/live/ceiling/source/$PART") \
  || { echo "nginx serves other bytes than castline for $PART" >&2; exit 1; }

PART_TARGET=$(sed -n 's/^#EXT-X-PART-INF:PART-TARGET=\([0-9.]*\).*/\1/p' "$TMP/index.m3u8")
echo "part $PART ($(wc -c < "$ROOT/$PART") bytes), playlist $(wc -c < "$ROOT/index.m3u8") bytes, PART-TARGET=${PART_TARGET}s"
echo "command: wrk -t2 -cC -d${DURATION}s URL; castline ($BASE, listen_backlog ${BACKLOG:-4096}) and nginx 2 workers (sendfile, backlog 16384) on the same bytes"
rate() { # wrk's Requests/sec, its socket errors/non-2xx and the kernel's dropped handshakes as a note
  command -v nstat > /dev/null && nstat -n
  local out; out=$(wrk -t2 -c"$1" -d"${DURATION}s" "$2" 2>&1)
  local rps; rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
  local bad; bad=$(grep -E 'Socket errors|Non-2xx' <<< "$out" | tr -s ' ' | paste -sd';' || true)
  local dropped=""
  command -v nstat > /dev/null && dropped="listen_overflows=$(nstat -z TcpExtListenOverflows | awk '/ListenOverflows/ {print $2}')"
  echo "${rps:-0}${bad:+ ($bad)}${dropped:+ $dropped}"
}
for c in "${CONNECTIONS[@]}"; do
  for object in "$PART" index.m3u8; do
    before=$(cpu_seconds "$CASTLINE")
    cr=$(rate "$c" "$BASE/$object")
    cpu=$(python3 -c "print(round($(cpu_seconds "$CASTLINE") - $before, 2))")
    nr=$(rate "$c" "http://127.0.0.1:$NPORT/live/ceiling/source/$object")
    ratio=$(python3 -c "print(round(${cr%% *} / max(${nr%% *}, 1), 2))")
    echo "connections=$c object=$(basename "$object") castline_rps=$cr castline_cpu_s=$cpu nginx_rps=$nr ratio=$ratio"
  done
  need=$(python3 -c "print(round(2 * $c / $PART_TARGET))")
  echo "connections=$c: $c LL-HLS players at the live edge need about $need requests/s (a blocking reload and a part per ${PART_TARGET}s part)"
done
