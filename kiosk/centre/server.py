"""The centre's runner: waitress in a thread, a clean stop, and optional simulated points.

`kiosk centre run` and `kiosk demo` both use `CentreServer`; the main thread waits
for SIGTERM/SIGINT and then stops in order (stop accepting, finish requests in
flight, close the store).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kiosk import config as config_mod
from kiosk.centre.app import create_centre_app
from kiosk.centre.housekeeping import Housekeeper
from kiosk.serving import WebServer, stop_signals

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


class CentreServer:
    """One running centre: `start()`, then `stop()` (from any thread)."""

    def __init__(self, cfg: config_mod.Config) -> None:
        self.cfg = cfg
        self.host = cfg.centre.host
        self.port = cfg.centre.port
        self.app: Any = None
        self.web: WebServer | None = None
        self.housekeeper: Any = None
        self._stopped = threading.Event()
        self._sim_stop = threading.Event()
        self._sim: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/"

    @property
    def store(self) -> Any:
        """The centre's store."""
        return self.app.extensions["centre"]["store"]

    def start(self) -> "CentreServer":
        """Open the store and start serving in a background thread."""
        self.app = create_centre_app(self.cfg)
        self.housekeeper = Housekeeper(self.store, self.cfg.centre.report_retention_days).start()
        self.web = WebServer(self.app, self.host, self.port, self.cfg.web.threads, ident="kiosk-centre")
        self.port = self.web.port  # port 0 picked a free one
        log.info("centre serving url=%s", self.url)
        return self

    def simulate(self, points: int, days: float = 1.0, interval_s: float = 30.0, step_s: float = 300.0) -> None:
        """Feed the centre from N simulated points in a background thread until stopped."""
        from kiosk.centre import simulate

        def run() -> None:
            try:
                simulate.run(self.store, self.url, points, days=days, interval_s=interval_s,
                             step_s=step_s, stop=self._sim_stop)
            except Exception as e:  # the centre itself keeps serving
                log.warning("simulation stopped error=%r", e)

        self._sim = threading.Thread(target=run, name="kiosk-centre-sim", daemon=True)
        self._sim.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (or the timeout passed)."""
        web = self.web
        return web.wait(timeout) if web is not None else self._stopped.wait(timeout)

    def stop(self) -> None:
        """Stop the simulation, stop accepting, finish requests in flight, close the store."""
        self._sim_stop.set()
        if self._sim is not None:
            self._sim.join(STOP_TIMEOUT_S)
        web, self.web = self.web, None
        if web is not None:
            web.stop()
        if self.housekeeper is not None:
            self.housekeeper.stop()
        if self.app is not None:
            self.store.close()
        self._stopped.set()
        log.info("centre stopped")


def run(cfg: config_mod.Config, on_ready: Any = None) -> int:
    """`kiosk centre run`: serve until SIGTERM or SIGINT; 0 on a clean stop."""
    with stop_signals() as stop:
        centre = CentreServer(cfg).start()
        try:
            if on_ready:
                on_ready(centre)
            while not stop.is_set() and not centre.wait(0):
                stop.wait(0.5)
        finally:
            centre.stop()
    return 0
