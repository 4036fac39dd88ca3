"""image-build/: the install scripts shared by the Debian images and the pi-gen stage, and the
refusals of build.sh and pi-gen.sh (fast checks).

The images themselves are built and booted by tests/test_image.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "image-build"
STAGE = IMAGE / "stage-kiosk" / "00-kiosk"
SCRIPTS = sorted(
    [p for p in IMAGE.rglob("*.sh") if "work" not in p.relative_to(IMAGE).parts]
    + [REPO / "systemd" / n for n in ("kiosk-power", "kiosk-power-action", "kiosk-display-failed", "kiosk-setup", "kiosk-readonly-root", "kiosk-data-partition")]
    + [REPO / "tools" / "rootfs-test.sh"]
)


def packages() -> set[str]:
    words: set[str] = set()
    for line in (STAGE / "00-packages").read_text().splitlines():
        words |= set(line.split("#", 1)[0].split())
    return words


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_script_is_strict_says_why_and_parses(script: Path) -> None:
    lines = script.read_text().splitlines()
    assert lines[0].startswith("#!") and "bash" in lines[0]
    head = lines[1:8]
    assert any(line.startswith("# ") for line in head), "a comment on why the script exists"
    assert "set -euo pipefail" in head
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


def test_the_stage_installs_what_the_units_run() -> None:
    assert {"cage", "xwayland", "chromium", "fonts-noto-cjk", "espeak-ng", "python3-venv", "polkitd",
            "libpam-systemd", "fake-hwclock", "fdisk", "e2fsprogs"} <= packages()


def test_the_stage_follows_pi_gen_layout() -> None:
    assert os.access(IMAGE / "stage-kiosk" / "prerun.sh", os.X_OK)
    assert (IMAGE / "stage-kiosk" / "EXPORT_IMAGE").exists()
    assert os.access(STAGE / "01-run.sh", os.X_OK)
    assert (STAGE / "02-run-chroot.sh").exists()
    assert "IMG_NAME=" in (IMAGE / "pi-gen.config").read_text()


def test_the_pi_gen_stage_and_the_debian_images_run_the_same_install_scripts() -> None:
    install = IMAGE / "install"
    assert (STAGE / "00-packages").resolve() == install / "packages"
    assert (STAGE / "02-run-chroot.sh").resolve() == install / "chroot.sh"
    assert "install" in (STAGE / "01-run.sh").read_text() and "host.sh" in (STAGE / "01-run.sh").read_text()
    build = (IMAGE / "build.sh").read_text()
    assert "image-build/install/host.sh" in build and "image-build/install/chroot.sh" in build
    assert "$HERE/install/packages" in build


def _build(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("KIOSK_TECH_PASSWORD", "PI_GEN_DIR")}
    full.update({"KIOSK_BUILD_DIR": str(tmp_path / "work"), **env})
    return subprocess.run([str(IMAGE / "pi-gen.sh")], env=full, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


@pytest.mark.needs(os.geteuid() == 0, "build.sh first refuses anyone but root")
def test_build_refuses_without_the_technician_password(tmp_path: Path) -> None:
    done = _build(tmp_path)
    assert done.returncode == 1 and "KIOSK_TECH_PASSWORD" in done.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.needs(os.geteuid() == 0, "build.sh first refuses anyone but root")
def test_build_never_clones_pi_gen_without_a_person_at_a_terminal(tmp_path: Path) -> None:
    done = _build(tmp_path, KIOSK_TECH_PASSWORD="x", PI_GEN_DIR=str(tmp_path / "no-pi-gen"))
    assert done.returncode == 1 and "PI_GEN_DIR" in done.stderr
    assert not (tmp_path / "no-pi-gen").exists()


def test_the_host_side_script_needs_a_root_file_system_and_the_wheel(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROOTFS_DIR"}
    done = subprocess.run([str(STAGE / "01-run.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ROOTFS_DIR" in done.stderr
    root = tmp_path / "root"
    root.mkdir()
    done = subprocess.run([str(STAGE / "01-run.sh")], env={**env, "ROOTFS_DIR": str(root), "KIOSK_WHEELS": str(tmp_path / "none")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "wheel" in done.stderr
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("argv", [[], ["--arch", "i386", "-o", "x.img"], ["--arch", "amd64"], ["--arch"], ["--bogus"]])
def test_the_image_build_refuses_bad_arguments_and_builds_nothing(argv: list[str], tmp_path: Path) -> None:
    done = subprocess.run([str(IMAGE / "build.sh"), *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "KIOSK_IMAGE_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2 and "usage:" in done.stderr
    assert list(tmp_path.iterdir()) == []
