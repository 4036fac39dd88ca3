"""The real centre as a `kiosk centre run` process on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from kiosk import wire
from kiosk.centre import simulate
from kiosk.centre.store import Store
from tests.centre_helpers import PG_URL, drop_schema, pg_reachable, report, signed
from tests.conftest import free_port, missing

pytestmark = pytest.mark.e2e

OFFLINE_AFTER_S = 4  # short, so the test waits little; checks of "online" use the quick API


class Centre:
    """A running centre process and the commands that talk to its configuration."""

    def __init__(self, root: Path, db: str) -> None:
        self.root = root
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "centre.toml"
        self.config.write_text(
            f'[storage]\ndata_dir = "{root / "data"}"\n'
            f'[centre]\ndb = "{db}"\nhost = "127.0.0.1"\nport = {self.port}\n'
            f"offline_after_s = {OFFLINE_AFTER_S}\nheartbeat_interval_s = 1\n"
            f'[web]\nthreads = 4\n',
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def kiosk(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kiosk.cli", *args, "--config", str(self.config)],
            input=stdin, capture_output=True, text=True, timeout=60, env={**os.environ, "KIOSK_CONFIG": ""},
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk.cli", "centre", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "centre.log", "wb"),
        )
        simulate.wait_until_up(self.url)

    def stop(self) -> int | None:
        """SIGTERM, as systemd stops it; the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait(timeout=15)
        return None

    def enroll(self, point_id: str, township: str = "") -> str:
        out = self.kiosk("centre", "enroll", point_id, "--name", f"{point_id} 服务点", "--township", township, "--json")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert set(data) == {"point_id", "secret"} and data["point_id"] == point_id
        return data["secret"]

    def post(self, point_id: str, secret: str, reports: list[dict[str, Any]], ts: int | None = None) -> requests.Response:
        body = wire.encode_batch(reports)
        ts = int(time.time()) if ts is None else ts
        return requests.post(self.url + wire.HEARTBEATS_PATH, data=body, headers=signed(point_id, secret, body, ts), timeout=30)

    def api_points(self) -> dict[str, dict[str, Any]]:
        """GET /api/v1/points with an API token: quicker than starting the command."""
        if not hasattr(self, "token"):
            store = Store(self.db)
            self.token = store.new_token("e2e")
            store.close()
        r = requests.get(self.url + "/api/v1/points?per_page=100", headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        assert r.status_code == 200 and r.json()["total"] <= 100
        return {p["id"]: p for p in r.json()["points"]}

    def points(self) -> dict[str, dict[str, Any]]:
        out = self.kiosk("centre", "points", "--json")
        assert out.returncode == 0, out.stderr
        return {p["id"]: p for p in json.loads(out.stdout)}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def centre(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    root = tmp_path_factory.mktemp(f"centre-{request.param}")
    schema = ""
    if request.param == "sqlite":
        db = str(root / "centre.sqlite")
    else:
        why = pg_reachable()
        if why:
            missing(why)
        schema = f"e2e_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
        db = f"{PG_URL}?schema={schema}"
    c = Centre(root, db)
    assert c.kiosk("centre", "add-user", "staff", stdin="good password\n").returncode == 0
    c.start()
    yield c
    assert c.stop() == 0, "the centre must stop cleanly on SIGTERM"
    if schema:
        drop_schema(schema)


def test_an_enrolled_point_reporting_is_online_then_offline_once_it_goes_quiet(centre: Centre) -> None:
    secret = centre.enroll("e2e-quiet", township="城关镇")
    centre.enroll("e2e-never")
    r = centre.post("e2e-quiet", secret, [report("e2e-quiet", 1), report("e2e-quiet", 2)])
    assert r.status_code == 200 and r.json()["acked"] == [1, 2]
    assert centre.api_points()["e2e-quiet"]["status"] == "online"
    time.sleep(OFFLINE_AFTER_S + 0.5)
    points = centre.points()
    assert points["e2e-quiet"]["status"] == "offline" and points["e2e-never"]["status"] == "never"
    assert set(points["e2e-quiet"]) >= {"id", "status", "last_seen"} and points["e2e-quiet"]["last_seen"] > 0
    centre.post("e2e-quiet", secret, [report("e2e-quiet", 3)])
    assert centre.api_points()["e2e-quiet"]["status"] == "online"


def test_a_month_cut_off_drains_in_batches_and_every_report_is_stored_once_in_order(centre: Centre) -> None:
    secret = centre.enroll("e2e-month")
    backlog = [report("e2e-month", s) for s in range(1, 8641)]  # 30 days every 5 minutes
    for i in range(0, len(backlog), 200):
        batch = backlog[i : i + 200]
        r = centre.post("e2e-month", secret, batch)
        assert r.status_code == 200 and r.json()["acked"] == [x["seq"] for x in batch]
    centre.post("e2e-month", secret, backlog[:200])  # an ack lost on the way: sent again
    store = Store(centre.db)
    try:
        assert store.seqs("e2e-month") == list(range(1, 8641))
    finally:
        store.close()


def test_the_centre_refuses_forged_and_far_off_reports_over_the_wire(centre: Centre) -> None:
    secret = centre.enroll("e2e-bad")
    forged = centre.post("e2e-bad", "0" * 64, [report("e2e-bad", 1)])
    far = centre.post("e2e-bad", secret, [report("e2e-bad", 1)], ts=int(time.time()) - 3600)
    assert forged.status_code == 401 and forged.json()["error"] == "signature"
    assert far.status_code == 401 and far.json()["error"] == "clock"
    assert abs(far.json()["server_time"] - time.time()) < 5
    assert centre.points()["e2e-bad"]["status"] == "never"


def test_simulated_points_report_with_history_and_show_up_in_the_api(centre: Centre) -> None:
    store = Store(centre.db)
    try:
        totals = simulate.run(store, centre.url, 14, days=1, rounds=2, interval_s=0.1, step_s=3600)
    finally:
        store.close()
    assert totals["acked"] == totals["sent"] > 13 * 20
    points = centre.api_points()
    assert totals["last_round"] and all(points[pid]["status"] == "online" for pid in totals["last_round"])
    assert points["sim-0013"]["status"] == "never"  # enrolled, never switched on
    assert "sim-0007" not in totals["last_round"]  # one in twenty has died


def test_metrics_and_the_signed_package_index_are_served(centre: Centre) -> None:
    metrics = requests.get(centre.url + "/metrics", timeout=10).text
    assert "kiosk_centre_points{" in metrics
    index = requests.get(centre.url + "/api/v1/packages/index.json", timeout=10)
    sig = requests.get(centre.url + "/api/v1/packages/index.json.sig", timeout=10)
    assert index.status_code == 200 and "packages" in index.json()
    from kiosk.library.signing import load_private_key

    import base64

    key = load_private_key(centre.root / "data" / "publisher.pem")
    key.public_key().verify(base64.b64decode(sig.text), index.content)


def test_a_real_box_enrolled_reports_is_online_and_offline_once_stopped(centre: Centre, tmp_path: Path) -> None:
    secret = centre.enroll("e2e-box", township="城关镇")
    box_cfg = tmp_path / "box.toml"
    box_cfg.write_text(
        f'[point]\nid = "e2e-box"\n[storage]\ndata_dir = "{tmp_path / "box"}"\nmin_free_percent = 0\n'
        f'[web]\nhost = "127.0.0.1"\nport = {free_port()}\n[hardware]\nbackend = "fake"\n'
        f'[centre]\nurl = "{centre.url}"\nsecret = "{secret}"\nheartbeat_interval_s = 1\n',
        encoding="utf-8",
    )
    box = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "run", "--config", str(box_cfg)],
                           stdout=subprocess.DEVNULL, stderr=open(tmp_path / "box.log", "wb"))
    try:
        deadline = time.monotonic() + 60
        while centre.api_points()["e2e-box"]["status"] != "online":
            assert time.monotonic() < deadline, (tmp_path / "box.log").read_text()[-2000:]
            time.sleep(0.5)
    finally:
        box.terminate()
        box.wait(timeout=30)
    time.sleep(OFFLINE_AFTER_S + 0.5)
    point = centre.points()["e2e-box"]
    assert point["status"] == "offline" and point["last_seq"] >= 1


def test_kiosk_centre_simulate_sends_traffic_to_a_running_centre(centre: Centre) -> None:
    out = centre.kiosk("centre", "simulate", "--points", "3", "--rounds", "2", "--interval", "0.1", "--url", centre.url)
    assert out.returncode == 0, out.stderr
    assert "done: 6 reports sent, 6 acknowledged, 2 rounds" in out.stdout
    assert all(centre.points()[f"sim-000{i}"]["last_seq"] >= 2 for i in (1, 2, 3))


def test_kiosk_demo_starts_a_centre_with_simulated_points_and_the_demo_box_reports_to_it(tmp_path: Path) -> None:
    import re
    import signal

    from kiosk.demo import CENTRE_PASSWORD, CENTRE_USER

    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk.cli", "demo", "--port", "0", "--centre-port", "0", "--points", "3",
         "--data", str(tmp_path / "demo")],
        env={**os.environ, "KIOSK_CONFIG": ""}, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        urls: dict[str, str] = {}
        deadline = time.monotonic() + 90
        while len(urls) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                break
            for key, pattern in (("box", r"touch screens.*?(http://127\.0\.0\.1:\d+/)"), ("centre", r"county centre.*?(http://127\.0\.0\.1:\d+/)")):
                m = re.search(pattern, line)
                if m:
                    urls[key] = m.group(1)
        assert set(urls) == {"box", "centre"}, "the demo must print both URLs"
        staff = requests.Session()
        page = staff.get(urls["centre"] + "login", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        staff.post(urls["centre"] + "login", data={"username": CENTRE_USER, "password": CENTRE_PASSWORD, "csrf_token": token}, timeout=10)
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            seen = {p["id"]: p for p in staff.get(urls["centre"] + "api/v1/points?per_page=100", timeout=10).json()["points"]}
            if seen.get("demo-0001", {}).get("status") == "online" and seen.get("sim-0001", {}).get("status") == "online":
                break
            time.sleep(1)
        assert seen["demo-0001"]["status"] == "online" and seen["sim-0001"]["status"] == "online"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
