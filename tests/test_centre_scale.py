"""The centre at scale: reports partitioned by day with retention and roll-ups, bulk fill, two processes."""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

import pytest
import requests

from kiosk import clock
from kiosk.centre import housekeeping, simulate, summary
from kiosk.centre.store import Store
from kiosk.centre.tree import Node
from tests.centre_helpers import PG_URL, db_url, drop_schema, pg_reachable, report  # noqa: F401

DAY = 86400
T0 = 1_800_000_000.0


@pytest.fixture
def store(db_url: str):  # noqa: F811
    s = Store(db_url)
    yield s
    s.close()


def test_a_report_sent_again_days_later_is_stored_once(store: Store) -> None:
    store.enroll("p1")
    store.ingest("p1", [report("p1", 1), report("p1", 2)], received_at=T0)
    acked, new = store.ingest("p1", [report("p1", 2), report("p1", 3)], received_at=T0 + 3 * DAY)
    assert acked == [2, 3] and new == 1
    assert store.seqs("p1") == [1, 2, 3]
    # an older report arriving late (a backlog after newer ones) is stored too, once
    assert store.ingest("p1", [report("p1", 0)], received_at=T0 + 4 * DAY)[1] == 1
    assert store.ingest("p1", [report("p1", 0)], received_at=T0 + 5 * DAY)[1] == 0
    assert store.seqs("p1") == [0, 1, 2, 3]


@pytest.mark.postgres
def test_postgresql_keeps_reports_in_daily_partitions() -> None:
    assert not pg_reachable(), pg_reachable()
    schema = f"t_part_{uuid.uuid4().hex[:12]}"
    s = Store(f"{PG_URL}?schema={schema}")
    try:
        s.enroll("p1")
        with clock.use(clock.FrozenClock(T0)):
            made = housekeeping.ensure_partitions(s, T0)
        assert housekeeping.partition_name(int(T0 // DAY)) in made
        s.ingest("p1", [report("p1", 1)], received_at=T0)
        s.ingest("p1", [report("p1", 2)], received_at=T0 - 30 * DAY)  # no partition of its own: the default takes it
        where = s.db.query("SELECT tableoid::regclass::text, seq FROM reports ORDER BY seq")
        assert [w[0].rsplit(".", 1)[-1] for w in where] == [housekeeping.partition_name(int(T0 // DAY)), "reports_default"]
    finally:
        s.close()
        drop_schema(schema)


def test_roll_ups_count_each_report_once_and_outlive_the_raw_reports(store: Store) -> None:
    store.enroll("p1")
    store.enroll("p2")
    start = T0 - 10 * DAY
    housekeeping.ensure_partitions(store, start)
    for n in range(3):
        day = start + n * DAY
        housekeeping.ensure_partitions(store, day)
        store.ingest("p1", [report("p1", 10 * n + k, box_time=day + k * 3600, clock_synced=True) for k in range(4)],
                     received_at=day + 4 * 3600)
    store.ingest("p2", [report("p2", 1, box_time=start, clock_synced=True)], received_at=start + 60)
    housekeeping.roll_up(store, start + 2 * DAY)  # the first two days
    housekeeping.roll_up(store, start + 2 * DAY)  # again: nothing new is counted twice
    housekeeping.roll_up(store, T0)
    days = store.db.query("SELECT point, SUM(reports) FROM point_days GROUP BY point ORDER BY point")
    assert days == [("p1", 12), ("p2", 1)]
    hours = store.db.query("SELECT hours FROM point_days WHERE point = 'p1'")
    assert all(bin(h[0]).count("1") == 4 for h in hours)
    housekeeping.expire(store, T0, keep_days=8)  # the first two days go, the third stays
    assert store.seqs("p1") == [20, 21, 22, 23] and store.seqs("p2") == []
    assert store.db.one("SELECT SUM(reports) FROM point_days")[0] == 13


def test_retention_never_drops_reports_not_yet_rolled_up(store: Store) -> None:
    store.enroll("p1")
    store.ingest("p1", [report("p1", 1)], received_at=T0 - 40 * DAY)
    assert housekeeping.expire(store, T0, keep_days=7) == 0
    assert store.seqs("p1") == [1]


def test_a_province_fills_in_bulk_and_counts_by_county(store: Store) -> None:
    with clock.use(clock.FrozenClock(T0)):
        done = simulate.fill_province(store, 450, days=3, now=T0, per_county=150)
    assert done["points"] == 450 and done["days"] == 450 * 3
    from kiosk.centre.status import Rules

    rules = Rules(300, 900, T0 - 10 * DAY)
    counts = summary.summary(store, rules, T0, Node())
    assert [c["name"] for c in sorted(counts["children"], key=lambda c: c["name"])] == ["县001", "县002", "县003"]
    assert counts["node"]["total"] == 450
    assert sum(c["total"] for c in counts["children"]) == 450
    county = summary.summary(store, rules, T0, Node("县002"))
    assert len(county["children"]) == simulate.TOWNSHIPS_PER_COUNTY
    page = summary.points_page(store, rules, T0, Node("县002", "乡03"), per_page=100)
    assert page["total"] == 10 and {p["county"] for p in page["points"]} == {"县002"}


@pytest.mark.postgres
@pytest.mark.e2e
def test_two_centre_processes_on_one_postgresql_take_reports_and_serve_pages_alike(tmp_path: Path) -> None:
    from tests.test_centre_e2e import Centre

    assert not pg_reachable(), pg_reachable()
    schema = f"t_two_{uuid.uuid4().hex[:12]}"
    db = f"{PG_URL}?schema={schema}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = Centre(tmp_path / "a", db), Centre(tmp_path / "b", db)
    for c in (one, two):  # statuses that do not change while the two are asked one after the other
        text = re.sub(r"offline_after_s = \d+", "offline_after_s = 2592000", c.config.read_text(encoding="utf-8"))
        c.config.write_text(text.replace("heartbeat_interval_s = 1\n", "heartbeat_interval_s = 86400\n"), encoding="utf-8")
    starting = [threading.Thread(target=c.start) for c in (one, two)]  # both migrate the new schema at once
    store = None
    try:
        for t in starting:
            t.start()
        for t in starting:
            t.join(60)
        store = Store(db)
        simulate.fill_province(store, 300, days=2, per_county=100)
        token = store.new_token("check", "province")
        points = simulate.sample(store, 31)
        before = store.report_count()
        results: list[dict] = []
        drivers = [
            threading.Thread(target=lambda: results.append(simulate.drive(one.url, points[:15], 3, per_request=1, workers=4))),
            threading.Thread(target=lambda: results.append(simulate.drive(two.url, points[15:30], 2, per_request=5, workers=4))),
        ]
        # one box's batch reaching both processes at once (a retry after a timeout) is stored once
        p = points[30]
        batch = [p.report(clock.now(), __import__("random").Random(1)) for _ in range(3)]
        replayed: list[int] = []
        replays = [threading.Thread(target=lambda u=u: replayed.append(simulate.send(requests.Session(), u, p, batch)))
                   for u in (one.url, two.url, one.url, two.url)]  # send() waits out a 503 as a box does
        for t in drivers + replays:
            t.start()
        for t in drivers + replays:
            t.join(120)
        assert sum(r["acked"] for r in results) == 15 * 3 + 15 * 2 * 5 and replayed == [3, 3, 3, 3]
        assert store.report_count() - before == 15 * 3 + 15 * 2 * 5 + 3
        assert store.seqs(p.id) == [b["seq"] for b in batch]
        auth = {"Authorization": f"Bearer {token}"}
        for path in ("/api/v1/summary", "/api/v1/summary?county=县002", "/api/v1/points?county=县003&status=late"):
            answers = [requests.get(c.url + path, headers=auth, timeout=10).json() for c in (one, two)]
            assert answers[0] == answers[1], path
        assert answers[0]["total"] >= 1
        assert store.db.one("SELECT COUNT(*) FROM centre_starts")[0] == 2
    finally:
        if store is not None:
            store.close()
        for c in (one, two):
            c.stop()
        drop_schema(schema)


def test_a_large_nodes_counts_are_kept_briefly_in_the_database_and_shared(db_url: str, monkeypatch) -> None:  # noqa: F811
    from kiosk.centre.status import Rules

    monkeypatch.setattr(summary, "CACHE_MIN_POINTS", 2)
    one, two = Store(db_url), Store(db_url)
    rules = Rules(300, 900, T0 - DAY)
    try:
        for pid in ("p1", "p2"):
            one.enroll(pid, county="临县", township="东风乡")
        first = summary.summary(one, rules, T0, Node())
        one.ingest("p1", [report("p1", 1)], received_at=T0)
        # within the period every process gives the counts made at its start
        assert summary.summary(two, rules, T0 + 5, Node()) == first
        assert first["node"]["never"] == 2
        later = summary.summary(two, rules, T0 + summary.CACHE_S + 1, Node())
        assert later["node"]["online"] == 1 and later["node"]["never"] == 1
        # a node under the threshold is counted afresh every time
        monkeypatch.setattr(summary, "CACHE_MIN_POINTS", 3)
        one.ingest("p2", [report("p2", 1)], received_at=T0 + summary.CACHE_S + 2)
        assert summary.summary(one, rules, T0 + summary.CACHE_S + 3, Node("临县"))["node"]["online"] == 2
    finally:
        one.close()
        two.close()
