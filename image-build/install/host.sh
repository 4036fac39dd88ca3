#!/bin/bash
# Host side of the kiosk stage: copies the kiosk's wheels, units, udev rules, helpers and
# system settings into the image's root file system; chroot.sh finishes inside it.
# The Debian images (build.sh, as an mmdebstrap hook) and the pi-gen stage (01-run.sh) both
# run it with ROOTFS_DIR set, so the two kinds of image cannot drift apart.
set -euo pipefail

cd "$(dirname "$0")"
: "${ROOTFS_DIR:?ROOTFS_DIR must name the root file system to install into}"
REPO="${KIOSK_REPO:-$(cd ../.. && pwd)}"
WHEELS="${KIOSK_WHEELS:-$REPO/image-build/work/wheels}"
R="$ROOTFS_DIR"

if ! ls "$WHEELS"/field_kiosk-*.whl >/dev/null 2>&1; then
    echo "host.sh: no field_kiosk wheel in $WHEELS (image-build/build.sh and pi-gen.sh make it)" >&2
    exit 1
fi

# The wheels, for chroot.sh to install into /opt/kiosk (it removes them afterwards).
install -d -m 0755 "$R/var/cache/kiosk-wheels"
cp "$WHEELS"/*.whl "$R/var/cache/kiosk-wheels/"

# Units of the box (the centre's unit belongs on the county server, not here).
for unit in "$REPO"/systemd/*.service; do
    [ "$(basename "$unit")" = "kiosk-centre.service" ] && continue
    install -m 0644 "$unit" "$R/etc/systemd/system/"
done
# udev rules (numbered, as udev orders them): USB disk and optical disc import.
install -d -m 0755 "$R/etc/udev/rules.d"
for rule in "$REPO"/systemd/[0-9][0-9]-*.rules; do
    [ -e "$rule" ] || continue
    install -m 0644 "$rule" "$R/etc/udev/rules.d/"
done
# The narrow helpers the units run.
install -d -m 0755 "$R/usr/lib/kiosk"
for helper in kiosk-power kiosk-power-action kiosk-display-failed kiosk-setup kiosk-readonly-root kiosk-data-partition; do
    install -m 0755 "$REPO/systemd/$helper" "$R/usr/lib/kiosk/$helper"
done
# polkit: the box's user may start exactly the three power-action units.
install -d -m 0755 "$R/etc/polkit-1/rules.d"
install -m 0644 "$REPO/systemd/kiosk-power.rules" "$R/etc/polkit-1/rules.d/50-kiosk-power.rules"

# System settings: watchdog, volatile journal, the screens' PAM service, default config.
install -m 0644 -D files/etc/systemd/system.conf.d/50-kiosk-watchdog.conf "$R/etc/systemd/system.conf.d/50-kiosk-watchdog.conf"
install -m 0644 -D files/etc/systemd/journald.conf.d/50-kiosk.conf "$R/etc/systemd/journald.conf.d/50-kiosk.conf"
install -m 0644 -D files/etc/pam.d/kiosk-display "$R/etc/pam.d/kiosk-display"
install -d -m 0755 "$R/etc/kiosk"
if [ ! -e "$R/etc/kiosk/kiosk.toml" ]; then
    install -m 0640 files/etc/kiosk/kiosk.toml "$R/etc/kiosk/kiosk.toml"
fi
# The guides the units' Documentation= lines point at.
install -d -m 0755 "$R/usr/share/doc/field-kiosk"
install -m 0644 "$REPO"/docs/*.md "$R/usr/share/doc/field-kiosk/"

# What chroot.sh and the first boot need to know about this build.
cat >"$R/etc/kiosk/image.env" <<ENV
KIOSK_READONLY_ROOT=${KIOSK_READONLY_ROOT:-0}
KIOSK_OFFLINE=${KIOSK_OFFLINE:-0}
ENV

# The data partition: mounted each boot by kiosk-data-partition, found on the boot disk by its
# partition identity (never by a label a USB stick could carry), so /etc/fstab does not name it.
install -d -m 0750 "$R/var/lib/kiosk"

# Keep the root partition at its built size: the first boot gives the rest to kioskdata.
for cmdline in "$R/boot/firmware/cmdline.txt" "$R/boot/cmdline.txt"; do
    [ -f "$cmdline" ] || continue
    sed -i -e 's| init=/usr/lib/raspberrypi-sys-mods/firstboot||' -e 's| resize\b||' "$cmdline"
done
