#!/usr/bin/env bash
# Compare castline's HTTP origin against nginx serving the very same bytes
# (one LL-HLS media playlist, one fMP4 segment castline holds in memory and
# one it serves from its disk tier) on 127.0.0.1 with wrk.
#
# Usage: benches/origin_vs_nginx.sh            (DURATION=10 by default)
#        DURATION=30 benches/origin_vs_nginx.sh
#        CASTLINE=/tmp/castline-old benches/origin_vs_nginx.sh   (another build)
#
# Needs: target/release/castline (cargo build --release), wrk, nginx, ffmpeg,
# curl, python3. Nothing is installed by this script.
set -euo pipefail

DURATION="${DURATION:-10}"
cd "$(dirname "$0")/.."
ROOT_DIR="$(pwd)"
CASTLINE="${CASTLINE:-$ROOT_DIR/target/release/castline}"

die() { echo "error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- preconditions
if [[ ! -x "$CASTLINE" ]]; then
  echo "run cargo build --release first" >&2
  exit 1
fi
missing=()
for tool in wrk nginx ffmpeg curl python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  die "missing required tool(s): ${missing[*]} (Debian: apt-get install wrk nginx ffmpeg curl python3)"
fi
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -gt 0 ]] || die "DURATION must be a positive integer (seconds), got '$DURATION'"

TMP="$(mktemp -d -t castline-vs-nginx.XXXXXX)"
# nginx workers may run as an unprivileged user when started by root.
chmod 755 "$TMP"
CASTLINE_PID=""
NGINX_PIDS=()

cleanup() {
  local rc=$?
  set +e
  for pid in "${NGINX_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [[ -n "$CASTLINE_PID" ]]; then
    kill -TERM "$CASTLINE_PID" 2>/dev/null && wait "$CASTLINE_PID" 2>/dev/null
  fi
  if ((rc != 0)); then
    echo "--- failed (rc=$rc); logs kept in $TMP" >&2
    for f in "$TMP"/castline.stderr "$TMP"/nginx-*/error.log; do
      [[ -s "$f" ]] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }
    done
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shell-quoted, copy-pasteable rendering of a command
shq() { local out; printf -v out '%q ' "$@"; echo "${out% }"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------- castline
# A 3 s memory window: of the 8 s published, the early segments are served
# from disk (hls.disk), the last ones from memory.
printf '[hls]\nmemory_window = 3.0\n' >"$TMP/castline.toml"
CASTLINE_CMD=("$CASTLINE" serve --config "$TMP/castline.toml" --data-dir "$TMP/data" --rtmp-listen 127.0.0.1:0 --srt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0)
RUST_LOG=warn "${CASTLINE_CMD[@]}" >"$TMP/castline.stdout" 2>"$TMP/castline.stderr" &
CASTLINE_PID=$!

RTMP_ADDR="" HTTP_ADDR="" ADMIN_ADDR=""
for _ in $(seq 1 100); do
  kill -0 "$CASTLINE_PID" 2>/dev/null || die "castline exited during startup"
  RTMP_ADDR="$(sed -n 's/^rtmp listening on \(.*\)$/\1/p' "$TMP/castline.stdout" | head -n1)"
  HTTP_ADDR="$(sed -n 's/^http listening on \(.*\)$/\1/p' "$TMP/castline.stdout" | head -n1)"
  ADMIN_ADDR="$(sed -n 's/^admin listening on \(.*\)$/\1/p' "$TMP/castline.stdout" | head -n1)"
  [[ -n "$RTMP_ADDR" && -n "$HTTP_ADDR" && -n "$ADMIN_ADDR" ]] && break
  sleep 0.1
done
[[ -n "$RTMP_ADDR" && -n "$HTTP_ADDR" ]] || die "could not parse castline listen addresses from stdout"

# ---------------------------------------------------------------- publish 8 s
FFMPEG_CMD=(ffmpeg -nostdin -v error -re
  -f lavfi -i testsrc2=size=1280x720:rate=30
  -f lavfi -i sine=frequency=440:sample_rate=48000
  -c:v libx264 -preset veryfast -bf 2 -g 30 -keyint_min 30 -sc_threshold 0 -b:v 3000k
  -c:a aac -b:a 128k -t 8 -f flv "rtmp://$RTMP_ADDR/live/bench")
"${FFMPEG_CMD[@]}" || die "ffmpeg publish failed"

BASE="http://$HTTP_ADDR/live/bench/720p"
PLAYLIST_URL="$BASE/index.m3u8"
playlist_ok=0
for _ in $(seq 1 50); do
  if curl -fsS -o "$TMP/playlist.m3u8" "$PLAYLIST_URL" 2>/dev/null && grep -q '^#EXT-X-ENDLIST' "$TMP/playlist.m3u8"; then
    playlist_ok=1; break
  fi
  sleep 0.2
done
((playlist_ok)) || die "media playlist $PLAYLIST_URL did not reach #EXT-X-ENDLIST within 10 s"

mapfile -t SEGMENTS < <(grep -v '^#' "$TMP/playlist.m3u8" | sed '/^[[:space:]]*$/d' | tr -d '\r')
((${#SEGMENTS[@]} >= 3)) || die "playlist lists only ${#SEGMENTS[@]} segment(s), need at least 3"
# The second-to-last segment is in memory; segment 2 is on disk.
SEG_REL="${SEGMENTS[-2]}"
DISK_REL="${SEGMENTS[2]}"
for rel in "$SEG_REL" "$DISK_REL"; do
  [[ "$rel" != /* && "$rel" != *://* && "$rel" != *..* ]] || die "unexpected segment URI '$rel'"
done
EPOCH="${DISK_REL%%/*}"
DISK_FILE="$TMP/data/sessions/bench/$EPOCH/720p/${DISK_REL#*/}"
[[ -f "$DISK_FILE" ]] || die "segment $DISK_REL is not in castline's disk tier ($DISK_FILE)"
SEG_URL_C="$BASE/$SEG_REL"

# ---------------------------------------------------------------- docroot copy
DOCROOT="$TMP/root"
SRC_DIR="$DOCROOT/live/bench/720p"
mkdir -p "$SRC_DIR/$(dirname "$SEG_REL")"
cp "$TMP/playlist.m3u8" "$SRC_DIR/index.m3u8"
curl -fsS -o "$SRC_DIR/$SEG_REL" "$SEG_URL_C" || die "could not download segment $SEG_URL_C"
curl -fsS -o "$SRC_DIR/$DISK_REL" "$BASE/$DISK_REL" || die "could not download segment $BASE/$DISK_REL"
cmp -s "$SRC_DIR/$DISK_REL" "$DISK_FILE" || die "castline served other bytes than its file $DISK_FILE"
chmod -R a+rX "$DOCROOT"
SEG_BYTES="$(wc -c <"$SRC_DIR/$SEG_REL" | tr -d ' ')"
DISK_BYTES="$(wc -c <"$SRC_DIR/$DISK_REL" | tr -d ' ')"
PL_BYTES="$(wc -c <"$SRC_DIR/index.m3u8" | tr -d ' ')"

# ---------------------------------------------------------------- nginx
# start_nginx NAME WORKERS PORT -> appends master pid to NGINX_PIDS
NGINX_CMDS=()
start_nginx() {
  local name=$1 workers=$2 port=$3 proto=${4:-}
  local prefix="$TMP/nginx-$name"
  mkdir -p "$prefix/logs"
  chmod 755 "$prefix"
  cat >"$prefix/nginx.conf" <<EOF
worker_processes $workers;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s; }
    default_type application/octet-stream;
    client_body_temp_path $prefix/client_body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    server {
        listen 127.0.0.1:$port $proto;
        root $DOCROOT;
    }
}
EOF
  local cmd=(nginx -e "$prefix/error.log" -c "$prefix/nginx.conf" -p "$prefix" -g 'daemon off;')
  NGINX_CMDS+=("$(shq "${cmd[@]}")")
  "${cmd[@]}" &
  NGINX_PIDS+=($!)
  local h2=(); [[ -n "$proto" ]] && h2=(--http2-prior-knowledge)
  for _ in $(seq 1 50); do
    curl -fsS "${h2[@]}" -o /dev/null "http://127.0.0.1:$port/live/bench/720p/index.m3u8" 2>/dev/null && return 0
    kill -0 "${NGINX_PIDS[-1]}" 2>/dev/null || die "nginx ($name) exited during startup (see $prefix/error.log)"
    sleep 0.1
  done
  die "nginx ($name) not answering on 127.0.0.1:$port"
}

NGINX_W1_PORT="$(free_port)"
start_nginx w1 1 "$NGINX_W1_PORT"
NGINX_W2_PORT="$(free_port)"
start_nginx w2 2 "$NGINX_W2_PORT"
if command -v h2load >/dev/null 2>&1; then
  # HTTP/2 with prior knowledge (h2c), as castline takes it on its one port.
  NGINX_H2W1_PORT="$(free_port)"
  start_nginx h2w1 1 "$NGINX_H2W1_PORT" http2
  NGINX_H2W2_PORT="$(free_port)"
  start_nginx h2w2 2 "$NGINX_H2W2_PORT" http2
fi

# ---------------------------------------------------------------- byte identity
for srv in "castline http://$HTTP_ADDR" "nginx-w1 http://127.0.0.1:$NGINX_W1_PORT" "nginx-w2 http://127.0.0.1:$NGINX_W2_PORT"; do
  name=${srv%% *}; origin=${srv#* }
  curl -fsS -o "$TMP/check-$name.seg" "$origin/live/bench/720p/$SEG_REL" || die "$name: GET segment failed"
  curl -fsS -o "$TMP/check-$name.disk" "$origin/live/bench/720p/$DISK_REL" || die "$name: GET disk segment failed"
  curl -fsS -o "$TMP/check-$name.m3u8" "$origin/live/bench/720p/index.m3u8" || die "$name: GET playlist failed"
done
for name in nginx-w1 nginx-w2; do
  if ! cmp "$TMP/check-castline.seg" "$TMP/check-$name.seg" || ! cmp "$TMP/check-castline.disk" "$TMP/check-$name.disk"; then
    echo "!!!!!!!! FATAL: segment bodies differ between castline and $name !!!!!!!!" >&2
    exit 1
  fi
  if ! cmp -s "$TMP/check-castline.m3u8" "$TMP/check-$name.m3u8"; then
    echo "WARNING: playlist bodies differ between castline and $name (castline playlist changed after copy?)" >&2
  fi
done

# ---------------------------------------------------------------- header
WRK_FMT="wrk -t2 -c64 -d${DURATION}s --latency URL"
echo "== castline HTTP origin vs nginx (same bytes, 127.0.0.1) =="
echo "host: $(nproc) cores; wrk, castline and nginx all share them"
echo "commands:"
echo "  RUST_LOG=warn $(shq "${CASTLINE_CMD[@]}")"
echo "  $(shq "${FFMPEG_CMD[@]}")"
for c in "${NGINX_CMDS[@]}"; do echo "  $c"; done
echo "  $WRK_FMT"
echo "nginx config: sendfile on; tcp_nopush on; access_log off; keepalive_requests 100000"
echo "  nginx-w1 = worker_processes 1 (note: castline's tokio runtime uses all $(nproc) cores)"
echo "  nginx-w2 = worker_processes 2"
echo "castline http=$HTTP_ADDR  nginx-w1=127.0.0.1:$NGINX_W1_PORT  nginx-w2=127.0.0.1:$NGINX_W2_PORT"
echo "segment  /live/bench/720p/$SEG_REL  ($SEG_BYTES bytes; castline: from memory)"
echo "disk-seg /live/bench/720p/$DISK_REL  ($DISK_BYTES bytes; castline: from its disk tier, page cache warm)"
echo "playlist /live/bench/720p/index.m3u8  ($PL_BYTES bytes)"
echo

# ---------------------------------------------------------------- wrk runs
# to_ms "1.23ms" -> 1.230
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n }'
}

declare -A RPS
ROWS=()
NOTES=()
run_wrk() {
  local target=$1 server=$2 url=$3
  local out="$TMP/wrk-$target-$server.txt"
  wrk -t2 -c64 -d"${DURATION}s" --latency "$url" >"$out" 2>&1 || die "wrk failed for $server $target: $(cat "$out")"
  local rps tps p50 p99
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  tps="$(awk '/^Transfer\/sec:/ {print $2}' "$out")"
  p50="$(awk '$1 == "50%" {print $2}' "$out")"
  p99="$(awk '$1 == "99%" {print $2}' "$out")"
  [[ -n "$rps" && -n "$p50" && -n "$p99" ]] || die "could not parse wrk output for $server $target: $(cat "$out")"
  if grep -q -e 'Non-2xx' -e 'Socket errors' "$out"; then
    NOTES+=("$target/$server: $(grep -e 'Non-2xx' -e 'Socket errors' "$out" | tr -s ' ' | tr '\n' ';')")
  fi
  RPS[$target/$server]=$rps
  ROWS+=("$(printf '%-9s %-9s %12s %11s %10s %10s' "$target" "$server" "$rps" "$tps" "$(to_ms "$p50")" "$(to_ms "$p99")")")
}

TARGETS=(segment disk-seg playlist)
path_of() {
  case $1 in
    segment) echo "/live/bench/720p/$SEG_REL" ;;
    disk-seg) echo "/live/bench/720p/$DISK_REL" ;;
    *) echo "/live/bench/720p/index.m3u8" ;;
  esac
}
for target in "${TARGETS[@]}"; do
  path="$(path_of "$target")"
  echo "running wrk: $target ..." >&2
  run_wrk "$target" castline "http://$HTTP_ADDR$path"
  run_wrk "$target" nginx-w1 "http://127.0.0.1:$NGINX_W1_PORT$path"
  run_wrk "$target" nginx-w2 "http://127.0.0.1:$NGINX_W2_PORT$path"
done

printf '%-9s %-9s %12s %11s %10s %10s\n' target server "requests/s" "transfer/s" "p50(ms)" "p99(ms)"
for row in "${ROWS[@]}"; do echo "$row"; done
echo
# print_ratios ARRAY: castline req/s over each nginx's, per target.
print_ratios() {
  local -n rates=$1
  for target in "${TARGETS[@]}"; do
    for n in nginx-w1 nginx-w2; do
      awk -v t="$target" -v n="$n" -v c="${rates[$target/castline]}" -v x="${rates[$target/$n]}" \
        'BEGIN { printf "  %-9s vs %-9s %6.2fx\n", t, n, (x > 0 ? c / x : 0) }'
    done
  done
}
echo "ratio castline req/s / nginx req/s:"
print_ratios RPS
# ---------------------------------------------------------------- HTTP/2 (h2load)
if command -v h2load >/dev/null 2>&1; then
  declare -A H2
  echo
  echo "HTTP/2 (h2c prior knowledge): h2load -D ${DURATION} -c 64 -m 10 -t 2 URL (Debian nghttp2-client)"
  printf '%-9s %-9s %12s %10s\n' target server "requests/s" "failed"
  for target in "${TARGETS[@]}"; do
    path="$(path_of "$target")"
    for srv in "castline $HTTP_ADDR" "nginx-w1 127.0.0.1:$NGINX_H2W1_PORT" "nginx-w2 127.0.0.1:$NGINX_H2W2_PORT"; do
      name=${srv%% *}; addr=${srv#* }
      out="$TMP/h2load-$target-$name.txt"
      h2load -D "$DURATION" -c 64 -m 10 -t 2 "http://$addr$path" >"$out" 2>&1 || die "h2load failed for $name $target: $(cat "$out")"
      rps="$(awk '/^finished in/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^req\/s/) {print $i; exit}}' "$out" | tr -d ',')"
      failed="$(awk '/^requests:/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed/) {print $i; exit}}' "$out")"
      H2[$target/$name]=$rps
      printf '%-9s %-9s %12s %10s\n' "$target" "$name" "$rps" "$failed"
    done
  done
  echo "ratio castline req/s / nginx req/s (HTTP/2):"
  print_ratios H2
fi

if ((${#NOTES[@]})); then
  echo
  echo "wrk warnings:"
  for n in "${NOTES[@]}"; do echo "  $n"; done
fi
