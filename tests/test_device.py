"""The hardware interface: PiHardware on fake OS seams, FakeHardware, the panel on gpiozero's MockFactory, power."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.device import Hardware, open_hardware, power
from kiosk.device.fake import FakeHardware
from kiosk.device.panel import Panel
from kiosk.device.pi import PiHardware, decode_throttled, parse_throttled

BOOT_A = "1b2e6c1a-1111-4a2b-9c3d-000000000001"
BOOT_B = "1b2e6c1a-2222-4a2b-9c3d-000000000002"


class FakeOS:
    """The outside of a Pi as files in tmp_path and a `run` that answers like the real commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.throttled = "throttled=0x0\n"
        self.display = "NRestarts=0\nActiveState=active\nLoadState=loaded\n"
        self.calls: list[list[str]] = []
        (root / "thermal").write_text("52312\n")
        (root / "boot_id").write_text(BOOT_A + "\n")
        (root / "hwmon").mkdir()
        (root / "ext4" / "mmcblk0p2").mkdir(parents=True)
        (root / "ext4" / "mmcblk0p2" / "errors_count").write_text("0\n")
        self.mounts([("/", "rw,noatime", "ext4", "rw")])

    def mounts(self, rows) -> None:
        """Write a mountinfo file: (mount point, mount options, fs type, superblock options) per line."""
        lines = [f"{20 + i} 1 179:{i} / {mp.replace(' ', chr(92) + '040')} {opts} shared:{i} - {fs} /dev/mmcblk0p{i} {sb}"
                 for i, (mp, opts, fs, sb) in enumerate(rows)]
        (self.root / "mountinfo").write_text("\n".join(lines) + "\n")

    def run(self, argv):
        self.calls.append(list(argv))
        if argv[0] == "vcgencmd":
            if self.throttled is None:
                raise FileNotFoundError("vcgencmd")
            return self.throttled
        if argv[0] == "systemctl":
            return self.display
        raise AssertionError(f"unexpected command {argv}")

    def hardware(self, data_dir: Path) -> PiHardware:
        return PiHardware(
            data_dir, run=self.run, thermal_path=self.root / "thermal", hwmon_root=self.root / "hwmon",
            ext4_root=self.root / "ext4", boot_id_path=self.root / "boot_id", mountinfo_path=self.root / "mountinfo",
        )


@pytest.fixture
def fake_os(tmp_path: Path) -> FakeOS:
    root = tmp_path / "os"
    root.mkdir()
    return FakeOS(root)


def test_every_throttled_bit_of_0x50005_is_decoded():
    assert parse_throttled("throttled=0x50005\n") == 0x50005
    bits = decode_throttled(0x50005)
    assert {k for k, v in bits.items() if v} == {
        "under_voltage_now", "throttled_now", "under_voltage_occurred", "throttled_occurred"}
    assert set(decode_throttled(0xF000F).values()) == {True}
    assert parse_throttled("error=1 error_msg=\"Command not registered\"") is None


def test_a_pi_reads_temperature_throttling_and_the_real_system(fake_os, cfg):
    fake_os.throttled = "throttled=0x50005\n"
    r = fake_os.hardware(cfg.data_dir).read()
    assert r.temp_c == 52.3
    assert r.throttled == 0x50005
    assert r.under_voltage_now is True and r.throttled_now is True and r.freq_capped_now is False
    assert r.boot_id == BOOT_A
    assert r.memory_percent is not None and r.memory_total > 0
    assert r.disk_total and r.disk_percent is not None
    assert r.uptime_s > 0
    assert r.ext4_errors == 0 and r.root_readonly is False
    assert r.display_restarts == 0 and r.display_failed is False


def test_the_under_voltage_flag_outlives_the_kernel_clearing_its_sticky_bits_until_the_next_boot(fake_os, cfg):
    hw = fake_os.hardware(cfg.data_dir)
    assert hw.read().under_voltage_since_boot is False
    fake_os.throttled = "throttled=0x50005\n"
    assert hw.read().under_voltage_since_boot is True
    fake_os.throttled = "throttled=0x0\n"  # the driver cleared the firmware's sticky bits
    r = hw.read()
    assert r.under_voltage_now is False and r.under_voltage_since_boot is True
    assert fake_os.hardware(cfg.data_dir).read().under_voltage_since_boot is True  # the service restarted, same boot
    (fake_os.root / "boot_id").write_text(BOOT_B + "\n")
    assert fake_os.hardware(cfg.data_dir).read().under_voltage_since_boot is False  # a new boot starts clean


def test_the_hwmon_alarm_counts_as_under_voltage_now(fake_os, cfg):
    volt = fake_os.root / "hwmon" / "hwmon1"
    volt.mkdir()
    (volt / "name").write_text("rpi_volt\n")
    (volt / "in0_lcrit_alarm").write_text("1\n")
    r = fake_os.hardware(cfg.data_dir).read()
    assert r.under_voltage_now is True and r.under_voltage_since_boot is True


def test_sd_card_errors_and_a_root_remounted_read_only_are_seen(fake_os, cfg):
    (fake_os.root / "ext4" / "mmcblk0p2" / "errors_count").write_text("3\n")
    fake_os.mounts([("/", "ro,noatime", "ext4", "ro,errors=remount-ro")])  # ext4 gave up on the card
    r = fake_os.hardware(cfg.data_dir).read()
    assert r.ext4_errors == 3
    assert r.root_readonly is True


def test_a_read_only_data_partition_is_seen_even_when_root_is_writable(fake_os, cfg):
    fake_os.mounts([("/", "rw", "ext4", "rw"), (str(cfg.data_dir), "ro", "ext4", "ro")])
    assert fake_os.hardware(cfg.data_dir).read().root_readonly is True


def test_systemds_read_only_view_and_the_overlay_root_are_not_faults(fake_os, cfg):
    # ProtectSystem=strict: "/" bind-mounted read-only for the service, the card itself writable;
    # raspi-config's overlay root: the card read-only below a writable overlay, by design.
    fake_os.mounts([("/ro", "ro,noatime", "ext4", "ro"), ("/", "rw", "overlay", "rw,lowerdir=/ro"),
                    ("/", "ro,nosuid", "ext4", "rw"), (str(cfg.data_dir), "rw", "ext4", "rw")])
    assert fake_os.hardware(cfg.data_dir).read().root_readonly is False


def test_mount_points_with_spaces_are_read(fake_os, tmp_path):
    data = tmp_path / "my data"
    data.mkdir()
    fake_os.mounts([("/", "rw", "ext4", "rw"), (str(data), "ro", "vfat", "ro")])
    assert fake_os.hardware(data).read().root_readonly is True


def test_display_restarts_come_from_systemd(fake_os, cfg):
    fake_os.display = "NRestarts=7\nActiveState=failed\nLoadState=loaded\n"
    r = fake_os.hardware(cfg.data_dir).read()
    assert r.display_restarts == 7 and r.display_failed is True
    fake_os.display = "NRestarts=0\nActiveState=inactive\nLoadState=not-found\n"
    r = fake_os.hardware(cfg.data_dir).read()
    assert r.display_restarts is None and r.display_failed is None


def test_what_a_box_cannot_read_is_none_never_a_made_up_number(fake_os, cfg):
    fake_os.throttled = None
    (fake_os.root / "thermal").unlink()
    hw = PiHardware(cfg.data_dir, run=fake_os.run, thermal_path=fake_os.root / "none", hwmon_root=fake_os.root / "none",
                    ext4_root=fake_os.root / "none", boot_id_path=fake_os.root / "boot_id",
                    mountinfo_path=fake_os.root / "none")
    r = hw.read()
    assert r.temp_c is None and r.throttled is None and r.under_voltage_now is None
    assert r.under_voltage_since_boot is None and r.ext4_errors is None and r.root_readonly is None
    assert r.cpu_percent is None  # psutil's first answer has no interval behind it
    assert hw.read().cpu_percent is not None


def test_fake_hardware_is_a_hardware_with_settable_readings():
    hw = FakeHardware()
    assert isinstance(hw, Hardware)
    assert hw.read().temp_c == 48.0
    hw.set(temp_c=85.0, under_voltage_now=True)
    assert hw.read().temp_c == 85.0 and hw.read().under_voltage_now is True
    hw.reset()
    assert hw.read().under_voltage_now is False
    pressed = []
    hw.on_shutdown(lambda: pressed.append(1))
    hw.press_shutdown()
    assert pressed == [1]


def test_the_pi_backend_can_be_forced_and_reads_what_this_machine_has(cfg):
    hw = open_hardware(cfg.replace(hardware__backend="pi"), panel=False)
    assert hw.name == "pi"
    assert hw.read().memory_total > 0
    hw.close()


# --- the panel: LED and shutdown button on gpiozero's MockFactory ------------------------


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()



def test_the_led_is_steady_when_all_is_well(factory):
    panel = Panel(17, 27, pin_factory=factory)
    led = factory.pin(17)
    time.sleep(0.4)
    assert led.state is True
    assert [s.state for s in led.states][-1] is True and sum(1 for s in led.states if s.state) == 1  # lit once, never blinked
    panel.close()


def test_the_led_blinks_fast_for_a_fault_and_slowly_while_importing(factory):
    panel = Panel(17, 27, pin_factory=factory)
    led = factory.pin(17)
    led.clear_states()
    panel.show("fault")
    time.sleep(0.8)
    fast = len(led.states)
    panel.show("importing")
    led.clear_states()
    time.sleep(0.8)
    slow = len(led.states)
    assert fast >= 4  # 0.15 s on, 0.15 s off
    assert slow <= 2  # 1 s on, 1 s off
    panel.show("ok")
    time.sleep(0.1)
    assert led.state is True
    panel.close()


def test_holding_the_button_3_s_shuts_down_through_the_power_helper(factory, cfg, tmp_path):
    helper, calls = _helper(tmp_path)
    hw = PiHardware.from_config(cfg.replace(admin__power_command=str(helper)), pin_factory=factory)
    button = factory.pin(27)
    button.drive_low()
    time.sleep(3.6)
    button.drive_high()
    assert calls.read_text().split() == ["shutdown"]
    hw.close()


def test_a_short_press_of_the_button_does_nothing(factory):
    panel = Panel(17, 27, pin_factory=factory)
    called = []
    panel.on_shutdown(lambda: called.append(1))
    button = factory.pin(27)
    for _ in range(3):
        button.drive_low()
        time.sleep(0.3)
        button.drive_high()
        time.sleep(0.1)
    time.sleep(0.5)
    assert called == []
    panel.close()


# --- power ----------------------------------------------------------------------------


def _helper(tmp_path: Path, code: int = 0) -> tuple[Path, Path]:
    calls = tmp_path / "power-calls"
    helper = tmp_path / "kiosk-power"
    helper.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\necho refused >&2\nexit {code}\n')
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    return helper, calls


@pytest.mark.parametrize("action", power.ACTIONS)
def test_each_power_action_calls_the_helper_with_its_one_word(cfg, tmp_path, action):
    helper, calls = _helper(tmp_path)
    power.perform(cfg.replace(admin__power_command=str(helper)), action)
    assert calls.read_text().split() == [action]


def test_an_unknown_power_action_runs_nothing(cfg, tmp_path):
    helper, calls = _helper(tmp_path)
    with pytest.raises(power.PowerError):
        power.perform(cfg.replace(admin__power_command=str(helper)), "format-disk")
    assert not calls.exists()


def test_a_refusing_helper_is_an_error_saying_why(cfg, tmp_path):
    helper, _ = _helper(tmp_path, code=1)
    with pytest.raises(power.PowerError, match="refused"):
        power.perform(cfg.replace(admin__power_command=str(helper)), "reboot")


def test_a_pi_whose_pins_cannot_be_had_still_reads_its_health(cfg, caplog, factory):
    with caplog.at_level(logging.WARNING):
        hw = PiHardware.from_config(cfg.replace(hardware__led_pin=-5), pin_factory=factory)  # no such pin
    assert hw.panel is None and "panel_unavailable" in caplog.text
    assert hw.read().memory_total > 0
    hw.set_status("fault")  # nothing to show it on, and no error


def test_the_screens_fallback_marker_of_this_boot_means_the_display_failed(fake_os, cfg):
    marker = cfg.data_dir / "display-failed"
    marker.write_text(f"boot_id={BOOT_A}\ntime=2026-11-22T01:00:00Z\nunit=kiosk-display.service\n")
    assert fake_os.hardware(cfg.data_dir).read().display_failed is True
    marker.write_text(f"boot_id={BOOT_B}\ntime=2026-11-20T01:00:00Z\nunit=kiosk-display.service\n")
    assert fake_os.hardware(cfg.data_dir).read().display_failed is False  # an earlier boot's marker


def test_a_raspberry_pi_is_known_by_its_device_tree_model(tmp_path):
    from kiosk.device import is_raspberry_pi

    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\x00")
    assert is_raspberry_pi(str(model))
    model.write_bytes(b"Generic x86 board\x00")
    assert not is_raspberry_pi(str(model))
    assert not is_raspberry_pi(str(tmp_path / "absent"))
