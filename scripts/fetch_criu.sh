#!/usr/bin/env bash
# Download criu 4.2.1 (Debian unstable), libcompel1 and the shared libraries the criu binary needs,
# as .deb files into DEST, without touching the system's apt sources.
#
#   scripts/fetch_criu.sh DEST
#
# Why: on this kernel Debian 12's criu 3.17 fails (vDSO bounds) and Debian 13's 4.1.1 cannot dump TCP
# sockets; criu 4.2.1 works when run with its own libc through its own loader (roles/edge does that:
# it unpacks these .debs into a private prefix and installs a `criu` wrapper).
#
# It uses a private apt configuration under DEST/.apt (its own sources list, lists dir and cache):
#   apt-get -o Dir::Etc::SourceList=FILE -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=DIR update
#   apt-get ... download PKG...
# Idempotent: when every wanted .deb is already in DEST it does nothing (exit 0, prints "unchanged").
#
# Environment:
#   CRIU_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   CRIU_SUITE    suite that carries criu 4.2.1 (default unstable)
#   CRIU_VERSION  wanted criu version prefix (default 4.2.1)
#   CRIU_KEYRING  keyring for the suite (default /usr/share/keyrings/debian-archive-keyring.gpg)
set -euo pipefail

DEST=${1:?usage: $0 DEST}
MIRROR=${CRIU_MIRROR:-http://deb.debian.org/debian}
SUITE=${CRIU_SUITE:-unstable}
VERSION=${CRIU_VERSION:-4.2.1}
KEYRING=${CRIU_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
ARCH=$(dpkg --print-architecture)

# criu, libcompel1 and the closure of their Depends (apt-cache depends --recurse): run through its
# own loader, criu must find ALL its libraries inside the private prefix, libc6 included. On 4.2.1-1 that
# is libbsd0 libc6 libgnutls30t64 libnet9 libnftables1 libnl-3-200 libprotobuf-c1 libuuid1 and what those
# pull in (gmp, nettle, p11-kit, idn2, tasn1, jansson, mnl, nftnl, xtables, ...). The role checks the
# result with ldd on the unpacked binary. python3-pycriu / crit are not needed.
ROOT_PKGS=(criu libcompel1)
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
STAMP="$DEST/.fetch_criu.done"

have_all() {
  [ -f "$STAMP" ] || return 1
  local p
  for p in $(cat "$STAMP"); do
    compgen -G "$DEST/${p}_*.deb" >/dev/null || return 1
  done
  compgen -G "$DEST/criu_${VERSION}*_${ARCH}.deb" >/dev/null || return 1
}

if have_all; then
  echo "unchanged: criu ${VERSION} .debs already in $DEST"
  exit 0
fi

APTDIR="$DEST/.apt"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/etc"
printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$SUITE" > "$APTDIR/etc/sources.list"
: > "$APTDIR/etc/preferences"

APT=(apt-get -q
  -o "Dir::Etc::SourceList=$APTDIR/etc/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::Etc::Preferences=$APTDIR/etc/preferences"
  -o "Dir::Etc::PreferencesParts=/dev/null"
  -o "Dir::State::Lists=$APTDIR/lists"
  -o "Dir::State::status=/dev/null"
  -o "Dir::Cache=$APTDIR/cache"
  -o "Dir::Cache::archives=$APTDIR/archives"
  -o "APT::Architecture=$ARCH"
  -o "APT::Architectures=$ARCH"
  -o "Acquire::Languages=none")
mkdir -p "$APTDIR/cache"

"${APT[@]}" update >"$APTDIR/update.log" 2>&1 || { cat "$APTDIR/update.log" >&2; exit 1; }

# The dependency closure; lines starting with a blank are edges, "<name>" are virtual packages.
mapfile -t avail < <("${APT[@]/apt-get/apt-cache}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances "${ROOT_PKGS[@]}" | grep -v '^[ <]' | sort -u)
[ "${#avail[@]}" -ge 2 ] || { echo "error: could not resolve the dependencies of ${ROOT_PKGS[*]}" >&2; exit 1; }

cand=$("${APT[@]/apt-get/apt-cache}" policy criu | awk '/Candidate:/ {print $2}')
case "$cand" in
  "$VERSION"*) ;;
  *) echo "error: $SUITE has criu '$cand', wanted $VERSION (set CRIU_SUITE/CRIU_VERSION)" >&2; exit 1 ;;
esac

(cd "$DEST" && "${APT[@]}" download "${avail[@]}" >"$APTDIR/download.log" 2>&1) \
  || { cat "$APTDIR/download.log" >&2; exit 1; }

printf '%s\n' "${avail[@]}" > "$STAMP"
echo "changed: downloaded ${#avail[@]} packages (criu $cand) into $DEST"
ls -1 "$DEST"/*.deb
