"""systemd/: the box's units verify, keep their promises, and the power helper is narrow.

`systemd-analyze verify` needs every ExecStart binary to exist. Here the units are checked
on this machine with the binaries it lacks (the kiosk venv, cage, the helpers under
/usr/lib/kiosk) replaced by stubs in a temporary folder; tests/test_rootfs.py verifies the
untouched units inside a real Debian root file system where everything is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import missing

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
UNITS = sorted(p.name for p in SYSTEMD.glob("*.service"))
# An instance name for each template, as the box starts it.
INSTANCES = {"kiosk-power@.service": "kiosk-power@reboot.service"}

def instance(name: str) -> str:
    """The unit name to verify: templates get an instance name."""
    return INSTANCES.get(name, name.replace("@.service", "@test.service"))


needs_analyze = pytest.mark.needs(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")


def read_unit(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, continuation lines joined, in order."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def values(name: str, key: str) -> list[str]:
    """Every value given to `key` in unit `name`."""
    return [v for _, k, v in read_unit(name) if k == key]


def value(name: str, key: str) -> str:
    """The last value of `key` (as systemd reads a single-valued setting)."""
    found = values(name, key)
    assert found, f"{name} has no {key}="
    return found[-1]


def _stubbed_copy(name: str, dest: Path) -> Path:
    """A copy of the unit whose missing executables point at stubs under dest."""
    text = (SYSTEMD / name).read_text()
    stubs = dest / "stubs"
    stubs.mkdir(exist_ok=True)

    def replace(match: re.Match[str]) -> str:
        path = match.group(2)
        if os.access(path, os.X_OK):
            return match.group(0)
        stub = stubs / path.strip("/").replace("/", "_")
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        return f"{match.group(1)}{stub}"

    text = re.sub(r"^(Exec\w+=[-+@:!]*)(/\S+)", replace, text, flags=re.M)
    target = dest / instance(name)
    target.write_text(text)
    return target


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_every_unit_passes_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    unit = _stubbed_copy(name, tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 0 and not complaints, "\n".join(complaints)


def test_the_box_is_a_notify_service_with_a_watchdog_that_restarts_it() -> None:
    assert value("kiosk.service", "Type") == "notify"
    assert int(value("kiosk.service", "WatchdogSec")) > 0
    assert value("kiosk.service", "Restart") == "on-failure"
    # through the launcher, which starts the current release and rolls back a failed trial
    assert value("kiosk.service", "ExecStart").startswith("/opt/kiosk/bin/kiosk launch ")


def test_the_box_runs_unprivileged_in_a_read_only_system() -> None:
    assert value("kiosk.service", "User") == "kiosk"
    assert value("kiosk.service", "NoNewPrivileges") == "yes"
    assert value("kiosk.service", "ProtectSystem") == "strict"
    assert value("kiosk.service", "ReadWritePaths") == "/var/lib/kiosk"
    assert value("kiosk.service", "PrivateTmp") == "yes"
    assert value("kiosk.service", "ProtectHome") == "yes"
    assert value("kiosk.service", "CapabilityBoundingSet") == ""
    assert "@system-service" in values("kiosk.service", "SystemCallFilter")
    assert "AF_PACKET" not in value("kiosk.service", "RestrictAddressFamilies")


def test_the_box_can_reach_the_gpio_pins_but_no_other_device() -> None:
    assert value("kiosk.service", "PrivateDevices") == "no"
    assert value("kiosk.service", "DevicePolicy") == "closed"
    assert "char-gpiochip rw" in values("kiosk.service", "DeviceAllow")
    assert "gpio" in value("kiosk.service", "SupplementaryGroups").split()


def test_the_screens_run_chromium_in_cage_on_tty1_and_come_back_when_they_die() -> None:
    start = value("kiosk-display.service", "ExecStart")
    assert start.startswith("/usr/bin/env XDG_RUNTIME_DIR=/run/kiosk-display /usr/bin/cage ") and "/usr/bin/chromium --kiosk" in start
    assert "${KIOSK_URL}" in start
    assert "KIOSK_URL=http://127.0.0.1:8080/" in values("kiosk-display.service", "Environment")
    assert value("kiosk-display.service", "TTYPath") == "/dev/tty1"
    assert value("kiosk-display.service", "Restart") == "always"
    assert value("kiosk-display.service", "User") != "root"


def test_the_screens_never_wait_for_the_clock_to_be_synchronised() -> None:
    deps = " ".join(v for _, k, v in read_unit("kiosk-display.service") if k in ("After", "Wants", "Requires", "BindsTo", "Requisite"))
    assert "time-sync" not in deps and "time-set" not in deps and "network-online" not in deps


def test_the_screens_fall_back_after_repeated_failures() -> None:
    assert int(value("kiosk-display.service", "StartLimitBurst")) >= 2
    fallback = value("kiosk-display.service", "OnFailure")
    assert fallback == "kiosk-display-failed.service"
    assert (SYSTEMD / fallback).exists()


def test_the_fallback_leaves_a_marker_and_a_text_screen(tmp_path: Path) -> None:
    tty = tmp_path / "tty1"
    tty.write_text("")
    env = {**os.environ, "KIOSK_DATA_DIR": str(tmp_path), "KIOSK_FALLBACK_TTY": str(tty)}
    subprocess.run([str(SYSTEMD / "kiosk-display-failed")], check=True, env=env, timeout=30)
    marker = (tmp_path / "display-failed").read_text()
    assert re.search(r"^boot_id=\S+$", marker, re.M) and "unit=kiosk-display.service" in marker
    assert "restart screens" in tty.read_text()


def _as_root() -> None:
    """These tests plant links as an unprivileged owner and run the helper as root, as systemd does."""
    if os.geteuid() != 0:
        missing("root, to run the helper as systemd does")


NOBODY = 65534


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp_path is root's alone), for the box's user's files."""
    path = Path(tempfile.mkdtemp(prefix="kiosk-links-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_fallback_never_writes_through_a_link_the_box_planted(open_tmp: Path) -> None:
    _as_root()
    tmp_path = open_tmp
    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    victim.chmod(0o600)
    # the box's user owns the data folder and plants links where the helper writes
    (data / "display-failed").symlink_to(victim)
    (data / "display-failed.tmp").symlink_to(victim)
    os.chown(data, NOBODY, NOBODY)
    env = {**os.environ, "KIOSK_DATA_DIR": str(data), "KIOSK_FALLBACK_TTY": str(tmp_path / "no-tty")}
    subprocess.run([str(SYSTEMD / "kiosk-display-failed")], check=True, env=env, timeout=30)
    assert victim.read_text() == "root:secret\n" and victim.stat().st_uid == 0 and victim.stat().st_mode & 0o777 == 0o600
    marker = data / "display-failed"
    assert not marker.is_symlink() and "unit=kiosk-display.service" in marker.read_text()
    assert marker.stat().st_uid == NOBODY  # written as the folder's owner, not as root


def test_the_centre_runs_unprivileged_and_restarts() -> None:
    assert value("kiosk-centre.service", "ExecStart").startswith("/opt/kiosk/bin/kiosk centre run ")
    assert value("kiosk-centre.service", "User") == "kiosk-centre"
    assert value("kiosk-centre.service", "NoNewPrivileges") == "yes"
    assert value("kiosk-centre.service", "Restart") == "on-failure"


# --- the power helper ---------------------------------------------------------------


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """PATH with a `systemctl` that records its arguments (systemd is not PID 1 here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bin_dir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


@pytest.mark.parametrize("action", ["restart-screens", "reboot", "shutdown"])
def test_the_power_helper_asks_systemd_to_start_the_matching_action_unit(action: str, fake_systemctl) -> None:
    env, log = fake_systemctl
    subprocess.run([str(SYSTEMD / "kiosk-power"), action], check=True, env=env, timeout=30)
    assert log.read_text().split() == ["--no-ask-password", "--no-block", "start", f"kiosk-power@{action}.service"]


@pytest.mark.parametrize("argv", [[], ["halt"], ["reboot", "now"], ["reboot;id"], ["../reboot"], ["REBOOT"], ["reboot\n"]])
def test_the_power_helper_refuses_anything_else_and_does_nothing(argv: list[str], fake_systemctl) -> None:
    env, log = fake_systemctl
    done = subprocess.run([str(SYSTEMD / "kiosk-power"), *argv], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage" in done.stderr
    assert not log.exists()


@pytest.mark.parametrize(("action", "calls"), [
    ("reboot", ["reboot"]),
    ("shutdown", ["poweroff"]),
    ("restart-screens", ["reset-failed kiosk-display.service", "restart kiosk-display.service"]),
])
def test_the_privileged_side_maps_each_action_to_one_fixed_call(action: str, calls: list[str], fake_systemctl) -> None:
    env, log = fake_systemctl
    subprocess.run([str(SYSTEMD / "kiosk-power-action"), action], check=True, env=env, timeout=30)
    assert log.read_text().splitlines() == calls


def test_the_privileged_side_refuses_an_unknown_instance(fake_systemctl) -> None:
    env, log = fake_systemctl
    done = subprocess.run([str(SYSTEMD / "kiosk-power-action"), "halt"], env=env, capture_output=True, timeout=30)
    assert done.returncode == 2 and not log.exists()


POLKIT_HARNESS = """
const fs = require("fs");
let rule = null;
const polkit = {Result: {YES: "yes", NO: "no", NOT_HANDLED: null}, addRule: (f) => { rule = f; }};
new Function("polkit", fs.readFileSync(process.argv[1], "utf8"))(polkit);
const cases = JSON.parse(process.argv[2]);
const out = cases.map(([id, user, verb, unit]) => rule(
    {id: id, lookup: (k) => ({verb: verb, unit: unit})[k]}, {user: user}));
console.log(JSON.stringify(out));
"""


@pytest.mark.needs(shutil.which("node") is not None, "node is needed to evaluate the polkit rule")
def test_polkit_lets_the_box_start_exactly_the_three_power_units() -> None:
    manage = "org.freedesktop.systemd1.manage-units"
    cases = [
        [manage, "kiosk", "start", "kiosk-power@reboot.service"],
        [manage, "kiosk", "start", "kiosk-power@shutdown.service"],
        [manage, "kiosk", "start", "kiosk-power@restart-screens.service"],
        [manage, "kiosk", "stop", "kiosk-power@reboot.service"],
        [manage, "kiosk", "start", "kiosk-power@halt.service"],
        [manage, "kiosk", "start", "ssh.service"],
        [manage, "kiosk-display", "start", "kiosk-power@reboot.service"],
        ["org.freedesktop.login1.reboot", "kiosk", "start", "kiosk-power@reboot.service"],
    ]
    done = subprocess.run(["node", "-e", POLKIT_HARNESS, "--", str(SYSTEMD / "kiosk-power.rules"), json.dumps(cases)],
                          capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(done.stdout) == ["yes", "yes", "yes", None, None, None, None, None]


# --- setup from the boot partition ------------------------------------------------------


def _setup(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    boot, etc = tmp_path / "boot", tmp_path / "etc"
    boot.mkdir()
    etc.mkdir()
    python = REPO / ".venv" / "bin" / "python"
    env = {**os.environ, "KIOSK_BOOT_DIR": str(boot), "KIOSK_ETC_DIR": str(etc),
           "KIOSK_PYTHON": str(python if python.exists() else shutil.which("python3")), "PYTHONPATH": str(REPO)}
    return boot, etc, env


def test_setup_applies_the_technicians_settings_and_removes_them_from_the_card(tmp_path: Path) -> None:
    boot, etc, env = _setup(tmp_path)
    data = tmp_path / "data"
    (boot / "kiosk.toml").write_text(f'[point]\nid = "dongfeng-01"\n[storage]\ndata_dir = "{data}"\n[centre]\nsecret = "s3cret"\n')
    (boot / "kiosk-trust").mkdir()
    (boot / "kiosk-trust" / "county.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    subprocess.run([str(SYSTEMD / "kiosk-setup")], check=True, env=env, timeout=60)
    assert 'id = "dongfeng-01"' in (etc / "kiosk.toml").read_text()
    assert (etc / "kiosk.toml").stat().st_mode & 0o007 == 0
    assert not (boot / "kiosk.toml").exists()
    assert (data / "trust" / "county.pem").exists()
    assert "kiosk.toml applied" in (boot / "kiosk-setup-result.txt").read_text()


def test_setup_keeps_the_old_settings_when_the_new_file_has_a_mistake(tmp_path: Path) -> None:
    boot, etc, env = _setup(tmp_path)
    (etc / "kiosk.toml").write_text('[point]\nid = "old"\n')
    (boot / "kiosk.toml").write_text('[web]\nport = "eighty"\n')
    subprocess.run([str(SYSTEMD / "kiosk-setup")], check=True, env=env, timeout=60)
    assert (etc / "kiosk.toml").read_text() == '[point]\nid = "old"\n'
    assert (boot / "kiosk.toml").exists()
    assert "NOT applied" in (boot / "kiosk-setup-result.txt").read_text()


def test_setup_does_not_apply_settings_while_the_root_is_read_only(tmp_path: Path) -> None:
    boot, etc, env = _setup(tmp_path)
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=tty1 root=PARTUUID=abc-02 boot=overlay rootwait\n")
    (boot / "kiosk.toml").write_text('[point]\nid = "new"\n')
    subprocess.run([str(SYSTEMD / "kiosk-setup")], check=True, env={**env, "KIOSK_CMDLINE": str(cmdline)}, timeout=60)
    assert not (etc / "kiosk.toml").exists()
    assert (boot / "kiosk.toml").exists()
    assert "read-only root is on" in (boot / "kiosk-setup-result.txt").read_text()


def test_setup_keeps_the_trust_folder_roots_and_read_only_to_the_box(tmp_path: Path) -> None:
    _as_root()
    boot, etc, env = _setup(tmp_path)
    trust = etc / "trust"
    (boot / "kiosk-trust").mkdir()
    (boot / "kiosk-trust" / "county.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    subprocess.run([str(SYSTEMD / "kiosk-setup")], check=True, env={**env, "KIOSK_STORAGE_TRUST_DIR": str(trust)}, timeout=60)
    key = trust / "county.pem"
    assert key.read_text().startswith("-----BEGIN PUBLIC KEY")
    for path in (trust, key):
        st = path.stat()
        assert st.st_uid == 0 and st.st_gid == 0 and st.st_mode & 0o022 == 0, oct(st.st_mode)


def test_setup_never_puts_keys_in_a_folder_the_box_can_change(open_tmp: Path) -> None:
    _as_root()
    tmp_path = open_tmp
    boot, etc, env = _setup(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data / "trust").symlink_to(elsewhere)  # planted by the owner of the data folder
    os.lchown(data / "trust", NOBODY, NOBODY)
    os.chown(data, NOBODY, NOBODY)
    (boot / "kiosk-trust").mkdir()
    (boot / "kiosk-trust" / "county.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    for trust in (data / "trust", data / "fresh"):
        subprocess.run([str(SYSTEMD / "kiosk-setup")], check=True, env={**env, "KIOSK_STORAGE_TRUST_DIR": str(trust)}, timeout=60)
        assert "NOT installed" in (boot / "kiosk-setup-result.txt").read_text()
    assert list(elsewhere.iterdir()) == [] and not (data / "fresh").exists()


def test_the_box_reads_publisher_keys_only_from_roots_folder() -> None:
    for name in ("kiosk.service", "kiosk-usb-import@.service", "kiosk-setup.service"):
        assert "KIOSK_STORAGE_TRUST_DIR=/etc/kiosk/trust" in values(name, "Environment"), name


def _exposure(name: str, tmp_path: Path) -> float:
    unit = _stubbed_copy(name, tmp_path)
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


@needs_analyze
@pytest.mark.parametrize(("name", "ceiling"), [("kiosk.service", 2.5), ("kiosk-centre.service", 2.5), ("kiosk-display.service", 5.0),
                                              ("kiosk-power@.service", 2.0), ("kiosk-setup.service", 2.5)])
def test_systemd_rates_each_service_as_well_confined(name: str, ceiling: float, tmp_path: Path) -> None:
    assert _exposure(name, tmp_path) <= ceiling


def test_the_screens_keep_access_to_the_gpu_and_input_devices() -> None:
    # ProtectClock=, PrivateDevices= or a DeviceAllow= list would close /dev/dri and /dev/input
    keys = {k for _, k, _ in read_unit("kiosk-display.service")}
    assert not keys & {"ProtectClock", "PrivateDevices", "DeviceAllow", "DevicePolicy"}
