"""A software update on a running box: package arrived -> new release serving, and the screens' dark gap.

Builds this project as a release (the kiosk wheel with a bumped version plus every
dependency wheel, as tests/releases.py does), signs it as a software package, starts a box
through the launcher (a restart loop standing in for systemd), drops the package into the
spool and measures, from the moment it is there:

- seconds until the new release answers /healthz (ingest, offline venv install, switch);
- the longest gap in which /healthz did not answer 200, polled every 50 ms (what the touch
  screens see: their calm retry page meanwhile); target < 10 s;
- the bytes of the package and of the installed release.

    .venv/bin/python bench/update_bench.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port  # noqa: E402
from tests.packages import make_key, trust_key  # noqa: E402
from tests.releases import dependency_wheels, kiosk_wheel  # noqa: E402
from tests.test_update_e2e import Service, software_package  # noqa: E402


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="update-bench-"))
    try:
        version = "9.9.0"
        wheels = {"deps": dependency_wheels(), version: kiosk_wheel(version, tmp)}
        key = tmp / "keys" / "software.pem"
        make_key(key)
        trust_key(key, tmp / "software-trust")
        data, spool = tmp / "data", tmp / "spool"
        data.mkdir()
        spool.mkdir()
        port = free_port()
        config = tmp / "kiosk.toml"
        config.write_text(f"""
[storage]
data_dir = "{data}"
spool_dir = "{spool}"
software_trust_dir = "{tmp / 'software-trust'}"
min_free_percent = 0
spool_scan_s = 1
spool_settle_s = 1
[web]
host = "127.0.0.1"
port = {port}
[hardware]
backend = "fake"
[update]
base_release = "{sys.prefix}"
check_interval_s = 2
trial_s = 120
""")
        pkg = software_package(tmp, wheels, version, key)
        service = Service(config, tmp / "box.log").start()
        try:
            while not healthy(port):
                time.sleep(0.2)
            time.sleep(3)
            gaps: list[float] = []
            serving_new = threading.Event()
            stop = threading.Event()

            def watch() -> None:
                down_since = None
                while not stop.is_set():
                    ok = healthy(port)
                    now = time.monotonic()
                    if not ok and down_since is None:
                        down_since = now
                    if ok and down_since is not None:
                        gaps.append(now - down_since)
                        down_since = None
                    if ok and version in service.cmdline():
                        serving_new.set()
                    time.sleep(0.05)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            started = time.monotonic()
            os.rename(pkg, spool / pkg.name)
            if not serving_new.wait(600):
                raise SystemExit("the new release never served; see " + str(tmp / "box.log"))
            arrived_to_serving = time.monotonic() - started
            while json.loads((data / "update" / "state.json").read_text())["state"] == "trying":
                time.sleep(0.5)
            stop.set()
            watcher.join()
            state = json.loads((data / "update" / "state.json").read_text())
        finally:
            service.stop()
        stored = next((data / "store").iterdir())
        print(f"package arrived -> new release serving: {arrived_to_serving:.1f} s")
        print(f"screens dark during the switch: {max(gaps) if gaps else 0.0:.2f} s (longest gap; {len(gaps)} gap(s))")
        print(f"package: {tree_bytes(stored) / 1e6:.1f} MB"
              f" ({len(list((stored / 'data' / 'wheels').glob('*.whl')))} wheels);"
              f" installed release: {tree_bytes(data / 'releases' / version) / 1e6:.1f} MB")
        print(f"outcome: {state['state']} {state['last']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
