#!/bin/bash
# pi-gen's host side of the kiosk stage: the same install script the Debian images run
# (image-build/install/host.sh), so the two kinds of image cannot drift apart.
set -euo pipefail
exec "$(cd "$(dirname "$0")/../../install" && pwd)/host.sh" "$@"
