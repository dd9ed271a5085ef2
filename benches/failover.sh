#!/usr/bin/env bash
# Input failure inside a stream (issue 27), on one machine: a 640x360 x264
# publish (B-frames, AAC) through a two-rung ladder (360p, 240p).
#
# Per run, with and without a backup input (a second ffmpeg, the same
# picture, RTMP ?backup=1):
# - castline's CPU seconds over WINDOW seconds of the stream (the price of
#   keeping a backup ready);
# - the primary killed with SIGKILL: time from the kill (its last frame)
#   to the first part of the new input (the backup, or the slate without
#   one) listed in the 360p playlist, polled every 10 ms.
# And one encoder's two outputs (ffmpeg's tee muxer to the primary and the
# backup URL, the same frames): the primary's route cut (a relay in front of
# it stops forwarding; the encoder carries on), the longest the 360p
# playlist stood still from the cut on, and whether it then has a
# discontinuity (it should not: the backup is spliced on).
#
# Usage: benches/failover.sh            WINDOW=20 REPS=3 MODES="none backup tee"
# Needs target/release/castline (cargo build --release) and ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
WINDOW="${WINDOW:-20}"
REPS="${REPS:-3}"
MODES="${MODES:-none backup tee}"
[[ -x target/release/castline ]] || { echo "run cargo build --release first" >&2; exit 1; }
TMP="$(mktemp -d -t castline-failover.XXXXXX)"
PUBS=()
trap 'kill ${CASTLINE:-} ${PUBS[@]:-} 2>/dev/null || true; wait 2>/dev/null; rm -rf "$TMP"' EXIT

cat > "$TMP/c.toml" <<EOF
[ingest]
reconnect_grace = 30.0
[[transcode.rungs]]
name = "360p"
height = 360
bitrate_kbps = 700
[[transcode.rungs]]
name = "240p"
height = 240
bitrate_kbps = 300
EOF

publish() { # KEY: an hour of 640x360 to castline, in the background
  ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset ultrafast -g 30 \
    -b:v 1500k -bf 2 -c:a aac -b:a 96k -t 3600 -f flv "rtmp://$RTMP/live/$1" &
  PUBS+=($!)
}

# switch_time PID: kill PID, then seconds until the 360p playlist lists a
# part after a discontinuity.
switch_time() {
  python3 - "$1" "http://$HTTP/live/fo/360p/index.m3u8" <<'PY'
import os, signal, sys, time, urllib.request
pid, url = int(sys.argv[1]), sys.argv[2]
t0 = time.monotonic()
os.kill(pid, signal.SIGKILL)
while time.monotonic() - t0 < 20:
    text = urllib.request.urlopen(url).read().decode()
    after = text.split("#EXT-X-DISCONTINUITY", 1)
    if len(after) == 2 and "#EXT-X-PART:" in after[1]:
        print("%.3f" % (time.monotonic() - t0))
        sys.exit(0)
    time.sleep(0.01)
print("timeout")
PY
}

# relay PORT_FILE: forward a local port to castline's RTMP port until
# SIGUSR1, then close the server's side and drop what the encoder sends.
relay() {
  python3 - "$RTMP" "$1" <<'PY' &
import signal, socket, sys, threading
host, port = sys.argv[1].rsplit(":", 1)
cut = threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: cut.set())
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
open(sys.argv[2], "w").write(str(srv.getsockname()[1]))
def pump(a, b, cuttable):
    while True:
        d = a.recv(65536)
        if not d: break
        if cuttable and cut.is_set():
            try: b.shutdown(socket.SHUT_RDWR)
            except OSError: pass
            continue
        try: b.sendall(d)
        except OSError:
            if not cuttable: break
while True:
    near, _ = srv.accept()
    far = socket.create_connection((host, int(port)))
    threading.Thread(target=pump, args=(near, far, True), daemon=True).start()
    threading.Thread(target=pump, args=(far, near, False), daemon=True).start()
PY
  RELAY=$!
  for _ in $(seq 50); do [[ -s $1 ]] && break; sleep 0.1; done
}

# seamless_time RELAY_PID: cut the relay, then poll the 360p playlist every
# 10 ms for 4 s: the longest it stood still (no new part) from the cut on,
# and its discontinuities after.
seamless_time() {
  python3 - "$1" "http://$HTTP/live/fo/360p/index.m3u8" <<'PY'
import os, re, signal, sys, time, urllib.request
pid, url = int(sys.argv[1]), sys.argv[2]
newest = lambda t: re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', t)[-1]
seen = newest(urllib.request.urlopen(url).read().decode())
t0 = time.monotonic()
os.kill(pid, signal.SIGUSR1)
still, since = 0.0, t0
while time.monotonic() - t0 < 4:
    text = urllib.request.urlopen(url).read().decode()
    now = time.monotonic()
    if newest(text) != seen:
        seen, still, since = newest(text), max(still, now - since), now
    time.sleep(0.01)
print("%.3f discontinuities=%d" % (still, text.count("#EXT-X-DISCONTINUITY\n")))
PY
}

tee_run() {
  local data="$TMP/d-tee-$1" t
  mkdir -p "$data"
  PUBS=()
  start_castline "$TMP/c.toml" "$data"
  relay "$TMP/relay-$1"
  ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset ultrafast -g 30 \
    -b:v 1500k -bf 2 -c:a aac -b:a 96k -t 3600 -map 0 -map 1 -flags +global_header -f tee \
    "[f=flv]rtmp://127.0.0.1:$(cat "$TMP/relay-$1")/live/fo|[f=flv]rtmp://$RTMP/live/fo?backup=1" &
  PUBS+=($! "$RELAY")
  for _ in $(seq 150); do
    curl -sf "http://$HTTP/live/fo/360p/index.m3u8" > /dev/null && break
    sleep 0.2
  done
  sleep 5
  t=$(seamless_time "$RELAY")
  echo "input=tee rep=$1 longest_still_s=$t"
  kill "$CASTLINE" "${PUBS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}

run() { # "backup" or "none"
  local mode=$1 data="$TMP/d-$1-$2" before after cpu t
  mkdir -p "$data"
  PUBS=()
  start_castline "$TMP/c.toml" "$data"
  publish fo
  for _ in $(seq 150); do
    curl -sf "http://$HTTP/live/fo/360p/index.m3u8" > /dev/null && break
    sleep 0.2
  done
  [[ $mode == backup ]] && publish "fo?backup=1"
  sleep 3
  before=$(cpu_seconds "$CASTLINE")
  sleep "$WINDOW"
  after=$(cpu_seconds "$CASTLINE")
  cpu=$(python3 -c "print(round(($after-$before)/$WINDOW, 3))")
  t=$(switch_time "${PUBS[0]}")
  echo "input=$mode rep=$2 castline_cpu_per_s=$cpu switch_s=$t"
  kill "$CASTLINE" "${PUBS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}

echo "# failover: 640x360 -> 360p+240p, WINDOW=${WINDOW}s, castline CPU-s per second, kill -> first new part"
for rep in $(seq "$REPS"); do
  for mode in $MODES; do
    if [[ $mode == tee ]]; then tee_run "$rep"; else run "$mode" "$rep"; fi
  done
done
