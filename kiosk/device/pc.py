"""PcHardware: health readings from a generic Linux PC (a small x86 box, a NUC, a thin client).

There is no Pi firmware, no `vcgencmd` and no GPIO: temperature comes from the hwmon
sensors psutil reads (coretemp, k10temp, ...), else from the kernel's thermal zones;
disk, memory, load, file system and screen readings are the same as on a Pi
(`PiHardware`'s readers, which use nothing Pi-specific). There is no status LED or
shutdown button: the power button goes through logind as on any PC.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import psutil

from kiosk.device import Readings
from kiosk.device.pi import PiHardware, Run, run_command

log = logging.getLogger(__name__)

Sensors = Callable[[], dict[str, list[Any]]]

# hwmon chips that measure the processor, best first (Intel, AMD, ARM SoCs, ACPI's zone).
CPU_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "soc_thermal", "acpitz")
# thermal zone types that measure the processor, best first.
CPU_ZONES = ("x86_pkg_temp", "cpu-thermal", "soc-thermal", "acpitz")


def _sane(value: Any) -> float | None:
    """A temperature in degrees Celsius a sensor can really have, else None."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    return round(t, 1) if -40.0 < t < 150.0 else None


def hwmon_temperature(sensors: Sensors) -> tuple[float | None, dict[str, float]]:
    """The processor's temperature from the hwmon chips, and the hottest reading of each chip."""
    try:
        chips = sensors() or {}
    except (OSError, RuntimeError, ValueError) as e:
        log.debug("event=sensors_failed error=%r", e)
        return None, {}
    hottest: dict[str, float] = {}
    for chip, entries in chips.items():
        values = [t for t in (_sane(getattr(e, "current", None)) for e in entries) if t is not None]
        if values:
            hottest[chip] = max(values)
    for chip in CPU_CHIPS:
        if chip in hottest:
            return hottest[chip], hottest
    return None, hottest


def zone_temperature(thermal_root: Path) -> float | None:
    """The processor's temperature from /sys/class/thermal, by zone type; else the hottest zone."""
    found: dict[str, float] = {}
    try:
        zones = sorted(thermal_root.glob("thermal_zone*"))
    except OSError:
        return None
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip()
            t = _sane(int((zone / "temp").read_text().strip()) / 1000.0)  # millidegrees
        except (OSError, ValueError):
            continue
        if t is not None:
            found[kind] = max(t, found.get(kind, t))
    for kind in CPU_ZONES:
        if kind in found:
            return found[kind]
    return max(found.values()) if found else None


class PcHardware(PiHardware):
    """A generic Linux PC; OS seams are arguments, as in PiHardware."""

    name = "pc"

    def __init__(
        self,
        data_dir: Path,
        *,
        run: Run = run_command,
        sensors: Sensors = psutil.sensors_temperatures,
        thermal_root: Path = Path("/sys/class/thermal"),
        **paths: Any,
    ) -> None:
        super().__init__(data_dir, run=run, panel=None, **paths)
        self.sensors = sensors
        self.thermal_root = Path(thermal_root)
        self._chips: dict[str, float] = {}

    @classmethod
    def from_config(cls, cfg: Any, *, panel: bool = True, pin_factory: Any = None) -> "PcHardware":
        """A PcHardware for this box (a PC has no LED or button for `panel` to take)."""
        return cls(cfg.data_dir)

    def read(self) -> Readings:
        """Every health signal now; the Pi's firmware signals are None (a PC has none)."""
        readings = super().read()
        extra = dict(readings.extra)
        if self._chips:
            extra["sensors"] = dict(self._chips)
        return readings.but(extra=extra)

    def _temperature(self) -> float | None:
        temp, self._chips = hwmon_temperature(self.sensors)
        return temp if temp is not None else zone_temperature(self.thermal_root)

    def _throttled(self) -> int | None:
        return None  # vcgencmd is the Pi firmware's; a PC has no such report

    def _hwmon_undervoltage(self) -> bool | None:
        return None  # the rpi_volt alarm is the Pi's
