#!/usr/bin/env bash
# Render the test video the lab streams (issue 11, lab/video/README.md), cached by recipe.
#
# A test pattern with what a viewer (and a test) can read off the picture: the time since the video's start and
# the frame number as text, and the frame number again as a 16-bit bar code in the top left corner (cells of
# 16x16 px at y=16, a white marker cell at x=16 and x=288, bit 15 at x=32 ... bit 0 at x=272; read by
# arnab_lab.browser.picture_frame). H.264 baseline, constant bit rate, 25 fps, a keyframe starting every 1 s
# segment, no audio, cut into MPEG-TS segments with a VOD playlist (index.m3u8) that lab/video/advancer turns
# into a live stream.
#
#   ARNAB_VIDEO_SECONDS  length in seconds (default 600; the live stream loops over it)
#   ARNAB_VIDEO_KBPS     video bit rate in kbit/s (default 1000)
#   ARNAB_VIDEO_SIZE     WxH (default 640x360)
#   ARNAB_VIDEO_CACHE    where renders are kept (default /var/cache/arnab-testbed); a render lives in
#                        $ARNAB_VIDEO_CACHE/video-<sha>/, <sha> hashing this recipe and ffmpeg's version, so every
#                        checkout on the machine reuses it.
#
# Prints the directory on stdout and links build/video to it. Nothing of it is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[video]\033[0m %s\n' "$*" >&2; }

SECONDS_LONG=${ARNAB_VIDEO_SECONDS:-600}
KBPS=${ARNAB_VIDEO_KBPS:-1000}
SIZE=${ARNAB_VIDEO_SIZE:-640x360}
CACHE=${ARNAB_VIDEO_CACHE:-/var/cache/arnab-testbed}
FPS=25
SEGMENT=1
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf

[[ $SECONDS_LONG =~ ^[1-9][0-9]*$ && $KBPS =~ ^[1-9][0-9]*$ && $SIZE =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] ||
  { say "ARNAB_VIDEO_SECONDS, ARNAB_VIDEO_KBPS must be positive integers and ARNAB_VIDEO_SIZE WxH"; exit 2; }
command -v ffmpeg >/dev/null || { say "no ffmpeg: make setup installs Debian's"; exit 2; }
[ -f "$FONT" ] || { say "no $FONT: make setup installs fonts-dejavu-core"; exit 2; }

# The frame number n as a bar code: a black strip, two white marker cells, one white cell per set bit.
vf="drawbox=x=0:y=0:w=320:h=48:color=black:t=fill"
vf+=",drawbox=x=16:y=16:w=16:h=16:color=white:t=fill,drawbox=x=288:y=16:w=16:h=16:color=white:t=fill"
for bit in $(seq 0 15); do
  vf+=",drawbox=x=$((272 - 16 * bit)):y=16:w=16:h=16:color=white:t=fill:enable='eq(mod(floor(n/$((1 << bit))),2),1)'"
done
vf+=",drawtext=fontfile=$FONT:fontsize=28:fontcolor=white:box=1:boxcolor=black@0.7:boxborderw=6:x=16:y=h-48"
vf+=":text='%{pts\\:hms}  frame %{n}'"

ARGS=(-f lavfi -i "testsrc2=size=$SIZE:rate=$FPS" -t "$SECONDS_LONG" -vf "$vf"
  -c:v libx264 -preset veryfast -profile:v baseline -level 3.0 -pix_fmt yuv420p
  -b:v "${KBPS}k" -maxrate "${KBPS}k" -bufsize "${KBPS}k" -x264-params nal-hrd=cbr
  -g $((FPS * SEGMENT)) -keyint_min $((FPS * SEGMENT)) -sc_threshold 0 -force_key_frames "expr:gte(t,n_forced*$SEGMENT)"
  -f hls -hls_time "$SEGMENT" -hls_list_size 0 -hls_playlist_type vod -hls_segment_filename 'seg%05d.ts' index.m3u8)

version=$(ffmpeg -hide_banner -version | head -1)
sha=$(printf '%s\n' "$version" "${ARGS[@]}" | sha256sum | cut -c1-16)
out=$CACHE/video-$sha

if [ ! -f "$out/index.m3u8" ]; then
  say "rendering ${SECONDS_LONG}s of ${SIZE} at ${FPS} fps, ${KBPS} kbit/s into $out"
  start=$(date +%s.%N)
  tmp=$out.tmp-$$
  rm -rf "$tmp"; mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && nice -n 10 ffmpeg -hide_banner -loglevel error -nostdin -y "${ARGS[@]}")
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  printf 'ffmpeg: %s\nargs: %s\nrendered: %s in %s s\n' "$version" "${ARGS[*]}" "$(date -u +%FT%TZ)" "$took" \
    >"$tmp/BUILD-INFO"
  chmod -R a+rX "$tmp"
  rm -rf "$out" && mv "$tmp" "$out"   # the directory appears only once it is complete
  trap - EXIT
  say "rendered in $took s ($(du -sh "$out" | cut -f1))"
fi

mkdir -p build
ln -sfn "$out" build/video
say "video: $out"
echo "$out"
