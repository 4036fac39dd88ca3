"""The moves between releases, each one durable state write: try, keep, roll back; and the `current` link.

Every move is a single atomic replacement of the state file (state.save). The `current`
link in the releases folder follows the state and is replaced atomically too (a new
link renamed over the old); after a power cut between the two, the launcher repairs the
link from the state before it starts anything.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kiosk.update import state as state_mod

log = logging.getLogger(__name__)

CURRENT_LINK = "current"


def set_link(releases: Path, target: Path) -> None:
    """Point <releases>/current at `target`, atomically (a power cut leaves the old link or the new)."""
    releases = Path(releases)
    releases.mkdir(parents=True, exist_ok=True)
    link = releases / CURRENT_LINK
    try:
        if os.readlink(link) == str(target):
            return
    except OSError:
        pass
    tmp = releases / (CURRENT_LINK + ".new")
    tmp.unlink(missing_ok=True)
    os.symlink(str(target), tmp)
    os.replace(tmp, link)
    fd = os.open(releases, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def begin_trial(data_dir: Path, version: str) -> dict[str, Any]:
    """An installed release is to be tried at the next start (the launcher counts the starts)."""
    st = state_mod.load(data_dir)
    st.update(state="trying", target=version, trial={"starts": 0, "boot": None, "boots": []})
    state_mod.note(st, version, "trying")
    state_mod.save(data_dir, st)
    log.info("event=release_trial_begins version=%s", version)
    return st


def keep(data_dir: Path, version: str) -> bool:
    """The release on trial passed: it becomes the release the box runs. False if no longer on trial."""
    st = state_mod.load(data_dir)
    if st["state"] != "trying" or st["target"] != version:
        return False
    st.update(previous=st["release"], release=version, state="current", target=None, trial=None)
    state_mod.note(st, version, "kept")
    state_mod.save(data_dir, st)
    log.info("event=release_kept version=%s previous=%s", version, st["previous"])
    return True


def roll_back(st: dict[str, Any], why: str) -> None:
    """Leave the release on trial (in memory; the caller saves): it is refused here from now on."""
    version = st["target"]
    st["refused"][str(version)] = why
    st.update(state="rolled_back", target=None, trial=None)
    state_mod.note(st, version, "rolled_back", why)
    log.warning("event=release_rolled_back version=%s why=%r back_to=%s", version, why, st["release"] or "base")
