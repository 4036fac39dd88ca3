"""The box's heartbeats against the real county centre: `kiosk centre run` as a process on loopback."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from kiosk import clock, config
from kiosk.clock import FrozenClock
from kiosk.centre.simulate import wait_until_up
from kiosk.device.fake import FakeHardware
from kiosk.library.wishes import Wishes
from kiosk.uplink import heartbeat_job, status
from kiosk.uplink.outbox import Outbox
from tests.conftest import free_port

pytestmark = pytest.mark.e2e


class RealCentre:
    """A `kiosk centre run` process with its own SQLite store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = root / "centre.sqlite"
        self.config = root / "centre.toml"
        self.config.write_text(
            f'[storage]\ndata_dir = "{root / "data"}"\n[centre]\ndb = "{self.db}"\nhost = "127.0.0.1"\nport = {self.port}\n',
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def kiosk(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kiosk.cli", *args, "--config", str(self.config)],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "KIOSK_CONFIG": ""})

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "centre", "run", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "centre.log", "ab"))
        wait_until_up(self.url)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def enroll(self, point_id: str) -> str:
        out = self.kiosk("centre", "enroll", point_id, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["secret"]

    def arrivals(self, point_id: str) -> list[int]:
        """The point's stored sequence numbers in the order they were stored."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as db:
            return [r[0] for r in db.execute("SELECT seq FROM reports WHERE point = ? ORDER BY rowid", (point_id,))]


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[RealCentre]:
    root = tmp_path / "centre"
    root.mkdir()
    c = RealCentre(root)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def box(cfg: config.Config, centre: RealCentre) -> config.Config:
    secret = centre.enroll(cfg.point.id)
    return cfg.replace(centre__url=centre.url, centre__secret=secret, centre__reconnect_delay_s=0.5)


def test_an_enrolled_box_reports_and_the_centre_stores_each_report_once_in_order(box: config.Config, centre: RealCentre) -> None:
    hw = FakeHardware()
    written: list[int] = []
    for _ in range(3):
        result = heartbeat_job(box, None, hw)
        written += result["written"]
        assert result["outbox"] == 0
    assert centre.arrivals(box.point.id) == written
    points = json.loads(centre.kiosk("centre", "points", "--json").stdout)
    assert {p["id"]: p["status"] for p in points}[box.point.id] == "online"
    assert status(box)["last_error"] is None and status(box)["last_acked_seq"] == written[-1]


def test_a_month_without_a_line_catches_up_with_every_report_stored_once(box: config.Config, centre: RealCentre) -> None:
    hw = FakeHardware()
    wishes = Wishes(box)
    wish = wishes.add("agriculture", "想看大棚蔬菜种植")
    try:
        # The box's clock runs a month ahead of the centre's (no real-time clock): the centre
        # refuses the timestamp once, and the box corrects its offset.
        with clock.use(FrozenClock(clock.now())) as fc:
            heartbeat_job(box, None, hw)
            centre.stop()  # the line is cut
            with Outbox.of(box) as ob:
                for _ in range(30):  # a month of beats, written a day at a time
                    ob.add([{"v": 1, "kind": "beat", "point_id": box.point.id, "box_time": clock.now() + 300 * i, "health": {},
                             "usage": {"plays": 1}} for i in range(288)])
                    fc.advance(86400)
            hw.set(disk_percent=93.0)
            down = heartbeat_job(box, None, hw)  # an event while the line is down
            assert down["acked"] == 0 and down["stopped"] == "error"
            with Outbox.of(box) as ob:
                waiting = [r["seq"] for r in ob.oldest(limit=100_000)]
            assert len(waiting) > 4000  # thinned after two weeks, never emptied
            centre.start()  # the line is back
            fc.advance(box.centre.backoff_max_s)
            rounds = 0
            while status(box)["outbox"] and rounds < 5:
                heartbeat_job(box, None, hw)
                rounds += 1
                fc.advance(box.centre.heartbeat_interval_s)
        arrived = centre.arrivals(box.point.id)
        assert status(box)["outbox"] == 0
        assert len(arrived) == len(set(arrived))
        assert set(waiting) <= set(arrived)
        backlog = [s for s in arrived if s in set(waiting)]
        assert backlog[1:] == sorted(backlog[1:])  # after the newest, oldest first
        assert wishes.counts() == {"pending": 0, "sent": 1}
        with sqlite3.connect(f"file:{centre.db}?mode=ro", uri=True) as db:
            texts = [r[0] for r in db.execute("SELECT text FROM requests WHERE point = ?", (box.point.id,))]
            events = [r[0] for r in db.execute("SELECT event FROM reports WHERE point = ? AND kind = 'event'", (box.point.id,))]
        assert texts == ["想看大棚蔬菜种植"] and "disk_full" in events and wish
    finally:
        wishes.close()


def test_an_export_imported_at_the_centre_is_stored_once_and_acknowledged_back(box: config.Config, centre: RealCentre, tmp_path: Path) -> None:
    from kiosk.uplink import export_outbox

    offline = box.replace(centre__url="")
    for _ in range(3):
        heartbeat_job(offline, None, FakeHardware())
    usb = tmp_path / "usb"
    export_outbox(offline, usb)
    for _ in range(2):  # importing twice stores nothing twice
        out = centre.kiosk("centre", "import", str(usb))
        assert out.returncode == 0, out.stderr
    arrived = centre.arrivals(box.point.id)
    assert len(arrived) == len(set(arrived)) == 4
    summary = export_outbox(offline, usb)  # the next export reads the centre's signed ack file
    assert summary["acknowledged_by_file"] == 4 and status(offline)["outbox"] == 0
