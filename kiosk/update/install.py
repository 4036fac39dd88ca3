"""Installing an application release beside the running one, offline, from a package's wheels.

A release is a Python environment in <releases_dir>/<version>/, made with `venv` and
filled by pip from the package's data/wheels/ alone (`--no-index --find-links`: nothing
is fetched; a wheel set that lacks a dependency fails here, with pip's words). It is
built in its final folder, because an environment's scripts name their own path; the
`.complete` mark is written last, after os.sync(), so a folder without it is debris of
a cut-off install and is removed, never started. The running release, the data folder
and the configuration are not touched by any of this.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kiosk.errors import KioskError
from kiosk.update.state import COMPLETE_MARK

log = logging.getLogger(__name__)

PROJECT = "field-kiosk"  # the distribution name in pyproject.toml
INSTALL_TIMEOUT_S = 1800  # pip on a Pi's SD card: minutes, not hours


class InstallFailed(KioskError, RuntimeError):
    """A release could not be installed; the running one is untouched."""


def complete(folder: Path) -> bool:
    """Whether a release folder was installed to its end."""
    return (Path(folder) / COMPLETE_MARK).is_file() and (Path(folder) / "bin" / "kiosk").exists()


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " / ".join(lines[-n:])[:500]


def _run(cmd: list[str], what: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    # no configured index, cache or user site may take part: only the package's wheels
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_CACHE_DIR": "1", "PYTHONNOUSERSITE": "1"})
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InstallFailed(f"{what}: {e}") from None
    if done.returncode != 0:
        raise InstallFailed(f"{what} failed: {_last_lines(done.stderr or done.stdout)}")
    return done.stdout


def install(wheels: Path, dest: Path, version: str) -> Path:
    """Make the release `version` at `dest` from the wheels in `wheels`; InstallFailed otherwise."""
    dest = Path(dest)
    if complete(dest):
        return dest
    shutil.rmtree(dest, ignore_errors=True)  # debris of a cut-off install
    dest.parent.mkdir(parents=True, exist_ok=True)
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    log.info("event=release_install_started version=%s dest=%s", version, dest)
    try:
        # with its own pip (ensurepip's bundled wheel, offline): this release installs the next
        _run([base_python, "-m", "venv", str(dest)], "making the Python environment")
        _run([str(dest / "bin" / "python"), "-I", "-m", "pip", "install", "--no-index",
              "--find-links", str(wheels), "--only-binary", ":all:", f"{PROJECT}=={version}"],
             "installing the wheels")
        got = _run([str(dest / "bin" / "python"), "-I", "-c", "import kiosk; print(kiosk.__version__)"],
                   "starting the new release's Python").strip()
        if got != version:
            raise InstallFailed(f"the wheels hold kiosk {got}, not {version}")
        if not (dest / "bin" / "kiosk").exists():
            raise InstallFailed("the wheels installed no kiosk command")
        os.sync()  # every file pip wrote is on the card before the mark says so
        with open(dest / COMPLETE_MARK, "w") as f:
            f.write(version + "\n")
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(dest, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    log.info("event=release_installed version=%s dest=%s", version, dest)
    return dest


def remove_debris(releases: Path, keep: set[str]) -> None:
    """Remove release folders that are incomplete or no longer needed (not in `keep`)."""
    try:
        entries = list(Path(releases).iterdir())
    except FileNotFoundError:
        return
    for p in entries:
        if p.is_symlink() or not p.is_dir() or p.name.startswith("."):
            continue
        if p.name not in keep or not complete(p):
            shutil.rmtree(p, ignore_errors=True)
            log.info("event=release_removed folder=%s", p)
