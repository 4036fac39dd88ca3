"""waitress in a background thread with an orderly stop, and the stop signals; for the box and the centre.

waitress serves the apps (pure Python, threads, no compiler needed on a Pi). Its loop
runs in a thread so the main thread can wait for SIGTERM/SIGINT and then stop in
order: stop accepting, let requests in flight finish, then close what the app holds.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from waitress import create_server, wasyncore

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


class WebServer:
    """One WSGI app served on host:port until `stop()` (from any thread)."""

    def __init__(self, app: Any, host: str, port: int, threads: int, ident: str) -> None:
        self.host = host
        self.ident = ident
        self._server = create_server(
            app, host=host, port=port, threads=threads,
            ident=ident, clear_untrusted_proxy_headers=True, channel_timeout=60,
        )
        self.port = int(self._server.effective_port)  # port 0 picked a free one
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{ident}-web", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/"

    def _serve(self) -> None:
        try:
            self._server.run()
        except Exception:
            log.exception("event=web_server_failed ident=%s", self.ident)
        finally:
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (or the timeout passed)."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        """Stop accepting and finish requests in flight (at most STOP_TIMEOUT_S)."""
        server = self._server
        # The loop thread owns the sockets: close them from inside it via the trigger.
        server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_TIMEOUT_S)
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._thread.join(STOP_TIMEOUT_S)
        self._stopped.set()


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, for as long as the with-block runs.

    Installed before anything starts, so a signal that arrives during start-up also
    ends in a clean stop rather than a default kill.
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
