#!/usr/bin/env bash
# Build the arnab lab guest image: build-image.sh OUTDIR MIRROR
# OUTDIR gets base.qcow2 (Debian trixie minbase + tools, the LXC base container inside), vmlinuz, initrd.img,
# build.json. No loop devices: the disk is made with `mke2fs -d`. Called by `python -m arnab_lab.guest build`,
# which caches OUTDIR under /var/lib/arnab-lab/guest/images/<recipe hash>.
set -euo pipefail
OUT=$1
MIRROR=$2
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=recipe.env
. "$here/recipe.env"
CACHE=${ARNAB_GUEST_DEB_CACHE:-/var/lib/arnab-lab/guest/debs}
t0=$(date +%s.%N)
stamp() { echo "$(date +%T) $*" >&2; }

work="$OUT.tmp"
rm -rf "$work"
mkdir -p "$work" "$CACHE/$GUEST_SUITE" "$CACHE/ct-$CT_SUITE"
root="$work/root"
ct="$work/ct"

stamp "debootstrap $GUEST_SUITE (guest) and $CT_SUITE (container) from $MIRROR"
debootstrap --variant=minbase --include="$GUEST_PACKAGES" --cache-dir="$CACHE/$GUEST_SUITE" \
  "$GUEST_SUITE" "$root" "$MIRROR" > "$work/debootstrap-guest.log" 2>&1 &
g=$!
debootstrap --variant=minbase --include="$CT_PACKAGES" --cache-dir="$CACHE/ct-$CT_SUITE" \
  "$CT_SUITE" "$ct" "$MIRROR" > "$work/debootstrap-ct.log" 2>&1 &
c=$!
wait $g || { tail -20 "$work/debootstrap-guest.log" >&2; exit 1; }
wait $c || { tail -20 "$work/debootstrap-ct.log" >&2; exit 1; }
t1=$(date +%s.%N)
stamp "debootstrap done"

slim() {  # drop what a lab guest never reads
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/*
  find "$1/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
}
slim "$root"
slim "$ct"

# --- the container root filesystem: the edge role's base container (roles/edge skips lxc-create when present)
echo arnab-base > "$ct/etc/hostname"
printf 'auto lo\niface lo inet loopback\n' > "$ct/etc/network/interfaces"
rm -f "$ct"/etc/ssh/ssh_host_* 2>/dev/null || true
mkdir -p "$root/var/lib/lxc/arnab-base"
mv "$ct" "$root/var/lib/lxc/arnab-base/rootfs"
cat > "$root/var/lib/lxc/arnab-base/config" <<CFG
# placeholder: roles/edge writes the real config
lxc.include = /usr/share/lxc/config/debian.common.conf
lxc.arch = amd64
lxc.uts.name = arnab-base
lxc.rootfs.path = dir:/var/lib/lxc/arnab-base/rootfs
lxc.net.0.type = empty
CFG

# --- the guest itself
echo arnab-guest > "$root/etc/hostname"
: > "$root/etc/machine-id"     # each guest makes its own at boot (DUIDs, generated MACs derive from it)
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
printf '/dev/vda / ext4 rw,noatime 0 1\n' > "$root/etc/fstab"
install -m 0755 "$here/files/arnab-guest-init" "$root/usr/local/sbin/arnab-guest-init"
install -m 0644 "$here/files/arnab-guest-init.service" "$root/etc/systemd/system/arnab-guest-init.service"
ln -sf /etc/systemd/system/arnab-guest-init.service "$root/etc/systemd/system/multi-user.target.wants/arnab-guest-init.service"
mkdir -p "$root/etc/ssh/sshd_config.d" "$root/root/.ssh"
install -m 0644 "$here/files/sshd-arnab.conf" "$root/etc/ssh/sshd_config.d/arnab.conf"
chmod 700 "$root/root/.ssh"
# Nothing periodic under emulation; no lxcbr0 (containers use br-data); hostapd/wpa_supplicant run on demand.
for unit in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer e2scrub_reap.service \
            fstrim.timer dpkg-db-backup.timer lxc-net.service hostapd.service wpa_supplicant.service \
            systemd-timesyncd.service lxc-monitord.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
sed -i 's/^root:[^:]*:/root:*:/' "$root/etc/shadow"   # no password: the lab key only
cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
kver=$(basename "$root"/boot/vmlinuz-*); kver=${kver#vmlinuz-}
t2=$(date +%s.%N)

stamp "disk image (mke2fs -d, qcow2)"
truncate -s "$DISK_SIZE" "$work/base.raw"
mke2fs -q -t ext4 -L arnab-guest -d "$root" "$work/base.raw"
qemu-img convert -O qcow2 "$work/base.raw" "$work/base.qcow2"
rm -f "$work/base.raw"
used=$(du -sm "$root" | cut -f1)
rm -rf "$root"
t3=$(date +%s.%N)
python3 - "$work/build.json" "$t0" "$t1" "$t2" "$t3" "$kver" "$used" "$MIRROR" <<'PY'
import json, sys
out, t0, t1, t2, t3, kver, used, mirror = sys.argv[1:]
t0, t1, t2, t3 = map(float, (t0, t1, t2, t3))
json.dump({"debootstrap_s": round(t1 - t0, 1), "customize_s": round(t2 - t1, 1), "disk_s": round(t3 - t2, 1),
           "total_s": round(t3 - t0, 1), "kernel": kver, "rootfs_mib": int(used), "mirror": mirror},
          open(out, "w"), indent=1)
PY
rm -rf "$OUT"
mv "$work" "$OUT"
stamp "image ready in $OUT"
cat "$OUT/build.json"
