#!/usr/bin/env bash
# What the user sees (issue 11, lab/video/README.md): the player library and the video, neither committed.
# - hls.js from the npm registry, at the version pinned in requirements.txt ('# npm: hls.js@X.Y.Z'), unpacked
#   into /var/cache/arnab-testbed/npm/hls.js-X.Y.Z/ (hls.min.js and its LICENSE); build/hls.min.js links to it.
# - the test video rendered by scripts/build-video.sh (cached by recipe); build/video links to it.
# - Debian's nginx and nginx-common packages, for the `video` container's web server (roles/edge installs them into
#   its root filesystem offline: the lab's edges reach no mirror), in /var/cache/arnab-testbed/debs; build/debs links
#   to it. The container's release is this machine's (bookworm), so these are the packages apt picks here.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

spec=$(sed -n 's/^# npm: *\(hls\.js@[0-9][0-9.]*\) *$/\1/p' requirements.txt)
[ -n "$spec" ] || { say "requirements.txt pins no hls.js ('# npm: hls.js@X.Y.Z')"; exit 1; }
dir=/var/cache/arnab-testbed/npm/${spec/@/-}
if [ ! -f "$dir/hls.min.js" ]; then
  say "fetching $spec from the npm registry into $dir"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent --json "$spec" >pack.json)
  tar -C "$work" -xzf "$work"/hls.js-*.tgz package/dist/hls.min.js package/LICENSE
  mkdir -p "$dir.tmp"
  install -m 0644 "$work/package/dist/hls.min.js" "$work/package/LICENSE" "$work/pack.json" "$dir.tmp/"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  chmod 0755 "$dir"
fi
mkdir -p build
ln -sfn "$dir/hls.min.js" build/hls.min.js

debs=/var/cache/arnab-testbed/debs
if ! ls "$debs"/nginx_*.deb "$debs"/nginx-common_*.deb >/dev/null 2>&1; then
  say "fetching nginx and nginx-common (.deb) into $debs for the video container"
  rm -rf "$debs.tmp" && mkdir -p "$debs.tmp"
  (cd "$debs.tmp" && apt-get download -q nginx nginx-common >/dev/null 2>&1) ||
    (apt-get update -q >/dev/null && cd "$debs.tmp" && apt-get download -q nginx nginx-common >/dev/null)
  chmod 0644 "$debs.tmp"/*.deb
  rm -rf "$debs" && mv "$debs.tmp" "$debs"
fi
ln -sfn "$debs" build/debs

bash scripts/build-video.sh >/dev/null
