"""The box's update job: install a received application release beside the running one, then switch.

Software packages arrive like any package (spool, USB, telecom sync) and wait in the
store, verified. Each pass of this job picks the newest one for this platform that is
newer than the running release and not refused here, installs it (state `installing`),
and on success marks it for a trial (state `trying`) and asks the box to switch: the box
stops serving and hands over to the launcher, which starts the new release. A failed
install leaves state `failed` and the reason; the running release never stopped.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from kiosk import __version__
from kiosk.config import Config
from kiosk.update import newer, platform_tag, release_path
from kiosk.update import state as state_mod
from kiosk.update.install import InstallFailed, install
from kiosk.update.launch import launched
from kiosk.update.switch import begin_trial

log = logging.getLogger(__name__)


def candidate(cfg: Config, library: Any) -> tuple[Any, Any] | None:
    """The stored app release to install next (record, folder), or None."""
    st = state_mod.load(cfg.data_dir)
    running = state_mod.running_version(st, __version__)
    best = None
    for item_id in library.software_ids():
        found = library.software_package(item_id)
        if found is None:
            continue
        record, folder = found
        sw = record.software
        if sw.component != "app" or platform_tag() not in sw.platforms:
            continue
        if not newer(sw.version, running) or sw.version in st["refused"]:
            continue
        if best is None or newer(sw.version, best[0].software.version):
            best = (record, folder)
    return best


def step(cfg: Config, library: Any, switch: Callable[[], None]) -> str | None:
    """One pass: install the next release and ask for the switch; what was done, or None."""
    st = state_mod.load(cfg.data_dir)
    if st["state"] in ("trying", "installing"):
        return None  # a trial is judged by the release on trial; an install in flight is ours
    found = candidate(cfg, library)
    if found is None:
        return None
    record, folder = found
    version = record.software.version
    if not launched():
        log.warning("event=update_waits version=%s why=not_started_by_the_launcher", version)
        return None
    st.update(state="installing", target=version)
    state_mod.note(st, version, "installing")
    state_mod.save(cfg.data_dir, st)
    try:
        install(folder / "data" / "wheels", release_path(cfg, version), version)
    except InstallFailed as e:
        st = state_mod.load(cfg.data_dir)
        st["refused"][version] = str(e)
        st.update(state="failed", target=None)
        state_mod.note(st, version, "failed", str(e))
        state_mod.save(cfg.data_dir, st)
        log.error("event=release_install_failed version=%s why=%r", version, str(e))
        return "failed"
    begin_trial(cfg.data_dir, version)
    switch()
    return "switching"
