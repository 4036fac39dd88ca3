"""The launcher: before every start of the box, choose the release to run and start it.

kiosk.service runs `kiosk launch` from the image's base release, never from an installed
one, so a release that cannot even start cannot break the way back. Each start:

1. an install the state still calls `installing` was cut off (power, restart): it is
   noted, its debris removed, and it starts over later (given up after 3 cuts);
2. a release on `trying` that already started in this boot and is being started
   again died during its trial (a crash at start, the watchdog): it is rolled back and
   refused from now on; one cut off by power in two boots is rolled back too;
3. otherwise its start is counted (durably, before it runs) and it is started;
4. the `current` link is made to match, folders no longer needed go, and the chosen
   release's `kiosk run` replaces this process (same PID, so systemd's notify and
   watchdog carry on), with KIOSK_LAUNCHER telling it how to come back here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from kiosk import __version__
from kiosk.config import Config
from kiosk.update import release_path, releases_dir
from kiosk.update import state as state_mod
from kiosk.update.install import complete, remove_debris
from kiosk.update.switch import roll_back, set_link

log = logging.getLogger(__name__)

LAUNCHER_ENV = "KIOSK_LAUNCHER"
MAX_INTERRUPTED = 3  # cut-off installs of one version before it is given up
MAX_TRIAL_BOOTS = 2  # boots a trial may be cut off by power before the release is left


def decide(cfg: Config) -> Path:
    """Bring the state up to date for this start and return the folder of the release to run."""
    data = cfg.data_dir
    st = state_mod.load(data)
    before = json.dumps(st, sort_keys=True)
    st["base"] = __version__
    if st["state"] == "installing":
        version = str(st["target"])
        cuts = int(st["interrupted"].get(version, 0)) + 1
        st["interrupted"][version] = cuts
        st.update(state="current", target=None)
        why = "the install was cut off (a power cut or a restart)"
        if cuts >= MAX_INTERRUPTED:
            st["refused"][version] = f"{why}, {cuts} times"
            st["state"] = "failed"
        state_mod.note(st, version, "interrupted", why)
    if st["state"] == "trying":
        trial = st["trial"] or {"starts": 0, "boot": None, "boots": []}
        boot = state_mod.boot_id()
        if not complete(release_path(cfg, st["target"])):
            roll_back(st, "its files are incomplete")
        elif trial["starts"] and trial["boot"] == boot:
            roll_back(st, "it stopped during its trial (it crashed, or did not answer the watchdog)")
        elif len(trial["boots"]) >= MAX_TRIAL_BOOTS:
            roll_back(st, f"its trial was cut off {len(trial['boots'])} times (power)")
        else:
            trial["starts"] += 1
            trial["boot"] = boot
            trial["boots"] = [*trial["boots"], boot][-5:]
            st["trial"] = trial
    version = st["target"] if st["state"] == "trying" else st["release"]
    folder = release_path(cfg, version)
    if version is not None and not complete(folder):
        log.error("event=release_missing version=%s folder=%s", version, folder)
        state_mod.note(st, version, "failed", "its folder is missing or incomplete; back to the base release")
        st.update(release=None, state="failed")
        folder = release_path(cfg, None)
    if json.dumps(st, sort_keys=True) != before:
        state_mod.save(data, st)
    releases = releases_dir(cfg)
    set_link(releases, folder)
    remove_debris(releases, {str(v) for v in (st["release"], st["target"], st["previous"]) if v})
    return folder


def launch(config_path: str | None, cfg: Config) -> int:
    """Start the chosen release's `kiosk run` in this process; returns only when that cannot be done."""
    folder = decide(cfg)
    command = folder / "bin" / "kiosk"
    args = [str(command), "run"] + (["--config", config_path] if config_path else [])
    back = [sys.executable, "-m", "kiosk.cli", "launch"] + (["--config", config_path] if config_path else [])
    env = dict(os.environ, **{LAUNCHER_ENV: json.dumps(back)})
    log.info("event=launch release=%s", folder)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command, args, env)
    return 1  # not reached


def relaunch() -> None:
    """Replace this process by the launcher (which picks the release); no return. Needs KIOSK_LAUNCHER."""
    argv = json.loads(os.environ[LAUNCHER_ENV])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def launched() -> bool:
    """Whether this process was started by the launcher (only then can it switch releases)."""
    return bool(os.environ.get(LAUNCHER_ENV))
