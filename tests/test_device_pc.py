"""PcHardware: a generic Linux PC's health (hwmon through psutil, thermal zones), chosen by `auto` off a Pi."""

from __future__ import annotations

import logging
from collections import namedtuple
from pathlib import Path

import psutil
import pytest

from kiosk.config import ConfigError, load
from kiosk.device import Hardware, open_hardware
from kiosk.device.pc import PcHardware, hwmon_temperature, zone_temperature

# the shape of each entry psutil.sensors_temperatures() returns
shwtemp = namedtuple("shwtemp", "label current high critical")


def zones(root: Path, **temps: int) -> Path:
    """A /sys/class/thermal with one zone per type, temperatures in millidegrees as the kernel writes them."""
    for i, (kind, milli) in enumerate(temps.items()):
        zone = root / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{milli}\n")
    return root


def test_the_processor_chip_is_read_before_hotter_disks():
    chips = {"nvme": [shwtemp("Composite", 71.9, 84.8, 89.8)],
             "coretemp": [shwtemp("Package id 0", 55.0, 100.0, 100.0), shwtemp("Core 0", 58.0, 100.0, 100.0)]}
    temp, hottest = hwmon_temperature(lambda: chips)
    assert temp == 58.0
    assert hottest == {"nvme": 71.9, "coretemp": 58.0}


def test_the_thermal_zones_answer_when_no_processor_chip_does(tmp_path):
    root = zones(tmp_path / "thermal", acpitz=27800, x86_pkg_temp=61000)
    hw = PcHardware(tmp_path, sensors=lambda: {"nvme": [shwtemp("Composite", 40.0, None, None)]}, thermal_root=root)
    reading = hw.read()
    assert reading.temp_c == 61.0
    assert reading.extra["sensors"] == {"nvme": 40.0}


def test_a_failing_or_absurd_sensor_reads_as_unknown_never_as_a_number(tmp_path):
    def broken():
        raise OSError("no hwmon")

    assert zone_temperature(zones(tmp_path / "z", acpitz=-273000)) is None
    hw = PcHardware(tmp_path, sensors=broken, thermal_root=zones(tmp_path / "thermal", acpitz=999000))
    assert hw.read().temp_c is None
    assert hwmon_temperature(lambda: {"coretemp": [shwtemp("Package id 0", 1000.0, None, None)]})[0] is None


def test_this_machine_reads_as_a_pc_without_pi_signals(tmp_path):
    hw = PcHardware(tmp_path)
    assert isinstance(hw, Hardware)
    first, second = hw.read(), hw.read()
    assert second.memory_total == psutil.virtual_memory().total
    assert second.disk_total == psutil.disk_usage(str(tmp_path)).total and second.disk_free > 0
    assert second.cpu_percent is not None and first.cpu_percent is None
    assert second.throttled is None and second.under_voltage_now is None and second.under_voltage_since_boot is None
    assert second.uptime_s > 0 and second.boot_id
    # no LED or button to drive: these do nothing and raise nothing
    hw.set_status("fault")
    hw.on_shutdown(lambda: None)
    hw.close()


def test_auto_picks_the_pc_where_there_is_no_pi_firmware(cfg, caplog):
    with caplog.at_level(logging.INFO):
        hw = open_hardware(cfg.replace(hardware__backend="auto"))
    assert hw.name == "pc"
    assert "no_raspberry_pi_firmware" in caplog.text
    assert open_hardware(cfg.replace(hardware__backend="pc"), panel=False).name == "pc"


def test_an_unknown_backend_is_refused(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('[hardware]\nbackend = "gpio"\n')
    with pytest.raises(ConfigError, match="auto, pi, pc or fake"):
        load(path, env={})
