"""The box's runner behind `kiosk run`: hardware, library, web server, scheduler; a clean stop.

waitress serves the app (pure Python, threads, no compiler needed on a Pi). Its
loop runs in a thread so the main thread can wait for SIGTERM/SIGINT and then
stop in order: stop accepting, let requests in flight finish, stop the
scheduler, close the library, exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from waitress import create_server
from waitress import wasyncore

from kiosk import config as config_mod

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


def _open_hardware(cfg: config_mod.Config) -> Any:
    """The device part's hardware, or None when it cannot be opened (the screens still run)."""
    try:
        from kiosk.device import open_hardware
    except ImportError:
        return None
    try:
        return open_hardware(cfg)
    except Exception as e:
        log.warning("event=hardware_unavailable error=%r", e)
        return None


def _uplink_status(cfg: config_mod.Config) -> Callable[[], dict[str, Any]]:
    """The uplink's status function for the device page (web never imports uplink itself)."""
    try:
        from kiosk import uplink
    except ImportError:
        return lambda: {}
    fn = getattr(uplink, "status", None)
    return (lambda: fn(cfg)) if fn else (lambda: {})


def _start_scheduler(cfg: config_mod.Config, library: Any, hardware: Any) -> Any:
    """The periodic jobs, when the scheduler part is there; None otherwise."""
    try:
        from kiosk import scheduler
    except ImportError:
        return None
    start = getattr(scheduler, "start", None)
    return start(cfg, library, hardware) if start else None


class Box:
    """One running box: `start()`, then `stop()` (from any thread)."""

    def __init__(self, cfg: config_mod.Config, *, host: str | None = None, port: int | None = None,
                 hardware: Any = None, library: Any = None, with_scheduler: bool = True) -> None:
        self.cfg = cfg
        self.host = cfg.web.host if host is None else host
        self.port = cfg.web.port if port is None else port
        self.hardware = hardware
        self.library = library
        self.with_scheduler = with_scheduler
        self.scheduler: Any = None
        self.app: Any = None
        self.server: Any = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "Box":
        """Open everything and start serving in a background thread."""
        from kiosk.library import Library
        from kiosk.web import create_app

        if self.hardware is None:
            self.hardware = _open_hardware(self.cfg)
        if self.library is None:
            self.library = Library(self.cfg)
        self.app = create_app(self.cfg, self.hardware, library=self.library, uplink_status=_uplink_status(self.cfg))
        self.server = create_server(
            self.app, host=self.host, port=self.port, threads=self.cfg.web.threads,
            ident="kiosk", clear_untrusted_proxy_headers=True, channel_timeout=60,
        )
        self.port = int(self.server.effective_port)  # port 0 picked a free one
        if self.with_scheduler:
            try:
                self.scheduler = _start_scheduler(self.cfg, self.library, self.hardware)
            except Exception as e:  # the screens serve villagers even when a job cannot start
                log.error("event=scheduler_failed error=%r", e)
        self._thread = threading.Thread(target=self._serve, name="kiosk-web", daemon=True)
        self._thread.start()
        log.info("event=box_started url=%s", self.url)
        return self

    def _serve(self) -> None:
        try:
            self.server.run()
        except Exception:
            log.exception("event=web_server_failed")
        finally:
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (or the timeout passed)."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        """Stop accepting, finish requests in flight, stop the scheduler, close the library."""
        server = self.server
        if server is not None:
            self.server = None
            # The loop thread owns the sockets: close them from inside it via the trigger.
            server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
            server.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_TIMEOUT_S)
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            if self._thread is not None:
                self._thread.join(STOP_TIMEOUT_S)
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


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, for as long as the with-block runs.

    Installed before anything starts, so a signal that arrives while the box is still
    starting also ends in a clean stop rather than a default kill.
    """
    stop = threading.Event()

    def _handler(signum: int, frame: Any) -> None:
        log.info("event=signal signal=%s", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, _handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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

    with stop_signals() as stop:
        box = Box(cfg).start()
        watchdog = service.start_watchdog(box.host, box.port)
        try:
            asked = wait_for_signal(box, on_ready=lambda: service.notify_ready(f"serving on {box.url}"), stop=stop)
            service.notify_stopping()
        finally:
            if watchdog is not None:
                watchdog.stop()
            box.stop()
    if not asked:
        log.error("event=web_server_stopped_unasked")
    return 0 if asked else 1
