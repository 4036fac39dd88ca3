#!/usr/bin/env bash
# The disk image tests on their own: builds the amd64 image (image-build/build.sh, cached by its
# inputs) and boots it in QEMU (tests/test_image.py): READY, /healthz, the data partition, a USB import.
#   tools/image-test.sh [--image FILE] [pytest arguments...]
# (--image: boot FILE, an amd64 image built before, instead of building one)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--image" ]; then
    export KIOSK_VM_IMAGE="$(realpath "$2")"
    shift 2
fi

# Root builds the image (mmdebstrap, chroot); bootstrap installs QEMU, OVMF and the rest.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -E"
bash tools/bootstrap.sh
unset KIOSK_SKIP_VM
exec $SUDO timeout "${KIOSK_IMAGE_TEST_TIMEOUT:-5400}" .venv/bin/python -m pytest -q -ra -s -p no:cacheprovider \
    -m vm tests/test_image.py "$@"
