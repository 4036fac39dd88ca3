"""systemd integration of the box: readiness and a watchdog that proves the web server answers.

kiosk.service is `Type=notify` with `WatchdogSec=`: systemd waits for READY=1 before it
starts the screens, and restarts the box when the WATCHDOG=1 pings stop. A ping is sent
only while the public server's loop runs and its workers take requests, and the app
answered `GET /healthz` on a listener of its own (loopback only), so a process that is
alive but no longer serves (a wedged server, every worker thread stuck) is restarted,
while phones holding every public connection (110 idle ones silenced the public /healthz
for 8 s) are not a reason to restart. Outside systemd (NOTIFY_SOCKET unset) every
function here does nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from typing import Callable, Mapping

import sdnotify

log = logging.getLogger(__name__)

# A check must finish well inside one ping period; loopback answers in milliseconds.
CHECK_TIMEOUT_S = 5.0


def under_systemd(env: Mapping[str, str] | None = None) -> bool:
    """True when systemd gave us a notification socket."""
    env = os.environ if env is None else env
    return bool(env.get("NOTIFY_SOCKET"))


def _notify(state: str) -> None:
    if not under_systemd():
        return
    # sdnotify swallows send errors unless debug is set; a lost message is logged by systemd.
    sdnotify.SystemdNotifier().notify(state)


def notify_ready(status: str = "serving") -> None:
    """Tell systemd the box is up and serving."""
    _notify(f"READY=1\nSTATUS={status}")
    if under_systemd():
        log.info("event=sd_notify state=ready")


def notify_stopping() -> None:
    """Tell systemd the box is shutting down on purpose."""
    _notify("STOPPING=1")


def notify_status(status: str) -> None:
    """A one-line status that `systemctl status kiosk` shows."""
    _notify(f"STATUS={status}")


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of WatchdogSec=), or None when no watchdog is asked for."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec or not under_systemd(env):
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("event=watchdog_ignored reason=bad_usec value=%s", usec)
        return None
    return value / 1_000_000 / 2 if value > 0 else None


# An opener without proxies: a proxy set in the environment must never see loopback checks.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def check_health(url: str, timeout: float = CHECK_TIMEOUT_S) -> bool:
    """True when GET url answers 200 within the timeout."""
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return resp.status == 200
    except OSError as e:
        log.warning("event=healthz_failed url=%s error=%s", url, e)
        return False


class Watchdog:
    """A daemon thread that pings systemd's watchdog only while `check()` is true."""

    def __init__(self, check: Callable[[], bool], interval: float, ping: Callable[[], None] | None = None) -> None:
        self._check = check
        self._interval = interval
        self._ping = ping or (lambda: _notify("WATCHDOG=1"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kiosk-watchdog", daemon=True)
        self.pings = 0
        self.misses = 0

    def start(self) -> "Watchdog":
        """Start pinging in the background."""
        self._thread.start()
        log.info("event=watchdog_started interval_s=%.1f", self._interval)
        return self

    def stop(self) -> None:
        """Stop pinging (on shutdown) and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=CHECK_TIMEOUT_S + 1)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._check():
                self._ping()
                self.pings += 1
            else:
                # No ping: if the server stays silent past WatchdogSec, systemd restarts us.
                self.misses += 1
            self._stop.wait(self._interval)


def start_watchdog(url: str, env: Mapping[str, str] | None = None,
                   alive: Callable[[], bool] = lambda: True) -> Watchdog | None:
    """Start the watchdog thread when systemd asked for one; None otherwise.

    It pings while `alive()` holds and `url` (a /healthz) answers 200."""
    interval = watchdog_interval(env)
    if interval is None:
        return None
    return Watchdog(lambda: alive() and check_health(url, timeout=min(CHECK_TIMEOUT_S, interval)), interval).start()
