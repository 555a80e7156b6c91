#!/usr/bin/env bash
# Build userlevel Click with the OdinAgent element from source, cached by source hash (docs/click.md).
#
#   ARNAB_CLICK_SRC   where the sources come from, ONE variable, either
#                     - a directory holding click-*.tar.gz and odin-wi5-agent-*.tar.gz (one of each), or
#                     - two git URLs, "CLICK_URL[#REF] AGENT_URL[#REF]" (REF defaults to HEAD).
#                     Default: the upstream repositories (github.com/kohler/click, github.com/Wi5/odin-wi5-agent).
#   ARNAB_CLICK_CACHE where builds are kept (default /var/cache/arnab-testbed); a build lives in
#                     $ARNAB_CLICK_CACHE/click-<sha>/bin/click, <sha> hashing the sources and the build recipe,
#                     so every checkout on the machine (CI's fresh clones too) reuses it.
#
# Usage: build-click.sh [--if-available]
#   Prints the binary's path on stdout and links build/click to it. With --if-available a source that cannot be
#   reached is not an error: it says so and exits 0 without a build (make test then skips the Click tests).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '\033[1m[click]\033[0m %s\n' "$*" >&2; }

soft=0
[ "${1:-}" = --if-available ] && soft=1
unavailable() {
  say "no Click source available: $*"
  say "set ARNAB_CLICK_SRC to a directory with the two tarballs or to 'CLICK_GIT_URL AGENT_GIT_URL' (docs/click.md)"
  rm -f build/click
  [ "$soft" = 1 ] && exit 0
  exit 2
}

SRC=${ARNAB_CLICK_SRC:-https://github.com/kohler/click https://github.com/Wi5/odin-wi5-agent}
CACHE=${ARNAB_CLICK_CACHE:-/var/cache/arnab-testbed}

# The recipe (part of the hash: changing a flag makes a new build).
CONFIGURE_FLAGS=(--disable-linuxmodule --enable-userlevel --enable-local --enable-wifi --disable-dynamic-linking
  --disable-analysis --disable-app --disable-aqm --disable-tcpudp --disable-test --disable-threads --disable-icmp
  --enable-tools=no)
RECIPE="odinagent.{cc,hh} -> elements/local; configure ${CONFIGURE_FLAGS[*]}; make"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -d "$SRC" ]; then
  shopt -s nullglob
  clicks=("$SRC"/click-*.tar.gz) agents=("$SRC"/odin-wi5-agent-*.tar.gz)
  shopt -u nullglob
  ((${#clicks[@]} == 1 && ${#agents[@]} == 1)) ||
    unavailable "$SRC must hold exactly one click-*.tar.gz and one odin-wi5-agent-*.tar.gz"
  ids="$(sha256sum "${clicks[0]}" "${agents[0]}" | cut -d' ' -f1 | tr '\n' ' ')"
  fetch() {
    tar -C "$work" -xzf "${clicks[0]}"
    tar -C "$work" -xzf "${agents[0]}"
    [ -d "$work/click" ] && [ -f "$work/odin-wi5-agent/src/odinagent.cc" ] ||
      { say "unexpected tarball layout (want click/ and odin-wi5-agent/src/)"; exit 2; }
  }
else
  read -r click_url agent_url extra <<<"$SRC" || true
  [ -n "${agent_url:-}" ] && [ -z "${extra:-}" ] ||
    unavailable "ARNAB_CLICK_SRC='$SRC' is neither a directory nor two git URLs"
  resolve() {  # URL[#REF] -> commit id
    local url=${1%%#*} ref=HEAD
    [[ $1 == *#* ]] && ref=${1#*#}
    if [[ $ref =~ ^[0-9a-f]{7,40}$ ]]; then echo "$ref"; return; fi
    { GIT_TERMINAL_PROMPT=0 timeout 60 git ls-remote "$url" "$ref" 2>/dev/null || true; } | awk 'NR==1{print $1}'
  }
  c1=$(resolve "$click_url") c2=$(resolve "$agent_url")
  [ -n "$c1" ] && [ -n "$c2" ] || unavailable "cannot reach $click_url / $agent_url"
  ids="$c1 $c2"
  fetch() {
    local u
    for u in "${click_url%%#*} click $c1" "${agent_url%%#*} odin-wi5-agent $c2"; do
      set -- $u
      GIT_TERMINAL_PROMPT=0 git clone -q "$1" "$work/$2" || unavailable "cannot clone $1"
      git -C "$work/$2" checkout -q "$3"
    done
  }
fi

sha=$(printf '%s\n%s\n' "$ids" "$RECIPE" | sha256sum | cut -c1-16)
out=$CACHE/click-$sha
bin=$out/bin/click

if [ ! -x "$bin" ]; then
  say "building userlevel Click with OdinAgent into $out (several minutes)"
  start=$(date +%s)
  fetch
  cp "$work"/odin-wi5-agent/src/odinagent.cc "$work"/odin-wi5-agent/src/odinagent.hh "$work"/click/elements/local/
  (
    cd "$work/click"
    nice -n 10 ./configure -q "${CONFIGURE_FLAGS[@]}" >"$work/configure.log" 2>&1 ||
      { tail -30 "$work/configure.log" >&2; exit 1; }
    nice -n 10 make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
  )
  mkdir -p "$out/bin.tmp"
  install -m 0755 "$work/click/userlevel/click" "$out/bin.tmp/click"
  printf 'sources: %s\nrecipe: %s\nbuilt: %s in %ss\n' "$ids" "$RECIPE" "$(date -u +%FT%TZ)" \
    "$(($(date +%s) - start))" >"$out/BUILD-INFO"
  rm -rf "$out/bin" && mv "$out/bin.tmp" "$out/bin"   # the binary appears only once it is complete
  say "built in $(($(date +%s) - start)) s"
fi

"$bin" --version >/dev/null   # the cached binary runs
mkdir -p build
ln -sfn "$bin" build/click
say "Click: $bin"
echo "$bin"
