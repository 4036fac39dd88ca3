"""Software updates of the box: which release runs, whether an offered one is wanted, status.

The parts (see docs/updates.md for the whole story):

- state.py: the durable state file, the one truth after a power cut;
- launch.py: runs before every start of the box (kiosk.service's ExecStart) and picks the
  release to start, rolling back a release that died during its trial;
- install.py: builds a new release beside the running one from a package's wheels, offline;
- trial.py: inside a new release, judges it healthy within update.trial_s, or leaves it.

The library's ingest asks `offer()` about a software package before reading its payload.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.config import Config
from kiosk.errors import PackageRejected
from kiosk.update import state as state_mod

CURRENT_LINK = "current"


def platform_tag() -> str:
    """This box's platform as software packages name it, e.g. linux-aarch64 or linux-x86_64."""
    return f"{sys.platform}-{platform.machine().lower()}"


def newer(a: str, b: str) -> bool:
    """Whether version a is newer than version b (PEP 440)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) > Version(b)
    except InvalidVersion:
        return False


def running_version(cfg: Config) -> str:
    """The application release the box runs (the one on trial while there is a trial)."""
    return state_mod.running_version(state_mod.load(cfg.data_dir), __version__)


def offer(cfg: Config, software: Any) -> str | None:
    """Judge an offered software package before its payload is read.

    Rejected (bad_record) when it is for another platform; a reason to report it
    `unchanged` when its version is not newer than the running one or was refused here
    before; None when it is wanted."""
    here = platform_tag()
    if here not in software.platforms:
        raise PackageRejected("bad_record", f"built for {', '.join(software.platforms)}; this box is {here}")
    if software.component != "app":
        return None  # an OS bundle is judged by RAUC against the slots (see docs/updates.md)
    st = state_mod.load(cfg.data_dir)
    running = state_mod.running_version(st, __version__)
    if not newer(software.version, running):
        return f"version {software.version} is not newer than the running {running}"
    if software.version in st["refused"]:
        return f"version {software.version} was given up here before: {st['refused'][software.version]}"
    return None


def releases_dir(cfg: Config) -> Path:
    """The folder of installed releases (one folder per version) and the `current` link."""
    return cfg.path("update.releases_dir")


def release_path(cfg: Config, version: str | None) -> Path:
    """Where a release lives: its folder under releases_dir, or the base release for None."""
    return Path(cfg.update.base_release) if version is None else releases_dir(cfg) / version


def status(cfg: Config) -> dict[str, Any]:
    """`software` of `kiosk status --json` and of heartbeats: version, state, last, target."""
    st = state_mod.load(cfg.data_dir)
    return {
        "version": state_mod.running_version(st, __version__),
        "state": st["state"],
        "target": st["target"],
        "last": st["last"],
        "platform": platform_tag(),
    }
