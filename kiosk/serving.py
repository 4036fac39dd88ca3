"""waitress in a background thread with an orderly stop, and the stop signals; for the box and the centre.

waitress serves the apps (pure Python, threads, no compiler needed on a Pi). Its loop
runs in a thread so the main thread can wait for SIGTERM/SIGINT and then stop in
order: stop accepting, let requests in flight finish, then close what the app holds.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from waitress import create_server, wasyncore

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


# Requests wait for a worker while none has started one for this long: the server is wedged.
WEDGED_S = 30.0


class WebServer:
    """One WSGI app served on host:port until `stop()` (from any thread).

    The limits bound what one client on the network can take: `connection_limit` open
    connections (waitress then stops accepting until some close), `channel_timeout`
    seconds of idleness per connection, and `max_request_body_size` bytes of body,
    refused with 413 from the Content-Length before any of it is read (a 100 MB POST
    took the box from 94 to 375 MB resident without it).
    """

    def __init__(self, app: Any, host: str, port: int, threads: int, ident: str, *,
                 connection_limit: int = 100, channel_timeout: int = 60,
                 max_request_body_size: int = 1 << 30) -> None:
        self.host = host
        self.ident = ident
        self._last_start = time.monotonic()
        self._waiting_since: float | None = None  # when serving() first saw requests waiting
        self._server = create_server(
            self._noting_starts(app), host=host, port=port, threads=threads,
            ident=ident, clear_untrusted_proxy_headers=True, connection_limit=connection_limit,
            channel_timeout=channel_timeout, cleanup_interval=max(1, min(30, channel_timeout // 2)),
            max_request_body_size=max_request_body_size,
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

    def _noting_starts(self, app: Any) -> Any:
        def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
            self._last_start = time.monotonic()
            return app(environ, start_response)
        return wsgi

    def serving(self) -> bool:
        """False when the loop has stopped, or requests have waited WEDGED_S with no worker starting one."""
        if self._stopped.is_set() or not self._thread.is_alive():
            return False
        now = time.monotonic()
        if not self._server.task_dispatcher.queue:
            self._waiting_since = None
            return True
        if self._waiting_since is None or self._last_start >= self._waiting_since:
            self._waiting_since = now  # requests wait, but a worker started one since the last look
            return True
        return now - self._waiting_since < WEDGED_S

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (or the timeout passed)."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        """Stop accepting and finish requests in flight (at most STOP_TIMEOUT_S)."""
        server = self._server
        # The loop thread owns the sockets: close them from inside it via the trigger.
        self._in_loop(lambda: wasyncore.dispatcher.close(server))
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_TIMEOUT_S)
        if not self._in_loop(lambda: wasyncore.close_all(server._map)):
            self._thread.join(STOP_TIMEOUT_S)
            wasyncore.close_all(server._map)  # the loop is gone: nobody else holds the sockets now
        self._thread.join(STOP_TIMEOUT_S)
        self._stopped.set()

    def _in_loop(self, fn: Any) -> bool:
        """Run `fn` in the loop thread; False when the trigger is already closed.

        The loop closes the trigger with the rest of its map when it ends, which a stop can
        race (seen once as EBADF in a test's teardown); then there is no loop to ask.
        """
        try:
            self._server.trigger.pull_trigger(fn)
            return True
        except OSError:
            return False


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


def only_path(app: Any, path: str) -> Any:
    """A WSGI app that serves `path` from `app` and answers 404 for anything else."""
    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != path:
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
            return [b""]
        return app(environ, start_response)
    return wsgi
