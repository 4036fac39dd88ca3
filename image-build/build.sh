#!/bin/bash
# Builds a bootable Field Kiosk disk image from Debian 12 packages alone:
#   image-build/build.sh --arch amd64|arm64 -o OUT.img
set -euo pipefail

# mmdebstrap makes the root file system; image-build/install/ (the same scripts the pi-gen
# stage runs) puts the kiosk in; image-build/debian/customize.sh adds what a Debian image needs
# to boot (kernel, GRUB, Raspberry Pi firmware on arm64). The GPT disk is then assembled from
# file system images made by mke2fs -d and mtools, with no loop device and no mount: Debian 12's
# systemd-repart (252) still formats CopyFiles= partitions through loop devices, which a build
# container or CI machine may not have. Partitions: see image-build/layout.env.
# Debian packages and finished images are cached under /var/cache/field-kiosk, keyed by the hash
# of every input, so a second build with the same inputs only copies the image.

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
CACHE="${KIOSK_IMAGE_CACHE:-/var/cache/field-kiosk}"
SUITE=bookworm
CACHE_FORMAT=1   # bump when the way images are made changes in a way the inputs do not show

die() { echo "build.sh: $*" >&2; exit 1; }
say() { echo "build.sh: $(date -u +%H:%M:%S) $*" >&2; }
usage() { echo "usage: image-build/build.sh --arch amd64|arm64 -o OUT.img [--no-cache]" >&2; exit 2; }

ARCH="" OUT="" USE_CACHE=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        --arch) [ "$#" -ge 2 ] || usage; ARCH="$2"; shift 2 ;;
        -o|--output) [ "$#" -ge 2 ] || usage; OUT="$2"; shift 2 ;;
        --no-cache) USE_CACHE=0; shift ;;
        -h|--help) usage ;;
        *) echo "build.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
case "$ARCH" in
    amd64) QEMU_ARCH=x86_64; ROOT_TYPE=4f68bce3-e8cd-4db1-96e7-fbcaf984b709 ;;
    arm64) QEMU_ARCH=aarch64; ROOT_TYPE=b921b045-1df0-41c3-af44-4c6f280d3fae ;;
    *) echo "build.sh: --arch must be amd64 or arm64" >&2; usage ;;
esac
[ -n "$OUT" ] || usage
[ -d "$(dirname "$OUT")" ] || die "the folder of $OUT does not exist"
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap's root mode and chroot): run it as root"
for tool in mmdebstrap mke2fs mkfs.vfat mcopy sfdisk python3; do
    command -v "$tool" >/dev/null || die "needs $tool (tools/bootstrap.sh installs it)"
done

# shellcheck source=layout.env
. "$HERE/layout.env"

mirror() {
    # The Debian mirror this machine's apt uses (deb822 or one-line sources), else Debian's own.
    local uri
    uri=$(grep -hs -E '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
    [ -n "$uri" ] || uri=$(grep -hs -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '$3 == "bookworm" {print $2}' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${KIOSK_DEBIAN_MIRROR:-$(mirror)}"
SECURITY_MIRROR="${KIOSK_DEBIAN_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}"

# Every input of the image: the kiosk's source, units, install scripts, package lists, docs
# (installed as the units' Documentation=), this script, the architecture and the mirror.
inputs_key() {
    (
        cd "$REPO"
        echo "$CACHE_FORMAT $ARCH $SUITE $MIRROR $SECURITY_MIRROR"
        find pyproject.toml kiosk systemd docs image-build -type f \
            ! -path 'image-build/work/*' ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -c1-16
}
KEY=$(inputs_key)
CACHED="$CACHE/images/field-kiosk-$ARCH-$KEY.img"
if [ "$USE_CACHE" = 1 ] && [ -f "$CACHED" ]; then
    cp --sparse=always "$CACHED" "$OUT.part"
    mv -f "$OUT.part" "$OUT"
    say "$OUT from the cache (inputs $KEY unchanged)"
    exit 0
fi
say "building the $ARCH image (inputs $KEY)"

WORK="$CACHE/work-$ARCH"
DEBS="$CACHE/debs-$ARCH"
rm -rf "$WORK"
mkdir -p "$WORK/wheels" "$DEBS" "$CACHE/images"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# The kiosk and its Python dependencies as wheels for the target (Python 3.11, glibc 2.36):
# pure-Python ones built here once (some are published as source only), binary ones
# downloaded for the target's platform. The image installs them with no network (KIOSK_OFFLINE).
say "wheels for linux-$QEMU_ARCH"
PIP=(python3 -m pip --disable-pip-version-check -q)
"${PIP[@]}" wheel --no-deps --wheel-dir "$WORK/kiosk-wheel" "$REPO"
"${PIP[@]}" wheel --wheel-dir "$WORK/host-wheels" "$WORK"/kiosk-wheel/field_kiosk-*.whl
platforms=()
for tag in manylinux2014 manylinux_2_28 manylinux_2_34 manylinux_2_35 manylinux_2_36; do
    platforms+=(--platform "${tag}_$QEMU_ARCH")
done
"${PIP[@]}" download --dest "$WORK/wheels" --find-links "$WORK/host-wheels" --only-binary=:all: \
    "${platforms[@]}" --python-version 3.11 --implementation cp "$WORK"/kiosk-wheel/field_kiosk-*.whl

# Binaries of the other architecture run through qemu-user-static (binfmt_misc).
if [ "$(dpkg --print-architecture)" != "$ARCH" ]; then
    command -v "qemu-$QEMU_ARCH-static" >/dev/null || die "needs qemu-user-static to build for $ARCH"
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$QEMU_ARCH" ] || /lib/systemd/systemd-binfmt
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$QEMU_ARCH" ] || die "binfmt_misc has no qemu-$QEMU_ARCH entry"
fi

# The packages: the kiosk's own list (shared with the pi-gen stage) plus what a plain Debian
# image needs to boot and reach the network.
packages() { sed -e 's/#.*//' "$@" | tr -s ' \n' '\n' | grep -v '^$' | paste -sd, -; }
INCLUDE="$(packages "$HERE/install/packages" "$HERE/debian/packages" "$HERE/debian/packages-$ARCH")"

say "mmdebstrap ($SUITE, $ARCH) from $MIRROR"
# this machine's pip settings are not the image's (it installs offline from its own wheels)
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_CONFIG_FILE
export ROOTFS_DIR="$WORK/root" KIOSK_REPO="$REPO" KIOSK_WHEELS="$WORK/wheels" KIOSK_OFFLINE=1
export KIOSK_READONLY_ROOT=0 KIOSK_ARCH="$ARCH" KIOSK_ESP_OUT="$WORK/esp" KIOSK_IMAGE_DIR="$HERE"
# Documentation, manual pages and message translations are left out: nobody reads them on the box.
mmdebstrap --mode=root --variant=minbase --architectures="$ARCH" \
    --components=main,non-free-firmware --include="$INCLUDE" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/zh_CN/*' \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
    --setup-hook="sync-in $DEBS /var/cache/apt/archives" \
    --customize-hook="sync-out /var/cache/apt/archives $DEBS" \
    --customize-hook='"$KIOSK_REPO"/image-build/install/host.sh' \
    --customize-hook='chroot "$1" bash < "$KIOSK_REPO"/image-build/install/chroot.sh' \
    --customize-hook='"$KIOSK_REPO"/image-build/debian/customize.sh "$1"' \
    "$SUITE" "$WORK/root" \
    "deb $MIRROR $SUITE main non-free-firmware" \
    "deb $MIRROR $SUITE-updates main non-free-firmware" \
    "deb $SECURITY_MIRROR $SUITE-security main non-free-firmware"
# Keep only the .debs of this package set: the cache never grows without bound.
find "$DEBS" -name '*.deb' -mtime +30 -delete 2>/dev/null || true

# The file systems, each made straight from a folder into a file.
say "file systems"
MIB=$((1024 * 1024))
kiosk_ids=$(awk -F: '$1 == "kiosk" {print $3 ":" $4}' "$WORK/root/etc/passwd")
[ -n "$kiosk_ids" ] || die "the image has no kiosk user"
truncate -s $((ESP_SIZE * MIB)) "$WORK/esp.img"
mkfs.vfat -F 32 -n KIOSK-BOOT -i 4b494f53 --invariant "$WORK/esp.img" >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$WORK/esp.img" "$WORK/esp"/* ::/
truncate -s $((ROOT_SIZE * MIB)) "$WORK/root.img"
mke2fs -q -F -t ext4 -L rootfs -U "$ROOT_A_UUID" -m 1 -d "$WORK/root" "$WORK/root.img"
mkdir "$WORK/data"
truncate -s $((DATA_SIZE * MIB)) "$WORK/data.img"
mke2fs -q -F -t ext4 -L kiosk-data -U "$DATA_UUID" -m 1 -E "root_owner=$kiosk_ids" -d "$WORK/data" "$WORK/data.img"
rm -rf "$WORK/root"

# The disk: GPT, 1 MiB aligned; slot B stays empty until the first update writes it.
say "disk"
esp_at=1
a_at=$((esp_at + ESP_SIZE))
b_at=$((a_at + ROOT_SIZE))
data_at=$((b_at + ROOT_SIZE))
total=$((data_at + DATA_SIZE + 1))
img="$WORK/disk.img"
truncate -s $((total * MIB)) "$img"
sfdisk --quiet --no-reread --no-tell-kernel "$img" <<TABLE
label: gpt
label-id: 4b494f53-4b00-4000-8000-000000000000
unit: sectors
first-lba: 2048
start=$((esp_at * 2048)), size=$((ESP_SIZE * 2048)), type=$ESP_TYPE, uuid=$ESP_UUID, name="boot"
start=$((a_at * 2048)), size=$((ROOT_SIZE * 2048)), type=$ROOT_TYPE, uuid=$ROOT_A_UUID, name="rootfs-A"
start=$((b_at * 2048)), size=$((ROOT_SIZE * 2048)), type=$ROOT_TYPE, uuid=$ROOT_B_UUID, name="rootfs-B"
start=$((data_at * 2048)), size=$((DATA_SIZE * 2048)), type=$DATA_TYPE, uuid=$DATA_UUID, name="kiosk-data"
TABLE
dd if="$WORK/esp.img" of="$img" bs=1M seek="$esp_at" conv=notrunc,sparse status=none
dd if="$WORK/root.img" of="$img" bs=1M seek="$a_at" conv=notrunc,sparse status=none
dd if="$WORK/data.img" of="$img" bs=1M seek="$data_at" conv=notrunc,sparse status=none

# Into the cache (only the newest image of each architecture is kept), then to OUT.
rm -f "$CACHE"/images/field-kiosk-"$ARCH"-*.img
mv "$img" "$CACHED"
cp --sparse=always "$CACHED" "$OUT.part"
mv -f "$OUT.part" "$OUT"
say "$OUT: $(du -m --apparent-size "$OUT" | cut -f1) MiB disk, $(du -m "$OUT" | cut -f1) MiB written"
