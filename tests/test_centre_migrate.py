"""Versioned migrations: a county database made before them upgrades in place, its data intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kiosk import clock
from kiosk.centre import migrate, stats
from kiosk.centre.store import Store
from kiosk.centre.tree import Node
from tests.centre_helpers import PG_URL, db_url, report  # noqa: F401  (db_url is a fixture)

OLD_SCHEMA = (Path(__file__).parent / "data" / "centre_schema_v0.sql").read_text(encoding="utf-8")
T0 = 1_800_000_000.0


def _old_statements() -> list[tuple[str, tuple]]:
    """A county database as the centre made it before migrations: schema, points, reports, a login."""
    out = [(s, ()) for s in OLD_SCHEMA.split(";") if s.strip()]
    out += [
        ("INSERT INTO meta (key, value) VALUES ('started_at', ?)", (repr(T0 - 100),)),
        ("INSERT INTO points (id, name, township, secret, enrolled_at, last_seen, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
         ("p1", "王家村服务点", "城关镇", "s" * 64, T0 - 86400, T0 - 60, 2)),
        ("INSERT INTO points (id, name, township, secret, enrolled_at) VALUES (?, ?, ?, ?, ?)",
         ("p2", "李庄服务点", "东风乡", "t" * 64, T0 - 86400)),
        ("INSERT INTO reports (point, seq, received_at, at, kind, event, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
         ("p1", 1, T0 - 120, T0 - 120, "event", "boot", '{"reason":"power"}')),
        ("INSERT INTO reports (point, seq, received_at, at, kind, temp_c) VALUES (?, ?, ?, ?, ?, ?)",
         ("p1", 2, T0 - 60, T0 - 60, "beat", 51.5)),
        ("INSERT INTO plays (point, seq, category, month, opens, plays) VALUES (?, ?, ?, ?, ?, ?)",
         ("p1", 2, "agriculture", "2027-01", 3, 2)),
        ("INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
         ("zhang", "scrypt:32768:8:1$x$y", T0)),
        ("INSERT INTO api_tokens (token_sha256, name, created_at) VALUES (?, ?, ?)", ("a" * 64, "monitoring", T0)),
    ]
    return out


def make_old_database(url: str) -> None:
    """Write the pre-migration schema and data with a plain driver connection."""
    if url.startswith("postgresql://"):
        import psycopg

        base, schema = url.split("?schema=")
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'SET search_path TO "{schema}"')
            for statement, params in _old_statements():
                conn.execute(statement.replace("?", "%s"), params)
        return
    conn = sqlite3.connect(url)
    with conn:
        for statement, params in _old_statements():
            conn.execute(statement, params)
    conn.close()


def test_a_county_database_made_before_migrations_upgrades_in_place_with_its_data(db_url: str) -> None:  # noqa: F811
    make_old_database(db_url)
    store = Store(db_url, county="临县")
    try:
        points = {p["id"]: p for p in store.points()}
        assert set(points) == {"p1", "p2"}
        assert points["p1"]["county"] == "临县" and points["p1"]["township"] == "城关镇"
        assert points["p1"]["name"] == "王家村服务点" and points["p1"]["last_seq"] == 2
        assert store.seqs("p1") == [1, 2] and store.events("p1")[0]["detail"] == {"reason": "power"}
        assert store.db.one("SELECT SUM(opens) FROM plays")[0] == 3
        # those who saw everything before still do
        assert store.user_scope("zhang") == Node() and store.tokens()[0]["scope"] == "province"
        # the start recorded before the upgrade still gives its grace
        assert store.started_at() == T0 - 100
        # and the upgraded database takes reports as a new one does
        store.ingest("p1", [report("p1", 3)])
        assert store.seqs("p1") == [1, 2, 3]
        assert migrate.pending(*_split(db_url)) == []
    finally:
        store.close()


def test_opening_an_up_to_date_database_again_changes_nothing(db_url: str) -> None:  # noqa: F811
    store = Store(db_url)
    store.enroll("p1", township="东风乡", county="临县")
    store.close()
    again = Store(db_url, county="别县")
    try:
        assert again.point("p1")["county"] == "临县"  # only points without a county are placed
    finally:
        again.close()


def test_a_point_enrolled_without_a_county_joins_the_centres_county(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "c.sqlite"), county="临县")
    try:
        store.enroll("p1", township="东风乡")
        store.enroll("p2", township="红旗镇", county="兴县")
        assert {p["id"]: p["county"] for p in store.points()} == {"p1": "临县", "p2": "兴县"}
    finally:
        store.close()


def test_the_start_grace_is_read_from_the_database_so_every_process_agrees(tmp_path: Path) -> None:
    url = str(tmp_path / "c.sqlite")
    one, two = Store(url), Store(url)
    try:
        with clock.use(clock.FrozenClock(T0)) as c:
            one.mark_started()
            c.advance(300)
            two.mark_started()
            assert one.started_at() == two.started_at() == T0 + 300
            from kiosk import config as config_mod

            cfg = config_mod.load(env={"KIOSK_CENTRE_OFFLINE_AFTER_S": "600"})
            assert one.rules(cfg).in_grace(c.now()) and two.rules(cfg).in_grace(c.now())
            one.enroll("p1")
            assert stats.status_counts(one, one.rules(cfg), c.now())[1] == 0
    finally:
        one.close()
        two.close()


def _split(url: str) -> tuple[str, str]:
    if "?schema=" in url:
        base, schema = url.split("?schema=")
        return base, schema
    return url, ""


@pytest.mark.postgres
def test_two_stores_opening_one_new_postgresql_schema_at_once_both_work(tmp_path: Path) -> None:
    import threading
    import uuid

    from tests.centre_helpers import drop_schema, pg_reachable

    assert not pg_reachable(), pg_reachable()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    url = f"{PG_URL}?schema={schema}"
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(Store(url))
        except BaseException as e:  # noqa: BLE001  (collected and asserted below)
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and len(stores) == 2
        stores[0].enroll("p1")
        assert stores[1].secret("p1")
    finally:
        for s in stores:
            s.close()
        drop_schema(schema)
