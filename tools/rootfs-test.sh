#!/usr/bin/env bash
# The slow image test on its own step: the kiosk stage installed into a debootstrap'd Debian
# root file system (tests/test_rootfs.py). The tree is cached in /var/cache/field-kiosk, so
# only the first run pays for debootstrap and the package downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# debootstrap makes the tree; systemd-nspawn boots it with its own systemd.
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq debootstrap systemd-container >/dev/null
fi

# Root is needed for debootstrap, chroot and the overlay mount.
unset KIOSK_SKIP_ROOTFS
exec $SUDO timeout "${KIOSK_ROOTFS_TIMEOUT:-2700}" .venv/bin/python -m pytest -q -ra -p no:cacheprovider \
    --timeout "${KIOSK_ROOTFS_TIMEOUT:-2700}" tests/test_rootfs.py "$@"
