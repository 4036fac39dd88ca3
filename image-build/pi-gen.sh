#!/bin/bash
# Builds the Field Kiosk SD card image: the kiosk's wheel, then pi-gen's stages 0-2
# (Raspberry Pi OS Lite) followed by image-build/stage-kiosk. Needs root and a Debian host.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
WORK="${KIOSK_BUILD_DIR:-$HERE/work}"
PI_GEN_DIR="${PI_GEN_DIR:-$WORK/pi-gen}"
PI_GEN_URL="${PI_GEN_URL:-https://github.com/RPi-Distro/pi-gen.git}"
# pi-gen's branch for 64-bit Raspberry Pi OS (bookworm); 32-bit boards use "bookworm".
PI_GEN_BRANCH="${PI_GEN_BRANCH:-arm64}"

die() { echo "build.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "pi-gen needs root: run it as root (sudo -E image-build/pi-gen.sh)"
[ -n "${KIOSK_TECH_PASSWORD:-}" ] || die "set KIOSK_TECH_PASSWORD to the technician login's password"

# pi-gen itself: an existing checkout (PI_GEN_DIR), or a fresh clone when a person asks for
# one at a terminal. Automated builds must bring their own checkout, pinned to a commit.
if [ ! -x "$PI_GEN_DIR/build.sh" ]; then
    if [ -t 0 ] && [ -z "${CI:-}" ]; then
        echo "build.sh: no pi-gen in $PI_GEN_DIR; cloning $PI_GEN_URL ($PI_GEN_BRANCH)"
        mkdir -p "$(dirname "$PI_GEN_DIR")"
        git clone --depth 1 --branch "$PI_GEN_BRANCH" "$PI_GEN_URL" "$PI_GEN_DIR"
    else
        die "no pi-gen checkout in $PI_GEN_DIR: set PI_GEN_DIR (not cloned automatically without a terminal)"
    fi
fi

# The kiosk as a wheel; 02-run-chroot.sh installs it (and its dependencies) into /opt/kiosk.
rm -rf "$WORK/wheels"
mkdir -p "$WORK/wheels"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheels" "$REPO"
echo "build.sh: wheel $(basename "$WORK"/wheels/field_kiosk-*.whl)"

# Only the kiosk image is exported, not the plain Lite image of stage2.
touch "$PI_GEN_DIR/stage2/SKIP_IMAGES"
rm -f "$PI_GEN_DIR/stage2/EXPORT_NOOBS"

config="$WORK/pi-gen.config"
{
    cat "$HERE/pi-gen.config"
    echo "STAGE_LIST=\"stage0 stage1 stage2 $HERE/stage-kiosk\""
    printf 'FIRST_USER_PASS=%q\n' "$KIOSK_TECH_PASSWORD"
} >"$config"
chmod 0600 "$config"

export KIOSK_REPO="$REPO" KIOSK_WHEELS="$WORK/wheels"
export KIOSK_READONLY_ROOT="${KIOSK_READONLY_ROOT:-0}" KIOSK_OFFLINE=0
(cd "$PI_GEN_DIR" && ./build.sh -c "$config")
rm -f "$config"

echo "build.sh: image(s) in $PI_GEN_DIR/deploy:"
ls -l "$PI_GEN_DIR"/deploy/*field-kiosk* 2>/dev/null || true
