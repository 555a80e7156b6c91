#!/usr/bin/env bash
# Install everything the lab, the demo and the tests need on a Debian 12 machine, as root.
# Idempotent and fast when already done: each step checks before it works.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------------------------------------
DEBS=(openvswitch-switch lxc lxc-templates debootstrap rsync openssh-server openssh-client iperf3 iproute2
      nftables iptables ethtool bridge-utils python3-venv make gcc libc6-dev iputils-ping iputils-arping psmisc
      procps kmod curl ca-certificates xz-utils git tini openjdk-17-jre-headless
      ffmpeg fonts-dejavu-core nginx chromium chromium-driver)
# npm fetches the video player (hls.js, scripts/setup.d/30-video.sh); a machine with Node.js already has it
command -v npm >/dev/null || DEBS+=(npm)
# `setup.sh guest` adds what the qemu guests of the faithful mode need (make test-guest).
[ "${1:-}" = guest ] && DEBS=(qemu-system-x86 qemu-utils debootstrap e2fsprogs)
missing=()
for p in "${DEBS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # nginx only serves the lab's video from its own config (lab/video/run): not the package's site on port 80
  if [[ " ${missing[*]} " == *" nginx "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
fi

[ "${1:-}" = guest ] && { say "guest packages ready"; exit 0; }

# --- Python venv with the pinned requirements ----------------------------------------------------------------
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating .venv with requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi

# --- Collections: this checkout as arnab.testbed, others unpacked from PyPI's `ansible` wheel -------------------
mkdir -p .collections/ansible_collections/arnab
ln -sfn ../../.. .collections/ansible_collections/arnab/testbed
read -r bundle collections < <(sed -n 's/^# collections-from: //p' requirements.txt)
for c in $collections; do
  dir=.collections/ansible_collections/${c/.//}
  if [ ! -f "$dir/MANIFEST.json" ]; then
    say "unpacking $c from $bundle (Galaxy is unreachable here)"
    cache=/var/cache/arnab-testbed/wheels
    mkdir -p "$cache"
    ls "$cache"/ansible-"${bundle#ansible==}"-*.whl >/dev/null 2>&1 ||
      .venv/bin/pip download -q --no-deps -d "$cache" "$bundle"
    .venv/bin/python - "$cache"/ansible-"${bundle#ansible==}"-*.whl "$c" <<'PY'
import sys, zipfile
wheel, coll = sys.argv[1], sys.argv[2]
prefix = "ansible_collections/%s/" % coll.replace(".", "/")
with zipfile.ZipFile(wheel) as z:
    z.extractall(".collections", [n for n in z.namelist() if n.startswith(prefix)])
PY
  fi
done

# --- Lab tools and images (each script is idempotent) -----------------------------------------------------------
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  bash "$step"
done
say "ready"
