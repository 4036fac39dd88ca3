"""Application updates end to end, with real releases: this project built as wheels, real venvs, the real launcher.

systemd cannot run here, so a small loop stands in for kiosk.service's `Restart=on-failure`:
it runs `kiosk launch` and starts it again whenever it exits with an error. Everything
else is the box as it runs in the field: the spool takes the software package, the
update job installs it beside the running release, the launcher starts it, the trial
keeps it or the box goes back by itself. Power cuts are SIGKILLs of the whole process
group at the worst moments.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from kiosk import __version__
from kiosk.library.package import build_package
from kiosk.update import platform_tag
from tests.conftest import free_port
from tests.packages import make_key, trust_dir, trust_key
from tests.releases import dependency_wheels, kiosk_wheel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CRASH_AT_START = 'raise SystemExit("this release cannot start")\n'


class Service:
    """`kiosk launch` under a restart-on-failure loop, like kiosk.service under systemd."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exits: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "launch", "--config", str(self.config)],
                                             stdout=out, stderr=out, start_new_session=True, cwd="/")
                self.starts += 1
                rc = self.proc.wait()
            self.exits.append(rc)
            if rc == 0:
                return
            time.sleep(0.5)  # RestartSec, shortened

    def start(self) -> "Service":
        self._thread.start()
        return self

    def power_cut(self) -> None:
        """SIGKILL the box and every process it started (pip included)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self._thread.join(timeout=60)

    def cmdline(self) -> str:
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until(what: str, check: Callable[[], Any], timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n--- box log ---\n{tail}")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Kiosk wheels: 9.0.1..9.0.4 good, but 9.0.3 exits at start; and the dependency wheels."""
    out = tmp_path_factory.mktemp("wheels")
    made = {"deps": dependency_wheels()}
    for v in ("9.0.1", "9.0.2", "9.0.4"):
        made[v] = kiosk_wheel(v, out)
    box_py = (Path(__file__).resolve().parent.parent / "kiosk" / "box.py").read_text(encoding="utf-8")
    made["9.0.3"] = kiosk_wheel("9.0.3", out, patch={"kiosk/box.py": CRASH_AT_START + box_py})
    return made


def software_package(tmp: Path, wheels: dict[str, Path], version: str, key: Path, deps: bool = True) -> Path:
    """A signed software package of kiosk `version` (its wheel and, unless deps=False, every dependency)."""
    src = tmp / f"src-{version}"
    (src / "data" / "wheels").mkdir(parents=True)
    shutil.copy(wheels[version], src / "data" / "wheels")
    if deps:
        for w in wheels["deps"].glob("*.whl"):
            shutil.copy(w, src / "data" / "wheels")
    (src / "kiosk.json").write_text(json.dumps({
        "id": "kiosk-app", "version": int(version.replace(".", "")), "title": f"Field Kiosk {version}", "kind": "software",
        "software": {"component": "app", "version": version, "platforms": [platform_tag()]},
    }))
    return build_package(src, key, tmp / f"kiosk-app-{version}.tar")


def test_a_box_installs_keeps_and_rolls_back_releases_by_itself(tmp_path, wheels):
    data, spool = tmp_path / "data", tmp_path / "spool"
    data.mkdir()
    spool.mkdir()
    port = free_port()
    key = tmp_path / "keys" / "software.pem"
    make_key(key)
    trust_key(key, tmp_path / "software-trust")
    config = tmp_path / "kiosk.toml"
    config.write_text(f"""
[point]
id = "p-update"
[storage]
data_dir = "{data}"
spool_dir = "{spool}"
trust_dir = "{trust_dir(tmp_path)}"
software_trust_dir = "{tmp_path / 'software-trust'}"
min_free_percent = 0
spool_scan_s = 0.5
spool_settle_s = 0.5
[web]
host = "127.0.0.1"
port = {port}
[hardware]
backend = "fake"
[update]
base_release = "{sys.prefix}"
check_interval_s = 1
trial_s = 40
""", encoding="utf-8")
    config_bytes = config.read_bytes()
    log = tmp_path / "box.log"

    def software() -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "kiosk.cli", "status", "--json", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["software"]

    def offer(version: str, deps: bool = True) -> None:
        pkg = software_package(tmp_path, wheels, version, key, deps)
        os.rename(pkg, spool / pkg.name)

    def state() -> dict[str, Any]:
        try:
            return json.loads((data / "update" / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    service = Service(config, log).start()
    try:
        wait_until("the base release serving", lambda: healthy(port), 60, log)
        first = software()
        assert (first["version"], first["state"]) == (__version__, "current")
        pid = service.proc.pid  # type: ignore[union-attr]

        # a wheel set missing its dependencies: the install fails, the box never stopped serving
        offer("9.0.1", deps=False)
        wait_until("the failed install", lambda: software()["state"] == "failed", 120, log)
        sw = software()
        assert sw["version"] == __version__ and sw["last"]["outcome"] == "failed"
        assert "No matching distribution" in sw["last"]["reason"]
        assert service.proc.pid == pid and service.starts == 1 and healthy(port)  # type: ignore[union-attr]
        assert not (data / "releases" / "9.0.1").exists()

        # a good release, with a power cut in the middle of its install: it starts over and is kept
        offer("9.0.2")
        wait_until("the install under way", lambda: state().get("state") == "installing"
                   and (data / "releases" / "9.0.2" / "bin").exists(), 120, log)
        time.sleep(1.5)  # pip is writing files
        service.power_cut()
        wait_until("9.0.2 kept", lambda: software()["state"] == "current" and software()["version"] == "9.0.2", 240, log)
        assert healthy(port)
        assert "releases/9.0.2/bin/kiosk" in service.cmdline()
        assert os.readlink(data / "releases" / "current") == str(data / "releases" / "9.0.2")
        assert state()["interrupted"] == {"9.0.2": 1}
        assert software()["last"]["outcome"] == "kept"

        # a release that exits at start: the box goes back to 9.0.2 by itself
        starts = service.starts
        offer("9.0.3")
        wait_until("9.0.3 rolled back", lambda: software()["state"] == "rolled_back", 240, log)
        wait_until("serving again", lambda: healthy(port), 60, log)
        sw = software()
        assert sw["version"] == "9.0.2" and sw["last"]["version"] == "9.0.3"
        assert "stopped during its trial" in sw["last"]["reason"]
        assert service.starts > starts and "releases/9.0.2/bin/kiosk" in service.cmdline()
        # offered again (a carousel repeat): not tried again
        again = subprocess.run([sys.executable, "-m", "kiosk.cli", "ingest", "--json", "--config", str(config),
                                str(software_package(tmp_path / "again", wheels, "9.0.3", key))],
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)[0]["outcome"] == "unchanged"

        # a good release whose trial is cut by a power cut: left, and the box serves 9.0.2
        offer("9.0.4")
        wait_until("9.0.4 on trial", lambda: state().get("state") == "trying" and state()["trial"]["starts"] >= 1
                   and "9.0.4" in service.cmdline(), 240, log)
        service.power_cut()
        wait_until("9.0.4 left", lambda: software()["state"] == "rolled_back" and software()["last"]["version"] == "9.0.4", 120, log)
        wait_until("serving again", lambda: healthy(port), 60, log)
        assert software()["version"] == "9.0.2"
        assert config.read_bytes() == config_bytes  # no update touched the configuration
        assert sorted(p.name for p in (data / "releases").iterdir() if not p.is_symlink()) <= ["9.0.2", "9.0.4"]
    finally:
        service.stop()
    assert service.exits[-1] == 0  # SIGTERM: a clean stop, whichever release ran
