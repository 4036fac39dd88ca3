#!/bin/bash
# What a plain Debian disk image needs beyond the kiosk (which image-build/install/ puts in):
# host name, network, the boot partition's contents (GRUB for UEFI, the Raspberry Pi firmware
# on arm64) and the initramfs. build.sh runs it as an mmdebstrap customize hook:
#   customize.sh ROOT   (KIOSK_ARCH, KIOSK_ESP_OUT, KIOSK_IMAGE_DIR in the environment)
# It moves the boot partition's files out of ROOT/boot/firmware into KIOSK_ESP_OUT.
set -euo pipefail

R="${1:?usage: customize.sh ROOT}"
: "${KIOSK_ARCH:?}" "${KIOSK_ESP_OUT:?}" "${KIOSK_IMAGE_DIR:?}"
# shellcheck source=../layout.env
. "$KIOSK_IMAGE_DIR/layout.env"
in_root() { chroot "$R" "$@"; }

echo kiosk >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tkiosk\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"

# Wired network by DHCP (systemd-networkd, part of systemd): the county line or the village router.
install -d "$R/etc/systemd/network"
cat >"$R/etc/systemd/network/20-wired.network" <<NET
[Match]
Type=ether

[Network]
DHCP=yes

[DHCPv4]
# the box never waits for an address: it serves its screens without any network
ClientIdentifier=mac
NET
in_root systemctl enable systemd-networkd.service
in_root systemctl mask systemd-networkd-wait-online.service

# The root slot comes from the kernel command line (root=PARTUUID=...), so /etc/fstab names
# neither slot and the same root file system boots from A or B. The boot partition and the
# data partition are found on the boot disk by kiosk-data-partition, never by a label.
cat >"$R/etc/fstab" <<FSTAB
# Field Kiosk: / is the root slot the boot loader chose (root=PARTUUID= on the kernel command
# line). /boot/firmware and /var/lib/kiosk are mounted by kiosk-data-partition.service from
# partitions of the boot disk, found by their GPT type (never by a label a USB stick could carry).
tmpfs /tmp tmpfs mode=1777,nosuid,nodev,size=128M 0 0
FSTAB
install -d -m 0755 "$R/boot/firmware"
# the layout, for kiosk-data-partition and the updates
install -m 0644 "$KIOSK_IMAGE_DIR/layout.env" "$R/etc/kiosk/layout.env"

# Nobody logs in on the box's screen or serial port; the technician uses the device page.
in_root passwd --lock root >/dev/null

case "$KIOSK_ARCH" in
    amd64) efi=x86_64-efi; loader=BOOTX64.EFI; console="console=tty0 console=ttyS0,115200" ;;
    arm64) efi=arm64-efi; loader=BOOTAA64.EFI; console="console=tty0 console=ttyAMA0,115200" ;;
    *) echo "customize.sh: unknown architecture $KIOSK_ARCH" >&2; exit 1 ;;
esac

# The kernel's package already made its initramfs (initramfs-tools' MODULES=most: the modules
# for any PC's or Pi's disk), so nothing here changes it.

if [ "$KIOSK_ARCH" = arm64 ]; then
    # Debian's raspi-firmware writes config.txt, cmdline.txt, the kernel, initramfs and device
    # trees into /boot/firmware; tell it the root slot A by PARTUUID and run its hook again.
    cat >"$R/etc/default/raspi-firmware" <<RASPI
# Field Kiosk: the Raspberry Pi boots root slot A (RAUC slot rootfs.0) by partition UUID.
ROOTPART=PARTUUID=$ROOT_A_UUID
CONSOLES="tty0 ttyS1,115200"
KERNEL_ARCH=arm64
CMDLINE="rw rootwait panic=10 loglevel=4 systemd.getty_auto=0 rauc.slot=A"
RASPI
    for k in "$R"/boot/vmlinuz-*; do
        in_root /etc/kernel/postinst.d/z50-raspi-firmware "${k##*/vmlinuz-}"
    done
fi

# GRUB as the removable-media loader (EFI/BOOT/BOOT*.EFI): any UEFI firmware starts it with no
# NVRAM entry, so the same image boots a PC, QEMU with OVMF/AAVMF, or an arm64 UEFI machine.
install -d "$R/boot/firmware/EFI/BOOT"
in_root grub-mkimage -O "$efi" -o "/boot/firmware/EFI/BOOT/$loader" -p /EFI/BOOT \
    part_gpt part_msdos fat ext2 normal linux configfile loadenv test regexp echo \
    search search_fs_uuid all_video gzio zstd sleep reboot halt
sed -e "s|@ROOT_A_UUID@|$ROOT_A_UUID|g" -e "s|@ROOT_B_UUID@|$ROOT_B_UUID|g" -e "s|@CONSOLE@|$console|g" \
    "$KIOSK_IMAGE_DIR/debian/grub.cfg.in" >"$R/boot/firmware/EFI/BOOT/grub.cfg"
in_root grub-editenv /boot/firmware/EFI/BOOT/grubenv create
in_root grub-editenv /boot/firmware/EFI/BOOT/grubenv set ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0

# The boot partition's files leave the root file system: build.sh puts them on the ESP.
rm -rf "$KIOSK_ESP_OUT"
mkdir -p "$KIOSK_ESP_OUT"
cp -a "$R/boot/firmware/." "$KIOSK_ESP_OUT/"
find "$R/boot/firmware" -mindepth 1 -delete
