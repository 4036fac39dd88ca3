"""PiHardware: health readings from a Raspberry Pi, its LED and shutdown button.

Every outside thing it touches is an argument, so tests hand it a fake `run`
(returning real `vcgencmd` output), temporary sysfs-like files and gpiozero's
MockFactory: the thermal zone, `vcgencmd get_throttled`, the rpi_volt hwmon
alarm, ext4 error counters, mounts, the boot id and kiosk-display's restarts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil

from kiosk.config import Config
from kiosk.device import Readings

log = logging.getLogger(__name__)

Run = Callable[[Sequence[str]], str]

# Left in data_dir by systemd/kiosk-display-failed when the screens gave up; removed by
# the box's power helper (systemd/kiosk-power) before it asks for restart-screens.
DISPLAY_FAILED = "display-failed"

# `vcgencmd get_throttled` bits (Raspberry Pi firmware documentation).
THROTTLE_BITS = {
    0: "under_voltage_now",
    1: "freq_capped_now",
    2: "throttled_now",
    3: "soft_temp_limit_now",
    16: "under_voltage_occurred",
    17: "freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}


def decode_throttled(value: int) -> dict[str, bool]:
    """Every documented bit of get_throttled as a named flag."""
    return {name: bool(value >> bit & 1) for bit, name in THROTTLE_BITS.items()}


def parse_throttled(output: str) -> int | None:
    """`throttled=0x50005` -> 0x50005; None for anything else."""
    text = output.strip()
    if not text.startswith("throttled="):
        return None
    try:
        return int(text.split("=", 1)[1], 16)
    except ValueError:
        return None


def run_command(argv: Sequence[str]) -> str:
    """Run a read-only system command and return its output (the default `run`)."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=5, check=True)
    return done.stdout


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mountinfo(path: Path) -> list[dict[str, Any]]:
    """Mounts as /proc/self/mountinfo lists them: mount point, mount options, fs type, superblock options."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 3:
            continue
        out.append({
            "mountpoint": _unescape(fields[4]),
            "options": fields[5].split(","),
            "fstype": tail[0],
            "super_options": tail[2].split(","),
        })
    return out


def _mount_of(mounts: list[dict[str, Any]], target: str) -> dict[str, Any] | None:
    """The mount holding `target`: the longest mount point above it (later mounts shadow earlier)."""
    best = None
    for m in mounts:
        mp = m["mountpoint"]
        inside = mp == "/" or target == mp or target.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) >= len(best["mountpoint"])):
            best = m
    return best


class PiHardware:
    """A Raspberry Pi; OS seams are arguments (see module docstring)."""

    name = "pi"

    def __init__(
        self,
        data_dir: Path,
        *,
        run: Run = run_command,
        thermal_path: Path = Path("/sys/class/thermal/thermal_zone0/temp"),
        hwmon_root: Path = Path("/sys/class/hwmon"),
        ext4_root: Path = Path("/sys/fs/ext4"),
        boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id"),
        mountinfo_path: Path = Path("/proc/self/mountinfo"),
        display_unit: str = "kiosk-display.service",
        panel: Any = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.run = run
        self.thermal_path = Path(thermal_path)
        self.hwmon_root = Path(hwmon_root)
        self.ext4_root = Path(ext4_root)
        self.boot_id_path = Path(boot_id_path)
        self.mountinfo_path = Path(mountinfo_path)
        self.display_unit = display_unit
        self.panel = panel
        self._flag_path = self.data_dir / "device-boot.json"
        self._uv_flag: bool | None = None
        self._cpu_primed = False

    @classmethod
    def from_config(cls, cfg: Config, *, panel: bool = True, pin_factory: Any = None) -> "PiHardware":
        """A PiHardware for this box, with the LED and button unless `panel=False`."""
        front = None
        if panel:
            from kiosk.device.panel import Panel

            from kiosk.device import power

            try:
                front = Panel(cfg.hardware.led_pin, cfg.hardware.button_pin, pin_factory=pin_factory)
            except Exception as e:  # no GPIO access: health still matters more than the LED
                log.warning("event=panel_unavailable error=%r", e)
            else:
                # a 3 s hold of the button shuts down cleanly, through the same helper as the device page
                front.on_shutdown(lambda: power.perform(cfg, "shutdown"))
        return cls(cfg.data_dir, thermal_path=Path(cfg.hardware.thermal_path), panel=front)

    # --- readings -----------------------------------------------------------------
    def read(self) -> Readings:
        """Every health signal now; None for what this box cannot tell."""
        throttled = self._throttled()
        bits = decode_throttled(throttled) if throttled is not None else {}
        uv_now = bits.get("under_voltage_now")
        alarm = self._hwmon_undervoltage()
        if alarm is not None:
            uv_now = bool(uv_now) or alarm
        boot_id = _read_text(self.boot_id_path)
        since_boot = self._under_voltage_since_boot(boot_id, uv_now, bits.get("under_voltage_occurred"))
        mem = psutil.virtual_memory()
        disk = self._disk(self.data_dir)
        display_restarts, display_failed = self._display()
        try:
            load1: float | None = os.getloadavg()[0]
        except OSError:
            load1 = None
        net = psutil.net_io_counters()
        return Readings(
            temp_c=self._temperature(),
            throttled=throttled,
            under_voltage_now=uv_now,
            under_voltage_since_boot=since_boot,
            freq_capped_now=bits.get("freq_capped_now"),
            throttled_now=bits.get("throttled_now"),
            soft_temp_limit_now=bits.get("soft_temp_limit_now"),
            cpu_percent=self._cpu(),
            load1=load1,
            memory_percent=mem.percent,
            memory_used=mem.total - mem.available,
            memory_total=mem.total,
            disk_percent=disk["percent"] if disk else None,
            disk_free=disk["free"] if disk else None,
            disk_total=disk["total"] if disk else None,
            disks=tuple(self._disks()),
            net_sent=net.bytes_sent if net else None,
            net_recv=net.bytes_recv if net else None,
            uptime_s=max(0.0, time.time() - psutil.boot_time()),
            boot_id=boot_id,
            ext4_errors=self._ext4_errors(),
            root_readonly=self._readonly(),
            display_restarts=display_restarts,
            display_failed=display_failed,
            extra={"throttled_bits": bits} if bits else {},
        )

    def _temperature(self) -> float | None:
        raw = _read_text(self.thermal_path)
        try:
            return round(int(raw) / 1000.0, 1) if raw else None  # millidegrees
        except ValueError:
            return None

    def _throttled(self) -> int | None:
        try:
            return parse_throttled(self.run(["vcgencmd", "get_throttled"]))
        except (OSError, subprocess.SubprocessError) as e:
            log.debug("event=vcgencmd_failed error=%r", e)
            return None

    def _hwmon_undervoltage(self) -> bool | None:
        """The rpi_volt driver's alarm, where the kernel has it."""
        try:
            entries = sorted(self.hwmon_root.iterdir())
        except OSError:
            return None
        for entry in entries:
            if _read_text(entry / "name") == "rpi_volt":
                alarm = _read_text(entry / "in0_lcrit_alarm")
                return alarm == "1" if alarm is not None else None
        return None

    def _under_voltage_since_boot(self, boot_id: str | None, now: bool | None, occurred: bool | None) -> bool | None:
        """Our own sticky flag, kept per boot on disk: the kernel driver clears the firmware's."""
        if self._uv_flag is None:
            self._uv_flag = False
            try:
                saved = json.loads(self._flag_path.read_text())
                self._uv_flag = bool(saved.get("boot_id") == boot_id and saved.get("under_voltage"))
            except (OSError, ValueError):
                pass
        if (now or occurred) and not self._uv_flag:
            self._uv_flag = True
            log.warning("event=under_voltage boot_id=%s", boot_id)
            try:  # written once per boot at most: the SD card is spared
                tmp = self._flag_path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"boot_id": boot_id, "under_voltage": True}))
                os.replace(tmp, self._flag_path)
            except OSError as e:
                log.warning("event=boot_flag_write_failed error=%r", e)
        if now is None and occurred is None and not self._uv_flag:
            return None
        return self._uv_flag

    def _cpu(self) -> float | None:
        value = psutil.cpu_percent(interval=None)
        if not self._cpu_primed:  # psutil's first answer has no interval behind it
            self._cpu_primed = True
            return None
        return value

    def _disk(self, path: Path) -> dict[str, Any] | None:
        try:
            u = psutil.disk_usage(str(path))
        except OSError:
            return None
        return {"mount": str(path), "total": u.total, "used": u.used, "free": u.free, "percent": u.percent}

    def _disks(self) -> list[dict[str, Any]]:
        out = []
        for part in psutil.disk_partitions(all=False):
            d = self._disk(Path(part.mountpoint))
            if d:
                d["mount"] = part.mountpoint
                out.append(d)
        return out

    def _ext4_errors(self) -> int | None:
        try:
            devices = list(self.ext4_root.iterdir())
        except OSError:
            return None
        counts = [_read_text(d / "errors_count") for d in devices]
        numbers = [int(c) for c in counts if c and c.isdigit()]
        return sum(numbers) if numbers else (0 if devices else None)

    def _readonly(self) -> bool | None:
        """True when "/" or the data folder's file system has gone read-only.

        Judged by the superblock's options, not the mount's: under systemd's
        ProtectSystem=strict the service sees "/" bind-mounted read-only although the
        card is fine, and raspi-config's overlay root is read-only by design below a
        writable overlay. ext4's errors=remount-ro turns the superblock read-only.
        """
        mounts = read_mountinfo(self.mountinfo_path)
        if not mounts:
            return None
        found = [m for m in (_mount_of(mounts, "/"), _mount_of(mounts, str(self.data_dir.resolve()))) if m]
        if any("ro" in m["super_options"] for m in found):
            return True
        if self.data_dir.is_dir() and not os.access(self.data_dir, os.W_OK):
            return True  # EROFS shows here without writing a byte
        return False

    def _display(self) -> tuple[int | None, bool | None]:
        try:
            out = self.run(["systemctl", "show", self.display_unit, "--property=NRestarts,ActiveState,LoadState"])
        except (OSError, subprocess.SubprocessError):
            return None, None
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if props.get("LoadState") != "loaded":
            return None, None  # no display on this box (a headless test rig)
        try:
            restarts: int | None = int(props.get("NRestarts", ""))
        except ValueError:
            restarts = None
        return restarts, props.get("ActiveState") == "failed" or self._display_gave_up()

    def _display_gave_up(self) -> bool:
        """The marker kiosk-display-failed leaves when the screens gave up, for this boot."""
        try:
            lines = (self.data_dir / DISPLAY_FAILED).read_text(errors="replace").splitlines()
        except OSError:
            return False
        marked = dict(line.split("=", 1) for line in lines if "=" in line).get("boot_id")
        return marked is not None and marked == _read_text(self.boot_id_path)

    # --- panel --------------------------------------------------------------------
    def set_status(self, state: str) -> None:
        """Show the state on the status LED."""
        if self.panel is not None:
            self.panel.show(state)

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        """What a 3 s hold of the shutdown button does."""
        if self.panel is not None:
            self.panel.on_shutdown(callback)

    def close(self) -> None:
        """Release the pins."""
        if self.panel is not None:
            self.panel.close()
