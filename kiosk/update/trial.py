"""Inside a release on trial: judge it healthy within update.trial_s, or leave it.

Healthy means: its own web server answers /healthz on the loopback, the scheduler ran
its jobs, and it stays so for a settling while (a crash in that time is caught by the
launcher on the restart that follows). When the deadline passes first, the release rolls
itself back and hands over to the launcher, which starts the release before it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from kiosk import __version__
from kiosk.config import Config
from kiosk.update import releases_dir, release_path
from kiosk.update import state as state_mod
from kiosk.update.switch import keep, roll_back, set_link

log = logging.getLogger(__name__)

POLL_S = 1.0


def on_trial(cfg: Config) -> bool:
    """Whether this process is the release on trial."""
    st = state_mod.load(cfg.data_dir)
    return st["state"] == "trying" and st["target"] == __version__


class Trial:
    """A thread that keeps the release on trial or rolls it back.

    `serving()` says the web server answers, `jobs_ok()` that the scheduler ran."""

    def __init__(self, cfg: Config, serving: Callable[[], bool], jobs_ok: Callable[[], bool],
                 switch: Callable[[], None]) -> None:
        self.cfg = cfg
        self.serving = serving
        self.jobs_ok = jobs_ok
        self.switch = switch
        self.settle_s = min(30.0, cfg.update.trial_s / 4)
        self.result: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiosk-trial", daemon=True)

    def start(self) -> "Trial":
        """Begin judging in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop judging (the box is stopping); the launcher judges the next start."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=POLL_S * 5)

    def _run(self) -> None:
        deadline = time.monotonic() + self.cfg.update.trial_s
        healthy_since: float | None = None
        why = ""
        while not self._stop.is_set():
            serving = self.serving()
            jobs = self.jobs_ok()
            now = time.monotonic()
            if serving and jobs:
                healthy_since = healthy_since if healthy_since is not None else now
                if now - healthy_since >= self.settle_s:
                    self._keep()
                    return
            else:
                healthy_since = None
                why = "it did not answer on /healthz" if not serving else "its scheduled jobs did not run"
            if now >= deadline:
                self._give_up(f"not healthy within {self.cfg.update.trial_s} s: {why}")
                return
            self._stop.wait(POLL_S)

    def _keep(self) -> None:
        if keep(self.cfg.data_dir, __version__):
            set_link(releases_dir(self.cfg), release_path(self.cfg, __version__))
            self.result = "kept"

    def _give_up(self, why: str) -> None:
        st = state_mod.load(self.cfg.data_dir)
        if st["state"] != "trying" or st["target"] != __version__:
            return
        roll_back(st, why)
        state_mod.save(self.cfg.data_dir, st)
        set_link(releases_dir(self.cfg), release_path(self.cfg, st["release"]))
        self.result = "rolled_back"
        self.switch()
