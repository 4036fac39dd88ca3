"""FakeHardware: a first-class backend with settable readings.

Used by the demo, the tests and any machine that is not a Pi. It starts as a
healthy box; `set(temp_c=85.0)` and friends turn it into any state.
Optionally it drives a real gpiozero Panel (e.g. on a MockFactory).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from kiosk.device import Readings

log = logging.getLogger(__name__)

HEALTHY = Readings(
    temp_c=48.0,
    throttled=0,
    under_voltage_now=False,
    under_voltage_since_boot=False,
    freq_capped_now=False,
    throttled_now=False,
    soft_temp_limit_now=False,
    cpu_percent=3.0,
    load1=0.1,
    memory_percent=35.0,
    memory_used=350 * 2**20,
    memory_total=1024 * 2**20,
    disk_percent=40.0,
    disk_free=18 * 2**30,
    disk_total=30 * 2**30,
    disks=({"mount": "/", "total": 30 * 2**30, "used": 12 * 2**30, "free": 18 * 2**30, "percent": 40.0},),
    net_sent=0,
    net_recv=0,
    uptime_s=3600.0,
    boot_id="00000000-0000-4000-8000-000000000000",
    ext4_errors=0,
    root_readonly=False,
    display_restarts=0,
    display_failed=False,
)


class FakeHardware:
    """Hardware whose readings tests and the demo set."""

    name = "fake"

    def __init__(self, readings: Readings | None = None, *, panel: Any = None, **changes: Any) -> None:
        self._readings = (readings or HEALTHY).but(**changes)
        self._lock = threading.Lock()
        self.panel = panel
        self.status: str = "ok"
        self.reads = 0
        self._shutdown: list[Callable[[], None]] = []

    def read(self) -> Readings:
        """The readings as last set."""
        with self._lock:
            self.reads += 1
            return self._readings

    def set(self, **changes: Any) -> None:
        """Change some readings (e.g. `under_voltage_now=True`)."""
        with self._lock:
            self._readings = self._readings.but(**changes)

    def reset(self) -> None:
        """Back to a healthy box."""
        with self._lock:
            self._readings = HEALTHY

    def set_status(self, state: str) -> None:
        """Remember (and show, when a panel is attached) the LED state."""
        self.status = state
        if self.panel is not None:
            self.panel.show(state)

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        """Register what a held shutdown button does."""
        self._shutdown.append(callback)
        if self.panel is not None:
            self.panel.on_shutdown(callback)

    def press_shutdown(self) -> None:
        """Act as if the shutdown button had been held (the demo has no button)."""
        for cb in list(self._shutdown):
            cb()

    def close(self) -> None:
        """Release the panel, if any."""
        if self.panel is not None:
            self.panel.close()
