#!/bin/bash
# Host side of the kiosk stage: copies the kiosk's wheels, units, udev rules, helpers and
# system settings into the image's root file system; 02-run-chroot.sh finishes inside it.
# pi-gen runs it with ROOTFS_DIR set; tests/test_rootfs.py runs it the same way.
set -euo pipefail

cd "$(dirname "$0")"
: "${ROOTFS_DIR:?ROOTFS_DIR must name the root file system to install into}"
REPO="${KIOSK_REPO:-$(cd ../../.. && pwd)}"
WHEELS="${KIOSK_WHEELS:-$REPO/image-build/work/wheels}"
R="$ROOTFS_DIR"

if ! ls "$WHEELS"/field_kiosk-*.whl >/dev/null 2>&1; then
    echo "01-run.sh: no field_kiosk wheel in $WHEELS (image-build/build.sh makes it)" >&2
    exit 1
fi

# The wheels, for 02-run-chroot.sh to install into /opt/kiosk (it removes them afterwards).
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
for helper in kiosk-power kiosk-power-action kiosk-display-failed kiosk-setup kiosk-data-partition; do
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

# What 02-run-chroot.sh and the first boot need to know about this build.
cat >"$R/etc/kiosk/image.env" <<ENV
KIOSK_READONLY_ROOT=${KIOSK_READONLY_ROOT:-0}
KIOSK_OFFLINE=${KIOSK_OFFLINE:-0}
ENV

# The data partition: made on the first boot from the rest of the card (kiosk-data-partition).
install -d -m 0750 "$R/var/lib/kiosk"
if ! grep -q 'LABEL=kioskdata' "$R/etc/fstab" 2>/dev/null; then
    echo 'LABEL=kioskdata /var/lib/kiosk ext4 defaults,noatime,commit=60,nofail,x-systemd.device-timeout=10s 0 2' >>"$R/etc/fstab"
fi

# Keep the root partition at its built size: the first boot gives the rest to kioskdata.
for cmdline in "$R/boot/firmware/cmdline.txt" "$R/boot/cmdline.txt"; do
    [ -f "$cmdline" ] || continue
    sed -i -e 's| init=/usr/lib/raspberrypi-sys-mods/firstboot||' -e 's| resize\b||' "$cmdline"
done
