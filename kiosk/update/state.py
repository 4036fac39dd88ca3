"""The update state: one small JSON file, replaced atomically, that says which release to run.

It is the single truth after a power cut. The launcher reads it before every start of
the box and the `current` link in the releases folder is derived from it (a convenience
for people at the console; the launcher repairs it). The file is written to a temporary
name, fsync'd, renamed over the old one and the folder fsync'd: a power cut leaves
either the old file or the new one, and both name complete releases.

Fields: `release` (the kept release's version; null: the image's base release), `base`
(the base release's version), `state` (current, installing, trying, rolled_back,
failed), `target` (the version being installed or tried), `previous` (the release
before the one being tried), `trial` ({"starts", "boot", "boots"}), `refused`
({version: why}: never tried again here), `interrupted` ({version: count}), `last`
({"version", "outcome", "reason", "at"}). Stdlib only: the launcher imports it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
STATES = ("current", "installing", "trying", "rolled_back", "failed")
COMPLETE_MARK = ".complete"  # written last, after os.sync(), into a fully installed release


def update_dir(data_dir: Path) -> Path:
    """The folder of the state file (inside the data folder, so it survives OS updates)."""
    return Path(data_dir) / "update"


def empty() -> dict[str, Any]:
    """The state of a box that never updated: it runs its base release."""
    return {"release": None, "base": None, "state": "current", "target": None, "previous": None,
            "trial": None, "refused": {}, "interrupted": {}, "last": None}


def load(data_dir: Path) -> dict[str, Any]:
    """The state (an unreadable file counts as none: the base release is always complete)."""
    path = update_dir(data_dir) / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty()
    except (OSError, ValueError) as e:
        log.warning("event=update_state_unreadable path=%s error=%r", path, e)
        return empty()
    st = empty()
    if isinstance(raw, dict):
        st.update({k: v for k, v in raw.items() if k in st})
    if st["state"] not in STATES:
        st["state"] = "current"
    return st


def save(data_dir: Path, st: dict[str, Any]) -> None:
    """Replace the state file atomically and durably."""
    folder = update_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STATE_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(st, f, ensure_ascii=False, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / STATE_FILE)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def note(st: dict[str, Any], version: str | None, outcome: str, reason: str = "") -> None:
    """Set the last update's outcome (in memory; the caller saves)."""
    st["last"] = {"version": version, "outcome": outcome, "reason": reason, "at": time.time()}


def running_version(st: dict[str, Any], fallback: str) -> str:
    """The version the box runs (or starts next): the one on trial, else the kept one, else the base."""
    if st["state"] == "trying" and st["target"]:
        return str(st["target"])
    return str(st["release"] or st["base"] or fallback)


def boot_id() -> str:
    """This boot's id (Linux), or "" where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
