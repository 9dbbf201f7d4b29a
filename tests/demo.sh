#!/usr/bin/env bash
# ./peercdn demo: starts the origin on loopback with its embedded defaults (SQLite, local files),
# generates a sample video, uploads it through tus with the upload CLI, waits for the ladder, checks
# it with ffprobe, and prints where to play it. Ctrl-C stops the origin (or pass --exit to stop
# right after the check). The swarm part of the demo arrives with the peer and tracker.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORIGIN="$ROOT/build/origin/peercdn-origin"
EXIT_AFTER=0
for a in "$@"; do
  case "$a" in
    --exit) EXIT_AFTER=1 ;;
    *) echo "peercdn demo: unknown option $a (only --exit)" >&2; exit 2 ;;
  esac
done
[ -t 0 ] || EXIT_AFTER=1
WORK="$(mktemp -d /tmp/peercdn-demo.XXXXXX)"
TOKEN="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cleanup() {
  if [ -n "${PID:-}" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "== generating a 20 s 1280x720 sample with a tone"
ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t 20 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac "$WORK/sample.mp4"

echo "== starting peercdn-origin (data in $WORK/data)"
"$ORIGIN" serve --data "$WORK/data" --listen 127.0.0.1:0 --upload-token "$TOKEN" >"$WORK/origin.out" 2>"$WORK/origin.log" &
PID=$!
for _ in $(seq 100); do
  grep -q "listening on" "$WORK/origin.out" 2>/dev/null && break
  sleep 0.1
done
URL=$(grep -o 'http://[0-9.]*:[0-9]*' "$WORK/origin.out" | head -1)
[ -n "$URL" ] || { cat "$WORK/origin.log" >&2; echo "peercdn demo: the origin did not start" >&2; exit 1; }
echo "   $URL"

echo "== uploading (tus, 4 parallel parts joined by concatenation) and transcoding"
START=$(date +%s%N)
VID=$("$ORIGIN" upload "$WORK/sample.mp4" --origin "$URL" --token "$TOKEN" --title "peercdn demo" --parallel 4 --wait | tail -1)
END=$(date +%s%N)
echo "   video $VID ready in $(( (END - START) / 1000000 )) ms"

echo "== what an independent client sees"
curl -s "$URL/api/videos/$VID" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("   %-6s %-10s %-10s %-12s %s" % ("rung", "size", "bandwidth", "codecs", ""))
for r in v["renditions"]:
    print("   %-6s %-10s %-10d %-12s" % (r["id"], "%dx%d" % (r["width"], r["height"]), r["bandwidth"], r["codecs"]))
print("   duration %.1f s, state %s" % (v["duration"], v["state"]))'
ffprobe -v error -show_entries stream=codec_name,width,height -of json "$URL/v/$VID/master.m3u8" | python3 -c '
import json, sys
st = json.load(sys.stdin)["streams"]
v = sorted({(s["width"], s["height"]) for s in st if s["codec_name"] == "h264"})
a = [s for s in st if s["codec_name"] == "aac"]
print("   ffprobe on the HLS master: %d H.264 rungs (%s) and %s" % (len(v), ", ".join("%dx%d" % x for x in v),
      "AAC audio" if a else "no audio"))'
ffmpeg -v error -i "$URL/v/$VID/manifest.mpd" -f null - && echo "   DASH decodes cleanly"

cat <<EOT

== play it
   HLS:   $URL/v/$VID/master.m3u8      (ffplay, mpv, VLC, Safari, hls.js)
   DASH:  $URL/v/$VID/manifest.mpd     (ffplay, dash.js)
   P2P:   $URL/v/$VID/p2p.json  + p2p.json.sig (origin key: $URL/api/origin-key)
   Poster $URL/v/$VID/thumbs/poster-16x9.webp
EOT
if [ "$EXIT_AFTER" = 1 ]; then
  echo "== done (--exit)"
  exit 0
fi
echo "== serving until Ctrl-C"
wait "$PID"
