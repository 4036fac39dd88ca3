"""The outbox on the box's disk, and what a report carries."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from kiosk import clock
from kiosk.clock import FrozenClock
from kiosk.config import Config
from kiosk.device.fake import FakeHardware
from kiosk.library import Library
from kiosk.library.usage import Usage
from kiosk.library.wishes import Wishes
from kiosk.uplink import heartbeat_job, report, status, write_reports
from kiosk.uplink.outbox import Outbox, merge_usage, outbox_path
from tests.packages import make_bag, trust_dir

DAY = 86400.0


def beats(cfg: Config, n: int, **fields: Any) -> list[int]:
    with Outbox.of(cfg) as ob:
        return ob.add([{"kind": "beat", "point_id": cfg.point.id, "box_time": clock.now(), **fields} for _ in range(n)])


def test_sequence_numbers_continue_after_a_restart(cfg: Config) -> None:
    first = beats(cfg, 3)
    second = beats(cfg, 2)  # a new Outbox object: the box restarted
    assert first == [1, 2, 3] and second == [4, 5]


def test_sequence_numbers_never_repeat_when_the_outbox_file_is_lost(cfg: Config) -> None:
    used = beats(cfg, 5)
    for suffix in ("", "-wal", "-shm"):
        outbox_path(cfg).with_name(outbox_path(cfg).name + suffix).unlink(missing_ok=True)
    after = beats(cfg, 2)
    assert min(after) > max(used)


def test_sequence_numbers_never_repeat_when_the_sequence_file_is_lost(cfg: Config) -> None:
    used = beats(cfg, 5)
    with Outbox.of(cfg) as ob:
        ob.acknowledge(used)  # the outbox is empty, yet it remembers where it stands
        ob.seqfile.path.unlink()
    after = beats(cfg, 1)
    assert min(after) > max(used)


def test_sequence_numbers_never_repeat_across_many_restarts(cfg: Config) -> None:
    seen: list[int] = []
    for _ in range(30):
        seen += beats(cfg, 1)
    assert len(seen) == len(set(seen)) and seen == sorted(seen)


def test_a_corrupt_outbox_is_set_aside_and_numbering_goes_on(cfg: Config) -> None:
    used = beats(cfg, 3)
    path = outbox_path(cfg)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    after = beats(cfg, 1)
    assert min(after) > max(used)
    assert list(path.parent.glob("outbox.sqlite.corrupt-*"))


def test_thinning_keeps_one_beat_an_hour_after_two_weeks_and_every_event_and_request(cfg: Config) -> None:
    with clock.use(FrozenClock(1_800_000_000.0)) as fc:
        start = clock.now()
        with Outbox.of(cfg) as ob:
            reports = []
            for i in range(20 * 24 * 12):  # twenty days, every five minutes
                kind = "event" if i % 500 == 0 else "beat"
                extra = {"requests": [{"id": i, "text": "想看养猪"}]} if i % 700 == 0 else {}
                reports.append({"kind": kind, "point_id": "p", "box_time": start + 300 * i, "usage": {"plays": 1, "opens": 2, "seconds": 3.0,
                                "since": start + 300 * i - 300, "by_category": {"health": {"opens": 2, "plays": 1, "seconds": 3.0}}}, **extra})
            ob.add(reports)
            fc.advance(300 * len(reports))
            before = ob.oldest(limit=100_000)
            dropped = ob.thin()
            after = ob.oldest(limit=100_000)
            end = clock.now()
    assert dropped > 0
    kept = {r["seq"] for r in after}
    assert all(r["seq"] in kept for r in before if r["kind"] == "event" or r.get("requests"))
    old_beats = [r for r in after if r["kind"] == "beat" and not r.get("requests") and r["box_time"] < start + 6 * DAY - 3600]
    hours = [int(r["box_time"] // 3600) for r in old_beats]
    assert len(hours) == len(set(hours))  # one routine beat an hour in the thinned part
    recent = [r for r in before if r["box_time"] >= end - 14 * DAY]
    assert all(r["seq"] in kept for r in recent)  # the last two weeks are untouched
    # usage is never lost: the totals of the dropped beats live on in the kept ones
    assert sum(r["usage"]["plays"] for r in after) == sum(r["usage"]["plays"] for r in before)
    assert sum(r["usage"]["by_category"]["health"]["opens"] for r in after) == 2 * len(before)


def test_thinning_keeps_one_beat_a_day_after_sixty_days(cfg: Config) -> None:
    with clock.use(FrozenClock(1_800_000_000.0)) as fc:
        with Outbox.of(cfg) as ob:
            ob.add([{"kind": "beat", "point_id": "p", "box_time": clock.now() + 3600 * i} for i in range(90 * 24)])  # ninety days, hourly
            fc.advance(90 * 24 * 3600)
            ob.thin()
            left = ob.oldest(limit=100_000)
            end = clock.now()
    very_old = [int(r["box_time"] // DAY) for r in left if r["box_time"] < end - 61 * DAY]
    assert very_old and len(very_old) == len(set(very_old))
    assert len(left) <= 90 * 24 - 25 * 23  # about a month of hourly beats became one a day


def test_merging_usage_adds_the_counts_and_widens_the_span() -> None:
    a = {"since": 100, "opens": 1, "plays": 2, "seconds": 5.0, "by_category": {"law": {"opens": 1, "plays": 2, "seconds": 5.0}},
         "top_items": [{"id": "x", "count": 3}]}
    b = {"since": 400, "opens": 3, "plays": 0, "seconds": 1.0, "by_category": {"law": {"opens": 3, "plays": 0, "seconds": 1.0}},
         "top_items": [{"id": "x", "count": 3}]}
    m = merge_usage(a, b)
    assert m is not None
    assert (m["since"], m["opens"], m["plays"], m["seconds"]) == (100, 4, 2, 6.0)
    assert m["by_category"]["law"] == {"opens": 4, "plays": 2, "seconds": 6.0}
    assert m["top_items"] == [{"id": "x", "count": 6}]


def test_the_first_heartbeat_after_a_boot_reports_the_boot(cfg: Config) -> None:
    hw = FakeHardware()
    with Outbox.of(cfg) as ob:
        first = write_reports(cfg, ob, None, hw)
        again = write_reports(cfg, ob, None, hw)
        hw.set(boot_id="11111111-0000-4000-8000-000000000000")
        rebooted = write_reports(cfg, ob, None, hw)
        kinds = [(r["kind"], r.get("event")) for r in ob.get(first + again + rebooted)]
    assert kinds == [("event", "boot"), ("beat", None), ("beat", None), ("event", "boot"), ("beat", None)]


def test_a_nearly_full_disk_and_under_voltage_are_reported_once_as_they_happen_and_when_they_clear(cfg: Config) -> None:
    hw = FakeHardware()
    events: list[tuple[str, bool]] = []
    with Outbox.of(cfg) as ob:
        for readings in ({}, {"disk_percent": 91.0}, {"disk_percent": 92.0, "under_voltage_now": True}, {"disk_percent": 50.0},
                         {"root_readonly": True, "display_restarts": 7}):
            hw.set(**readings)
            for r in ob.get(write_reports(cfg, ob, None, hw)):
                if r["kind"] == "event" and r["event"] != "boot":
                    events.append((r["event"], r["detail"].get("active")))
            hw.reset()
    assert events == [
        ("disk_full", True), ("under_voltage", True), ("under_voltage", False), ("disk_full", False),
        ("read_only_root", True), ("display_restarts", True),
    ]


def test_a_beat_carries_health_content_and_the_usage_since_the_previous_beat(cfg: Config, tmp_path: Path) -> None:
    lib = Library(cfg.replace(storage__trust_dir=str(trust_dir(tmp_path))))
    usage = Usage(cfg)
    try:
        assert lib.ingest(make_bag(tmp_path)).outcome == "published"
        with Outbox.of(cfg) as ob:
            usage.record("yangzhu-1", "agriculture", "play", 60)
            (first,) = ob.get(write_reports(cfg, ob, lib, FakeHardware()))[-1:]
            usage.record("falv-2", "law", "open")
            (second,) = ob.get(write_reports(cfg, ob, lib, FakeHardware()))[-1:]
    finally:
        usage.close()
        lib.close()
    assert first["kind"] == "beat" and first["point_id"] == "test-point" and first["software"]
    assert first["health"]["temp_c"] == 48.0 and first["boot_id"] and "clock_synced" in first
    assert first["content"]["items"] == 1 and first["content"]["bytes"] > 0 and first["content"]["quarantined"] == 0
    assert first["usage"]["by_category"] == {"agriculture": {"opens": 0, "plays": 1, "seconds": 60.0}}
    assert second["usage"]["by_category"] == {"law": {"opens": 1, "plays": 0, "seconds": 0.0}}


def test_every_report_stays_under_one_kib_compressed_even_with_long_requests(cfg: Config) -> None:
    wishes = Wishes(cfg)
    try:
        for i in range(40):
            wishes.add("agriculture", "我想看怎么种植高产玉米和防治病虫害的节目，还有养猪养鸡的技术讲座" * 5 + str(i))
        carried: list[int] = []
        with Outbox.of(cfg) as ob:
            for _ in range(40):
                for r in ob.get(write_reports(cfg, ob, None, FakeHardware(disk_percent=99.0))):
                    assert report.gzipped_size(r) < 1024
                    carried += [q["id"] for q in r.get("requests", [])]
    finally:
        wishes.close()
    assert sorted(carried) == list(range(1, 41))  # each request rides in exactly one report


def test_villagers_requests_are_marked_sent_only_when_the_centre_acknowledged_them(cfg: Config) -> None:
    from tests.test_uplink_client import SECRET, FakeCentre

    centre = FakeCentre()
    wishes = Wishes(cfg)
    try:
        wish = wishes.add("health", "高血压怎么吃药")
        box = cfg.replace(centre__url=centre.url, centre__secret=SECRET, centre__reconnect_delay_s=0)
        with clock.use(FrozenClock()) as fc:
            centre.script = ["500"]
            heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
            assert wishes.counts() == {"pending": 1, "sent": 0}
            fc.advance(box.centre.backoff_max_s)
            heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
        assert wishes.counts() == {"pending": 0, "sent": 1}
        carried = [r for r in centre.stored.values() if r.get("requests")]
        assert [q["id"] for r in carried for q in r["requests"]] == [wish]
        assert carried[0]["requests"][0]["text"] == "高血压怎么吃药"
    finally:
        wishes.close()
        centre.close()


def test_the_outbox_database_syncs_fully_on_every_commit(cfg: Config) -> None:
    beats(cfg, 1)
    with Outbox.of(cfg) as ob:
        assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert sqlite3.connect(outbox_path(cfg)).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_status_says_what_waits_and_what_went_wrong(cfg: Config) -> None:
    assert status(cfg)["outbox"] == 0 and status(cfg)["last_sent"] is None
    heartbeat_job(cfg, None, FakeHardware())
    st = status(cfg)
    assert st["outbox"] == 2 and st["last_report_seq"] == 2 and st["enabled"] is False
    assert json.dumps(st)  # the device page can show it as it is
