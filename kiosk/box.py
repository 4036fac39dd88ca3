"""The box's runner behind `kiosk run`: hardware, library, web server, scheduler; a clean stop.

The main thread waits for SIGTERM/SIGINT and then stops in order: stop accepting,
let requests in flight finish, stop the scheduler, close the library, exit 0.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from kiosk import config as config_mod
from kiosk.serving import WebServer, only_path, stop_signals

__all__ = ["Box", "run", "stop_signals", "wait_for_signal"]

log = logging.getLogger(__name__)


def _open_hardware(cfg: config_mod.Config) -> Any:
    """The device part's hardware, or None when it cannot be opened (the screens still run)."""
    from kiosk.device import open_hardware

    try:
        return open_hardware(cfg)
    except Exception as e:
        log.warning("event=hardware_unavailable error=%r", e)
        return None


def _uplink_status(cfg: config_mod.Config) -> Callable[[], dict[str, Any]]:
    """The uplink's status for the device page, handed to the app (web never imports uplink)."""
    from kiosk import uplink

    return lambda: uplink.status(cfg)


def _start_scheduler(cfg: config_mod.Config, library: Any, hardware: Any, switch: Callable[[], None]) -> Any:
    """The periodic jobs."""
    from kiosk import scheduler

    return scheduler.start(cfg, library, hardware, switch=switch)


class Box:
    """One running box: `start()`, then `stop()` (from any thread)."""

    def __init__(self, cfg: config_mod.Config, *, host: str | None = None, port: int | None = None,
                 hardware: Any = None, library: Any = None, with_scheduler: bool = True,
                 switch: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.host = cfg.web.host if host is None else host
        self.port = cfg.web.port if port is None else port
        self.hardware = hardware
        self.library = library
        self.with_scheduler = with_scheduler
        # called by the update job when a new release is installed: stop and hand over
        self.switch = switch or (lambda: None)
        self.scheduler: Any = None
        self.app: Any = None
        self.web: WebServer | None = None
        self.health: WebServer | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/"  # the port is the real one once started

    def start(self) -> "Box":
        """Open everything and start serving in a background thread."""
        from kiosk.library import Library
        from kiosk.library.pointkey import ensure_key
        from kiosk.web import create_app

        if self.hardware is None:
            self.hardware = _open_hardware(self.cfg)
        if self.library is None:
            self.library = Library(self.cfg)
        ensure_key(self.cfg)  # the point's own key signs its local content; made on first start
        self.app = create_app(self.cfg, self.hardware, library=self.library, uplink_status=_uplink_status(self.cfg))
        web = self.cfg.web
        self.web = WebServer(self.app, self.host, self.port, web.threads, ident="kiosk",
                             connection_limit=web.connection_limit, channel_timeout=web.channel_timeout_s,
                             max_request_body_size=web.max_request_kb * 1024)
        self.port = self.web.port  # port 0 picked a free one
        # The watchdog's own door: loopback only, /healthz only, so phones holding every
        # public connection cannot make systemd restart a box that is serving.
        self.health = WebServer(only_path(self.app, "/healthz"), "127.0.0.1", 0, 1, ident="kiosk-health",
                                connection_limit=4, channel_timeout=10, max_request_body_size=0)
        if self.with_scheduler:
            try:
                self.scheduler = _start_scheduler(self.cfg, self.library, self.hardware, self.switch)
            except Exception as e:  # the screens serve villagers even when a job cannot start
                log.error("event=scheduler_failed error=%r", e)
        log.info("event=box_started url=%s", self.url)
        return self

    @property
    def health_url(self) -> str:
        """The loopback-only /healthz the watchdog asks (empty before start)."""
        return f"{self.health.url}healthz" if self.health is not None else ""

    def serving(self) -> bool:
        """Whether the public server's loop runs and its workers take requests."""
        web = self.web
        return web is not None and web.serving()

    def jobs_ok(self) -> bool:
        """Whether the scheduler runs and a job has succeeded (a release on trial must show it)."""
        runner = self.scheduler
        return runner is not None and any(s["last_ok"] is not None for s in runner.status().values())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (or the timeout passed)."""
        web = self.web
        return web.wait(timeout) if web is not None else self._stopped.wait(timeout)

    def stop(self) -> None:
        """Stop accepting, finish requests in flight, stop the scheduler, close the library."""
        web, self.web = self.web, None
        health, self.health = self.health, None
        for server in (health, web):
            if server is not None:
                server.stop()
        if self.scheduler is not None:
            try:
                self.scheduler.shutdown()
            except Exception as e:
                log.warning("event=scheduler_stop_failed error=%r", e)
            self.scheduler = None
        for name in ("usage", "wishes"):
            store = self.app.extensions["kiosk"].get(name) if self.app is not None else None
            if store is not None:
                try:
                    store.close()
                except Exception as e:
                    log.warning("event=store_close_failed store=%s error=%r", name, e)
        if self.library is not None:
            try:
                self.library.close()
            except Exception as e:
                log.warning("event=library_close_failed error=%r", e)
        close = getattr(self.hardware, "close", None)
        if callable(close):
            try:
                close()
            except Exception as e:
                log.warning("event=hardware_close_failed error=%r", e)
        self._stopped.set()
        log.info("event=box_stopped")


def wait_for_signal(box: Box, on_ready: Callable[[], None] | None = None, stop: threading.Event | None = None) -> bool:
    """Serve until SIGTERM or SIGINT (True) or until the server dies by itself (False).

    Pass `stop` from stop_signals() when the signals were caught before the box started.
    """
    if stop is None:
        with stop_signals() as stop:
            return wait_for_signal(box, on_ready, stop)
    if on_ready:
        on_ready()
    while not stop.is_set() and not box.wait(0):
        stop.wait(0.5)
    return stop.is_set()


def run(cfg: config_mod.Config) -> int:
    """`kiosk run`: serve until told to stop; 0 on a clean stop, 1 when the server died by itself."""
    from kiosk import service
    from kiosk.library import pinyin

    from kiosk.update import launch, trial

    pinyin.use_child_process()  # the box idles for weeks between ingests: keep pypinyin out of it
    switching = threading.Event()
    with stop_signals() as stop:

        def switch() -> None:
            switching.set()
            stop.set()

        box = Box(cfg, switch=switch).start()
        watchdog = service.start_watchdog(box.health_url, alive=box.serving)
        serving = lambda: box.serving() and service.check_health(box.health_url)  # noqa: E731
        judge = trial.Trial(cfg, serving, box.jobs_ok, switch).start() if trial.on_trial(cfg) else None
        try:
            asked = wait_for_signal(box, on_ready=lambda: service.notify_ready(f"serving on {box.url}"), stop=stop)
            service.notify_stopping()
        finally:
            if judge is not None:
                judge.stop()
            if watchdog is not None:
                watchdog.stop()
            box.stop()
            pinyin.use_child_process(False)
    if switching.is_set():
        log.info("event=switching_release")
        if launch.launched():
            launch.relaunch()  # no return: the launcher starts the release the state names
        return 1  # not started by the launcher: let the service manager start it again
    if not asked:
        log.error("event=web_server_stopped_unasked")
    return 0 if asked else 1
