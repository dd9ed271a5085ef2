# Shared by the bench scripts (source it).

cpu_seconds() { # utime + stime of a pid, in seconds
  python3 - "$1" <<'PY'
import os, sys
f = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"))
PY
}

# start_castline CONFIG DATA_DIR: castline on 127.0.0.1 ports of its own
# choosing; sets CASTLINE (pid), RTMP, HTTP and ADMIN (host:port).
start_castline() {
  target/release/castline serve --config "$1" --rtmp-listen 127.0.0.1:0 \
    --srt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --data-dir "$2" > "$2.out" 2> "$2.err" &
  CASTLINE=$!
  for _ in $(seq 100); do grep -q '^admin listening' "$2.out" && break; sleep 0.1; done
  RTMP=$(awk '/^rtmp listening/ {print $4}' "$2.out")
  HTTP=$(awk '/^http listening/ {print $4}' "$2.out")
  ADMIN=$(awk '/^admin listening/ {print $4}' "$2.out")
}

# publish_testsrc STREAM BITRATE: an hour of 320x240 x264 (B-frames) + AAC
# over RTMP to castline, as OBS would send it, in the background; sets FFMPEG
# (pid) and waits until the stream's playlist answers.
publish_testsrc() {
  ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset veryfast -g 30 \
    -b:v "$2" -bf 2 -c:a aac -b:a 64k -t 3600 -f flv "rtmp://$RTMP/live/$1" &
  FFMPEG=$!
  for _ in $(seq 100); do
    curl -sf "http://$HTTP/live/$1/source/index.m3u8" > /dev/null && break
    sleep 0.2
  done
}
