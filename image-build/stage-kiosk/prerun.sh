#!/bin/bash
# pi-gen runs this before the stage: start from the previous stage's root file system.
set -euo pipefail

if [ ! -d "${ROOTFS_DIR}" ]; then
    copy_previous
fi
