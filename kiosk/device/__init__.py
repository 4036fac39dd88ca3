"""The box's hardware behind one small interface.

`Hardware` is what the rest of the box sees: one `read()` of every health
signal, the status LED and the shutdown button. `PiHardware` reads a
Raspberry Pi (psutil, the thermal zone, `vcgencmd`, sysfs); `PcHardware` a
generic Linux PC (hwmon sensors and thermal zones, no GPIO); `FakeHardware`
has settable readings for the demo and the tests.
A reading that is not available is None, never a made-up number.

This package imports nothing of the project but config, clock and errors.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from kiosk.config import Config

log = logging.getLogger(__name__)

# The status LED's states: steady, slow blink, fast blink (see device/panel.py).
LED_STATES = ("ok", "importing", "fault")


@dataclass(frozen=True)
class Readings:
    """One look at every health signal; None where the box cannot tell."""

    temp_c: float | None = None
    throttled: int | None = None            # raw `vcgencmd get_throttled` bits
    under_voltage_now: bool | None = None
    under_voltage_since_boot: bool | None = None   # our own per-boot flag (the kernel clears its sticky bits)
    freq_capped_now: bool | None = None
    throttled_now: bool | None = None
    soft_temp_limit_now: bool | None = None
    cpu_percent: float | None = None
    load1: float | None = None
    memory_percent: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    disk_percent: float | None = None        # the file system holding storage.data_dir
    disk_free: int | None = None
    disk_total: int | None = None
    disks: tuple[dict[str, Any], ...] = ()   # every mounted disk: mount, total, used, free, percent
    net_sent: int | None = None
    net_recv: int | None = None
    uptime_s: float | None = None
    boot_id: str | None = None
    ext4_errors: int | None = None           # sum of /sys/fs/ext4/*/errors_count
    root_readonly: bool | None = None        # "/" or the data folder's file system mounted read-only
    display_restarts: int | None = None      # NRestarts of kiosk-display.service
    display_failed: bool | None = None       # kiosk-display.service has given up
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The readings as plain JSON-able data."""
        d = asdict(self)
        d["disks"] = [dict(x) for x in self.disks]
        return d

    def but(self, **changes: Any) -> "Readings":
        """A copy with some readings changed."""
        return replace(self, **changes)


@runtime_checkable
class Hardware(Protocol):
    """What the box needs of its hardware."""

    name: str

    def read(self) -> Readings:
        """Every health signal now."""
        ...

    def set_status(self, state: str) -> None:
        """Show `ok`, `importing` or `fault` on the status LED."""
        ...

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the shutdown button is held for 3 s."""
        ...

    def close(self) -> None:
        """Release pins and threads."""
        ...


def is_raspberry_pi(model_path: str = "/proc/device-tree/model") -> bool:
    """True on a Raspberry Pi (its device tree names the model)."""
    try:
        return "raspberry pi" in Path(model_path).read_text(errors="replace").lower()
    except OSError:
        return False


def open_hardware(cfg: Config, *, panel: bool = True) -> Hardware:
    """The backend hardware.backend names; `auto` picks the Pi where its firmware is, else the PC.

    `panel=False` leaves the LED and button alone (for `kiosk status`, which must
    not take the pins the running box holds).
    """
    from kiosk.device.fake import FakeHardware

    backend = cfg.hardware.backend
    if backend == "fake":
        return FakeHardware()
    if backend == "pc" or (backend == "auto" and not (is_raspberry_pi() and shutil.which("vcgencmd"))):
        from kiosk.device.pc import PcHardware

        if backend == "auto":
            log.info("event=hardware_backend backend=pc reason=no_raspberry_pi_firmware")
        return PcHardware.from_config(cfg, panel=panel)
    from kiosk.device.pi import PiHardware

    return PiHardware.from_config(cfg, panel=panel)


__all__ = ["Hardware", "Readings", "LED_STATES", "open_hardware", "is_raspberry_pi"]
