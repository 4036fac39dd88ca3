#!/usr/bin/env bash
# Sets up everything the demo and the tests need on a fresh Debian machine; quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Debian packages: Python's venv, Chromium and CJK fonts for browser tests and the screens,
# espeak-ng for read-aloud, openssl for the figures, nginx for the Range benchmark,
# debootstrap and systemd-container for the root file system test (a Debian tree, booted),
# ffmpeg for ffprobe, which checks that a local video plays before the box takes it; nodejs to
# evaluate the polkit rule in its test.
# For the disk images (image-build/build.sh) and booting them (tools/image-test.sh): mmdebstrap,
# the file system tools, QEMU for both architectures with their UEFI firmware, qemu-user-static
# for arm64, and socat (the test VM reaches a county centre on the loopback through it).
DEBS="python3-venv python3-pip chromium fonts-noto-cjk espeak-ng openssl nginx-light systemd debootstrap systemd-container ffmpeg nodejs"
DEBS="$DEBS mmdebstrap e2fsprogs dosfstools mtools fdisk qemu-utils qemu-system-x86 qemu-system-arm ovmf qemu-efi-aarch64 qemu-user-static socat"
missing=""
for p in $DEBS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "Installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# The virtual environment, rebuilt only when pyproject.toml changes.
stamp=".venv/.pyproject.sha256"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Setting up the Python environment in .venv"
  python3 -m venv .venv
  # pip's own chatter goes to a log, shown only when the install fails
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[test]'; } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "Installing the Python packages failed (log above)." >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
