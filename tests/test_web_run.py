"""`kiosk run` and `kiosk demo` as real processes on loopback: they serve, and stop cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.webbox import write_config

pytestmark = pytest.mark.e2e

KIOSK = [sys.executable, "-m", "kiosk.cli"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 30) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process ended early with {proc.returncode}")
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_kiosk_run_serves_and_stops_cleanly_on_sigterm(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    cfg = write_config(tmp_path, port=port)
    proc = subprocess.Popen([*KIOSK, "run", "--config", str(cfg)], env=_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/healthz", proc).status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).json()["point"]["id"] == "test-point"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_kiosk_run_on_a_busy_port_says_so_in_one_sentence(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        cfg = write_config(tmp_path, port=s.getsockname()[1])
        r = subprocess.run([*KIOSK, "run", "--config", str(cfg)], env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "cannot serve" in r.stderr and "Traceback" not in r.stderr


def test_kiosk_demo_serves_the_sample_content_and_prints_its_url(tmp_path: Path) -> None:
    proc = subprocess.Popen([*KIOSK, "demo", "--port", "0", "--centre-port", "0", "--points", "2", "--data", str(tmp_path / "demo")],
                            env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                break
            m = re.search(r"touch screens.*?(http://127\.0\.0\.1:\d+/)", line)
            url = m.group(1) if m else None
        assert url, "the demo printed no URL for the touch screens"
        items = requests.get(url + "api/v1/items", timeout=10).json()
        kinds = {f["media_type"].split("/")[0] for it in items for f in it["files"] if f["path"] == it["main"]}
        assert {"video", "image", "text", "application"} <= kinds
        assert len({it["category"] for it in items}) >= 5
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
